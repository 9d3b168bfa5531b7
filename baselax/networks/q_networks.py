"""Q-network creators in the documented form ``Callable[[gym.Space], haiku.Transformed]``.

A creator is called with the single env's action space and returns a
``haiku.Transformed`` whose function maps a batch of observations
``(B, *obs_shape)`` to Q-values ``(B, num_actions)``, or, with ``atoms=K``,
to ``K`` outputs per action ``(B, num_actions, K)`` (quantiles for QR-DQN,
logits for C51). With ``noisy=True`` every linear layer of the head is a
:class:`~baselax.networks.layers.NoisyLinear` and the creator returns
``hk.transform(f)``: its apply takes an rng, ``apply(params, key, obs)``
draws noise and ``apply(params, None, obs)`` uses the mean weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import gymnasium
import haiku as hk
import jax
import jax.numpy as jnp

from baselax.networks.layers import Conv2D, check_lowering, factorised_noise, noisy_mlp

NetworkFn = Callable[[gymnasium.Space], hk.Transformed]


def _num_actions(action_space: gymnasium.Space) -> int:
  if not isinstance(action_space, gymnasium.spaces.Discrete):
    raise ValueError(f"Q-networks need a Discrete action space, got {action_space}.")
  return int(action_space.n)


#: Where a dueling head's hidden layers go (:func:`q_head`).
DUELING_HIDDEN = ("shared", "per-stream")


def check_dueling_hidden(dueling_hidden: str) -> None:
  if dueling_hidden not in DUELING_HIDDEN:
    raise ValueError(
      f"dueling_hidden must be one of {', '.join(DUELING_HIDDEN)}, got {dueling_hidden!r}."
    )


Stack = tuple[str | None, tuple[int, ...], bool]


def _stacks(
  hidden_sizes: tuple[int, ...], outputs: int, per_action: int, dueling: bool, dueling_hidden: str
) -> list[Stack]:
  """The layer stacks of a head: ``(name, sizes, reads the shared hidden stack)``.
  The plain head is one stack (its hidden layers and the output layer)."""
  if not dueling:
    return [(None, (*hidden_sizes, outputs), False)]
  if dueling_hidden == "per-stream" or not hidden_sizes:
    return [
      ("value", (*hidden_sizes, per_action), False),
      ("advantage", (*hidden_sizes, outputs), False),
    ]
  return [
    ("hidden", hidden_sizes, False),
    ("value", (per_action,), True),
    ("advantage", (outputs,), True),
  ]


def q_head(
  x: jax.Array,
  hidden_sizes: Sequence[int],
  num_actions: int,
  dueling: bool = False,
  activation: Callable[[jax.Array], jax.Array] = jax.nn.relu,
  atoms: int | None = None,
  noisy: bool = False,
  dueling_hidden: str = "shared",
) -> jax.Array:
  """Hidden layers then Q-values ``(B, num_actions)`` from features ``(B, F)``.

  With ``dueling=True`` (Wang et al. 2016, "Dueling network architectures")
  a state value ``V(s)`` and advantages ``A(s, a)`` are combined as ``Q = V
  + A - mean_a A`` (the mean makes V and A identifiable). ``dueling_hidden``
  says where the hidden layers go: ``shared``, both streams read one hidden
  stack and each is one linear layer on it (the usual MLP form, about the
  cost of one network), or ``per-stream``, each stream has its own copy of
  ``hidden_sizes`` (Wang et al.'s form over a shared torso, their one hidden
  layer of 512 per stream; on an MLP it doubles the network). With
  ``atoms=K`` every action gets ``K`` outputs ``(B, num_actions, K)``
  (dueling combines them atom by atom). With ``noisy=True`` every layer is a
  :class:`~baselax.networks.layers.NoisyLinear`.
  """
  hidden_sizes = tuple(int(h) for h in hidden_sizes)
  check_dueling_hidden(dueling_hidden)
  per_action = 1 if atoms is None else int(atoms)
  stacks = _stacks(hidden_sizes, num_actions * per_action, per_action, dueling, dueling_hidden)
  # Noisy: one draw for every layer of every stack (factorised_noise's why),
  # on a batch of rows. A single row (an agent vmapping over rows for a draw
  # each) draws per layer: under vmap ``materialised`` is a select, and one
  # vector sliced among the layers had its hash fused into every slice.
  key = hk.maybe_next_rng_key() if noisy and math.prod(x.shape[:-1]) > 1 else None
  widths = [hidden_sizes[-1] if reads and hidden_sizes else x.shape[-1] for _, _, reads in stacks]
  shapes = [
    list(zip((w, *sizes[:-1]), sizes, strict=True))
    for w, (_, sizes, _) in zip(widths, stacks, strict=True)
  ]
  noise = (
    None
    if key is None
    else factorised_noise(key, [shape for layers in shapes for shape in layers], x.dtype)
  )

  outputs: dict[str | None, jax.Array] = {}
  hidden, used = x, 0
  for (name, sizes, reads), layers in zip(stacks, shapes, strict=True):
    source = hidden if reads else x
    draws = None if noise is None else noise[used : used + len(layers)]
    used += len(layers)
    final = name == "hidden"  # the shared stack ends in an activation too
    if noisy:
      y = noisy_mlp(sizes, activation, name=name)(source, draws)
      y = activation(y) if final else y
    else:
      y = hk.nets.MLP(sizes, activation=activation, activate_final=final, name=name)(source)
    if final:
      hidden = y
    else:
      outputs[name] = y.reshape(y.shape[0], -1, per_action)
  if not dueling:
    q = outputs[None]
  else:
    value, advantages = outputs["value"], outputs["advantage"]
    q = value + advantages - jnp.mean(advantages, axis=1, keepdims=True)
  return q[..., 0] if atoms is None else q


def mlp_q_network(
  hidden_sizes: Sequence[int] = (64, 64),
  activation: Callable[[jax.Array], jax.Array] = jax.nn.relu,
  dueling: bool = False,
  atoms: int | None = None,
  noisy: bool = False,
  dueling_hidden: str = "shared",
) -> NetworkFn:
  """An MLP Q-network: flatten -> hidden layers -> ``num_actions`` linear head.

  Args:
    hidden_sizes: widths of the hidden layers.
    activation: hidden-layer nonlinearity.
    dueling: separate value and advantage streams (see :func:`q_head`).
    atoms: ``K`` outputs per action, ``(B, A, K)`` (e.g. quantiles).
    noisy: noisy linear layers (:class:`~baselax.networks.layers.NoisyLinear`);
      returns ``hk.transform(f)``, whose apply takes the noise's rng.
    dueling_hidden: ``shared`` (the streams read one hidden stack) or
      ``per-stream`` (each has its own copy: twice the network); see
      :func:`q_head`.
  """
  hidden_sizes = tuple(int(h) for h in hidden_sizes)
  check_dueling_hidden(dueling_hidden)

  def creator(action_space: gymnasium.Space) -> hk.Transformed:
    num_actions = _num_actions(action_space)

    def forward(obs: jax.Array) -> jax.Array:
      x = hk.Flatten()(jnp.asarray(obs, jnp.float32))
      return q_head(x, hidden_sizes, num_actions, dueling, activation, atoms, noisy, dueling_hidden)

    return _transform(forward, noisy)

  return creator


def conv_q_network(
  channels: Sequence[int] = (16,),
  kernel_size: int = 3,
  hidden_sizes: Sequence[int] = (128,),
  dueling: bool = False,
  atoms: int | None = None,
  noisy: bool = False,
  padding: str = "VALID",
  conv_lowering: str = "auto",
  dueling_hidden: str = "per-stream",
) -> NetworkFn:
  """A small conv Q-network for image observations ``(B, H, W, C)``.

  The default is the MinAtar network of Young & Tian 2019 ("MinAtar: an
  Atari-inspired testbed"): one 3x3 conv with 16 channels, stride 1, then a
  128-unit hidden layer. MinAtar frames are 10x10, so no striding or pooling.
  ``dueling=True`` splits the head into value and advantage streams
  over the shared conv torso, each with its own hidden layer by default
  (``dueling_hidden``, see :func:`q_head`); ``atoms=K`` gives ``(B, A, K)`` outputs;
  ``noisy=True`` makes the head's linear layers noisy (the conv stays plain,
  as in Fortunato et al. 2018). ``hidden_sizes=()`` puts the head straight
  on the conv features, and ``padding="SAME"`` keeps them 10x10 (the
  network of Obando-Ceron & Castro 2021, "Revisiting Rainbow").
  ``conv_lowering``: how the convolutions compute (:class:`Conv2D`).
  """
  channels = tuple(int(c) for c in channels)
  hidden_sizes = tuple(int(h) for h in hidden_sizes)
  check_lowering(conv_lowering)
  check_dueling_hidden(dueling_hidden)

  def creator(action_space: gymnasium.Space) -> hk.Transformed:
    num_actions = _num_actions(action_space)

    def forward(obs: jax.Array) -> jax.Array:
      x = jnp.asarray(obs, jnp.float32)
      if x.ndim == 3:  # (B, H, W) single-channel frames
        x = x[..., None]
      for c in channels:
        x = jax.nn.relu(
          Conv2D(c, kernel_size, stride=1, padding=padding, lowering=conv_lowering)(x)
        )
      x = hk.Flatten()(x)
      return q_head(
        x,
        hidden_sizes,
        num_actions,
        dueling,
        atoms=atoms,
        noisy=noisy,
        dueling_hidden=dueling_hidden,
      )

    return _transform(forward, noisy)

  return creator


def nature_q_network(
  hidden_sizes: Sequence[int] = (512,),
  dueling: bool = False,
  atoms: int | None = None,
  noisy: bool = False,
  channels_first: bool = True,
  conv_lowering: str = "auto",
  dueling_hidden: str = "per-stream",
) -> NetworkFn:
  """The Nature DQN network (Mnih et al. 2015, "Human-level control through
  deep reinforcement learning", Methods, "Model architecture").

  Frames ``(B, 4, 84, 84)`` uint8 (channels first: a gymnasium
  ``FrameStackObservation`` stack of 84x84 grayscale frames, what
  ``baselax.atari`` gives; ``channels_first=False`` takes ``(B, 84, 84, 4)``)
  are scaled to [0, 1] inside the network, so the replay buffer keeps bytes.
  Then conv 32 8x8 stride 4, conv 64 4x4 stride 2, conv 64 3x3 stride 1
  (ReLU, no padding: 84 -> 20 -> 9 -> 7, 3,136 features), ``hidden_sizes``
  ReLU layers (one of 512) and a linear head: 1.7M parameters for 6
  actions. ``dueling``, ``dueling_hidden`` (per stream by default: Wang et
  al. 2016's network), ``atoms`` and ``noisy`` shape the head as in
  :func:`q_head` (the convs stay plain, as in Fortunato et al. 2018). ``conv_lowering``: how the
  convolutions compute (:class:`Conv2D`).
  """
  hidden_sizes = tuple(int(h) for h in hidden_sizes)
  check_lowering(conv_lowering)
  check_dueling_hidden(dueling_hidden)

  def creator(action_space: gymnasium.Space) -> hk.Transformed:
    num_actions = _num_actions(action_space)

    def forward(obs: jax.Array) -> jax.Array:
      x = jnp.asarray(obs, jnp.float32) / 255.0
      if x.ndim != 4:
        raise ValueError(
          f"nature_q_network takes stacked frames (B, C, H, W) or "
          f"(B, H, W, C), got shape {x.shape}."
        )
      if channels_first:  # haiku convolves NHWC, the layout XLA prefers on CPU
        x = jnp.transpose(x, (0, 2, 3, 1))
      for channels, kernel, stride in ((32, 8, 4), (64, 4, 2), (64, 3, 1)):
        x = jax.nn.relu(
          Conv2D(channels, kernel, stride=stride, padding="VALID", lowering=conv_lowering)(x)
        )
      x = hk.Flatten()(x)
      return q_head(
        x,
        hidden_sizes,
        num_actions,
        dueling,
        atoms=atoms,
        noisy=noisy,
        dueling_hidden=dueling_hidden,
      )

    return _transform(forward, noisy)

  return creator


def is_atari_frames(observation_space: gymnasium.Space) -> bool:
  """Whether observations are a channels-first stack of 84x84 frames
  ``(C, 84, 84)``, the input of :func:`nature_q_network`."""
  shape = tuple(observation_space.shape or ())
  return len(shape) == 3 and shape[1:] == (84, 84) and shape[0] < 84


def is_image(observation_space: gymnasium.Space) -> bool:
  """Whether observations are images ``(H, W, C)`` a conv net can take."""
  shape = observation_space.shape or ()
  return len(shape) == 3 and min(shape[:2]) >= 3


#: The network kinds, by the name ``--network`` takes.
CREATORS: dict[str, Callable[..., NetworkFn]] = {
  "mlp": mlp_q_network,
  "conv": conv_q_network,
  "nature": nature_q_network,
}


def auto_kind(observation_space: gymnasium.Space) -> str:
  """The network ``auto`` picks for an observation space, decided here only:
  ``nature`` for 84x84 frame stacks (Atari), ``conv`` for other images
  (MinAtar), else ``mlp``."""
  if is_atari_frames(observation_space):
    return "nature"
  return "conv" if is_image(observation_space) else "mlp"


def default_q_network(observation_space: gymnasium.Space) -> NetworkFn:
  """The :func:`auto_kind` network for an observation space, with its creator's defaults."""
  return CREATORS[auto_kind(observation_space)]()


def _transform(forward: Callable[..., jax.Array], noisy: bool) -> hk.Transformed:
  # A noisy network keeps the rng argument of its apply: it draws noise.
  transformed = hk.transform(forward)
  return transformed if noisy else hk.without_apply_rng(transformed)
