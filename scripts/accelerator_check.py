"""One command that measures what this project claims, on the machine at hand.

    python scripts/accelerator_check.py --smoke     # a reduced check: under a minute on a CPU

The same as ``baselax check`` (``baselax.bench.check``; ``--help`` lists
the items and flags).
"""

import sys

from baselax.bench import check

if __name__ == "__main__":
  sys.exit(check.main(sys.argv[1:], prog="accelerator_check.py"))
