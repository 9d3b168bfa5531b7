"""Network creators in the documented form ``Callable[[gym.Space], haiku.Transformed]``.

A creator is called with the single env's action space and returns a
``haiku.Transformed`` whose function maps a batch of observations
``(B, *obs_shape)`` to Q-values ``(B, num_actions)``, or, with ``atoms=K``,
to ``K`` outputs per action ``(B, num_actions, K)`` (quantiles for QR-DQN).
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import gymnasium
import haiku as hk
import jax
import jax.numpy as jnp

NetworkFn = Callable[[gymnasium.Space], hk.Transformed]


def _num_actions(action_space: gymnasium.Space) -> int:
  if not isinstance(action_space, gymnasium.spaces.Discrete):
    raise ValueError(f"Q-networks need a Discrete action space, got {action_space}.")
  return int(action_space.n)


def q_head(x: jax.Array, hidden_sizes: Sequence[int], num_actions: int,
           dueling: bool = False,
           activation: Callable[[jax.Array], jax.Array] = jax.nn.relu,
           atoms: Optional[int] = None) -> jax.Array:
  """Hidden layers then Q-values ``(B, num_actions)`` from features ``(B, F)``.

  With ``dueling=True`` (Wang et al. 2016, "Dueling network architectures"),
  two streams of ``hidden_sizes`` give a state value ``V(s)`` and advantages
  ``A(s, a)``, combined as ``Q = V + A - mean_a A``: the mean makes V and A
  identifiable. With ``atoms=K`` every action gets ``K`` outputs
  ``(B, num_actions, K)`` (dueling combines them atom by atom).
  """
  hidden_sizes = tuple(int(h) for h in hidden_sizes)
  per_action = 1 if atoms is None else int(atoms)

  def stream(outputs, name=None):
    y = hk.nets.MLP((*hidden_sizes, outputs * per_action), activation=activation,
                    name=name)(x)
    return y.reshape(y.shape[0], outputs, per_action)

  if not dueling:
    q = stream(num_actions)
  else:
    value, advantages = stream(1, "value"), stream(num_actions, "advantage")
    q = value + advantages - jnp.mean(advantages, axis=1, keepdims=True)
  return q[..., 0] if atoms is None else q


def mlp_q_network(hidden_sizes: Sequence[int] = (64, 64),
                  activation: Callable[[jax.Array], jax.Array] = jax.nn.relu,
                  dueling: bool = False, atoms: Optional[int] = None) -> NetworkFn:
  """An MLP Q-network: flatten -> hidden layers -> ``num_actions`` linear head.

  Args:
    hidden_sizes: widths of the hidden layers.
    activation: hidden-layer nonlinearity.
    dueling: separate value and advantage streams (see :func:`q_head`).
    atoms: ``K`` outputs per action, ``(B, A, K)`` (e.g. quantiles).
  """
  hidden_sizes = tuple(int(h) for h in hidden_sizes)

  def creator(action_space: gymnasium.Space) -> hk.Transformed:
    num_actions = _num_actions(action_space)

    def forward(obs: jax.Array) -> jax.Array:
      x = hk.Flatten()(jnp.asarray(obs, jnp.float32))
      return q_head(x, hidden_sizes, num_actions, dueling, activation, atoms)

    return hk.without_apply_rng(hk.transform(forward))

  return creator


def conv_q_network(channels: Sequence[int] = (16,),
                   kernel_size: int = 3,
                   hidden_sizes: Sequence[int] = (128,),
                   dueling: bool = False, atoms: Optional[int] = None) -> NetworkFn:
  """A small conv Q-network for image observations ``(B, H, W, C)``.

  The default is the MinAtar network of Young & Tian 2019 ("MinAtar: an
  Atari-inspired testbed"): one 3x3 conv with 16 channels, stride 1, then a
  128-unit hidden layer. MinAtar frames are 10x10, so no striding or pooling.
  ``dueling=True`` splits the head into value and advantage streams
  (see :func:`q_head`); ``atoms=K`` gives ``(B, A, K)`` outputs.
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
      return q_head(x, hidden_sizes, num_actions, dueling, atoms=atoms)

    return hk.without_apply_rng(hk.transform(forward))

  return creator


def is_image(observation_space: gymnasium.Space) -> bool:
  """Whether observations are images ``(H, W, C)`` a conv net can take."""
  shape = observation_space.shape or ()
  return len(shape) == 3 and min(shape[:2]) >= 3


def default_q_network(observation_space: gymnasium.Space) -> NetworkFn:
  """A sensible Q-network for an observation space: conv for images, else MLP."""
  return conv_q_network() if is_image(observation_space) else mlp_q_network()
