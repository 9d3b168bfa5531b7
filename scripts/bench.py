"""Throughput of the Anakin trainer against its limits and against a host loop.

    python scripts/bench.py                       # the full sweep (minutes)
    python scripts/bench.py --quick               # a reduced sweep, under a minute
    python scripts/bench.py --num-envs 64 512 --train-every 4 --json bench.json

Rows, each at N envs (per device):

  limit          env steps with random actions in a lax.scan, vmapped over N
                 (--env-id: any id of baselax.envs.make; valid ones only
                 where the env has an action mask)
  limit+policy   env + agent.predict (no learning): the ceiling for any trainer
  anakin         the full loop: act, env, replay add/sample, DQN update
  memory         (printed first) bytes per stored transition of each replay
                 buffer kind, float32 and auto observation storage
                 (--memory-only: this table alone)
  hostloop       the same agent and settings through baselax.hostloop on
                 gymnasium's own CartPole-v1 vector env (numpy, one Python step
                 per iteration)
  seeds          anakin with 1, 8, 32 vmapped seeds on one device (total and
                 per-seed SPS)
  seeds/dev      the same seeds spread over every local device (parallel=seeds:
                 no collective); on CPU, --cpu-devices K gives K host devices
  scaling        (--scaling D1 D2 ...) anakin on D devices, N envs each: env
                 steps/s against the device count, and the efficiency
                 SPS(D) / (D x SPS(1)). On CPU, --cpu-devices K forces K host
                 devices (they share the machine's cores, so CPU efficiency
                 says little about GPUs).

With ``--agent NAME`` (any registered agent) and the variant flags
(``--prioritized``, ``--n-step``, ``--noisy``, ``--dueling``,
``--double-dqn``), or ``--agents`` (the DQN family's row set: dqn,
prioritized, n-step, noisy, dueling + Double (shared and per-stream hidden
layers), c51, qrdqn, mdqn, rainbow),
the rows are instead the main job's training chunk of each agent (the
registry's build, every scan step learning, no evaluation) beside DQN at the
same settings, timed in interleaved rounds in one process; each row gives
its median env steps/s and its median ratio to DQN's time in the same round:

    python scripts/bench.py --agents --rounds 3
    python scripts/bench.py --agent rainbow --env-id Breakout-MinAtar --num-envs 16
    python scripts/bench.py --agent dqn --noisy --num-envs 10

Compile time is always reported apart from run time: every compiled row is
called once to warm up, then timed with ``block_until_ready``. Figures vary
from run to run on shared machines: compare ratios from one run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from typing import Any, Dict, List, Optional


def _force_cpu_devices(argv: List[str]) -> None:
  """``--cpu-devices K`` must reach XLA_FLAGS before JAX starts, so it is read here."""
  if "--cpu-devices" in argv:
    count = argv[argv.index("--cpu-devices") + 1]
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               f" --xla_force_host_platform_device_count={count}")


_force_cpu_devices(sys.argv)

import gymnasium  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from baselax import anakin, envs, hostloop, networks  # noqa: E402
from baselax.agents import DQN, registry  # noqa: E402
from baselax.errors import ConfigError  # noqa: E402
from baselax.experiment import cli  # noqa: E402


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
  return DQN(networks.default_q_network(env.single_observation_space), env,
             args.learning_rate, epsilon_schedule=optax.constant_schedule(0.1),
             target_update_interval=50)


def limit_rows(env, agent, n: int, iterations: int) -> List[Dict[str, Any]]:
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

    return jax.lax.scan(body, (state, obs, policy_state),
                        jax.random.split(key, iterations))[1].sum()

  rows = []
  for kind, fn in (("limit", env_only), ("limit+policy", with_policy)):
    compile_s, run_s = timed(fn, jax.random.PRNGKey(0))
    rows.append(dict(kind=kind, num_envs=n, num_seeds=1,
                     env_steps_per_s=n * iterations / run_s, updates_per_s=0.0,
                     compile_s=compile_s, run_s=run_s))
  return rows


def two_chunk_config(n: int, iterations: int, args, num_devices: int,
                     num_seeds: int = 1, parallel: str = "data") -> anakin.AnakinConfig:
  """Two chunks of about ``iterations`` env iterations: a warm-up (it compiles
  and fills the buffer; learning starts within its first scan step), then
  the timed one, in which every scan step learns."""
  seed_devices = num_devices if parallel == "data" else 1
  per_step = n * seed_devices * args.train_every
  chunk = max(1, iterations // args.train_every) * per_step
  return anakin.AnakinConfig(
      total_env_steps=2 * chunk, eval_every=chunk, num_envs=n,
      buffer_size=max(args.buffer_size, 2 * n, args.batch_size),
      batch_size=args.batch_size,
      learning_starts=max(args.batch_size * seed_devices, per_step),
      train_every=args.train_every, num_seeds=num_seeds, num_devices=num_devices,
      parallel=parallel)


def anakin_row(env, agent, n: int, iterations: int, args, num_seeds: int = 1,
               kind: str = "anakin", devices: Optional[int] = None,
               parallel: str = "data") -> Dict[str, Any]:
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
  return dict(kind=kind, num_envs=n, num_seeds=num_seeds, devices=devices,
              env_steps_per_s=env_steps / run_s,
              per_seed_env_steps_per_s=env_steps / run_s / num_seeds,
              updates_per_s=updates / run_s, compile_s=compile_s, run_s=run_s,
              buffer_bytes=int(buffer_bytes))


def hostloop_row(n: int, iterations: int, args) -> Dict[str, Any]:
  """The same agent and settings through the host loop on gymnasium CartPole."""
  env = gymnasium.make_vec("CartPole-v1", num_envs=n,
                           vectorization_mode="vector_entry_point")
  agent = make_agent(env, args)
  config = two_chunk_config(n, iterations, args, num_devices=1)
  chunks = []
  result = hostloop.train(agent, env, config, on_chunk=chunks.append)
  # chunk 0 compiles predict and update on first use; time chunk 1 only
  run_s = config.eval_every / chunks[1].sps
  return dict(kind="hostloop", num_envs=n, num_seeds=1,
              env_steps_per_s=float(chunks[1].sps),
              updates_per_s=float(chunks[1].updates[0]) / run_s,
              compile_s=float("nan"), run_s=run_s,
              buffer_bytes=int(result.metrics["buffer_bytes"]))


def memory_rows(env, agent, args) -> List[Dict[str, Any]]:
  """Bytes per stored transition of each buffer kind and observation storage.

  Each buffer (``--buffer-size``, N = the first ``--num-envs``) is
  initialised for real and its state's arrays summed: the bytes a run holds
  per buffer, over its capacity (what ``baselax.replay.MemoryPlan`` counts).
  """
  from baselax import replay
  from baselax.envs.protocol import truncation_interval
  n = args.num_envs[0]
  example = replay.example_record(agent, env)
  rows = []
  for storage in ("float32", "auto"):
    for n_step, prioritized in ((1, False), (1, True), (3, False), (3, True)):
      config = anakin.AnakinConfig(
          buffer_size=max(args.buffer_size, 2 * n), num_envs=n, n_step=n_step,
          batch_size=min(args.batch_size, args.buffer_size), prioritized=prioritized,
          obs_storage=storage)
      try:
        codec = replay.obs_codec(storage, env)
      except ConfigError:
        continue
      buf = replay.make_replay(replay.ReplayConfig.of(config), example, 0.99, codec=codec,
                               truncation_interval=truncation_interval(env))
      state = jax.jit(buf.init)()
      nbytes = sum(x.nbytes for x in jax.tree.leaves(state))
      rows.append(dict(kind="memory", buffer=replay.memory.buffer_kind(config),
                       requested=storage, obs_storage=codec.name, obs_bytes=codec.obs_bytes,
                       stored_obs_bytes=codec.stored_bytes, capacity=buf.capacity,
                       bytes_per_transition=nbytes / buf.capacity))
      del state
  return rows


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
    print(f"  {d} device(s): {row['env_steps_per_s']:,.0f} env steps/s, "
          f"efficiency {row['efficiency']:.2f}", flush=True)


#: ``--agents``: the DQN family's rows, each ``(label, main-job flags)``.
AGENT_ROWS = (
    ("dqn", []), ("--prioritized", ["--prioritized"]), ("--n-step 3", ["--n-step", "3"]),
    ("--noisy", ["--noisy"]), ("--dueling --double-dqn", ["--dueling", "--double-dqn"]),
    ("--dueling (per-stream) --double-dqn",
     ["--dueling", "--dueling-hidden", "per-stream", "--double-dqn"]),
    ("c51", ["--agent", "c51"]), ("qrdqn", ["--agent", "qrdqn"]),
    ("mdqn", ["--agent", "mdqn"]), ("rainbow", ["--agent", "rainbow"]))


def agent_chunk(flags: List[str], n: int, iterations: int, args) -> Any:
  """The main job's compiled training chunk for ``flags`` (every step learning).

  Returns ``(run, compile_s, env_steps)``: ``run()`` runs one chunk from a
  buffer filled by a warm-up chunk and returns its seconds.
  """
  from baselax.experiment import launch
  trainer = two_chunk_config(n, iterations, args, 1)
  sizes = ["--env-id", args.env, "--num-envs", str(n), "--batch-size", str(args.batch_size),
           "--buffer-size", str(trainer.buffer_size), "--train-every", str(args.train_every),
           "--total-env-steps", str(trainer.total_env_steps),
           "--eval-every", str(trainer.eval_every),
           "--learning-starts", str(trainer.learning_starts), "--num-devices", "1"]
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
  times = {label: [] for label, *_ in built}
  for _ in range(args.rounds):
    for label, run, _, _ in built:
      times[label].append(run())
  base = np.asarray(times[built[0][0]])
  for label, _, compile_s, env_steps in built:
    t = np.asarray(times[label])
    show(dict(kind=label, num_envs=n, num_seeds=1, env_steps_per_s=env_steps / np.median(t),
              updates_per_s=float("nan"), compile_s=compile_s, run_s=float(np.median(t)),
              vs_dqn=float(np.median(base / t)),
              compile_vs_dqn=compile_s / built[0][2]))


def parse(argv: Optional[List[str]] = None) -> argparse.Namespace:
  """The command line, checked against this machine's devices."""
  parser = cli.OneLineParser(description=__doc__.splitlines()[0], prog="bench.py")
  parser.add_argument("--env-id", "--env", dest="env", default="CartPole-v1",
                      help="env id: a gymnax id, or suite:name for Craftax, Jumanji, "
                      "Navix, XLand-MiniGrid (e.g. navix:Navix-Empty-5x5-v0)")
  parser.add_argument("--num-envs", type=int, nargs="+", default=None,
                      help="values of N to sweep (default 1 8 64 512 4096; agent rows: "
                      "the first value, default 10)")
  parser.add_argument("--seeds", type=int, nargs="*", default=[1, 8, 32],
                      help="seed counts for the seeds rows (none: no seeds rows)")
  parser.add_argument("--seeds-num-envs", type=int, default=64,
                      help="N for the seeds rows")
  parser.add_argument("--train-every", type=int, default=1,
                      help="scan iterations between updates")
  parser.add_argument("--batch-size", type=int, default=128)
  parser.add_argument("--buffer-size", type=int, default=10_000)
  parser.add_argument("--learning-rate", type=float, default=2.5e-4)
  parser.add_argument("--devices", type=int, default=1,
                      help="devices the anakin rows pmap over (N envs each)")
  parser.add_argument("--env-steps", type=int, default=1_000_000,
                      help="target env steps per timed row (fewer for slow rows)")
  parser.add_argument("--no-hostloop", action="store_true",
                      help="skip the host-loop rows")
  parser.add_argument("--scaling", type=int, nargs="+", default=None,
                      metavar="D", help="device counts for the scaling rows "
                      "(N = the first --num-envs value per device)")
  parser.add_argument("--cpu-devices", type=int, default=None,
                      help="force this many CPU devices (XLA_FLAGS, set before JAX starts)")
  parser.add_argument("--quick", action="store_true",
                      help="a reduced sweep (N=16; 4 seeds) for smoke tests")
  parser.add_argument("--json", default=None, help="write the results here")
  parser.add_argument("--memory-only", action="store_true",
                      help="print the bytes per transition of each buffer kind and exit")
  agents = parser.add_argument_group("agents (rows of the main job's chunk, beside DQN)")
  agents.add_argument("--agent", default=None, help="a registered agent")
  agents.add_argument("--agents", action="store_true",
                      help="the DQN family's row set (see the module doc)")
  agents.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
  for flag in ("--prioritized", "--noisy", "--dueling", "--double-dqn"):
    agents.add_argument(flag, action="store_true")
  agents.add_argument("--n-step", type=int, default=None)
  agents.add_argument("--dueling-hidden", default=None,
                      help="where a dueling head's hidden layers go (shared, per-stream)")
  args = parser.parse_args(argv)
  args.agent_flags = ([] if args.agent is None else ["--agent", args.agent]) + [
      f"--{f.replace('_', '-')}" for f in ("prioritized", "noisy", "dueling", "double_dqn")
      if getattr(args, f)] + ([] if args.n_step is None else ["--n-step", str(args.n_step)]) + (
          [] if args.dueling_hidden is None else ["--dueling-hidden", args.dueling_hidden])
  args.agent_mode = bool(args.agents or args.agent_flags)
  if args.num_envs is None:
    args.num_envs = [10] if args.agent_mode else [1, 8, 64, 512, 4096]
  if args.quick:
    args.num_envs, args.seeds, args.seeds_num_envs = [16], [4], 16
    args.env_steps = 50_000
  if args.rounds < 1:
    parser.error(f"--rounds must be >= 1, got {args.rounds}.")
  if args.scaling and max(args.scaling) > jax.local_device_count():
    parser.error(f"--scaling up to {max(args.scaling)} devices but only "
                 f"{jax.local_device_count()} exist; on CPU add --cpu-devices "
                 f"{max(args.scaling)}.")
  if args.devices > jax.local_device_count():
    parser.error(f"--devices {args.devices} but only {jax.local_device_count()} "
                 f"local device(s); on CPU set XLA_FLAGS=--xla_force_host_"
                 f"platform_device_count={args.devices} before running.")
  if args.env != "CartPole-v1" and not args.no_hostloop and not args.agent_mode:
    print("note: the host-loop rows use gymnasium's CartPole-v1 only; "
          "pass --no-hostloop to silence this.", file=sys.stderr)
  try:
    args.env_obj = envs.make(args.env)
    if args.agent is not None:
      registry.get(args.agent)
  except ConfigError as error:
    parser.error(f"--agent {args.agent}: {error}" if "agent" in str(error)
                 else f"--env-id {args.env}: {error}")
  return args


def write_json(path: Optional[str], result: Dict[str, Any]) -> None:
  if path:
    with open(path, "w") as f:
      json.dump(result, f, indent=2)
    print(f"wrote {path}")


def run_agent_rows(args: argparse.Namespace) -> List[Dict[str, Any]]:
  """``--agent``/``--agents``: each row's chunk beside DQN's (see the module doc)."""
  rows: List[Dict[str, Any]] = []
  print(f"{'row':<24}{'env steps/s':>13}{'vs dqn':>9}{'compile s':>11}{'vs dqn':>9}"
        f"   (N = {args.num_envs[0]}, median of {args.rounds} interleaved rounds)")

  def show(row):
    rows.append(row)
    print(f"{row['kind']:<24}{row['env_steps_per_s']:>13,.0f}{row['vs_dqn']:>8.2f}x"
          f"{row['compile_s']:>11.1f}{row['compile_vs_dqn']:>8.2f}x", flush=True)

  agent_rows(list(AGENT_ROWS) if args.agents
             else [(" ".join(args.agent_flags), args.agent_flags)], args, show)
  return rows


def run_throughput_rows(args: argparse.Namespace, env: Any, agent: Any
                        ) -> List[Dict[str, Any]]:
  """The limit, anakin, host-loop, seeds and scaling rows (see the module doc)."""
  columns = ("kind", "N", "seeds", "env steps/s", "per seed", "updates/s",
             "vs limit+pol", "vs hostloop", "compile s", "peak RSS MB", "buffer MB")
  print(("{:<13}" + "{:>7}" * 2 + "{:>13}" * 5 + "{:>12}" * 3).format(*columns))
  rows: List[Dict[str, Any]] = []

  def show(row):
    row["peak_rss_mb"] = peak_rss_mb()
    print(("{kind:<13}{num_envs:>7}{num_seeds:>7}{env_steps_per_s:>13,.0f}"
           "{per:>13,.0f}{updates_per_s:>13,.0f}{r1:>13}{r2:>13}"
           "{compile_s:>12.1f}{peak_rss_mb:>12.0f}{buf:>12.2f}").format(
               per=row.get("per_seed_env_steps_per_s", row["env_steps_per_s"]),
               r1=f"{row['ratio_vs_limit_policy']:.2f}x" if "ratio_vs_limit_policy" in row else "",
               r2=f"{row['ratio_vs_hostloop']:.1f}x" if "ratio_vs_hostloop" in row else "",
               buf=row.get("buffer_bytes", 0) / 2**20, **row), flush=True)
    rows.append(row)

  for n in ([] if args.scaling else args.num_envs):
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
  for s in ([] if args.scaling else args.seeds):
    n = args.seeds_num_envs
    show(anakin_row(env, agent, n, int(np.clip(args.env_steps // n, 64, 5_000)),
                    args, num_seeds=s, kind="seeds"))
  all_devices = jax.local_device_count()
  for s in ([] if args.scaling or all_devices == 1 else args.seeds):
    if s % all_devices == 0:
      n = args.seeds_num_envs
      show(anakin_row(env, agent, n, int(np.clip(args.env_steps // n, 64, 5_000)),
                      args, num_seeds=s, kind="seeds/dev", devices=all_devices,
                      parallel="seeds"))
  return rows


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
  args = parse(argv)
  env = args.env_obj
  header = dict(jax=jax.__version__, backend=jax.default_backend(),
                device_kind=jax.devices()[0].device_kind,
                devices=args.devices, env=args.env, train_every=args.train_every,
                batch_size=args.batch_size, buffer_size=args.buffer_size,
                cpu_count=os.cpu_count(), local_devices=jax.local_device_count())
  print(f"baselax bench | jax {header['jax']} | backend {header['backend']} | "
        f"device {header['device_kind']} x{args.devices} (of {jax.local_device_count()}) | env {args.env} | "
        f"train_every {args.train_every} | batch {args.batch_size} | "
        f"{header['cpu_count']} CPU cores")
  if args.agent_mode:
    result = dict(header=header, rows=run_agent_rows(args))
    write_json(args.json, result)
    return result
  agent = make_agent(env, args)
  memory = memory_rows(env, agent, args)
  print(f"replay memory, bytes per stored transition (buffer_size {args.buffer_size:,}, "
        f"N = {args.num_envs[0]}):")
  for row in memory:
    stored = f"{row['requested']} ({row['obs_storage']})"
    print(f"  {row['buffer']:<20}{stored:>17}: obs {row['stored_obs_bytes']:>7,} "
          f"B of {row['obs_bytes']:>7,}{row['bytes_per_transition']:>12,.1f} B/transition")
  if args.memory_only:
    result = dict(header=header, memory=memory)
  else:
    result = dict(header=header, rows=run_throughput_rows(args, env, agent), memory=memory)
  write_json(args.json, result)
  return result


if __name__ == "__main__":
  main()
