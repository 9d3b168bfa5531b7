"""``scripts/bench.py``'s command line (``python -m baselax.bench``).

``--cpu-devices K`` must reach XLA_FLAGS before JAX starts: :func:`main`
applies it first, and nothing here imports JAX at module level.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from baselax.experiment import cli

PROG = "bench.py"


def force_cpu_devices(argv: list[str]) -> None:
  """``--cpu-devices K``: K host devices, set in XLA_FLAGS before JAX starts."""
  if "--cpu-devices" in argv:
    count = argv[argv.index("--cpu-devices") + 1]
    os.environ["XLA_FLAGS"] = (
      os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={count}"
    )


def add_agent_flags(parser: argparse.ArgumentParser) -> None:
  """The agent rows' flags (``--agent``, ``--agents`` and the variant flags)."""
  agents = parser.add_argument_group("agents (rows of the main job's chunk, beside DQN)")
  agents.add_argument("--agent", default=None, help="a registered agent")
  agents.add_argument(
    "--agents", action="store_true", help="the DQN family's row set (see the module doc)"
  )
  agents.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
  for flag in ("--prioritized", "--noisy", "--dueling", "--double-dqn"):
    agents.add_argument(flag, action="store_true")
  agents.add_argument("--n-step", type=int, default=None)
  agents.add_argument(
    "--dueling-hidden",
    default=None,
    help="where a dueling head's hidden layers go (shared, per-stream)",
  )


def parse(argv: list[str] | None = None, prog: str = PROG) -> argparse.Namespace:
  """The command line, checked against this machine's devices (JAX starts here)."""
  parser = _parser(prog)
  args = parser.parse_args(argv)
  _settle(parser, args)
  return args


def _parser(prog: str) -> cli.OneLineParser:
  import baselax.bench

  parser = cli.OneLineParser(description=baselax.bench.__doc__.splitlines()[0], prog=prog)
  parser.add_argument(
    "--env-id",
    "--env",
    dest="env",
    default="CartPole-v1",
    help="env id: a gymnax id, or suite:name for Craftax, Jumanji, "
    "Navix, XLand-MiniGrid (e.g. navix:Navix-Empty-5x5-v0)",
  )
  parser.add_argument(
    "--num-envs",
    type=cli.positive_int,
    nargs="+",
    default=None,
    help="values of N to sweep (default 1 8 64 512 4096; agent rows: the first value, default 10)",
  )
  parser.add_argument(
    "--seeds",
    type=cli.positive_int,
    nargs="*",
    default=[1, 8, 32],
    help="seed counts for the seeds rows (none: no seeds rows)",
  )
  parser.add_argument(
    "--seeds-num-envs", type=cli.positive_int, default=64, help="N for the seeds rows"
  )
  parser.add_argument(
    "--train-every", type=cli.positive_int, default=1, help="scan iterations between updates"
  )
  parser.add_argument("--batch-size", type=cli.positive_int, default=128)
  parser.add_argument("--buffer-size", type=cli.positive_int, default=10_000)
  parser.add_argument("--learning-rate", type=float, default=2.5e-4)
  parser.add_argument(
    "--devices",
    type=cli.positive_int,
    default=1,
    help="devices the anakin rows pmap over (N envs each)",
  )
  parser.add_argument(
    "--env-steps",
    type=cli.positive_int,
    default=1_000_000,
    help="target env steps per timed row (fewer for slow rows)",
  )
  parser.add_argument("--no-hostloop", action="store_true", help="skip the host-loop rows")
  parser.add_argument(
    "--scaling",
    type=cli.positive_int,
    nargs="+",
    default=None,
    metavar="D",
    help="device counts for the scaling rows (N = the first --num-envs value per device)",
  )
  parser.add_argument(
    "--cpu-devices",
    type=cli.positive_int,
    default=None,
    help="force this many CPU devices (XLA_FLAGS, set before JAX starts)",
  )
  parser.add_argument(
    "--quick", action="store_true", help="a reduced sweep (N=16; 4 seeds) for smoke tests"
  )
  parser.add_argument("--json", default=None, help="write the results here")
  parser.add_argument(
    "--memory-only",
    action="store_true",
    help="print the bytes per transition of each buffer kind and exit",
  )
  add_agent_flags(parser)
  return parser


def _settle(parser: cli.OneLineParser, args: argparse.Namespace) -> None:
  """The values the flags imply, checked against this machine's devices."""
  import jax

  from baselax import envs
  from baselax.agents import registry
  from baselax.errors import ConfigError

  args.agent_flags = (
    ([] if args.agent is None else ["--agent", args.agent])
    + [
      f"--{f.replace('_', '-')}"
      for f in ("prioritized", "noisy", "dueling", "double_dqn")
      if getattr(args, f)
    ]
    + ([] if args.n_step is None else ["--n-step", str(args.n_step)])
    + ([] if args.dueling_hidden is None else ["--dueling-hidden", args.dueling_hidden])
  )
  args.agent_mode = bool(args.agents or args.agent_flags)
  if args.num_envs is None:
    args.num_envs = [10] if args.agent_mode else [1, 8, 64, 512, 4096]
  if args.quick:
    args.num_envs, args.seeds, args.seeds_num_envs = [16], [4], 16
    args.env_steps = 50_000
  if args.rounds < 1:
    parser.error(f"--rounds must be >= 1, got {args.rounds}.")
  if not args.learning_rate > 0:
    parser.error(f"--learning-rate must be > 0, got {args.learning_rate}.")
  if args.scaling and max(args.scaling) > jax.local_device_count():
    parser.error(
      f"--scaling up to {max(args.scaling)} devices but only "
      f"{jax.local_device_count()} exist; on CPU add --cpu-devices "
      f"{max(args.scaling)}."
    )
  if args.devices > jax.local_device_count():
    parser.error(
      f"--devices {args.devices} but only {jax.local_device_count()} "
      f"local device(s); on CPU set XLA_FLAGS=--xla_force_host_"
      f"platform_device_count={args.devices} before running."
    )
  if args.env != "CartPole-v1" and not args.no_hostloop and not args.agent_mode:
    print(
      "note: the host-loop rows use gymnasium's CartPole-v1 only; "
      "pass --no-hostloop to silence this.",
      file=sys.stderr,
    )
  try:
    args.env_obj = envs.make(args.env)
    if args.agent is not None:
      registry.get(args.agent)
  except ConfigError as error:
    parser.error(
      f"--agent {args.agent}: {error}" if "agent" in str(error) else f"--env-id {args.env}: {error}"
    )


def write_json(path: str | None, result: dict[str, Any]) -> None:
  if path:
    with open(path, "w") as f:
      json.dump(result, f, indent=2)
    print(f"wrote {path}")


def main(argv: list[str] | None = None, prog: str = PROG) -> dict[str, Any]:
  """Runs the rows the flags ask for; returns (and with ``--json`` writes) them."""
  argv = list(sys.argv[1:] if argv is None else argv)
  force_cpu_devices(argv)
  args = parse(argv, prog)
  import jax

  from baselax.bench import agents, memory, rows

  env = args.env_obj
  header = dict(
    jax=jax.__version__,
    backend=jax.default_backend(),
    device_kind=jax.devices()[0].device_kind,
    devices=args.devices,
    env=args.env,
    train_every=args.train_every,
    batch_size=args.batch_size,
    buffer_size=args.buffer_size,
    cpu_count=os.cpu_count(),
    local_devices=jax.local_device_count(),
  )
  print(
    f"baselax bench | jax {header['jax']} | backend {header['backend']} | "
    f"device {header['device_kind']} x{args.devices} (of {jax.local_device_count()}) | "
    f"env {args.env} | "
    f"train_every {args.train_every} | batch {args.batch_size} | "
    f"{header['cpu_count']} CPU cores"
  )
  if args.agent_mode:
    result = dict(header=header, rows=agents.run_agent_rows(args))
    write_json(args.json, result)
    return result
  agent = rows.make_agent(env, args)
  memory_table = memory.memory_rows(env, agent, args)
  print(
    f"replay memory, bytes per stored transition (buffer_size {args.buffer_size:,}, "
    f"N = {args.num_envs[0]}):"
  )
  for row in memory_table:
    stored = f"{row['requested']} ({row['obs_storage']})"
    print(
      f"  {row['buffer']:<20}{stored:>17}: obs {row['stored_obs_bytes']:>7,} "
      f"B of {row['obs_bytes']:>7,}{row['bytes_per_transition']:>12,.1f} B/transition"
    )
  if args.memory_only:
    result = dict(header=header, memory=memory_table)
  else:
    result = dict(
      header=header, rows=rows.run_throughput_rows(args, env, agent), memory=memory_table
    )
  write_json(args.json, result)
  return result
