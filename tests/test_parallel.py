"""Seeds spread over devices (no collective), every CPU core for many seeds,
and evaluation that cannot change training."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

import helpers
from baselax import anakin, envs, experiment, networks
from baselax.agents import DQN
from baselax.errors import ConfigError

SMALL = dict(total_env_steps=2000, eval_every=1000, num_envs=4, learning_starts=500,
             buffer_size=2000, batch_size=32, eval_episodes=4)


def params_of(result):
  return [np.asarray(x) for x in jax.tree.leaves(result.params)]


def test_layouts_and_their_sizes():
  assert anakin.AnakinConfig(num_seeds=4).layout(2) == "seeds"    # auto
  assert anakin.AnakinConfig(num_seeds=3).layout(2) == "data"     # uneven: data
  assert anakin.AnakinConfig(num_seeds=4).layout(1) == "data"
  assert anakin.AnakinConfig(num_seeds=1, parallel="auto").layout(4) == "data"
  with pytest.raises(ConfigError, match="num_seeds \\(3\\) is not a multiple of the 2"):
    anakin.AnakinConfig(num_seeds=3, parallel="seeds").layout(2)
  with pytest.raises(ConfigError, match="parallel must be auto, data, seeds or groups"):
    anakin.AnakinConfig(parallel="both")
  seeds = anakin.AnakinConfig(num_envs=10, num_seeds=8).derive(2)
  data = anakin.AnakinConfig(num_envs=10, num_seeds=8, parallel="data").derive(2)
  # A seed on one device steps its 10 envs; spread over 2 devices, 20.
  assert (seeds.runs_per_device, seeds.env_steps_per_iteration) == (4, 10)
  assert (data.runs_per_device, data.env_steps_per_iteration) == (8, 20)
  assert seeds.eval_episodes_per_device == 32 and data.eval_episodes_per_device == 16
  # 8 devices as 4 groups of 2: 8 seeds, 2 per group, each over 2 devices.
  groups = anakin.AnakinConfig(num_envs=10, num_seeds=8, parallel="groups",
                               devices_per_group=2).derive(8)
  assert (groups.layout, groups.seed_devices, groups.runs_per_device) == ("groups", 2, 2)
  assert groups.env_steps_per_iteration == 20 and groups.eval_episodes_per_device == 16
  with pytest.raises(ConfigError, match="parallel=groups and devices_per_group go together"):
    anakin.AnakinConfig(parallel="groups")
  with pytest.raises(ConfigError, match="must divide the 8 device"):
    anakin.AnakinConfig(num_seeds=8, parallel="groups", devices_per_group=3).layout(8)
  with pytest.raises(ConfigError, match="the groups must divide the 3 run"):
    anakin.AnakinConfig(num_seeds=3, parallel="groups", devices_per_group=2).layout(8)


def test_evaluation_does_not_change_training():
  """Evaluation has its own key stream: how often and how much a run is
  evaluated leaves its training trajectory, and so its params, unchanged."""
  env = envs.make("CartPole-v1")
  agent = DQN(networks.mlp_q_network((32,)), env, 1e-3)
  runs = [anakin.train(agent, env, anakin.AnakinConfig(**{**SMALL, **change}),
                       on_chunk=lambda r: None)
          for change in ({}, {"eval_every": 500, "eval_episodes": 9})]
  assert [len(r.history) for r in runs] == [2, 4]
  for a, b in zip(params_of(runs[0]), params_of(runs[1])):
    np.testing.assert_array_equal(a, b)
  assert runs[1].history[-1].eval_returns.shape == (1, 9)


SEED_PARALLEL = """
    import json, sys
    import jax, numpy as np
    from baselax import anakin, envs, networks
    from baselax.agents import DQN
    env = envs.make("CartPole-v1")
    agent = DQN(networks.mlp_q_network((32,)), env, 1e-3)
    small = {small!r}
    run = lambda **kw: anakin.train(agent, env, anakin.AnakinConfig(**small, **kw),
                                    on_chunk=lambda r: None)
    spread = run(num_seeds=4, parallel="seeds")      # 2 seeds on each of 2 devices
    first, second = run(num_seeds=2, num_devices=1), run(num_seeds=2, num_devices=1, seed=2)
    leaves = lambda r: [np.asarray(x) for x in jax.tree.leaves(r.params)]
    diff = max(float(np.abs(a - np.concatenate([b, c])).max())
               for a, b, c in zip(leaves(spread), leaves(first), leaves(second)))
    same_eval = bool(np.array_equal(
        spread.metrics["eval_returns"],
        np.concatenate([first.metrics["eval_returns"], second.metrics["eval_returns"]], 1)))
    print("RESULT", json.dumps(dict(
        layout=spread.derived.layout, devices=spread.derived.num_devices,
        state_axes=list(np.shape(spread.state.env_steps)), diff=diff, same_eval=same_eval,
        env_steps=np.asarray(spread.state.env_steps).tolist())))
"""


def test_a_seed_gives_the_same_run_spread_over_devices_or_vmapped_on_one():
  out = helpers.run_in_subprocess(SEED_PARALLEL.format(small=SMALL), num_cpu_devices=2)
  result = json.loads(out.strip().splitlines()[-1].split(" ", 1)[1])
  assert (result["layout"], result["devices"], result["state_axes"]) == ("seeds", 2, [2, 2])
  assert result["env_steps"] == [[2000, 2000], [2000, 2000]]  # each seed whole on a device
  # Same keys, same maths: XLA:CPU reorders float32 sums in the 2-replica
  # program (the same program on one device of that process is bit-identical),
  # so params agree to rounding and every evaluation return is equal.
  assert result["diff"] < 1e-5 and result["same_eval"]


def test_the_main_job_uses_every_core_for_many_seeds(tmp_path):
  flags = ["--total-env-steps", "1000", "--eval-every", "1000", "--num-envs", "4",
           "--learning-starts", "500", "--buffer-size", "2000", "--batch-size", "32",
           "--eval-episodes", "2", "--quiet", "--no-tensorboard",
           "--compilation-cache", "none", "--num-seeds", "4"]
  cores = len(os.sched_getaffinity(0))
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)
  runs = {}
  for extra in ([], ["--no-all-cores"]):
    proc = subprocess.run(
        [sys.executable, "experiments/anakin_dqn.py", *flags, *extra,
         "--run-dir", str(tmp_path / ("one" if extra else "all"))],
        cwd=helpers.REPO, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs[bool(extra)] = proc.stdout.splitlines()[0]
  devices = max(d for d in (1, 2, 4) if d <= cores)
  assert f"x{devices} |" in runs[False]
  if devices > 1:
    assert f"4 seed(s), {4 // devices} per device" in runs[False]
  assert "x1 |" in runs[True] and "4 seed(s) x 4 envs/device" in runs[True]
  saved = experiment.rundir.load_config(str(tmp_path / "all"))
  assert saved["num_devices"] == devices and saved["trainer"]["parallel"] == "auto"
  summary = json.load(open(tmp_path / "all" / "summary.json"))
  assert summary["seeds"] == 4 and len(summary["final_returns"]) == 4


def test_final_returns_are_aggregated_with_the_iqm_and_a_bootstrap_ci(monkeypatch):
  from baselax.experiment import aggregate
  summary = aggregate.summarise_final_returns([1.0, 2.0, 3.0, 4.0, 100.0])
  # The IQM drops the lowest and highest quarter: mean(2, 3, 4) = 3, far from
  # the mean (22) that one outlying seed drags up.
  assert summary["iqm"] == pytest.approx(3.0) and summary["mean"] == pytest.approx(22.0)
  low, high = summary["iqm_ci95"]
  assert 1.0 <= low <= 3.0 <= high <= 100.0
  assert aggregate.summarise_final_returns([1.0, 2.0, 3.0, 4.0, 100.0]) == summary  # seeded
  assert "IQM 3.0 (95% CI" in aggregate.describe(summary)
  assert aggregate.summarise_final_returns([5.0])["iqm"] is None  # one seed: no IQM
  monkeypatch.setitem(sys.modules, "rliable", None)  # "not installed"
  without = aggregate.summarise_final_returns([1.0, 2.0])
  assert without["iqm"] is None and "pip install -e '.[stats]'" in without["note"]
