"""The host-loop trainer (gymnasium envs): truncation, autoreset modes, learning,
bad inputs, and its greedy evaluation's episode caps."""


import gymnasium
import helpers
import jax
import numpy as np
import optax
import probe_envs
import pytest

from baselax import anakin, envs, hostloop, networks
from baselax.agents import DQN
from baselax.anakin import loop
from baselax.errors import ConfigError


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
  obs is the step count; reward 1; episodes end only by a 10-step time limit.
  ``masked``: its reset honours ``options["reset_mask"]`` (gymnasium >= 1.1)."""

  metadata = {"autoreset_mode": gymnasium.vector.AutoresetMode.NEXT_STEP}

  def __init__(self, num_envs, masked=True, limits=10):
    self.num_envs, self.masked = num_envs, masked
    self.limits = np.broadcast_to(limits, (num_envs,))
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
    mask = (options or {}).get("reset_mask") if self.masked else None
    mask = np.ones(self.num_envs, bool) if mask is None else mask
    self.t[mask] = 0
    self.needs_reset[mask] = False
    return self.t[:, None].astype(np.float32), {}

  def step(self, actions):
    reward = np.where(self.needs_reset, 0.0, 1.0)
    self.t = np.where(self.needs_reset, 0, self.t + 1)
    truncated = np.logical_and(self.t >= self.limits, ~self.needs_reset)
    self.needs_reset = truncated.copy()
    return (self.t[:, None].astype(np.float32), reward,
            np.zeros(self.num_envs, bool), truncated, {})


@pytest.mark.parametrize("masked", [True, False], ids=["masked", "pads"])
def test_next_step_autoreset_stores_only_transitions_and_keeps_final_obs(masked):
  """A NEXT_STEP env is reset at once where it can reset single envs, else its
  reset-only steps are pads the replay never samples: either way every held
  transition is a real one."""
  env = NextStepTimeLimit(4)
  if masked:
    env = gymnasium.vector.SyncVectorEnv(
        [lambda: gymnasium.wrappers.TimeLimit(probe_envs.CountUp(), 10)] * 4,
        autoreset_mode=gymnasium.vector.AutoresetMode.NEXT_STEP)
  agent = DQN(networks.mlp_q_network((16,)), env, 1e-3)
  result = hostloop.train(agent, env, probe_config(total_env_steps=440, eval_every=440),
                          on_chunk=lambda s: None)
  held = helpers.held_transitions(result)
  obs, next_obs = held["obs"][:, 0], held["next_obs"][:, 0]
  # every held transition is a real one: t -> t+1, final obs 10 kept, and no
  # (10 -> 0) reset pseudo-transition
  np.testing.assert_array_equal(next_obs, obs + 1)
  assert next_obs.max() == 10 and obs.max() == 9 and obs.min() == 0
  # 110 steps an env, 109 windows of 2; without masked resets the steps at
  # 10, 21, ..., 109 are pads, 9 of them window starts
  assert len(obs) == 4 * (109 if masked else 100)
  # and sampling never draws a pad (its obs would be the final 10)
  replay, state = result.state["replay"], result.state["buffer"]
  for i in range(20):
    batch = replay.sample(state, jax.random.PRNGKey(i), 0.0).batch
    assert batch["obs"].max() <= 9
    np.testing.assert_array_equal(batch["next_obs"], batch["obs"] + 1)
  np.testing.assert_allclose(result.metrics["train_return"][-1], 10.0)
  assert np.isnan(result.metrics["eval_return"]).all()  # no eval_env given


class ResetsAll(gymnasium.vector.SyncVectorEnv):
  """A SyncVectorEnv whose reset ignores the mask: it resets every env."""

  def reset(self, *, seed=None, options=None):
    return super().reset(seed=seed)


def test_a_vector_env_that_resets_all_its_envs_is_refused():
  """A vector env that should reset single envs and resets them all."""
  env = ResetsAll([lambda t=t: gymnasium.wrappers.TimeLimit(probe_envs.CountUp(), t)
                   for t in (10, 11, 12, 13)])
  agent = DQN(networks.mlp_q_network((16,)), env, 1e-3)
  with pytest.raises(ValueError, match="vectorization_mode='sync'"):
    hostloop.train(agent, env, probe_config(total_env_steps=440, eval_every=440))


def test_prioritized_replay_cannot_skip_pads():
  env = NextStepTimeLimit(4, masked=False)
  agent = DQN(networks.mlp_q_network((16,)), env, 1e-3)
  with pytest.raises(ConfigError, match="cannot skip pad steps"):
    hostloop.train(agent, env, probe_config(sampling="prioritized"))


@pytest.mark.slow
def test_learns_gymnasium_cartpole():
  env = gymnasium.make_vec("CartPole-v1", num_envs=8, vectorization_mode="sync")
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


MODES = [gymnasium.vector.AutoresetMode.NEXT_STEP,
         gymnasium.vector.AutoresetMode.SAME_STEP,
         gymnasium.vector.AutoresetMode.DISABLED]


def chain_vector_env(copy, mode):
  def make():
    return gymnasium.wrappers.TimeLimit(probe_envs.FourStateChain(), 6)
  return gymnasium.vector.SyncVectorEnv([make, make], copy=copy, autoreset_mode=mode)


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.name)
def test_host_loop_learns_the_same_whether_or_not_the_env_copies_obs(mode):
  config = anakin.AnakinConfig(total_env_steps=600, num_envs=2, buffer_size=600,
                               batch_size=16, learning_starts=64, eval_every=600,
                               eval_episodes=1)
  results = {}
  for copy in (True, False):
    env = chain_vector_env(copy, mode)
    agent = DQN(networks.mlp_q_network((16,)), env, 1e-2, discount_factor=0.9)
    result = hostloop.train(agent, env, config, on_chunk=lambda record: None)
    held = helpers.held_transitions(result)
    state, next_state = held["obs"].argmax(-1), held["next_obs"].argmax(-1)
    # every held transition follows the chain's dynamics (a terminated one's
    # next_obs is never read: the replay gives the next episode's first)
    real = ~held["terminated"]
    assert real.sum() > len(real) // 2
    np.testing.assert_array_equal(
        next_state[real], np.clip(state + 2 * held["action"] - 1, 0, 3)[real],
        err_msg=f"copy={copy}")
    q = agent.network.apply(result.state["params"].policy, np.eye(4, dtype=np.float32))
    results[copy] = (q, len(state))
  np.testing.assert_array_equal(results[False][0], results[True][0])
  assert results[False][1] == results[True][1]


def run_evaluate(make_envs, mode, episodes, max_steps=None):
  """Greedy returns of ``hostloop.evaluate`` and the vector steps it took."""
  env = gymnasium.vector.SyncVectorEnv(make_envs, autoreset_mode=mode)
  steps = []

  def step(actions, step=env.step):
    steps.append(1)
    assert len(steps) <= 100_000, "evaluate does not stop"  # fail, don't hang
    return step(actions)

  env.step = step
  agent = DQN(networks.mlp_q_network((4,)), env, 1e-3)
  key = jax.random.PRNGKey(0)
  returns = hostloop.evaluate(agent, agent.init_params(key), agent.init_policy(key),
                              env, episodes=episodes, seed=0, max_steps=max_steps)
  return returns.tolist(), len(steps)


def endless_for(steps):
  return lambda: gymnasium.wrappers.TimeLimit(probe_envs.Endless(), steps)


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.name)
def test_host_loop_evaluation_cuts_long_episodes_at_max_steps(mode):
  """Reward 1 per step; env 0's episodes last 2 steps, env 1's 5; cap 3.

  Env 1 is cut at 3 and, unless DISABLED resets it at once, idles until that
  episode ends (NEXT_STEP: then one more step, the reset). Returns in order:
  NEXT_STEP  env 0 at steps 2, 5, 8; env 1 at 3, 9 (reset at 6)
  SAME_STEP  env 0 at 2, 4, 6, 8; env 1 at 3, 8
  DISABLED   env 0 at 2, 4, 6; env 1 at 3, 6
  """
  envs_2_5 = [endless_for(2), endless_for(5)]
  expected = {"NEXT_STEP": ([2.0, 3.0, 2.0, 2.0, 3.0], 9),
              "SAME_STEP": ([2.0, 3.0, 2.0, 2.0, 2.0], 8),
              "DISABLED": ([2.0, 3.0, 2.0, 2.0, 3.0], 6)}[mode.name]
  assert run_evaluate(envs_2_5, mode, 5, max_steps=3) == expected
  # a cap above every episode's length changes nothing: whole episodes
  assert run_evaluate(envs_2_5, mode, 3, max_steps=10)[0] == [2.0, 2.0, 5.0]
  # never ending: every env cut at once, then all reset: two rounds
  endless = [probe_envs.Endless] * 2
  assert run_evaluate(endless, mode, 3, max_steps=100) == ([100.0] * 3, 200)


def test_host_loop_evaluation_of_a_never_ending_env_stops_at_the_default_cap():
  returns, steps = run_evaluate([probe_envs.Endless] * 2,
                                gymnasium.vector.AutoresetMode.NEXT_STEP, 2)
  assert returns == [float(loop.DEFAULT_EVAL_MAX_STEPS)] * 2
  assert steps == loop.DEFAULT_EVAL_MAX_STEPS


def test_a_checkpoint_of_the_old_numpy_replay_is_refused_in_one_line(tmp_path, monkeypatch):
  """Host-loop checkpoints written before the host loop used baselax.replay
  (their fingerprint has no ``replay``) are refused, naming why."""
  from baselax.hostloop import trainer
  from baselax.training import Checkpointer

  env = NextStepTimeLimit(4)
  agent = DQN(networks.mlp_q_network((16,)), env, 1e-3)
  config = probe_config(total_env_steps=880, eval_every=440)
  old = trainer.run_fingerprint
  monkeypatch.setattr(trainer, "run_fingerprint", lambda *a: {
      k: v for k, v in old(*a).items() if k != "replay"})
  checkpointer = Checkpointer(str(tmp_path / "ckpt"), writer=True)
  hostloop.train(agent, env, config, checkpointer=checkpointer, on_chunk=lambda r: r.chunk == 0)
  monkeypatch.setattr(trainer, "run_fingerprint", old)
  with pytest.raises(ConfigError, match="numpy replay buffer of an older baselax") as refused:
    hostloop.train(agent, env, config, checkpointer=checkpointer, resume=True)
  assert "\n" not in str(refused.value)
