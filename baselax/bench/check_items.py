"""What ``baselax check`` runs: its flags, and the items they make (see
:mod:`baselax.bench.check` for what each item measures)."""

from __future__ import annotations

import argparse
from typing import Any

from baselax.experiment import cli

#: What an item runs: ``python -m baselax COMMAND`` (the installed package's
#: own command, so the check runs from a wheel as from a checkout).
MAIN_JOB = "train"
BENCH = "bench"
PROG = "baselax check"
DESCRIPTION = "One command that measures what this project claims, on the machine at hand."

#: The Breakout-MinAtar settings of the DQN family's results (docs/results/index.md).
BREAKOUT_FLAGS = [
  "--env-id",
  "Breakout-MinAtar",
  "--num-envs",
  "32",
  "--buffer-size",
  "50000",
  "--learning-rate",
  "1e-3",
  "--target-update-interval",
  "200",
  "--exploration-fraction",
  "0.2",
]


def parse_args(argv: list[str] | None = None, prog: str = PROG) -> argparse.Namespace:
  parser = cli.OneLineParser(description=DESCRIPTION, prog=prog)
  parser.add_argument(
    "--smoke",
    action="store_true",
    help="tiny budgets; no seeds items, and bench without its host-loop "
    "and seeds rows (a CPU check of the whole path, under a minute)",
  )
  parser.add_argument(
    "--out", default=None, help="output directory (default runs/accelerator-check-<timestamp>)"
  )
  parser.add_argument(
    "--time-budget",
    type=float,
    default=480.0,
    help="seconds for the whole check (default 8 minutes)",
  )
  parser.add_argument(
    "--only",
    nargs="+",
    default=None,
    choices=["default", "seeds", "breakout", "bench", "bench-large"],
    help="run only these items",
  )
  parser.add_argument(
    "--total-env-steps",
    type=cli.positive_int,
    default=300_000,
    help="env steps per seed of the default and seeds items",
  )
  parser.add_argument(
    "--seeds",
    type=cli.positive_int,
    nargs="+",
    default=[8, 64, 256],
    help="--num-seeds of the seeds items (1 is the default item)",
  )
  parser.add_argument("--breakout-env-steps", type=cli.positive_int, default=1_000_000)
  parser.add_argument("--breakout-eval-every", type=cli.positive_int, default=100_000)
  _add_bench_flags(parser)
  parser.add_argument(
    "--extra-flags",
    nargs=argparse.REMAINDER,
    default=[],
    help="passed to every main-job item (e.g. --num-devices 1)",
  )
  args = parser.parse_args(argv)
  if not args.time_budget > 0:
    parser.error(f"--time-budget must be > 0 seconds, got {args.time_budget}.")
  return _smoke_budgets(args) if args.smoke else args


def _add_bench_flags(parser: argparse.ArgumentParser) -> None:
  """The flags of the bench items."""
  parser.add_argument(
    "--bench-num-envs",
    type=cli.positive_int,
    nargs="+",
    default=[1, 8, 64, 512, 4096],
    help="N of the bench sweep (with host-loop rows)",
  )
  parser.add_argument(
    "--bench-large-num-envs",
    type=cli.positive_int,
    nargs="+",
    default=[65_536],
    help="N of the large bench rows (no host loop)",
  )
  parser.add_argument(
    "--bench-seeds",
    type=cli.positive_int,
    nargs="+",
    default=[1, 8, 64, 256],
    help="seed counts of the bench seeds rows",
  )
  parser.add_argument(
    "--bench-seeds-num-envs", type=cli.positive_int, default=64, help="N of the bench seeds rows"
  )
  parser.add_argument(
    "--bench-env-steps",
    type=cli.positive_int,
    default=1_000_000,
    help="bench.py --env-steps (target env steps per timed row)",
  )


def _smoke_budgets(args: argparse.Namespace) -> argparse.Namespace:
  """``--smoke``: every item's path, on budgets a CPU runs in under a minute."""
  args.total_env_steps = 20_000
  args.seeds = []  # the default item's path with --num-seeds: a compile saved
  args.breakout_env_steps = 2_000
  args.breakout_eval_every = 1_000
  args.bench_num_envs = [8]
  args.bench_large_num_envs = []
  args.bench_seeds = []  # bench.py --quick (in the tests) times those rows
  args.bench_seeds_num_envs = 8
  args.bench_env_steps = 10_000
  args.time_budget = min(args.time_budget, 300.0)
  return args


def item_list(args) -> list[dict[str, Any]]:
  """The items: name, command (script + flags), timeout cap in seconds."""
  items = _main_job_items(args) + _bench_items(args)
  if args.only:
    items = [i for i in items if i["group"] in args.only]
  return items


def _main_job_items(args) -> list[dict[str, Any]]:
  """The default item, the seeds items and Breakout."""
  common = ["--quiet", "--no-tensorboard", "--compilation-cache", "none", *args.extra_flags]
  steps = args.total_env_steps
  items = [
    dict(
      name="default",
      group="default",
      script=MAIN_JOB,
      timeout=120,
      flags=["--total-env-steps", str(steps), *common],
      what=f"CartPole-v1, {steps:,} steps, 10 envs, 1 seed",
    )
  ]
  for s in args.seeds:
    items.append(
      dict(
        name=f"seeds-{s}",
        group="seeds",
        script=MAIN_JOB,
        timeout=120,
        flags=["--total-env-steps", str(steps), "--num-seeds", str(s), *common],
        what=f"CartPole-v1, {steps:,} steps, 10 envs, {s} seeds",
      )
    )
  breakout = list(BREAKOUT_FLAGS)
  if args.smoke:  # a buffer and a warm-up that fit a few thousand steps
    breakout = [
      *BREAKOUT_FLAGS[:2],
      "--num-envs",
      "8",
      "--buffer-size",
      "2000",
      "--learning-starts",
      "500",
      "--eval-episodes",
      "2",
      "--eval-max-steps",
      "100",
    ]
  items.append(
    dict(
      name="breakout",
      group="breakout",
      script=MAIN_JOB,
      timeout=180,
      flags=[
        *breakout,
        "--total-env-steps",
        str(args.breakout_env_steps),
        "--eval-every",
        str(args.breakout_eval_every),
        *common,
      ],
      what=f"Breakout-MinAtar, {args.breakout_env_steps:,} steps, "
      f"{breakout[breakout.index('--num-envs') + 1]} envs, 1 seed",
    )
  )
  return items


def _bench_items(args) -> list[dict[str, Any]]:
  """``baselax bench``'s sweep, and its large N in a process of its own."""
  items = []
  listed = lambda values: ",".join(map(str, values))  # noqa: E731
  steps = ["--env-steps", str(args.bench_env_steps)]
  if args.bench_num_envs:
    items.append(
      dict(
        name="bench",
        group="bench",
        script=BENCH,
        timeout=200,
        flags=[
          "--num-envs",
          *map(str, args.bench_num_envs),
          "--seeds",
          *map(str, args.bench_seeds),
          *(["--no-hostloop"] if args.smoke else []),
          "--seeds-num-envs",
          str(args.bench_seeds_num_envs),
          *steps,
        ],
        what=f"bench.py N={listed(args.bench_num_envs)}, seeds {listed(args.bench_seeds)}",
      )
    )
  if args.bench_large_num_envs:
    # bench.py always adds seeds rows: one seed at the large N is the cheapest.
    n = args.bench_large_num_envs[-1]
    items.append(
      dict(
        name="bench-large",
        group="bench-large",
        script=BENCH,
        timeout=120,
        flags=[
          "--num-envs",
          *map(str, args.bench_large_num_envs),
          "--no-hostloop",
          "--seeds",
          "1",
          "--seeds-num-envs",
          str(n),
          *steps,
        ],
        what=f"bench.py N={listed(args.bench_large_num_envs)}, no host loop",
      )
    )
  return items
