"""gymnax's CartPole-v1, Acrobot-v1 and MountainCar-v0 stepped beside gymnasium's.

CleanRL's table ran gym's classic-control envs (gym 0.23.1; gymnasium keeps
their dynamics); the ``cleanrl-classic`` cells run gymnax's. Both are stepped
in lock-step here: after every step gymnasium's env is set to gymnax's state,
so each transition (next observation, reward, termination) is compared from
the same state with the same action, along whole episodes of a policy that reaches the goals.
gymnax computes in float32, gymnasium in float64: states agree to float32
rounding. The time limits and the reset distributions are compared too.
"""

import gymnasium
import jax
import numpy as np
import pytest

import gymnax

#: gymnax state fields in gymnasium's ``unwrapped.state`` order.
STATE_FIELDS = {
    "CartPole-v1": ("x", "x_dot", "theta", "theta_dot"),
    "Acrobot-v1": ("joint_angle1", "joint_angle2", "velocity_1", "velocity_2"),
    "MountainCar-v0": ("position", "velocity"),
}
#: Episode cap of each: gymnasium's registered TimeLimit, gymnax's params.
TIME_LIMITS = {"CartPole-v1": 500, "Acrobot-v1": 500, "MountainCar-v0": 200}


def policy(env_id, state, rng):
  """Random on CartPole; on Acrobot and MountainCar mostly pumping energy
  (torque along the (second joint's) velocity), which reaches their goals: terminations too."""
  if env_id == "CartPole-v1" or rng.random() < 0.2:
    return int(rng.integers(2 if env_id == "CartPole-v1" else 3))
  velocity = state.velocity_2 if env_id == "Acrobot-v1" else state.velocity
  return 2 if float(velocity) > 0 else 0


def gym_state(env_id, state):
  return np.asarray([float(getattr(state, f)) for f in STATE_FIELDS[env_id]], np.float64)


@pytest.mark.parametrize("env_id", list(STATE_FIELDS))
def test_transitions_equal_gymnasiums_from_the_same_state(env_id):
  env, params = gymnax.make(env_id)
  step = jax.jit(env.step_env)
  reset = jax.jit(env.reset_env)
  reference = gymnasium.make(env_id).unwrapped
  reference.reset(seed=0)
  rng = np.random.default_rng(0)
  key = jax.random.PRNGKey(0)
  compared, episodes, terminations = 0, 0, 0
  _, state = reset(key, params)
  while compared < 3000:
    key, step_key, reset_key = jax.random.split(key, 3)
    action = policy(env_id, state, rng)
    reference.state = gym_state(env_id, state)
    if env_id == "CartPole-v1":
      reference.steps_beyond_terminated = None
    ref_obs, ref_reward, ref_terminated, _, _ = reference.step(action)
    obs, state, reward, done, _ = step(step_key, state, action, params)
    np.testing.assert_allclose(np.asarray(obs), ref_obs, rtol=1e-5, atol=1e-5,
                               err_msg=f"{env_id} step {compared}")
    assert float(reward) == ref_reward, (env_id, compared)
    assert bool(done) == ref_terminated, (env_id, compared)
    compared += 1
    terminations += int(ref_terminated)
    if bool(done) or int(state.time) >= TIME_LIMITS[env_id]:
      episodes += 1
      _, state = reset(reset_key, params)
  # Whole episodes, terminations among their ends.
  assert episodes >= 3 and terminations >= 1, (episodes, terminations)


@pytest.mark.parametrize("env_id", list(STATE_FIELDS))
def test_time_limits_and_reset_ranges_are_gymnasiums(env_id):
  env, params = gymnax.make(env_id)
  assert params.max_steps_in_episode == TIME_LIMITS[env_id]
  assert gymnasium.spec(env_id).max_episode_steps == TIME_LIMITS[env_id]
  keys = jax.random.split(jax.random.PRNGKey(1), 2000)
  _, states = jax.vmap(env.reset_env, in_axes=(0, None))(keys, params)
  ours = np.stack([np.asarray(getattr(states, f)) for f in STATE_FIELDS[env_id]], 1)
  reference = gymnasium.make(env_id).unwrapped
  theirs = np.stack([reference.reset(seed=i)[0] is not None and
                     np.asarray(reference.state, np.float64) for i in range(2000)])
  # Same uniform ranges: the extremes of 2,000 draws agree to 2% of the range.
  span = np.maximum(theirs.max(0) - theirs.min(0), 1e-9)
  np.testing.assert_allclose(ours.min(0), theirs.min(0), atol=0.02 * span.max())
  np.testing.assert_allclose(ours.max(0), theirs.max(0), atol=0.02 * span.max())
