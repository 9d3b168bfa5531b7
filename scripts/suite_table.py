"""DQN on one easy env of each JAX suite, against a uniformly random policy:
the table of docs/results/suites.md.

    python scripts/suite_table.py                       # every row (tens of minutes on 2 cores)
    python scripts/suite_table.py --rows navix xminigrid --json suites.json
    python scripts/suite_table.py --rows craftax --seeds 1

For each row it reports:

* the final greedy return of every seed of DQN trained by the Anakin trainer
  (``anakin.train`` with the registry's ``dqn`` and the row's settings; the
  same run as the main-job command the table prints), and their mean;
* the mean return of a uniformly random policy (over the valid actions where
  the env has an action mask) over ``--random-episodes`` whole episodes;
* the Anakin trainer's env steps/s of that run (all seeds, compilation
  excluded);
* the ``anakin`` (one seed, every scan step learning) and ``limit`` (random
  actions in a ``lax.scan``, no agent) rows of ``scripts/bench.py --env-id
  ID`` at the row's number of envs, as a subprocess.

Each row trains in a process of its own, with one JAX host device per core
that divides the seeds (as the main job's ``--all-cores`` does). Figures vary
with the machine's load: each result records ``os.getloadavg()`` before and
after its row.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Row(NamedTuple):
  """One env of the table: DQN's and the trainer's settings for it."""
  suite: str
  env_id: str
  budget: int
  agent: Mapping[str, Any]
  trainer: Mapping[str, Any]


#: One easy env per suite, with the settings its learning check uses.
ROWS = {
    "navix": Row("Navix", "navix:Navix-Empty-5x5-v0", 100_000,
                 dict(network="mlp", learning_rate=1e-3), dict(num_envs=4)),
    "xminigrid": Row("XLand-MiniGrid", "xminigrid:MiniGrid-Empty-5x5", 400_000,
                     dict(network="mlp", learning_rate=1e-3, exploration_fraction=0.2),
                     dict(num_envs=4)),
    "jumanji": Row("Jumanji", "jumanji:Game2048-v1", 500_000,
                   dict(learning_rate=5e-4, hidden_sizes=(256, 256), huber_delta=1.0),
                   dict(num_envs=16)),
    "craftax": Row("Craftax", "craftax:Craftax-Classic-Symbolic-v1", 1_000_000,
                   dict(learning_rate=5e-4, hidden_sizes=(256, 256)),
                   dict(num_envs=16, eval_episodes=8, eval_max_steps=2000)),
}


def command(row: Row, seeds: int) -> str:
  """The main-job command of the same run."""
  flags = ["--env-id", row.env_id, "--total-env-steps", str(row.budget),
           "--num-seeds", str(seeds), "--eval-every", str(row.budget // 5)]
  for name, value in {**row.agent, **row.trainer}.items():
    flag = name.replace("_", "-")
    if isinstance(value, bool):
      flags.append(f"--{flag}" if value else f"--no-{flag}")
    else:
      flags += [f"--{flag}", *map(str, value if isinstance(value, tuple) else (value,))]
  return "python experiments/anakin_dqn.py " + " ".join(flags)


def random_return(env_id: str, episodes: int, seed: int = 0) -> float:
  """Mean undiscounted return of ``episodes`` whole episodes of a uniformly
  random policy (valid actions only where the env has an action mask)."""
  import jax
  import jax.numpy as jnp
  from baselax import envs
  from baselax.anakin import loop

  env = envs.make(env_id)
  num_actions = env.single_action_space.n
  max_steps = loop.episode_step_limit(env)

  def run(key):
    reset_key, key = jax.random.split(key)
    obs, state = env.functional_reset(reset_key, episodes)

    def cond(carry):
      return jnp.logical_and(~jnp.all(carry[3]), carry[5] < max_steps)

    def body(carry):
      key, obs, state, done, returns, t = carry
      key, act_key, step_key = jax.random.split(key, 3)
      if env.has_action_mask:
        logits = jnp.where(envs.action_mask(obs, num_actions), 0.0, -jnp.inf)
        actions = jax.random.categorical(act_key, logits)
      else:
        actions = jax.random.randint(act_key, (episodes,), 0, num_actions)
      state, out = env.functional_step(step_key, state, actions)
      returns = returns + jnp.where(done, 0.0, out.reward)
      return (key, out.obs, state, done | out.terminated | out.truncated,
              returns, t + 1)

    carry = (key, obs, state, jnp.zeros((episodes,), bool),
             jnp.zeros((episodes,), jnp.float32), jnp.zeros((), jnp.int32))
    return jax.lax.while_loop(cond, body, carry)[4]

  return float(jnp.mean(jax.jit(run)(jax.random.PRNGKey(seed))))


def train(row: Row, seeds: int) -> Dict[str, Any]:
  """DQN on ``row`` with the Anakin trainer (in this process; see ``--train``)."""
  import numpy as np
  from baselax import anakin, envs
  from baselax.agents import registry

  env = envs.make(row.env_id)
  entry = registry.get("dqn")
  config = anakin.AnakinConfig(total_env_steps=row.budget, num_seeds=seeds,
                               eval_every=row.budget // 5, **row.trainer)
  num_devices = anakin.program.resolve_num_devices(config)
  agent = entry.build(entry.config_cls(**row.agent), env, config.derive(num_devices))
  def show(record):
    print(f"  {row.env_id}: {record.env_steps:,} env steps, {record.sps:,.0f} env "
          f"steps/s, eval return {np.mean(record.eval_return):.2f}", flush=True)

  result = anakin.train(agent, env, config, on_chunk=show)
  history = result.history
  final = np.asarray(history[-1].eval_return, float)
  seconds = sum(row.budget / len(history) * seeds / record.sps for record in history)
  return dict(final_returns=final.tolist(), mean=float(final.mean()),
              curve=[float(np.mean(record.eval_return)) for record in history],
              anakin_sps=row.budget * seeds / seconds, devices=num_devices)


def train_in_subprocess(name: str, seeds: int, budget: Optional[int]) -> Dict[str, Any]:
  """:func:`train` in a fresh process with one host device per core that
  divides ``seeds`` (XLA reads the device count once, at start-up)."""
  cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  devices = max(d for d in range(1, min(cores or 1, seeds) + 1) if seeds % d == 0)
  env = dict(os.environ)
  env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                      f" --xla_force_host_platform_device_count={devices}").strip()
  with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, "train.json")
    subprocess.run([sys.executable, __file__, "--train", name, "--seeds", str(seeds),
                    "--json", out] + ([] if budget is None else ["--budget", str(budget)]),
                   check=True, cwd=REPO, env=env)
    with open(out) as f:
      return json.load(f)


def bench(row: Row) -> Dict[str, float]:
  """The ``limit`` and ``anakin`` rows of scripts/bench.py (one seed) at the
  row's number of envs, in env steps/s."""
  with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, "bench.json")
    subprocess.run([sys.executable, os.path.join(REPO, "scripts", "bench.py"),
                    "--env-id", row.env_id, "--num-envs",
                    str(row.trainer.get("num_envs", 10)), "--seeds", "--no-hostloop",
                    "--env-steps", "50000", "--json", out],
                   check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    with open(out) as f:
      rows = json.load(f)["rows"]
  return {r["kind"]: r["env_steps_per_s"] for r in rows}


def main(argv: Optional[Sequence[str]] = None) -> List[Dict[str, Any]]:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
  parser.add_argument("--seeds", type=int, default=4)
  parser.add_argument("--budget", type=int, default=None,
                      help="env steps per seed, for every row (default: each row's)")
  parser.add_argument("--random-episodes", type=int, default=256)
  parser.add_argument("--no-bench", action="store_true", help="skip the bench rows")
  parser.add_argument("--json", default=None, help="write the results here")
  parser.add_argument("--train", default=None, choices=list(ROWS),
                      help=argparse.SUPPRESS)  # one row's training, in a child process
  args = parser.parse_args(argv)
  rows = {name: row if args.budget is None else row._replace(budget=args.budget)
          for name, row in ROWS.items()}
  if args.train:
    with open(args.json, "w") as f:
      json.dump(train(rows[args.train], args.seeds), f)
    return []
  results = []
  for name in args.rows:
    row = rows[name]
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    rand = random_return(row.env_id, args.random_episodes)
    trained = train_in_subprocess(name, args.seeds, args.budget)
    rates = {} if args.no_bench else bench(row)
    result = dict(row=name, suite=row.suite, env_id=row.env_id, budget=row.budget,
                  seeds=args.seeds, command=command(row, args.seeds),
                  random_return=rand, limit_sps=rates.get("limit"),
                  bench_anakin_sps=rates.get("anakin"),
                  load=(load_before, os.getloadavg()[0]),
                  wall_s=time.perf_counter() - t0, **trained)
    results.append(result)
    print(json.dumps(result), flush=True)
  print()
  print("| suite | env | budget (env steps per seed) | final greedy return, mean (per seed) "
        "| random policy | Anakin env steps/s: this run (all seeds); bench `anakin` "
        "(1 seed) | bench `limit` env steps/s |")
  print("| --- | --- | --- | --- | --- | --- | --- |")
  fmt = lambda x: "n/a" if x is None else f"{x:,.0f}"  # noqa: E731
  for r in results:
    per_seed = ", ".join(f"{x:.2f}" for x in r["final_returns"])
    print(f"| {r['suite']} | `{r['env_id']}` | {r['budget']:,} | {r['mean']:.2f} "
          f"({per_seed}) | {r['random_return']:.2f} | {r['anakin_sps']:,.0f} "
          f"({r['seeds']} seeds); {fmt(r['bench_anakin_sps'])} | {fmt(r['limit_sps'])} |")
  if args.json:
    with open(args.json, "w") as f:
      json.dump(results, f, indent=2)
  return results


if __name__ == "__main__":
  main()
