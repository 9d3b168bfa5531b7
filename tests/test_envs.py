"""The gymnax gym adapter: gymnasium API, functional core, episode ends, bad input."""

import gymnasium
import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from baselax import envs


def test_is_a_gymnasium_vector_env_with_converted_spaces():
  env = envs.make("CartPole-v1", num_envs=5)
  assert isinstance(env, gymnasium.vector.VectorEnv)
  assert env.num_envs == 5
  assert env.metadata["autoreset_mode"] == gymnasium.vector.AutoresetMode.SAME_STEP
  assert env.single_observation_space.shape == (4,)
  assert env.single_observation_space.dtype == np.float32
  assert env.single_action_space == gymnasium.spaces.Discrete(2)
  assert env.observation_space.shape == (5, 4)
  assert env.action_space == gymnasium.spaces.MultiDiscrete([2] * 5)
  obs, info = env.reset(seed=0)
  assert obs.shape == (5, 4) and isinstance(obs, np.ndarray)
  assert env.single_observation_space.contains(obs[0])
  obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
  for x in (obs, reward, terminated, truncated):
    assert isinstance(x, np.ndarray) and x.shape[0] == 5
  assert terminated.dtype == np.bool_ and truncated.dtype == np.bool_

  breakout = envs.make("Breakout-MinAtar")
  assert breakout.single_observation_space.shape == (10, 10, 4)
  assert breakout.single_action_space.n == 3


def test_seeded_reset_is_reproducible_and_seeds_differ():
  a, b, c = (envs.make("CartPole-v1", num_envs=4) for _ in range(3))
  obs_a, _ = a.reset(seed=1)
  obs_b, _ = b.reset(seed=1)
  obs_c, _ = c.reset(seed=2)
  np.testing.assert_array_equal(obs_a, obs_b)
  assert not np.array_equal(obs_a, obs_c)
  assert len(np.unique(obs_a[:, 0])) == 4  # every env its own initial state


def test_functional_core_matches_gymnax_directly():
  gym_env, params = gymnax.make("CartPole-v1")
  env = envs.GymnaxEnv(gym_env, params, num_envs=3)
  key = jax.random.PRNGKey(42)
  obs, state = env.functional_reset(key)
  keys = jax.random.split(key, 3)
  for i in range(3):
    o_i, s_i = gym_env.reset(keys[i], params)
    np.testing.assert_array_equal(obs[i], o_i)
  actions = jnp.array([0, 1, 1])
  step_key = jax.random.PRNGKey(3)
  new_state, out = env.functional_step(step_key, state, actions)
  step_keys = jax.random.split(step_key, 3)
  for i in range(3):
    s_i = jax.tree.map(lambda x: x[i], state)
    o, s, r, term, trunc, info = gym_env.step(step_keys[i], s_i, actions[i], params)
    np.testing.assert_array_equal(out.obs[i], o)
    np.testing.assert_array_equal(out.reward[i], r)
    assert bool(out.terminated[i]) == bool(term)
    np.testing.assert_array_equal(out.final_obs[i], info["final_observation"])
  # jittable and usable with any batch size
  obs8, _ = jax.jit(env.functional_reset, static_argnums=1)(key, 8)
  assert obs8.shape == (8, 4)


def _expected_next_obs(env, state, i, action):
  """CartPole's transition is deterministic: recompute env i's next obs."""
  s_i = jax.tree.map(lambda x: x[i], state)
  o, _, _, _, _ = env.env.step_env(jax.random.PRNGKey(0), s_i, action, env.env_params)
  return np.asarray(o)


def test_truncation_flags_and_final_observation():
  gym_env, params = gymnax.make("CartPole-v1")
  env = envs.GymnaxEnv(gym_env, params.replace(max_steps_in_episode=5), num_envs=2)
  obs, _ = env.reset(seed=0)
  for t in range(5):
    actions = np.array([t % 2, t % 2])  # wiggle: the pole stays up for 5 steps
    expected = [_expected_next_obs(env, env._state, i, actions[i]) for i in range(2)]
    obs, reward, terminated, truncated, info = env.step(actions)
    if t < 4:
      assert not truncated.any() and not terminated.any() and not info
      np.testing.assert_allclose(obs, np.stack(expected), rtol=1e-6)
  assert truncated.all() and not terminated.any()
  assert info["_final_obs"].all()
  for i in range(2):
    np.testing.assert_allclose(info["final_obs"][i], expected[i], rtol=1e-6)
    # the returned obs is already the next episode's first observation
    assert np.all(np.abs(obs[i]) <= 0.05)
    assert not np.allclose(obs[i], expected[i])


def test_termination_flags_and_final_observation():
  env = envs.make("CartPole-v1", num_envs=2)
  env.reset(seed=3)
  for t in range(200):
    actions = np.array([1, 1])  # always push right: the pole falls
    expected = [_expected_next_obs(env, env._state, i, 1) for i in range(2)]
    obs, reward, terminated, truncated, info = env.step(actions)
    if terminated.any():
      break
  assert not truncated.any()
  for i in np.flatnonzero(terminated):
    assert info["_final_obs"][i]
    np.testing.assert_allclose(info["final_obs"][i], expected[i], rtol=1e-6)
    assert abs(info["final_obs"][i][2]) > env.env_params.theta_threshold_radians \
        or abs(info["final_obs"][i][0]) > env.env_params.x_threshold
  for i in np.flatnonzero(~terminated):
    assert info["final_obs"][i] is None


def test_wraps_a_users_own_gymnax_environment():
  from gymnax.environments import environment, spaces

  class Counter(environment.Environment):
    """Obs = steps taken; ends by time limit only."""

    @property
    def default_params(self):
      return environment.EnvParams(max_steps_in_episode=3)

    def step_env(self, key, state, action, params):
      state = environment.EnvState(time=state.time + 1)
      return (jnp.array([state.time], jnp.float32), state, jnp.float32(1.0),
              jnp.bool_(False), {})

    def reset_env(self, key, params):
      return jnp.zeros((1,), jnp.float32), environment.EnvState(time=0)

    def observation_space(self, params):
      return spaces.Box(0, 10, (1,), jnp.float32)

    def action_space(self, params):
      return spaces.Discrete(2)

  env = envs.GymnaxEnv(Counter(), num_envs=2)
  env.reset(seed=0)
  for t in range(3):
    obs, reward, terminated, truncated, info = env.step(np.array([0, 1]))
  assert truncated.all() and not terminated.any()
  np.testing.assert_array_equal(obs, np.zeros((2, 1)))
  np.testing.assert_array_equal(np.stack(info["final_obs"]), np.full((2, 1), 3.0))


def test_bad_inputs_raise_clear_errors():
  with pytest.raises(ValueError, match="Unknown gymnax env_id 'CartPol'.*CartPole-v1"):
    envs.make("CartPol")
  for n in (0, -1, 2.5):
    with pytest.raises(ValueError, match="num_envs"):
      envs.make("CartPole-v1", num_envs=n)
  with pytest.raises(TypeError, match="gymnax Environment"):
    envs.GymnaxEnv(gymnasium.make("CartPole-v1"))
  env = envs.make("CartPole-v1", num_envs=3)
  with pytest.raises(RuntimeError, match="reset"):
    env.step(np.zeros(3, int))
  env.reset(seed=0)
  with pytest.raises(ValueError, match=r"shape \(3,\)"):
    env.step(np.zeros(2, int))
  with pytest.raises(ValueError, match="out of range"):
    env.step(np.array([0, 1, 2]))
  with pytest.raises(ValueError, match="out of range"):
    env.step(np.array([0, -1, 1]))
  with pytest.raises(ValueError, match="integers"):
    env.step(np.array([0.5, 1.0, 0.0]))
