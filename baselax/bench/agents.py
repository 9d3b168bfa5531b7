"""The agent rows: the main job's training chunk of each agent beside DQN's,
timed in interleaved rounds in one process (``--agent``, ``--agents``)."""

from __future__ import annotations

import argparse
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from baselax import anakin
from baselax.bench.rows import two_chunk_config

#: ``--agents``: the DQN family's rows, each ``(label, main-job flags)``.
AGENT_ROWS: tuple[tuple[str, list[str]], ...] = (
  ("dqn", []),
  ("--prioritized", ["--prioritized"]),
  ("--n-step 3", ["--n-step", "3"]),
  ("--noisy", ["--noisy"]),
  ("--dueling --double-dqn", ["--dueling", "--double-dqn"]),
  (
    "--dueling (per-stream) --double-dqn",
    ["--dueling", "--dueling-hidden", "per-stream", "--double-dqn"],
  ),
  ("c51", ["--agent", "c51"]),
  ("qrdqn", ["--agent", "qrdqn"]),
  ("mdqn", ["--agent", "mdqn"]),
  ("rainbow", ["--agent", "rainbow"]),
)


def agent_chunk(flags: list[str], n: int, iterations: int, args) -> Any:
  """The main job's compiled training chunk for ``flags`` (every step learning).

  Returns ``(run, compile_s, env_steps)``: ``run()`` runs one chunk from a
  buffer filled by a warm-up chunk and returns its seconds.
  """
  from baselax.experiment import launch

  trainer = two_chunk_config(n, iterations, args, 1)
  sizes = [
    "--env-id",
    args.env,
    "--num-envs",
    str(n),
    "--batch-size",
    str(args.batch_size),
    "--buffer-size",
    str(trainer.buffer_size),
    "--train-every",
    str(args.train_every),
    "--total-env-steps",
    str(trainer.total_env_steps),
    "--eval-every",
    str(trainer.eval_every),
    "--learning-starts",
    str(trainer.learning_starts),
    "--num-devices",
    "1",
  ]
  spec = launch.parse(sizes + flags, prog="bench.py")
  prepared = launch.prepare(spec)
  program = anakin.program.build(prepared.agent, prepared.env, spec.trainer, evaluate=False)
  t = time.perf_counter()
  state, chunk = program.start()
  compile_s = time.perf_counter() - t
  holder = {"state": chunk(state, jnp.int32(0))[0]}  # warm-up: fills the buffer
  jax.block_until_ready(holder["state"])
  start = jnp.int32(program.derived.steps_per_chunk)

  def run() -> float:
    t = time.perf_counter()
    holder["state"], metrics = chunk(holder["state"], start)
    jax.block_until_ready(metrics)
    return time.perf_counter() - t

  return run, compile_s, program.derived.env_steps_per_chunk


def agent_rows(rows, args, show) -> None:
  """Each row's chunk beside DQN's, in ``args.rounds`` interleaved rounds."""
  n = args.num_envs[0]
  iterations = int(np.clip(args.env_steps // n, 64, 5_000))
  if not rows or rows[0][1]:
    rows = [("dqn", [])] + list(rows)
  built = [(label, *agent_chunk(flags, n, iterations, args)) for label, flags in rows]
  times: dict[str, list[float]] = {label: [] for label, *_ in built}
  for _ in range(args.rounds):
    for label, run, _, _ in built:
      times[label].append(run())
  base = np.asarray(times[built[0][0]])
  for label, _, compile_s, env_steps in built:
    t = np.asarray(times[label])
    show(
      dict(
        kind=label,
        num_envs=n,
        num_seeds=1,
        env_steps_per_s=env_steps / np.median(t),
        updates_per_s=float("nan"),
        compile_s=compile_s,
        run_s=float(np.median(t)),
        vs_dqn=float(np.median(base / t)),
        compile_vs_dqn=compile_s / built[0][2],
      )
    )


def run_agent_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
  """``--agent``/``--agents``: each row's chunk beside DQN's (see the module doc)."""
  rows: list[dict[str, Any]] = []
  print(
    f"{'row':<24}{'env steps/s':>13}{'vs dqn':>9}{'compile s':>11}{'vs dqn':>9}"
    f"   (N = {args.num_envs[0]}, median of {args.rounds} interleaved rounds)"
  )

  def show(row):
    rows.append(row)
    print(
      f"{row['kind']:<24}{row['env_steps_per_s']:>13,.0f}{row['vs_dqn']:>8.2f}x"
      f"{row['compile_s']:>11.1f}{row['compile_vs_dqn']:>8.2f}x",
      flush=True,
    )

  agent_rows(
    list(AGENT_ROWS) if args.agents else [(" ".join(args.agent_flags), args.agent_flags)],
    args,
    show,
  )
  return rows
