"""Network creators in the documented form ``Callable[[gym.Space], haiku.Transformed]``.

A creator is called with the single env's action space and returns a
``haiku.Transformed`` whose function maps a batch of observations
``(B, *obs_shape)`` to Q-values ``(B, num_actions)``.
"""

from __future__ import annotations

from typing import Callable, Sequence

import gymnasium
import haiku as hk
import jax
import jax.numpy as jnp

NetworkFn = Callable[[gymnasium.Space], hk.Transformed]


def _num_actions(action_space: gymnasium.Space) -> int:
  if not isinstance(action_space, gymnasium.spaces.Discrete):
    raise ValueError(f"Q-networks need a Discrete action space, got {action_space}.")
  return int(action_space.n)


def mlp_q_network(hidden_sizes: Sequence[int] = (64, 64),
                  activation: Callable[[jax.Array], jax.Array] = jax.nn.relu
                  ) -> NetworkFn:
  """An MLP Q-network: flatten -> hidden layers -> ``num_actions`` linear head.

  Args:
    hidden_sizes: widths of the hidden layers.
    activation: hidden-layer nonlinearity.
  """
  hidden_sizes = tuple(int(h) for h in hidden_sizes)

  def creator(action_space: gymnasium.Space) -> hk.Transformed:
    num_actions = _num_actions(action_space)

    def forward(obs: jax.Array) -> jax.Array:
      x = hk.Flatten()(jnp.asarray(obs, jnp.float32))
      return hk.nets.MLP((*hidden_sizes, num_actions), activation=activation)(x)

    return hk.without_apply_rng(hk.transform(forward))

  return creator


def conv_q_network(channels: Sequence[int] = (16,),
                   kernel_size: int = 3,
                   hidden_sizes: Sequence[int] = (128,)) -> NetworkFn:
  """A small conv Q-network for image observations ``(B, H, W, C)``.

  The default is the MinAtar network of Young & Tian 2019 ("MinAtar: an
  Atari-inspired testbed"): one 3x3 conv with 16 channels, stride 1, then a
  128-unit hidden layer. MinAtar frames are 10x10, so no striding or pooling.
  """
  channels = tuple(int(c) for c in channels)
  hidden_sizes = tuple(int(h) for h in hidden_sizes)

  def creator(action_space: gymnasium.Space) -> hk.Transformed:
    num_actions = _num_actions(action_space)

    def forward(obs: jax.Array) -> jax.Array:
      x = jnp.asarray(obs, jnp.float32)
      if x.ndim == 3:  # (B, H, W) single-channel frames
        x = x[..., None]
      for c in channels:
        x = jax.nn.relu(hk.Conv2D(c, kernel_size, stride=1, padding="VALID")(x))
      x = hk.Flatten()(x)
      return hk.nets.MLP((*hidden_sizes, num_actions))(x)

    return hk.without_apply_rng(hk.transform(forward))

  return creator


def default_q_network(observation_space: gymnasium.Space) -> NetworkFn:
  """A sensible Q-network for an observation space: conv for images, else MLP."""
  shape = observation_space.shape or ()
  if len(shape) == 3 and min(shape[:2]) >= 3:
    return conv_q_network()
  return mlp_q_network()
