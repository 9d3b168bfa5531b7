"""The host-loop trainer (gymnasium envs) and the benchmark script's output."""

import json
import os
import subprocess
import sys

import gymnasium
import jax
import numpy as np
import optax
import pytest

from baselax import anakin, envs, hostloop, networks
from baselax.agents import DQN

import helpers
import probe_envs


def probe_config(**kw):
  base = dict(total_env_steps=8_000, num_envs=4, buffer_size=2_000,
              batch_size=32, learning_starts=200, eval_every=4_000,
              eval_episodes=4)
  base.update(kw)
  return anakin.AnakinConfig(**base)


def test_truncation_bootstraps_with_a_gymnax_env_in_gym_clothes():
  """SAME_STEP autoreset (GymnaxEnv): final obs from info, truncation bootstraps."""
  env = envs.GymnaxEnv(probe_envs.ConstantRewardTimeLimit(), num_envs=4)
  agent = DQN(networks.mlp_q_network((16,)), env, 3e-3, discount_factor=0.9,
              target_update_interval=20)
  result = hostloop.train(agent, env, probe_config(), eval_env=envs.GymnaxEnv(
      probe_envs.ConstantRewardTimeLimit(), num_envs=2), on_chunk=lambda s: None)
  q = agent.network.apply(result.state["params"].policy, np.ones((1, 1)))
  np.testing.assert_allclose(q, 10.0, atol=0.6)
  np.testing.assert_allclose(result.metrics["eval_return"][-1], 10.0)
  np.testing.assert_allclose(result.metrics["train_return"][-1], 10.0)


class NextStepTimeLimit(gymnasium.vector.VectorEnv):
  """The probe env as a numpy VectorEnv with gymnasium's NEXT_STEP autoreset:
  obs is the step count; reward 1; episodes end only by a 10-step time limit."""

  metadata = {"autoreset_mode": gymnasium.vector.AutoresetMode.NEXT_STEP}

  def __init__(self, num_envs):
    self.num_envs = num_envs
    self.single_observation_space = gymnasium.spaces.Box(0, 10, (1,), np.float32)
    self.single_action_space = gymnasium.spaces.Discrete(2)
    self.observation_space = gymnasium.vector.utils.batch_space(
        self.single_observation_space, num_envs)
    self.action_space = gymnasium.vector.utils.batch_space(
        self.single_action_space, num_envs)
    self.t = np.zeros(num_envs, int)
    self.needs_reset = np.zeros(num_envs, bool)
    self.added = []

  def reset(self, *, seed=None, options=None):
    self.t[:] = 0
    self.needs_reset[:] = False
    return self.t[:, None].astype(np.float32), {}

  def step(self, actions):
    reward = np.where(self.needs_reset, 0.0, 1.0)
    self.t = np.where(self.needs_reset, 0, self.t + 1)
    truncated = np.logical_and(self.t >= 10, ~self.needs_reset)
    self.needs_reset = truncated.copy()
    return (self.t[:, None].astype(np.float32), reward,
            np.zeros(self.num_envs, bool), truncated, {})


def test_next_step_autoreset_skips_the_reset_step_and_keeps_final_obs():
  env = NextStepTimeLimit(4)
  agent = DQN(networks.mlp_q_network((16,)), env, 1e-3)
  result = hostloop.train(agent, env, probe_config(total_env_steps=440, eval_every=440),
                          on_chunk=lambda s: None)
  buffer = result.state["buffer"]
  obs = buffer.storage["obs"][:buffer.size, 0]
  next_obs = buffer.storage["next_obs"][:buffer.size, 0]
  # every stored transition is a real one: t -> t+1, final obs 10 kept, and
  # no (10 -> 0) reset pseudo-transition
  np.testing.assert_array_equal(next_obs, obs + 1)
  assert next_obs.max() == 10 and obs.max() == 9
  assert buffer.size == 440 - 4 * (440 // 4 // 11)  # one reset step per 11
  np.testing.assert_allclose(result.metrics["train_return"][-1], 10.0)
  assert np.isnan(result.metrics["eval_return"]).all()  # no eval_env given


@pytest.mark.slow
def test_learns_gymnasium_cartpole():
  env = gymnasium.make_vec("CartPole-v1", num_envs=8,
                           vectorization_mode="vector_entry_point")
  eval_env = gymnasium.make_vec("CartPole-v1", num_envs=8,
                                vectorization_mode="vector_entry_point")
  agent = DQN(networks.mlp_q_network((64, 64)), env, 1e-3,
              epsilon_schedule=optax.linear_schedule(1.0, 0.05, 2_500),
              target_update_interval=50)
  config = anakin.AnakinConfig(total_env_steps=40_000, num_envs=8,
                               buffer_size=10_000, batch_size=64,
                               learning_starts=1_000, train_every=2,
                               eval_every=20_000, eval_episodes=16)
  result = hostloop.train(agent, env, config, eval_env=eval_env,
                          on_chunk=lambda s: None)
  first, last = result.metrics["train_return"][:, 0]
  assert last > 2 * first and last > 60  # random play scores about 22


def test_bad_inputs():
  env = gymnasium.make_vec("CartPole-v1", num_envs=2,
                           vectorization_mode="vector_entry_point")
  agent = DQN(networks.mlp_q_network((8,)), env, 1e-3)
  with pytest.raises(ValueError, match="num_envs"):
    hostloop.train(agent, env, probe_config(num_envs=4))
  with pytest.raises(ValueError, match="one seed"):
    hostloop.train(agent, env, probe_config(num_envs=2, num_seeds=2))
  with pytest.raises(TypeError, match="vector.VectorEnv"):
    hostloop.train(agent, gymnasium.make("CartPole-v1"), probe_config(num_envs=1))
  with pytest.raises(ValueError, match="are Anakin-trainer features"):
    hostloop.train(agent, env, probe_config(num_envs=2, n_step=3))


def run_bench(tmp_path, *flags):
  """``scripts/bench.py FLAGS --json ...``: ``(process, the JSON it wrote)``."""
  out_json = tmp_path / "bench.json"
  proc = subprocess.run(
      [sys.executable, "scripts/bench.py", *flags, "--json", str(out_json)],
      cwd=helpers.REPO, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc, json.loads(out_json.read_text())


def test_bench_quick_output_shape_and_sanity(tmp_path):
  proc, result = run_bench(tmp_path, "--quick", "--cpu-devices", "2")
  assert f"jax {jax.__version__}" in proc.stdout and "backend cpu" in proc.stdout
  kinds = [r["kind"] for r in result["rows"]]
  assert kinds == ["limit", "limit+policy", "anakin", "hostloop", "seeds", "seeds/dev"]
  assert f"{os.cpu_count()} CPU cores" in proc.stdout
  assert result["header"]["backend"] == jax.default_backend()
  for row in result["rows"]:
    assert np.isfinite(row["env_steps_per_s"]) and row["env_steps_per_s"] > 0
    assert row["peak_rss_mb"] > 0
  rows = {r["kind"]: r for r in result["rows"]}
  assert rows["anakin"]["updates_per_s"] > 0 and rows["hostloop"]["updates_per_s"] > 0
  assert rows["anakin"]["ratio_vs_limit_policy"] == pytest.approx(
      rows["anakin"]["env_steps_per_s"] / rows["limit+policy"]["env_steps_per_s"])
  assert rows["anakin"]["ratio_vs_hostloop"] == pytest.approx(
      rows["anakin"]["env_steps_per_s"] / rows["hostloop"]["env_steps_per_s"])
  assert rows["seeds"]["num_seeds"] == 4 and rows["seeds"]["devices"] == 1
  assert (rows["seeds/dev"]["num_seeds"], rows["seeds/dev"]["devices"]) == (4, 2)
  assert rows["seeds"]["per_seed_env_steps_per_s"] == pytest.approx(
      rows["seeds"]["env_steps_per_s"] / 4)
  # the buffer holds each obs once (4 float32), action, reward, flags: 7 words
  # per step (issue 14; obs and next_obs would be 16 words)
  assert 10_000 * 7 * 4 <= rows["anakin"]["buffer_bytes"] < 10_000 * 9 * 4
  assert [r["buffer"] for r in result["memory"][:4]] == [
      "item", "prioritized item", "n-step", "prioritized n-step"]


def test_bench_scaling_mode_on_forced_cpu_devices(tmp_path):
  proc, result = run_bench(tmp_path, "--scaling", "1", "2", "--cpu-devices", "2",
                           "--num-envs", "8", "--env-steps", "20000")
  rows = result["rows"]
  assert [(r["kind"], r["devices"]) for r in rows] == [("scaling", 1), ("scaling", 2)]
  assert rows[0]["efficiency"] == pytest.approx(1.0)
  assert rows[1]["efficiency"] == pytest.approx(
      rows[1]["env_steps_per_s"] / (2 * rows[0]["env_steps_per_s"]))
  assert "2 device(s):" in proc.stdout
  bad = subprocess.run([sys.executable, "scripts/bench.py", "--scaling", "1", "8"],
                       cwd=helpers.REPO, capture_output=True, text=True, timeout=120)
  assert bad.returncode == 2 and "add --cpu-devices 8" in bad.stderr


def test_bench_agent_rows_time_each_agent_beside_dqn(tmp_path):
  proc, result = run_bench(tmp_path, "--agent", "c51", "--n-step", "2", "--num-envs", "4",
                           "--env-steps", "2000", "--rounds", "2")
  rows = result["rows"]
  assert [r["kind"] for r in rows] == ["dqn", "--agent c51 --n-step 2"]
  assert rows[0]["vs_dqn"] == 1.0 and rows[0]["compile_vs_dqn"] == 1.0
  assert 0 < rows[1]["vs_dqn"] and rows[1]["env_steps_per_s"] > 0
  assert "median of 2 interleaved rounds" in proc.stdout
  bad = subprocess.run([sys.executable, "scripts/bench.py", "--agent", "ppo"],
                       cwd=helpers.REPO, capture_output=True, text=True, timeout=120)
  assert bad.returncode == 2 and "unknown agent 'ppo'" in bad.stderr


def test_variant_table_prints_one_row_per_variant():
  proc = subprocess.run(
      [sys.executable, "scripts/variant_table.py", "--only", "DQN", "Double DQN",
       "--num-seeds", "2", "--total-env-steps", "2000", "--learning-starts", "500",
       "--eval-every", "1000", "--eval-episodes", "2", "--batch-size", "32",
       "--buffer-size", "1000", "--compilation-cache", "none"],
      cwd=helpers.REPO, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  rows = [line for line in proc.stdout.splitlines() if line.startswith("| ")]
  assert rows[0].startswith("| variant |") and len(rows) == 4  # header, rule, 2 rows
  assert rows[2].startswith("| DQN |") and rows[3].startswith("| Double DQN |")
  assert rows[2].endswith("| 1.00× |")
