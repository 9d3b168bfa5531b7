"""Hyperparameter sweeps: a grid x seeds trained as one program, logged and
summarised per point."""

import dataclasses
import json
import os

import jax
import numpy as np
import pytest

import helpers
from baselax import anakin, envs, experiment
from baselax.agents import registry
from baselax.anakin import sweep as sweep_lib
from baselax.experiment import sweeps

SMALL = dict(total_env_steps=2000, eval_every=1000, num_envs=4, learning_starts=500,
             buffer_size=1000, batch_size=32, eval_episodes=2)


def leaves(tree):
  return [np.asarray(x) for x in jax.tree.leaves(tree)]


def test_grid_is_row_major_and_runs_are_point_major():
  values = sweep_lib.grid([("learning_rate", [1e-4, 1e-3]), ("target_update_interval", [5, 7, 9])])
  assert values["learning_rate"].tolist() == [1e-4] * 3 + [1e-3] * 3
  assert values["target_update_interval"].tolist() == [5, 7, 9] * 2
  sweep = sweep_lib.Sweep(values=values, build=lambda v: None)
  runs = sweep.run_values(num_seeds=2)
  assert runs["target_update_interval"].dtype == np.int32
  assert runs["learning_rate"].dtype == np.float32
  assert runs["target_update_interval"].tolist() == [5, 5, 7, 7, 9, 9] * 2
  assert sweep.point(4) == {"learning_rate": pytest.approx(1e-3),
                            "target_update_interval": 7}
  assert sweeps.grid_points(sweeps.parse_axes(
      ["learning_rate=1e-4,1e-3", "target_update_interval=5,7,9"],
      registry.get("dqn").config_cls, "dqn"))[4] == {"learning_rate": 1e-3,
                                                    "target_update_interval": 7}


def test_a_sweep_point_is_the_same_run_as_its_values_alone():
  """Run (point p, seed s) of a sweep ends with bit-identical params to the
  agent with p's values trained alone from seed s: the values enter the one
  program as arrays, not as different code."""
  env = envs.make("CartPole-v1")
  config = anakin.AnakinConfig(**SMALL, num_seeds=2)
  entry = registry.get("dqn")
  agent_config = entry.config_cls(hidden_sizes=(16,))
  # exploration_fraction 0.7 (float32 0.69999999) is where a float64 length
  # and a float32 one could part.
  axes = [("learning_rate", (3e-4, 1e-3)), ("discount_factor", (0.9,)),
          ("exploration_fraction", (0.7,))]
  sizes = config.derive(1, 2)
  sweep = sweeps.make_sweep(axes, agent_config, lambda c: entry.build(c, env, sizes))
  swept = anakin.train(sweep.build(sweep.point(0)), env, config, sweep=sweep,
                       on_chunk=lambda r: None)
  assert swept.history[-1].eval_returns.shape == (4, 2)  # runs = 2 points x 2 seeds
  alone_config = dataclasses.replace(config, num_seeds=1, seed=1)
  alone_agent = entry.build(dataclasses.replace(agent_config, learning_rate=1e-3,
                                                discount_factor=0.9,
                                                exploration_fraction=0.7), env,
                            alone_config.derive(1))
  alone = anakin.train(alone_agent, env, alone_config, on_chunk=lambda r: None)
  run = 1 * 2 + 1  # point 1, seed 1
  for a, b in zip(leaves(jax.tree.map(lambda x: x[run], swept.params)), leaves(alone.params)):
    np.testing.assert_array_equal(a, b[0])
  # Epsilon decays over the same predict calls, value for value as compiled
  # (a length one call off would rarely change so short a run's params).
  counts = np.arange(400)
  traced = jax.jit(lambda values: sweep.build(values).epsilon_schedule(counts))(
      jax.tree.map(lambda v: v[1], dict(sweep.values)))
  np.testing.assert_array_equal(traced, jax.jit(alone_agent.epsilon_schedule)(counts))
  # The points really differ (learning rates 3e-4 vs 1e-3 from the same seed).
  assert any(np.any(a != b) for a, b in zip(leaves(jax.tree.map(lambda x: x[1], swept.params)),
                                            leaves(jax.tree.map(lambda x: x[3], swept.params))))


OVER_DEVICES = """
    import json, jax, numpy as np
    from baselax import anakin, envs, networks
    from baselax.agents import DQN, registry
    from baselax.experiment import sweeps
    env = envs.make("CartPole-v1")
    small = %r
    leaves = lambda tree: [np.asarray(x).tolist() for x in jax.tree.leaves(tree)]
    out = {"sweep": {}, "groups": {}}
    # A sweep's 4 runs (2 points x 2 seeds): one per device, or vmapped on one.
    entry = registry.get("dqn")
    agent_config = entry.config_cls(hidden_sizes=(16,))
    for devices in (4, 1):
      config = anakin.AnakinConfig(**small, num_seeds=2, num_devices=devices)
      sizes = config.derive(devices, 2)
      sweep = sweeps.make_sweep([("target_update_interval", (5, 40))], agent_config,
                                lambda c: entry.build(c, env, sizes))
      result = anakin.train(sweep.build(sweep.point(0)), env, config, sweep=sweep,
                            on_chunk=lambda r: None)
      assert result.derived.layout == ("seeds" if devices == 4 else "data")
      out["sweep"][devices] = leaves(result.params)
    # 2 seeds on 2 groups of 2 devices, and each seed alone over 2 devices.
    agent = DQN(networks.mlp_q_network((16,)), env, 1e-3)
    grouped = anakin.train(agent, env, anakin.AnakinConfig(
        **small, num_seeds=2, parallel="groups", devices_per_group=2), on_chunk=lambda r: None)
    assert grouped.derived.runs_per_device == 1 and grouped.derived.seed_devices == 2
    out["groups"]["grouped"] = leaves(grouped.params)
    out["groups"]["grouped_eval"] = grouped.history[-1].eval_returns.tolist()
    for seed in range(2):
      alone = anakin.train(agent, env, anakin.AnakinConfig(
          **small, seed=seed, num_devices=2, parallel="data"), on_chunk=lambda r: None)
      out["groups"][seed] = leaves(alone.params)
      out["groups"][f"{seed}_eval"] = alone.history[-1].eval_returns.tolist()
    print(json.dumps(out))
"""


def test_runs_over_devices_sweeps_and_device_groups():
  """On 4 forced devices: a sweep's runs spread one per device end as they do
  vmapped on one device (each device reads its own runs' values); and seeds
  on 2 groups of 2 devices (gradients averaged within a group) end as each
  seed alone averaged over 2 devices."""
  out = json.loads(helpers.run_in_subprocess(OVER_DEVICES % (SMALL,),
                                             num_cpu_devices=4).strip().splitlines()[-1])
  for a, b in zip(out["sweep"]["4"], out["sweep"]["1"]):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=1e-6)
  groups = out["groups"]
  for seed in range(2):
    for a, b in zip(groups["grouped"], groups[str(seed)]):
      np.testing.assert_allclose(np.asarray(a)[seed], np.asarray(b)[0], rtol=0, atol=1e-6)
    assert groups["grouped_eval"][seed] == groups[f"{seed}_eval"][0]
  # The two groups trained different seeds.
  assert any(np.any(np.asarray(p)[0] != np.asarray(p)[1]) for p in groups["grouped"])


def test_sweep_experiment_logs_and_summarises_every_point(tmp_path, capsys):
  """The issue's 3 x 2 sweep x 4 seeds on CartPole: one program, per-point rows,
  curves and dashboards, and the IQM table with CIs and the best point."""
  run_dir = str(tmp_path / "sweep")
  argv = ["--sweep", "learning_rate=1e-4,3e-4,1e-3", "--sweep", "target_update_interval=20,50",
          "--num-seeds", "4", "--run-dir", run_dir, "--compilation-cache", "none",
          "--hidden-sizes", "16"] + [f"--{k.replace('_', '-')}={v}" for k, v in SMALL.items()]
  out = experiment.run(argv)
  printed = capsys.readouterr().out
  assert "6 sweep points x 4 seed(s) = 24 runs" in printed
  assert printed.count("compiled in") == 1
  assert np.shape(out.eval_return) == (24,)

  rows = [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))]
  assert len(rows) == 2 * 6  # a row per chunk and point
  assert [r["point"] for r in rows] == list(range(6)) * 2
  assert rows[6 + 3]["hyperparams"] == {"learning_rate": 3e-4, "target_update_interval": 50}
  assert all(len(r["eval_return"]) == 4 for r in rows)
  # The rows are the whole run's record split by point, in run order.
  final = np.concatenate([r["eval_return"] for r in rows[6:]])
  np.testing.assert_allclose(final, out.eval_return)

  summary = json.load(open(os.path.join(run_dir, "summary.json")))
  assert len(summary["points"]) == 6
  iqms = [p["iqm"] for p in summary["points"]]
  assert all(low <= iqm <= high for iqm, (low, high) in
             zip(iqms, (p["iqm_ci95"] for p in summary["points"])))
  assert summary["best_point"] == int(np.argmax(iqms))
  best = summary["points"][summary["best_point"]]
  assert f"best point {summary['best_point']} ({sweeps.label(best['hyperparams'])})" in printed
  assert "| point | learning_rate | target_update_interval | IQM | 95% CI |" in printed
  assert os.path.exists(os.path.join(run_dir, "summary.md"))
  assert os.path.exists(os.path.join(run_dir, "learning_curve.png"))
  point_dirs = sorted(os.listdir(os.path.join(run_dir, "points")))
  assert len(point_dirs) == 6 and "learning_rate=0.0003,target_update_interval=50" in point_dirs

  # Resuming with another grid is refused, naming the flag.
  with pytest.raises(SystemExit) as exit_info:
    experiment.run(["--resume", run_dir, "--sweep", "learning_rate=1e-3", "--quiet"])
  assert exit_info.value.code == 2
  assert "--sweep: the run has" in capsys.readouterr().err
