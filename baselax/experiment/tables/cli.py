"""``scripts/table.py``: fill a paper's table cell by cell, then rebuild its report.

    python scripts/table.py --table cleanrl-classic             # 5 agents x 3 envs x 10 seeds
    python scripts/table.py --table revisiting-rainbow --fast --frames 2e6 --envs Breakout
    python scripts/table.py --table young-tian-2019 --fast --frames 2e6 --seeds 4
    python scripts/table.py --report-only --out docs/results/minatar   # the report again

A stopped table resumes cell by cell: a finished cell is skipped, a started
one continues from its last checkpoint. Flags after ``--`` go to every
cell's main job (``python experiments/anakin_dqn.py --help``).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent import futures

from baselax.errors import ConfigError
from baselax.experiment import cli as cli_lib
from baselax.experiment.tables import cells, report, specs

PROG = "table.py"

#: The title of each results directory's README.
TITLES = {
  "minatar": "MinAtar: two papers' tables, reproduced",
  "classic": "Classic control: CleanRL's DQN and C51 table, reproduced",
}


def parser(prog: str = PROG) -> argparse.ArgumentParser:
  p = cli_lib.OneLineParser(
    prog=prog,
    description=__doc__.split("\n\n")[0],
    epilog="tables: "
    + "; ".join(
      f"{t.name} ({', '.join(t.agents)} on {', '.join(specs.label(e) for e in t.envs)})"
      for t in specs.TABLES.values()
    ),
    formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  p.add_argument("--table", default=None, help=f"one of {', '.join(specs.TABLES)}")
  p.add_argument(
    "--agents", nargs="+", default=None, help="rows to fill (default: all of the table's)"
  )
  p.add_argument(
    "--envs", nargs="+", default=None, help="columns to fill, by id or short name (default: all)"
  )
  p.add_argument(
    "--seeds",
    type=cli_lib.integer,
    default=None,
    help="seeds per cell, one program (default: the table's)",
  )
  p.add_argument("--first-seed", type=cli_lib.integer, default=0)
  p.add_argument(
    "--frames",
    type=cli_lib.integer,
    default=None,
    help="env steps per seed (default: the paper's budget; 2e6 works)",
  )
  p.add_argument(
    "--fast",
    action="store_true",
    help="the table's Anakin preset (PRESET-fast) instead of the paper's own",
  )
  p.add_argument(
    "--runs-dir", default=None, help="where the cells' run directories go (default: runs/OUT)"
  )
  p.add_argument(
    "--out", default=None, help="where cell files and the report go (default: docs/results/OUT)"
  )
  p.add_argument(
    "--report-only",
    action="store_true",
    help="only rebuild the report and figures from the cell files",
  )
  p.add_argument(
    "--jobs",
    type=cli_lib.integer,
    default=1,
    help="cells run at once, each in a process of its own with its output in RUN_DIR.log "
    "(default: 1; on an accelerator several overlap their launch latency)",
  )
  p.add_argument("--dry-run", action="store_true", help="print the cells' commands only")
  p.add_argument("extra", nargs="*", help="more main-job flags, after --")
  return p


def parse(argv: Sequence[str] | None = None, prog: str = PROG) -> argparse.Namespace:
  """The parsed flags; a bad one is refused in one line (exit code 2)."""
  p = parser(prog)
  args = p.parse_args(argv)
  if args.table is None:
    if not (args.report_only and args.out):
      p.error(f"--table: name a table ({', '.join(specs.TABLES)}), or --report-only --out DIR.")
    return args
  try:
    table = specs.get(args.table)
    args.agents = args.agents or list(table.agents)
    unknown = [a for a in args.agents if a not in table.agents]
    if unknown:
      raise ConfigError(
        f"--agents {' '.join(unknown)}: not in the {table.name} table ({', '.join(table.agents)})."
      )
    args.envs = [table.env_id(e) for e in (args.envs or table.envs)]
  except ConfigError as error:
    p.error(str(error))
  if args.fast and table.fast_preset is None:
    p.error(f"--fast: the {table.name} table has no fast preset; leave out --fast.")
  args.seeds = table.seeds if args.seeds is None else args.seeds
  args.frames = table.frames if args.frames is None else args.frames
  for name in ("seeds", "frames", "jobs"):
    if getattr(args, name) < 1:
      p.error(f"--{name} must be >= 1, got {getattr(args, name)}.")
  args.runs_dir = args.runs_dir or os.path.join("runs", table.out)
  args.out = args.out or os.path.join("docs", "results", table.out)
  return args


def planned(args: argparse.Namespace) -> list[cells.Cell]:
  table = specs.get(args.table)
  preset = table.fast_preset if args.fast else table.preset
  return [
    cells.Cell(
      table=table.name,
      preset=preset,
      agent=agent,
      env_id=env_id,
      frames=args.frames,
      seeds=args.seeds,
    )
    for agent in args.agents
    for env_id in args.envs
  ]


def fill(
  todo: Sequence[cells.Cell],
  runs_dir: str,
  out: str,
  extra: Sequence[str] = (),
  first_seed: int = 0,
  jobs: int = 1,
  dry_run: bool = False,
  deadline: float | None = None,
  on_done: Callable[[cells.Cell, str], None] | None = None,
) -> int:
  """Runs the cells ``jobs`` at a time, in order, and writes each finished
  cell's file under ``out`` as soon as it is done.

  ``deadline`` (a ``time.monotonic()`` value) stops a cell still running then
  and starts none after it. Returns 0 when every cell finished, 1 when one
  stopped (the others still run), 130 when one was stopped by Ctrl-C or a
  signal: no cell starts after that.
  """
  interrupted = threading.Event()

  def one(cell: cells.Cell) -> str | None:
    left = None if deadline is None else deadline - time.monotonic()
    if interrupted.is_set() or (left is not None and left <= 0):
      return None
    try:
      return cells.run(cell, runs_dir, extra, first_seed, dry_run, jobs > 1, left)
    except cells.Interrupted:
      interrupted.set()  # before this worker takes the next cell
      raise

  stopped = 0
  pool = futures.ThreadPoolExecutor(max_workers=jobs)
  try:
    running = {pool.submit(one, cell): cell for cell in todo}
    for done in futures.as_completed(running):
      try:
        run_dir = done.result()
      except cells.Interrupted:
        continue
      if run_dir is None:
        stopped += not dry_run
        continue
      cell = running[done]
      path = cells.write(out, cells.result(run_dir, cell))
      print(f"  -> {path}", flush=True)
      if on_done is not None:
        on_done(cell, path)
  except BaseException:
    # Ctrl-C in this process, or a cell's result that cannot be read: start
    # nothing more (the running cells get the terminal's Ctrl-C themselves).
    interrupted.set()
    raise
  finally:
    pool.shutdown(wait=True, cancel_futures=True)
  return 130 if interrupted.is_set() else int(stopped > 0)


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
  """Fills the cells the flags name (resuming any started), then the report.

  Returns 0 when every cell is finished, 1 when one stopped on an error (the
  others still run), 130 when a cell was stopped by Ctrl-C or a signal (the
  table stops there). The same command resumes it.
  """
  args = parse(argv, prog)
  code = 0
  if not args.report_only:
    try:
      code = fill(
        planned(args),
        args.runs_dir,
        args.out,
        args.extra,
        args.first_seed,
        args.jobs,
        args.dry_run,
      )
    except KeyboardInterrupt:
      print("stopped by Ctrl-C; the same command resumes the table.", file=sys.stderr)
      return 130
    if code == 130:
      return code
  if os.path.isdir(args.out):
    name = os.path.basename(os.path.normpath(args.out))
    report.write(args.out, TITLES.get(name, f"{name}: the papers' tables, reproduced"))
    print(f"report: {os.path.join(args.out, 'README.md')}", flush=True)
  return code


if __name__ == "__main__":
  sys.exit(main())
