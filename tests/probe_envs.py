"""Tiny gymnax environments whose true values are known (for learning tests)."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

from baselax import anakin, envs, networks
from baselax.agents import DQN


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


# --- replay audit and host-loop probes ------------------------------------------

import gymnasium  # noqa: E402  (appended probes; the ones above do not need it)


@struct.dataclass
class TaggedState(environment.EnvState):
  tag: jax.Array


class TaggedCounter(environment.Environment):
  """Observation ``(tag, t)``: ``tag`` is drawn in [1, 2^20) at every reset and
  ``t`` counts the episode's steps, so a stored transition names its episode
  and step, and an all-zero observation is a slot never written.

  Reward 1 every step; an episode terminates with probability
  ``terminate_prob`` per step and is truncated at ``max_steps``. A k-step
  transition of one episode goes from ``(tag, t)`` to ``(tag, t + k)`` with
  reward ``sum_{i<k} gamma^i``.
  """

  def __init__(self, max_steps: int = 7, terminate_prob: float = 0.1):
    super().__init__()
    self.max_steps = max_steps
    self.terminate_prob = terminate_prob

  @property
  def default_params(self):
    return environment.EnvParams(max_steps_in_episode=self.max_steps)

  @staticmethod
  def observe(state):
    return jnp.stack([state.tag, state.time.astype(jnp.float32)])

  def step_env(self, key, state, action, params):
    state = TaggedState(time=state.time + 1, tag=state.tag)
    terminated = jax.random.uniform(key) < self.terminate_prob
    return self.observe(state), state, jnp.float32(1.0), terminated, {}

  def reset_env(self, key, params):
    tag = jax.random.randint(key, (), 1, 2 ** 20).astype(jnp.float32)
    state = TaggedState(time=jnp.int32(0), tag=tag)
    return self.observe(state), state

  def observation_space(self, params):
    return spaces.Box(0.0, 2.0 ** 20, (2,), jnp.float32)

  def action_space(self, params):
    return spaces.Discrete(2)


class FourStateChain(gymnasium.Env):
  """States 0..3 in a row, one-hot observations (a numpy gymnasium env).

  Action 1 steps right, action 0 left (staying at 0). Entering state 3 gives
  reward 1 and terminates; every other step gives 0. Episodes start in a
  random state of {0, 1, 2}. With discount ``gamma`` the optimal values are
  ``Q*(s, right) = gamma^(2 - s)`` and ``Q*(s, left) = gamma^(3 - s')`` for
  ``s' = max(s - 1, 0)`` (without a time limit).
  """

  observation_space = gymnasium.spaces.Box(0.0, 1.0, (4,), np.float32)
  action_space = gymnasium.spaces.Discrete(2)

  def reset(self, *, seed=None, options=None):
    super().reset(seed=seed)
    self.state = int(self.np_random.integers(0, 3))
    return np.eye(4, dtype=np.float32)[self.state], {}

  def step(self, action):
    self.state = min(self.state + 1, 3) if action == 1 else max(self.state - 1, 0)
    terminated = self.state == 3
    return (np.eye(4, dtype=np.float32)[self.state], float(terminated),
            terminated, False, {})


class CountUp(gymnasium.Env):
  """The step count as observation, reward 1 a step, no end of its own (wrap
  it in a ``TimeLimit``): ``NextStepTimeLimit`` (test_hostloop) one env at a time."""

  observation_space = gymnasium.spaces.Box(0.0, np.inf, (1,), np.float32)
  action_space = gymnasium.spaces.Discrete(2)

  def reset(self, *, seed=None, options=None):
    super().reset(seed=seed)
    self.t = 0
    return np.zeros(1, np.float32), {}

  def step(self, action):
    self.t += 1
    return np.full(1, self.t, np.float32), 1.0, False, False, {}


class Endless(gymnasium.Env):
  """Reward 1 every step and no episode ever ends (no time limit either)."""

  observation_space = gymnasium.spaces.Box(0.0, 1.0, (1,), np.float32)
  action_space = gymnasium.spaces.Discrete(2)

  def reset(self, *, seed=None, options=None):
    super().reset(seed=seed)
    return np.ones(1, np.float32), {}

  def step(self, action):
    return np.ones(1, np.float32), 1.0, False, False, {}


def truncation_probe(discount=0.9, **config):
  """A DQN, :class:`ConstantRewardTimeLimit` and a small one-device
  ``AnakinConfig`` (``config`` overrides its fields): ``(agent, env, config)``."""
  env = envs.GymnaxEnv(ConstantRewardTimeLimit())
  agent = DQN(networks.mlp_q_network((16,)), env, 3e-3,
              discount_factor=discount, target_update_interval=20)
  defaults = dict(total_env_steps=20_000, num_envs=8, buffer_size=2_000,
                  batch_size=32, learning_starts=200, eval_every=5_000,
                  eval_episodes=4, num_devices=1)
  defaults.update(config)
  return agent, env, anakin.AnakinConfig(**defaults)


def probe_q(agent, result):
  """The first seed's learned Q-values ``(1, A)`` at the probe's one observation."""
  online = jax.tree.map(lambda x: x[0], result.params.policy)
  return agent.network.apply(online, np.ones((1, 1), np.float32))
