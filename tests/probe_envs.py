"""Tiny gymnax environments whose true values are known (for learning tests)."""

import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces


@struct.dataclass
class TimeState(environment.EnvState):
  pass


class ConstantRewardTimeLimit(environment.Environment):
  """Reward 1 every step; the observation never changes; episodes end ONLY by
  the time limit (``max_steps_in_episode``).

  The true action value is ``1 / (1 - gamma)`` everywhere (truncation
  bootstraps); an agent that treats truncation as termination learns the
  average of ``(1 - gamma**(T - t)) / (1 - gamma)`` over ``t`` instead
  (about 4.1 for gamma=0.9, T=10).
  """

  @property
  def default_params(self):
    return environment.EnvParams(max_steps_in_episode=10)

  def step_env(self, key, state, action, params):
    state = TimeState(time=state.time + 1)
    return (jnp.ones((1,), jnp.float32), state, jnp.float32(1.0),
            jnp.bool_(False), {})

  def reset_env(self, key, params):
    return jnp.ones((1,), jnp.float32), TimeState(time=0)

  def observation_space(self, params):
    return spaces.Box(0.0, 1.0, (1,), jnp.float32)

  def action_space(self, params):
    return spaces.Discrete(2)
