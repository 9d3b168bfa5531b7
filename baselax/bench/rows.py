"""The throughput rows: the env's and the policy's limits, the Anakin loop, the
host loop on the same settings, seeds on one device and over devices, and
weak scaling over devices (``baselax.bench``'s module doc has them all)."""

from __future__ import annotations

import argparse
import resource
import time
from typing import Any

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import optax

from baselax import anakin, envs, hostloop, networks
from baselax.agents import DQN


def peak_rss_mb() -> float:
  """Peak resident memory of this process so far (it never goes down)."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn, *args):
  """Compiles ``fn`` for ``args``, warms it up once, then times one call."""
  t = time.perf_counter()
  compiled = jax.jit(fn).lower(*args).compile()
  compile_s = time.perf_counter() - t
  jax.block_until_ready(compiled(*args))
  t = time.perf_counter()
  jax.block_until_ready(compiled(*args))
  return compile_s, time.perf_counter() - t


def make_agent(env, args) -> DQN:
  return DQN(
    networks.default_q_network(env.single_observation_space),
    env,
    args.learning_rate,
    epsilon_schedule=optax.constant_schedule(0.1),
    target_update_interval=50,
  )


def limit_rows(env, agent, n: int, iterations: int) -> list[dict[str, Any]]:
  """Env-only and env+policy throughput in a scan (no buffer, no learning)."""
  params = agent.init_params(jax.random.PRNGKey(1))
  policy_state = agent.init_policy(None)
  num_actions = env.single_action_space.n

  def env_only(key):
    obs, state = env.functional_reset(key, n)

    def body(carry, key):
      state, obs = carry
      act_key, step_key = jax.random.split(key)
      if env.has_action_mask:  # uniform over the valid actions
        valid = envs.action_mask(obs, num_actions)
        actions = jax.random.categorical(act_key, jnp.where(valid, 0.0, -jnp.inf))
      else:
        actions = jax.random.randint(act_key, (n,), 0, num_actions)
      state, out = env.functional_step(step_key, state, actions)
      return (state, out.obs), out.reward.sum()

    return jax.lax.scan(body, (state, obs), jax.random.split(key, iterations))[1].sum()

  def with_policy(key):
    obs, state = env.functional_reset(key, n)

    def body(carry, key):
      state, obs, policy_state = carry
      act_key, step_key = jax.random.split(key)
      out, policy_state = agent.predict(params, policy_state, obs, act_key)
      state, step = env.functional_step(step_key, state, out.actions)
      return (state, step.obs, policy_state), step.reward.sum()

    return jax.lax.scan(body, (state, obs, policy_state), jax.random.split(key, iterations))[
      1
    ].sum()

  rows = []
  for kind, fn in (("limit", env_only), ("limit+policy", with_policy)):
    compile_s, run_s = timed(fn, jax.random.PRNGKey(0))
    rows.append(
      dict(
        kind=kind,
        num_envs=n,
        num_seeds=1,
        env_steps_per_s=n * iterations / run_s,
        updates_per_s=0.0,
        compile_s=compile_s,
        run_s=run_s,
      )
    )
  return rows


def two_chunk_config(
  n: int, iterations: int, args, num_devices: int, num_seeds: int = 1, parallel: str = "data"
) -> anakin.AnakinConfig:
  """Two chunks of about ``iterations`` env iterations: a warm-up (it compiles
  and fills the buffer; learning starts within its first scan step), then
  the timed one, in which every scan step learns."""
  seed_devices = num_devices if parallel == "data" else 1
  per_step = n * seed_devices * args.train_every
  chunk = max(1, iterations // args.train_every) * per_step
  return anakin.AnakinConfig(
    total_env_steps=2 * chunk,
    eval_every=chunk,
    num_envs=n,
    buffer_size=max(args.buffer_size, 2 * n, args.batch_size),
    batch_size=args.batch_size,
    learning_starts=max(args.batch_size * seed_devices, per_step),
    train_every=args.train_every,
    num_seeds=num_seeds,
    num_devices=num_devices,
    parallel=parallel,
  )


def anakin_row(
  env,
  agent,
  n: int,
  iterations: int,
  args,
  num_seeds: int = 1,
  kind: str = "anakin",
  devices: int | None = None,
  parallel: str = "data",
) -> dict[str, Any]:
  """The full Anakin loop, timed on a chunk where every scan step learns."""
  devices = devices or args.devices
  config = two_chunk_config(n, iterations, args, devices, num_seeds, parallel)
  program = anakin.program.build(agent, env, config, evaluate=False)
  t = time.perf_counter()
  state, chunk = program.start()
  compile_s = time.perf_counter() - t
  state, _ = chunk(state, jnp.int32(0))  # warm-up; fills the buffer
  jax.block_until_ready(state)
  start = jnp.int32(program.derived.steps_per_chunk)
  t = time.perf_counter()
  state, metrics = chunk(state, start)
  jax.block_until_ready(metrics)
  run_s = time.perf_counter() - t
  env_steps = program.derived.env_steps_per_chunk * num_seeds
  # metrics: (local devices, all devices, seeds per device). In the data
  # layout every device counts the same updates; in the seeds layout each
  # device counts its own seeds'.
  updates = np.asarray(metrics["updates"])[0]
  updates = float(updates[0].sum() if parallel == "data" else updates.sum())
  buffer_bytes = sum(x.nbytes for x in jax.tree.leaves(state.buffer_state))
  return dict(
    kind=kind,
    num_envs=n,
    num_seeds=num_seeds,
    devices=devices,
    env_steps_per_s=env_steps / run_s,
    per_seed_env_steps_per_s=env_steps / run_s / num_seeds,
    updates_per_s=updates / run_s,
    compile_s=compile_s,
    run_s=run_s,
    buffer_bytes=int(buffer_bytes),
  )


def hostloop_row(n: int, iterations: int, args) -> dict[str, Any]:
  """The same agent and settings through the host loop on gymnasium CartPole."""
  env = gymnasium.make_vec("CartPole-v1", num_envs=n, vectorization_mode="vector_entry_point")
  agent = make_agent(env, args)
  config = two_chunk_config(n, iterations, args, num_devices=1)
  chunks: list[Any] = []
  result = hostloop.train(agent, env, config, on_chunk=chunks.append)
  # chunk 0 compiles predict and update on first use; time chunk 1 only
  run_s = config.eval_every / chunks[1].sps
  return dict(
    kind="hostloop",
    num_envs=n,
    num_seeds=1,
    env_steps_per_s=float(chunks[1].sps),
    updates_per_s=float(chunks[1].updates[0]) / run_s,
    compile_s=float("nan"),
    run_s=run_s,
    buffer_bytes=int(result.metrics["buffer_bytes"]),
  )


def scaling_rows(env, agent, args, show) -> None:
  """Weak scaling: N envs per device on each device count.

  Efficiency is SPS(D) / (D x per-device SPS of the first, smallest count).
  """
  n = args.num_envs[0]
  iterations = int(np.clip(args.env_steps // n, 64, 5_000))
  per_device_base = None
  for d in sorted(args.scaling):
    row = anakin_row(env, agent, n, iterations, args, kind="scaling", devices=d)
    if per_device_base is None:
      per_device_base = row["env_steps_per_s"] / d
    row["efficiency"] = row["env_steps_per_s"] / (d * per_device_base)
    show(row)
    print(
      f"  {d} device(s): {row['env_steps_per_s']:,.0f} env steps/s, "
      f"efficiency {row['efficiency']:.2f}",
      flush=True,
    )


def run_throughput_rows(args: argparse.Namespace, env: Any, agent: Any) -> list[dict[str, Any]]:
  """The limit, anakin, host-loop, seeds and scaling rows (see the module doc)."""
  columns = (
    "kind",
    "N",
    "seeds",
    "env steps/s",
    "per seed",
    "updates/s",
    "vs limit+pol",
    "vs hostloop",
    "compile s",
    "peak RSS MB",
    "buffer MB",
  )
  print(("{:<13}" + "{:>7}" * 2 + "{:>13}" * 5 + "{:>12}" * 3).format(*columns))
  rows: list[dict[str, Any]] = []

  def show(row):
    row["peak_rss_mb"] = peak_rss_mb()
    print(
      (
        "{kind:<13}{num_envs:>7}{num_seeds:>7}{env_steps_per_s:>13,.0f}"
        "{per:>13,.0f}{updates_per_s:>13,.0f}{r1:>13}{r2:>13}"
        "{compile_s:>12.1f}{peak_rss_mb:>12.0f}{buf:>12.2f}"
      ).format(
        per=row.get("per_seed_env_steps_per_s", row["env_steps_per_s"]),
        r1=f"{row['ratio_vs_limit_policy']:.2f}x" if "ratio_vs_limit_policy" in row else "",
        r2=f"{row['ratio_vs_hostloop']:.1f}x" if "ratio_vs_hostloop" in row else "",
        buf=row.get("buffer_bytes", 0) / 2**20,
        **row,
      ),
      flush=True,
    )
    rows.append(row)

  for n in [] if args.scaling else args.num_envs:
    limit_iters = int(np.clip(args.env_steps * 4 // n, 100, 100_000))
    learn_iters = int(np.clip(args.env_steps // n, 64, 5_000))
    limits = limit_rows(env, agent, n, limit_iters)
    for row in limits:
      show(row)
    host = None
    if not args.no_hostloop:
      host = hostloop_row(n, int(np.clip(learn_iters // 4, 32, 1_000)), args)
    row = anakin_row(env, agent, n, learn_iters, args)
    row["ratio_vs_limit_policy"] = row["env_steps_per_s"] / limits[1]["env_steps_per_s"]
    if host is not None:
      row["ratio_vs_hostloop"] = row["env_steps_per_s"] / host["env_steps_per_s"]
    show(row)
    if host is not None:
      show(host)
  if args.scaling:
    scaling_rows(env, agent, args, show)
  for s in [] if args.scaling else args.seeds:
    n = args.seeds_num_envs
    show(
      anakin_row(
        env, agent, n, int(np.clip(args.env_steps // n, 64, 5_000)), args, num_seeds=s, kind="seeds"
      )
    )
  all_devices = jax.local_device_count()
  for s in [] if args.scaling or all_devices == 1 else args.seeds:
    if s % all_devices == 0:
      n = args.seeds_num_envs
      show(
        anakin_row(
          env,
          agent,
          n,
          int(np.clip(args.env_steps // n, 64, 5_000)),
          args,
          num_seeds=s,
          kind="seeds/dev",
          devices=all_devices,
          parallel="seeds",
        )
      )
  return rows
