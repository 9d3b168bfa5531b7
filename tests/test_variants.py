"""The DQN family: Double DQN, n-step returns, prioritized replay, dueling, Huber, clipping.

Hand-computed target maths on tiny batches, then learning checks.
"""

import dataclasses
import types

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import rlax

from baselax import anakin, envs, networks
from baselax.agents import DQN, value_learning
from baselax.errors import ConfigError
from baselax.replay import buffers, prioritized, windows

import helpers
import probe_envs

QUIET = dict(on_chunk=lambda summary: None)


# --- Double DQN -----------------------------------------------------------------

def test_double_q_learning_by_hand_and_against_rlax():
  q_tm1 = jnp.array([1.0, 2.0])
  q_t_value = jnp.array([10.0, 20.0])     # target net values
  q_t_selector = jnp.array([5.0, 1.0])    # online net prefers action 0
  td = value_learning.double_q_learning(q_tm1, 1, 1.0, 0.5, q_t_value, q_t_selector)
  # target = 1 + 0.5 * q_t_value[argmax selector = 0] = 6; td = 6 - q_tm1[1] = 4
  assert float(td) == pytest.approx(4.0)
  # Plain Q-learning would bootstrap from max q_t_value = 20: 1 + 10 - 2 = 9.
  assert float(value_learning.q_learning(q_tm1, 1, 1.0, 0.5, q_t_value)) == pytest.approx(9.0)
  keys = jax.random.split(jax.random.PRNGKey(0), 4)
  q_tm1, q_v, q_s = (jax.random.normal(k, (6, 3)) for k in keys[:3])
  a = jax.random.randint(keys[3], (6,), 0, 3)
  r, d = jnp.arange(6.0), jnp.full((6,), 0.9)
  np.testing.assert_allclose(
      jax.vmap(value_learning.double_q_learning)(q_tm1, a, r, d, q_v, q_s),
      jax.vmap(rlax.double_q_learning)(q_tm1, a, r, d, q_v, q_s), rtol=1e-6)


def test_dqn_double_flag_changes_only_the_target():
  env = helpers.spaces_env(obs_shape=(2,), num_actions=2)

  def linear_q(action_space):
    del action_space
    # Q(s) = s * w: online w starts at 1, and the test sets the target's.
    return hk.without_apply_rng(hk.transform(
        lambda obs: obs * hk.get_parameter("w", [], init=jnp.ones)))

  data = {"obs": jnp.array([[0.0, 1.0]]), "action": jnp.array([1]),
          "reward": jnp.array([1.0]), "terminated": jnp.array([False]),
          "next_obs": jnp.array([[3.0, 2.0]])}
  online = {"~": {"w": jnp.array(-1.0)}}   # online Q(s') = [-3, -2]: picks action 1
  target = {"~": {"w": jnp.array(1.0)}}    # target Q(s') = [3, 2]
  plain = DQN(linear_q, env, 1e-3, discount_factor=0.5)
  double = DQN(linear_q, env, 1e-3, discount_factor=0.5, double_dqn=True)
  # q_tm1[1] = -1. Plain: 1 + 0.5 * 3 + 1 = 3.5. Double: 1 + 0.5 * 2 + 1 = 3.
  assert float(plain.td_errors(online, target, data)[0][0]) == pytest.approx(3.5)
  assert float(double.td_errors(online, target, data)[0][0]) == pytest.approx(3.0)


# --- n-step returns ---------------------------------------------------------------

def sequence(terminated, truncated, rewards=(1.0, 2.0, 3.0)):
  n = len(rewards)
  return {"obs": jnp.arange(n, dtype=jnp.float32)[:, None],
          "action": jnp.arange(n),
          "reward": jnp.array(rewards),
          "terminated": jnp.array(terminated),
          "truncated": jnp.array(truncated),
          "next_obs": 10.0 + jnp.arange(n, dtype=jnp.float32)[:, None]}


def test_n_step_transition_without_an_episode_end():
  out = windows.n_step_transition(sequence([False] * 3, [False] * 3), 0.5)
  assert float(out["reward"]) == pytest.approx(1 + 0.5 * 2 + 0.25 * 3)
  assert float(out["discount"]) == pytest.approx(0.125)       # 0.5^3
  assert float(out["next_obs"][0]) == 12.0 and not bool(out["terminated"])
  assert float(out["obs"][0]) == 0.0 and int(out["action"]) == 0


def test_n_step_transition_stops_at_termination_and_does_not_bootstrap():
  out = windows.n_step_transition(sequence([False, True, False], [False] * 3), 0.5)
  assert float(out["reward"]) == pytest.approx(1 + 0.5 * 2)   # step 2 is the next episode
  assert float(out["discount"]) == 0.0
  assert float(out["next_obs"][0]) == 11.0 and bool(out["terminated"])


def test_n_step_transition_stops_at_truncation_and_bootstraps_from_the_final_obs():
  out = windows.n_step_transition(sequence([False] * 3, [False, True, False]), 0.5)
  assert float(out["reward"]) == pytest.approx(1 + 0.5 * 2)
  assert float(out["discount"]) == pytest.approx(0.25)        # 0.5^2, not 0
  assert float(out["next_obs"][0]) == 11.0 and not bool(out["terminated"])
  first = windows.n_step_transition(sequence([True, False, False], [False] * 3), 0.5)
  assert float(first["reward"]) == 1.0 and float(first["discount"]) == 0.0


def test_dqn_uses_the_batch_discount_when_given():
  agent = DQN(helpers.identity_q_network, helpers.spaces_env((2,), 2), 1e-3,
              discount_factor=0.9)
  params = agent.init_params(jax.random.PRNGKey(0))
  data = {"obs": jnp.array([[1.0, 2.0]]), "action": jnp.array([0]),
          "reward": jnp.array([1.0]), "terminated": jnp.array([False]),
          "next_obs": jnp.array([[4.0, 3.0]])}
  td = agent.td_errors(params.policy, params.target, data)[0]
  assert float(td[0]) == pytest.approx(1 + 0.9 * 4 - 1)
  td = agent.td_errors(params.policy, params.target, {**data, "discount": jnp.array([0.25])})[0]
  assert float(td[0]) == pytest.approx(1 + 0.25 * 4 - 1)


# --- prioritized replay -------------------------------------------------------------

def test_importance_weights_by_hand():
  probabilities = jnp.array([0.5, 0.25, 0.25])
  np.testing.assert_allclose(prioritized.importance_weights(probabilities, 1.0), [0.5, 1.0, 1.0])
  np.testing.assert_allclose(prioritized.importance_weights(probabilities, 0.5),
                             [np.sqrt(0.5), 1.0, 1.0], rtol=1e-6)
  np.testing.assert_allclose(prioritized.importance_weights(probabilities, 0.0), [1.0, 1.0, 1.0])


def test_weights_scale_each_sample_of_the_loss_and_td_errors_are_returned():
  agent = DQN(helpers.identity_q_network, helpers.spaces_env((2,), 2), 1e-3,
              discount_factor=0.5)
  params = agent.init_params(jax.random.PRNGKey(0))
  data = {"obs": jnp.array([[1.0, 0.0], [0.0, 2.0]]), "action": jnp.array([0, 1]),
          "reward": jnp.array([3.0, 0.0]), "terminated": jnp.array([True, True]),
          "next_obs": jnp.zeros((2, 2))}
  # td = [3 - 1, 0 - 2] = [2, -2]
  loss, out = agent.loss(params.policy, params.target, data)
  np.testing.assert_allclose(out.td_error, [2.0, -2.0])
  assert float(loss) == pytest.approx(0.5 * (2.0 + 2.0))
  loss, _ = agent.loss(params.policy, params.target,
                       {**data, "weight": jnp.array([1.0, 0.0])})
  assert float(loss) == pytest.approx(0.5 * 2.0)   # mean(w * 0.5 td^2)


def test_prioritized_replay_samples_high_priorities_more():
  config = anakin.AnakinConfig(buffer_size=10, batch_size=4, num_envs=2,
                               learning_starts=4, prioritized=True,
                               priority_exponent=1.0, importance_exponent=1.0)
  # 5 steps of 2 envs: 8 complete transitions (a step's successor is stored),
  # items row * 5 + start, start < 4.
  steps = {"obs": jnp.arange(10.0).reshape(2, 5, 1), "action": jnp.zeros((2, 5), jnp.int32),
           "reward": jnp.zeros((2, 5)), "terminated": jnp.zeros((2, 5), bool),
           "truncated": jnp.zeros((2, 5), bool), "next_obs": jnp.zeros((2, 5, 1))}
  buf = buffers.make_replay(buffers.ReplayConfig.of(config), steps)  # the layout of these records
  state = buf.add(buf.init(), steps)
  items = jnp.array([0, 1, 2, 3, 5, 6, 7, 8])
  # Give item 0 priority 7 and the other seven priority 1 (in alpha=1 space).
  state = buf.set_priorities(state, items, jnp.array([7.0] + [1.0] * 7))
  samples = jax.vmap(lambda k: buf.sample(state, k, jnp.float32(0.0)))(
      jax.random.split(jax.random.PRNGKey(0), 500))
  share = float(jnp.mean(samples.indices == 0))
  assert 0.4 < share < 0.6          # 7 / 14 = 0.5
  # Importance weights (beta=1) are P_min / P_i within a batch: in a batch
  # holding item 0 (P = 1/2) and others (P = 1/14), item 0 weighs 1/7.
  idx, w = samples.indices, samples.batch["weight"]
  mixed = jnp.any(idx == 0, axis=1) & jnp.any(idx != 0, axis=1)
  assert int(mixed.sum()) > 100
  np.testing.assert_allclose(w[mixed][idx[mixed] == 0], 1 / 7, rtol=1e-4)
  np.testing.assert_allclose(w[mixed][idx[mixed] != 0], 1.0, rtol=1e-6)


def test_prioritized_verifies_the_declared_td_errors():
  """An agent whose contract promises td_error but whose OptimOutput has none
  is refused by tracing, before compiling (the contract is checked, not trusted)."""
  import test_anakin
  from baselax.agents import AgentContract

  class Overpromises(test_anakin.TinyAgent):
    contract = AgentContract(reads=frozenset({"weight"}), td_error=True)

  env = envs.make("CartPole-v1")
  agent = Overpromises(networks.mlp_q_network((8,)), env, 1e-3)
  config = anakin.AnakinConfig(total_env_steps=2000, learning_starts=200,
                               batch_size=32, prioritized=True)
  with pytest.raises(ValueError, match=r"Prioritized sampling needs the agent's OptimOutput "
                     r"to carry per-sample TD errors, td_error of shape \(32,\); "
                     r"Overpromises.update returns OptimOutput without td_error"):
    anakin.train(agent, env, config)


# --- dueling, Huber, clipping ----------------------------------------------------------


def test_huber_loss_is_linear_beyond_delta():
  agent = DQN(helpers.identity_q_network, helpers.spaces_env((1,), 1), 1e-3,
              huber_delta=1.0)
  params = agent.init_params(jax.random.PRNGKey(0))
  data = {"obs": jnp.array([[1.0], [1.0]]), "action": jnp.array([0, 0]),
          "reward": jnp.array([4.0, 1.5]), "terminated": jnp.array([True, True]),
          "next_obs": jnp.zeros((2, 1))}
  loss, out = agent.loss(params.policy, params.target, data)
  np.testing.assert_allclose(out.td_error, [3.0, 0.5])
  # Huber(3) = 1 * (3 - 0.5) = 2.5; Huber(0.5) = 0.5 * 0.25 = 0.125
  assert float(loss) == pytest.approx((2.5 + 0.125) / 2)


def test_max_grad_norm_clips_before_adam():
  env = helpers.spaces_env((2,), 2)
  clipped = DQN(helpers.identity_q_network, env, 0.1, max_grad_norm=1.0)
  params = {"w": jnp.array(1.0)}
  state = clipped.optimizer.init(params)
  adam, adam_state = optax.adam(0.1), optax.adam(0.1).init(params)
  for g in (10.0, 0.1, -5.0):   # norms 10, 0.1, 5 -> clipped to 1, 0.1, 1
    updates, state = clipped.optimizer.update({"w": jnp.array(g)}, state)
    expected, adam_state = adam.update({"w": jnp.array(np.clip(g, -1, 1))}, adam_state)
    np.testing.assert_allclose(updates["w"], expected["w"], rtol=1e-6)
  unclipped, _ = optax.adam(0.1).update({"w": jnp.array(0.1)}, optax.adam(0.1).update(
      {"w": jnp.array(10.0)}, optax.adam(0.1).init(params))[1])
  assert not np.allclose(unclipped["w"], expected["w"])  # clipping made a difference


def test_variants_reject_bad_values():
  env = helpers.spaces_env()
  with pytest.raises(ValueError, match="huber_delta must be > 0"):
    DQN(helpers.identity_q_network, env, 1e-3, huber_delta=0.0)
  with pytest.raises(ValueError, match="max_grad_norm must be > 0"):
    DQN(helpers.identity_q_network, env, 1e-3, max_grad_norm=-1.0)
  with pytest.raises(ValueError, match="n_step must be a positive integer"):
    anakin.AnakinConfig(n_step=0)
  with pytest.raises(ValueError, match="priority_exponent must be in"):
    anakin.AnakinConfig(priority_exponent=1.5)
  with pytest.raises(ValueError, match="Raise learning_starts to at least 50"):
    # 30 env steps over 10 envs is 3 steps per env: no 5-step window yet.
    anakin.AnakinConfig(n_step=5, learning_starts=30, num_envs=10, train_every=1,
                        batch_size=8).derive(1)


# --- learning ----------------------------------------------------------------------

def test_n_step_and_per_through_truncation_still_learn_q_of_ten():
  """With n=3 windows cut by the time limit, Q must still reach 1 / (1 - 0.9)."""
  agent, env, config = probe_envs.truncation_probe(n_step=3, prioritized=True)
  result = anakin.train(agent, env, config, **QUIET)
  q = probe_envs.probe_q(agent, result)
  np.testing.assert_allclose(q, 10.0, atol=0.5)


@pytest.mark.slow
@pytest.mark.parametrize("flags", [
    ["--double-dqn"], ["--n-step", "3"], ["--prioritized"], ["--dueling"],
    ["--huber"], ["--max-grad-norm", "1"]], ids=lambda f: f[0].strip("-"))
def test_each_variant_learns_cartpole_quickly(flags, tmp_path):
  from baselax import experiment
  out = experiment.run(flags + [
      "--total-env-steps", "50000", "--learning-rate", "1e-3", "--learning-starts",
      "5000", "--num-seeds", "2", "--quiet", "--no-tensorboard",
      "--run-dir", str(tmp_path / "run")])
  # A constant-action greedy policy scores about 9, random play about 22; at
  # this budget every variant's seeds average well above 50. Two seeds: one
  # seed's score at this budget swings with its random stream (Huber: 29 to
  # 200 over 8 seeds).
  assert out.eval_return.mean() >= 50


@pytest.mark.slow
def test_all_variants_together_learn_cartpole(tmp_path):
  from baselax import experiment
  out = experiment.run([
      "--double-dqn", "--n-step", "3", "--prioritized", "--dueling", "--huber",
      "--max-grad-norm", "10", "--total-env-steps", "100000", "--num-seeds", "2",
      "--learning-rate", "1e-3", "--quiet", "--run-dir", str(tmp_path / "run")])
  # A random policy scores about 22; every variant on is well past that.
  assert out.eval_return.mean() >= 150
  assert np.all(np.isfinite(out.result.metrics["loss"][-1]))


# --- a sampling variant registered from outside the package -------------------------


def test_a_sampling_variant_registered_from_outside_trains_by_name(monkeypatch):
  """One module (here a namespace) and one registry line: ``sampling="newest"``
  draws the newest complete window of each env, and a run picks it by name."""
  from baselax.replay import store as store_lib
  from baselax.replay import uniform

  def sample(store, config, state, key, progress):
    del config, key, progress
    start = (state.steps.current_index - store.window) % store.length
    row = jnp.arange(store.batch_size) % store.rows
    return store_lib.ReplaySample(
        batch=store_lib.transitions(store, state, row, jnp.full_like(row, start)),
        indices=jnp.zeros((store.batch_size,), jnp.int32))

  newest = types.SimpleNamespace(trajectory_buffer=uniform.trajectory_buffer, sample=sample,
                                 set_priorities=uniform.set_priorities, USES_PRIORITIES=False)
  monkeypatch.setitem(buffers.SAMPLINGS, "newest", None)  # removed again after the test
  buffers.register_sampling("newest", newest, overwrite=True)
  config = anakin.AnakinConfig(buffer_size=10, batch_size=4, num_envs=2, learning_starts=4,
                               sampling="newest")
  steps = {"obs": jnp.arange(10.0).reshape(2, 5, 1), "action": jnp.zeros((2, 5), jnp.int32),
           "reward": jnp.zeros((2, 5)), "terminated": jnp.zeros((2, 5), bool),
           "truncated": jnp.zeros((2, 5), bool), "next_obs": jnp.zeros((2, 5, 1))}
  buf = buffers.make_replay(buffers.ReplayConfig.of(config), steps)
  batch = buf.sample(buf.add(buf.init(), steps), jax.random.PRNGKey(0), 0.0).batch
  # The newest complete transition of env 0 starts at obs 3, of env 1 at obs 8.
  np.testing.assert_allclose(batch["obs"][:, 0], [3.0, 8.0, 3.0, 8.0])
  # A whole run picks it by name.
  env = envs.make("CartPole-v1", num_envs=2)
  agent = DQN(networks.mlp_q_network((8,)), env, 1e-3)
  run = dataclasses.replace(config, total_env_steps=200, eval_every=100, eval_episodes=2)
  result = anakin.train(agent, env, run, **QUIET)
  last = result.history[-1]
  assert last.updates.sum() > 0 and np.isfinite(last.scalars["loss"]).all()


def test_an_unknown_sampling_is_refused_naming_the_registered_ones():
  config = anakin.AnakinConfig(sampling="recency")
  with pytest.raises(ConfigError, match=r"sampling 'recency' is not a registered sampling "
                                        r"variant \(prioritized, uniform\)"):
    buffers.make_replay(buffers.ReplayConfig.of(config), {"obs": jnp.zeros((1, 1))})
  with pytest.raises(ValueError, match="lacks sample, set_priorities, USES_PRIORITIES"):
    buffers.register_sampling("broken", types.SimpleNamespace(trajectory_buffer=None))
