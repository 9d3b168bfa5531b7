"""Configuration fuzzing for longer than the suite does: N random command
lines of the main job through its parse and host-side checks (nothing is
compiled); each must end valid or refused in one line naming a flag.

    python scripts/fuzz_flags.py                 # 50,000 command lines (a few minutes)
    python scripts/fuzz_flags.py --examples 200000

The property and the strategy are tests/test_fuzz.py's and tests/fuzzing.py's;
a failure prints hypothesis's smallest failing command line.
"""

import argparse
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--examples", type=int, default=50_000)
  args = parser.parse_args()
  if args.examples < 1:
    parser.error(f"--examples must be >= 1, got {args.examples}.")
  env = dict(os.environ, BASELAX_FUZZ_EXAMPLES=str(args.examples), JAX_PLATFORMS="cpu")
  return subprocess.call(
      [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider",
       "tests/test_fuzz.py::test_every_command_line_is_valid_or_refused_in_one_line"],
      cwd=REPO, env=env)


if __name__ == "__main__":
  sys.exit(main())
