"""``baselax``: the library's command (``python -m baselax`` is the same).

    baselax train                               # DQN on CartPole-v1 (the main job)
    baselax train --agent rainbow --preset revisiting-rainbow-fast --env-id minatar:Breakout
    baselax train --env-id ALE/Pong-v5          # Atari, through the host loop
    baselax train --import my_agents --agent mine   # an agent my_agents registers
    baselax evaluate runs/CartPole-v1-dqn-20261207-120000
    baselax bench --quick
    baselax table --table cleanrl-classic --dry-run
    baselax check --smoke

Each command imports what it needs when it runs, so ``baselax --help`` starts
without JAX, and a run can still set ``XLA_FLAGS`` and join
``jax.distributed`` before JAX starts.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Callable, Sequence

PROG = "baselax"


def _split_imports(argv: Sequence[str]) -> tuple[list[str], list[str]]:
  """``(modules named by --import M, the other flags)``."""
  modules, rest, it = [], [], iter(argv)
  for arg in it:
    if arg == "--import":
      modules.append(next(it, ""))
    elif arg.startswith("--import="):
      modules.append(arg.split("=", 1)[1])
    else:
      rest.append(arg)
  return modules, rest


def _flag(argv: Sequence[str], name: str) -> str | None:
  for i, arg in enumerate(argv):
    if arg == name and i + 1 < len(argv):
      return argv[i + 1]
    if arg.startswith(name + "="):
      return arg.split("=", 1)[1]
  return None


def is_atari_run(argv: Sequence[str]) -> bool:
  """Whether a ``train`` command line is an Atari run (the host loop): an
  ``ALE/...`` or ``...NoFrameskip``/``...Deterministic`` id, or ``--resume``
  of a run directory that has an ``atari`` section."""
  resume = _flag(argv, "--resume")
  if resume is not None:
    import json

    try:
      with open(os.path.join(resume, "config.json")) as f:
        return "atari" in json.load(f)
    except (OSError, ValueError):
      return False  # the main job refuses it in one line
  env_id = _flag(argv, "--env-id") or ""
  return env_id.startswith("ALE/") or bool(re.search(r"(NoFrameskip|Deterministic)-v\d+$", env_id))


def train(argv: list[str], prog: str) -> int:
  """The main job (``experiments/anakin_dqn.py``), or an Atari run."""
  modules, argv = _split_imports(argv)
  for module in modules:
    try:
      importlib.import_module(module)  # registers the user's agents
    except ImportError as error:
      print(f"{prog}: error: --import {module}: {error} (is it on PYTHONPATH?)", file=sys.stderr)
      return 2
  if is_atari_run(argv):
    from baselax import atari

    return atari.main(argv, prog=prog)
  from baselax.experiment import launch

  return launch.main(argv, prog=prog)


def evaluate(argv: list[str], prog: str) -> int:
  from baselax.experiment import evaluation

  evaluation.main(argv, prog)
  return 0


def bench(argv: list[str], prog: str) -> int:
  from baselax.bench import cli

  cli.main(argv, prog)
  return 0


def table(argv: list[str], prog: str) -> int:
  from baselax.experiment.tables import cli

  return cli.main(argv, prog)


def check(argv: list[str], prog: str) -> int:
  from baselax.bench import check as check_lib

  return check_lib.main(argv, prog)


#: ``{command: (one line for --help, what runs it)}``.
COMMANDS: dict[str, tuple[str, Callable[[list[str], str], int]]] = {
  "train": (
    "train a registered agent: the Anakin main job, Atari ids through the host loop",
    train,
  ),
  "evaluate": ("greedy episodes of a run directory's newest checkpoint", evaluate),
  "bench": ("throughput of the Anakin trainer beside its limits and a host loop", bench),
  "table": ("fill a paper's table cell by cell and report it beside the published values", table),
  "check": (
    "measure this machine's accelerator: the runs and benchmarks the project claims",
    check,
  ),
}


def usage() -> str:
  width = max(map(len, COMMANDS))
  lines = [
    f"usage: {PROG} [--version] COMMAND [flags]",
    "",
    "RL agents in JAX and an Anakin trainer.",
    "",
    "commands:",
  ]
  lines += [f"  {name:<{width}}  {text}" for name, (text, _) in COMMANDS.items()]
  lines += ["", f"{PROG} COMMAND --help lists a command's flags."]
  return "\n".join(lines)


def version() -> str:
  from baselax import __version__

  return f"{PROG} {__version__}"


def main(argv: Sequence[str] | None = None) -> int:
  """The command line: the exit code of the command (2: a bad command line)."""
  argv = list(sys.argv[1:] if argv is None else argv)
  if not argv or argv[0] in ("-h", "--help"):
    print(usage())
    return 0
  if argv[0] == "--version":
    print(version())
    return 0
  name, rest = argv[0], argv[1:]
  if name not in COMMANDS:
    print(
      f"{PROG}: error: {name}: no such command; the commands are "
      f"{', '.join(COMMANDS)} ({PROG} --help)",
      file=sys.stderr,
    )
    return 2
  return COMMANDS[name][1](rest, f"{PROG} {name}")


if __name__ == "__main__":
  sys.exit(main())
