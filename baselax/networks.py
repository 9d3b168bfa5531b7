"""Network creators in the documented form ``Callable[[gym.Space], haiku.Transformed]``.

A creator is called with the single env's action space and returns a
``haiku.Transformed`` whose function maps a batch of observations
``(B, *obs_shape)`` to Q-values ``(B, num_actions)``, or, with ``atoms=K``,
to ``K`` outputs per action ``(B, num_actions, K)`` (quantiles for QR-DQN,
logits for C51). With ``noisy=True`` every linear layer of the head is a
:class:`NoisyLinear` and the creator returns ``hk.transform(f)``: its apply
takes an rng, ``apply(params, key, obs)`` draws noise and
``apply(params, None, obs)`` uses the mean weights.
"""

from __future__ import annotations

import math
from typing import Any, Callable, List, Optional, Sequence, Tuple

import gymnasium
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

NetworkFn = Callable[[gymnasium.Space], hk.Transformed]

#: How :class:`Conv2D` computes: ``auto`` (``matmul`` on CPU, XLA's
#: convolution elsewhere), ``matmul`` or ``xla``.
CONV_LOWERINGS = ("auto", "matmul", "xla")


def _num_actions(action_space: gymnasium.Space) -> int:
  if not isinstance(action_space, gymnasium.spaces.Discrete):
    raise ValueError(f"Q-networks need a Discrete action space, got {action_space}.")
  return int(action_space.n)


class NoisyLinear(hk.Module):
  """A factorised Gaussian noisy linear layer (Fortunato et al. 2018, "Noisy
  networks for exploration", arXiv:1706.10295, sec. 3.2).

  ``y = x @ (mu_w + sigma_w * f(e_in) f(e_out)^T) + mu_b + sigma_b * f(e_out)``
  with ``f(e) = sign(e) sqrt(|e|)``, ``e ~ N(0, 1)``; initialisation
  ``mu ~ U[-1/sqrt(p), 1/sqrt(p)]``, ``sigma = sigma0 / sqrt(p)`` for ``p``
  inputs. One call draws one noise sample, shared by the rows of its batch
  (as in the paper's NoisyNet-DQN), and computes ``x @ (mu_w + sigma_w *
  f(e_in) f(e_out)^T)``: one matmul. An agent that wants a draw per row vmaps
  the network over rows; a call on one row computes ``x @ mu_w + f(e_out) *
  ((x * f(e_in)) @ sigma_w)``, so no row gets a weight matrix of its own and
  the vmapped matmuls stay shared. The noise comes from ``hk.maybe_next_rng_key()``: without
  an rng (``apply(params, None, x)``) the layer uses its mean weights, which
  is how greedy evaluation acts. A caller holding several layers passes each
  its slice of one draw instead (``noise``, from :func:`factorised_noise`).
  """

  def __init__(self, output_size: int, sigma0: float = 0.5,
               name: Optional[str] = None):
    super().__init__(name=name)
    self.output_size = int(output_size)
    self.sigma0 = float(sigma0)

  def __call__(self, x: jax.Array,
               noise: Optional[Tuple[jax.Array, jax.Array]] = None) -> jax.Array:
    """``x`` ``(..., p)`` -> ``(..., output_size)``; ``noise``: ``(f(e_in) [p],
    f(e_out) [output_size])`` to use instead of a draw of its own."""
    p = x.shape[-1]
    bound = 1.0 / math.sqrt(p)
    mu_init = hk.initializers.RandomUniform(-bound, bound)
    sigma_init = hk.initializers.Constant(self.sigma0 / math.sqrt(p))
    w_mu = hk.get_parameter("w_mu", (p, self.output_size), x.dtype, mu_init)
    b_mu = hk.get_parameter("b_mu", (self.output_size,), x.dtype, mu_init)
    w_sigma = hk.get_parameter("w_sigma", (p, self.output_size), x.dtype, sigma_init)
    b_sigma = hk.get_parameter("b_sigma", (self.output_size,), x.dtype, sigma_init)
    if noise is None:
      key = hk.maybe_next_rng_key()
      if key is None:
        return x @ w_mu + b_mu
      noise, = factorised_noise(key, [(p, self.output_size)], x.dtype)
    e_in, e_out = noise
    if math.prod(x.shape[:-1]) > 1:
      # The rows share the draw: one matmul with the noisy weights (their
      # p x out products cost less than a second (rows x p) @ (p x out)).
      return x @ (w_mu + w_sigma * (e_in[:, None] * e_out)) + b_mu + b_sigma * e_out
    # One row (e.g. vmapped over rows, a draw each): no weight matrix of its own.
    return x @ w_mu + b_mu + e_out * ((x * e_in) @ w_sigma + b_sigma)


class Conv2D(hk.Conv2D):
  """``hk.Conv2D`` (NHWC) that can compute as patches times a matrix.

  The parameters are ``hk.Conv2D``'s (same names, shapes, initialisers and
  module name), so params and checkpoints do not depend on the lowering.
  With ``lowering="matmul"`` the layer gathers its ``kh * kw`` shifted input
  windows by static slicing into ``(B, H', W', kh * kw * C)`` patches and
  multiplies them by the kernel reshaped to ``(kh * kw * C, O)``: one
  matmul, whose gradients are a matmul and pads of slices. XLA:CPU runs
  small convolutions such as MinAtar's (3x3, 10x10 inputs) far below its
  matmul speed, and turns convolutions vmapped over per-seed params into
  grouped convolutions, slower still; a vmapped matmul is a batched matmul.
  The result equals the convolution up to float32 rounding (the sums run in
  another order). ``auto`` picks ``matmul`` when the default backend is the
  CPU and XLA's convolution (cuDNN on a GPU) elsewhere.

  Args:
    *args: as for ``hk.Conv2D``.
    **kwargs: as for ``hk.Conv2D``.
    lowering: one of :data:`CONV_LOWERINGS`. ``matmul`` covers string
      paddings (``VALID``, ``SAME``), any stride, no dilation, no feature
      groups and no mask; other settings compute with XLA's convolution.
  """

  def __init__(self, *args: Any, lowering: str = "auto", **kwargs: Any):
    check_lowering(lowering)
    super().__init__(*args, **kwargs)
    self.lowering = lowering

  def _as_matmul(self, inputs: jax.Array) -> bool:
    if self.lowering == "xla" or (self.lowering == "auto"
                                  and jax.default_backend() != "cpu"):
      return False
    return (isinstance(self.padding, str) and self.channel_index == -1
            and self.mask is None and self.feature_group_count == 1
            and set(self.kernel_dilation) == {1} and inputs.ndim == 4)

  def __call__(self, inputs: jax.Array, **kwargs) -> jax.Array:
    inputs = jnp.asarray(inputs)
    if not self._as_matmul(inputs):
      return super().__call__(inputs, **kwargs)
    # hk.Conv2D's parameters, created exactly as it creates them.
    w_shape = self.kernel_shape + (inputs.shape[-1], self.output_channels)
    w_init = self.w_init or hk.initializers.TruncatedNormal(
        stddev=1. / np.sqrt(np.prod(w_shape[:-1])))
    w = hk.get_parameter("w", w_shape, inputs.dtype, init=w_init)
    out = conv_as_matmul(inputs, w, self.stride, self.padding)
    if self.with_bias:
      out = out + hk.get_parameter("b", (self.output_channels,), inputs.dtype,
                                   init=self.b_init)
    return out


def check_lowering(lowering: str) -> None:
  if lowering not in CONV_LOWERINGS:
    raise ValueError(f"conv lowering must be one of {', '.join(CONV_LOWERINGS)}, "
                     f"got {lowering!r}.")


def conv_as_matmul(x: jax.Array, w: jax.Array, stride: Sequence[int],
                   padding: str) -> jax.Array:
  """``lax.conv_general_dilated(x, w, stride, padding)`` for NHWC ``x``
  ``(B, H, W, C)`` and HWIO ``w`` ``(kh, kw, C, O)``, as patches ``@`` kernel:
  returns ``(B, H', W', O)``."""
  kh, kw, cin, cout = w.shape
  (top, bottom), (left, right) = jax.lax.padtype_to_pads(
      x.shape[1:3], (kh, kw), tuple(stride), padding)
  x = jnp.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
  sh, sw = stride
  out_h = (x.shape[1] - kh) // sh + 1
  out_w = (x.shape[2] - kw) // sw + 1
  # Window (i, j) of every output pixel; concatenated in (i, j, c) order,
  # which is the order of the kernel's rows once reshaped.
  patches = jnp.concatenate(
      [x[:, i:i + sh * (out_h - 1) + 1:sh, j:j + sw * (out_w - 1) + 1:sw, :]
       for i in range(kh) for j in range(kw)], axis=-1)
  return patches @ w.reshape(kh * kw * cin, cout)


def factorised_noise(key: jax.Array, shapes: Sequence[Tuple[int, int]],
                     dtype=jnp.float32) -> List[Tuple[jax.Array, jax.Array]]:
  """Factorised noise ``(f(e_in) [p], f(e_out) [out])`` for each layer of
  ``shapes`` (``(p, out)`` pairs), ``f(e) = sign(e) sqrt(|e|)``, ``e ~ N(0, 1)``.

  One draw covers every layer: XLA compiles each draw's threefry hash as a
  program of its own, so a draw per vector (two per layer, in every forward
  pass of an update) made most of a noisy agent's compile time.
  """
  sizes = [n for shape in shapes for n in shape]
  e = jax.random.normal(key, (sum(sizes),), dtype)
  e = materialised(jnp.sign(e) * jnp.sqrt(jnp.abs(e)))
  parts = jnp.split(e, np.cumsum(sizes)[:-1].tolist())
  return list(zip(parts[0::2], parts[1::2]))


def materialised(noise):
  """``noise`` (a pytree of arrays), computed once before its consumers.

  XLA:CPU fuses cheap elementwise producers into every consumer, so a noise
  vector broadcast into a ``(B, p)`` product had its whole threefry hash
  (a few hundred integer operations a number) computed again for each of the
  ``B`` rows: with a batch of 128, 90% of a noisy network's time. A
  conditional is a boundary fusion does not cross, where an optimization
  barrier is not (XLA:CPU removes barriers before fusing). Its predicate is
  that every number is finite, which a draw from a normal always is; the
  other branch (zero noise: the mean weights) only keeps XLA from folding
  the conditional away.
  """
  finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(noise)]))
  return jax.lax.cond(finite, lambda t: t, lambda t: jax.tree.map(jnp.zeros_like, t), noise)


def noisy_mlp(output_sizes: Sequence[int],
              activation: Callable[[jax.Array], jax.Array] = jax.nn.relu,
              name: Optional[str] = None) -> Callable[[jax.Array], jax.Array]:
  """``hk.nets.MLP`` with :class:`NoisyLinear` layers (no activation after the last).

  The returned ``forward(x, noise=None)`` takes one ``(f(e_in), f(e_out))``
  pair per layer (:func:`factorised_noise`), or draws a pair per layer.
  """
  def forward(x, noise=None):
    with hk.experimental.name_scope(name or "noisy_mlp"):
      for i, size in enumerate(output_sizes):
        x = NoisyLinear(size, name=f"noisy_linear_{i}")(
            x, None if noise is None else noise[i])
        if i < len(output_sizes) - 1:
          x = activation(x)
    return x
  return forward


def q_head(x: jax.Array, hidden_sizes: Sequence[int], num_actions: int,
           dueling: bool = False,
           activation: Callable[[jax.Array], jax.Array] = jax.nn.relu,
           atoms: Optional[int] = None, noisy: bool = False) -> jax.Array:
  """Hidden layers then Q-values ``(B, num_actions)`` from features ``(B, F)``.

  With ``dueling=True`` (Wang et al. 2016, "Dueling network architectures"),
  two streams of ``hidden_sizes`` give a state value ``V(s)`` and advantages
  ``A(s, a)``, combined as ``Q = V + A - mean_a A``: the mean makes V and A
  identifiable. With ``atoms=K`` every action gets ``K`` outputs
  ``(B, num_actions, K)`` (dueling combines them atom by atom). With
  ``noisy=True`` every layer is a :class:`NoisyLinear`.
  """
  hidden_sizes = tuple(int(h) for h in hidden_sizes)
  per_action = 1 if atoms is None else int(atoms)
  streams = [num_actions] if not dueling else [1, num_actions]
  layer_sizes = [(*hidden_sizes, outputs * per_action) for outputs in streams]
  # Noisy: one draw for every layer of every stream (factorised_noise's why),
  # on a batch of rows. A single row (an agent vmapping over rows for a draw
  # each) draws per layer: under vmap ``materialised`` is a select, and one
  # vector sliced among the layers had its hash fused into every slice.
  key = hk.maybe_next_rng_key() if noisy and math.prod(x.shape[:-1]) > 1 else None
  noise = None
  if key is not None:
    shapes = [(p, out) for sizes in layer_sizes
              for p, out in zip((x.shape[-1], *sizes[:-1]), sizes)]
    noise = factorised_noise(key, shapes, x.dtype)

  def stream(i, name=None):
    sizes = layer_sizes[i]
    if noisy:
      layers = None if noise is None else noise[i * len(sizes):(i + 1) * len(sizes)]
      y = noisy_mlp(sizes, activation, name=name)(x, layers)
    else:
      y = hk.nets.MLP(sizes, activation=activation, name=name)(x)
    return y.reshape(y.shape[0], streams[i], per_action)

  if not dueling:
    q = stream(0)
  else:
    value, advantages = stream(0, "value"), stream(1, "advantage")
    q = value + advantages - jnp.mean(advantages, axis=1, keepdims=True)
  return q[..., 0] if atoms is None else q


def mlp_q_network(hidden_sizes: Sequence[int] = (64, 64),
                  activation: Callable[[jax.Array], jax.Array] = jax.nn.relu,
                  dueling: bool = False, atoms: Optional[int] = None,
                  noisy: bool = False) -> NetworkFn:
  """An MLP Q-network: flatten -> hidden layers -> ``num_actions`` linear head.

  Args:
    hidden_sizes: widths of the hidden layers.
    activation: hidden-layer nonlinearity.
    dueling: separate value and advantage streams (see :func:`q_head`).
    atoms: ``K`` outputs per action, ``(B, A, K)`` (e.g. quantiles).
    noisy: noisy linear layers (:class:`NoisyLinear`); returns
      ``hk.transform(f)``, whose apply takes the noise's rng.
  """
  hidden_sizes = tuple(int(h) for h in hidden_sizes)

  def creator(action_space: gymnasium.Space) -> hk.Transformed:
    num_actions = _num_actions(action_space)

    def forward(obs: jax.Array) -> jax.Array:
      x = hk.Flatten()(jnp.asarray(obs, jnp.float32))
      return q_head(x, hidden_sizes, num_actions, dueling, activation, atoms, noisy)

    return _transform(forward, noisy)

  return creator


def conv_q_network(channels: Sequence[int] = (16,),
                   kernel_size: int = 3,
                   hidden_sizes: Sequence[int] = (128,),
                   dueling: bool = False, atoms: Optional[int] = None,
                   noisy: bool = False, padding: str = "VALID",
                   conv_lowering: str = "auto") -> NetworkFn:
  """A small conv Q-network for image observations ``(B, H, W, C)``.

  The default is the MinAtar network of Young & Tian 2019 ("MinAtar: an
  Atari-inspired testbed"): one 3x3 conv with 16 channels, stride 1, then a
  128-unit hidden layer. MinAtar frames are 10x10, so no striding or pooling.
  ``dueling=True`` splits the head into value and advantage streams
  (see :func:`q_head`); ``atoms=K`` gives ``(B, A, K)`` outputs;
  ``noisy=True`` makes the head's linear layers noisy (the conv stays plain,
  as in Fortunato et al. 2018). ``hidden_sizes=()`` puts the head straight
  on the conv features, and ``padding="SAME"`` keeps them 10x10 (the
  network of Obando-Ceron & Castro 2021, "Revisiting Rainbow").
  ``conv_lowering``: how the convolutions compute (:class:`Conv2D`).
  """
  channels = tuple(int(c) for c in channels)
  hidden_sizes = tuple(int(h) for h in hidden_sizes)
  check_lowering(conv_lowering)

  def creator(action_space: gymnasium.Space) -> hk.Transformed:
    num_actions = _num_actions(action_space)

    def forward(obs: jax.Array) -> jax.Array:
      x = jnp.asarray(obs, jnp.float32)
      if x.ndim == 3:  # (B, H, W) single-channel frames
        x = x[..., None]
      for c in channels:
        x = jax.nn.relu(Conv2D(c, kernel_size, stride=1, padding=padding,
                               lowering=conv_lowering)(x))
      x = hk.Flatten()(x)
      return q_head(x, hidden_sizes, num_actions, dueling, atoms=atoms, noisy=noisy)

    return _transform(forward, noisy)

  return creator


def nature_q_network(hidden_sizes: Sequence[int] = (512,), dueling: bool = False,
                     atoms: Optional[int] = None, noisy: bool = False,
                     channels_first: bool = True,
                     conv_lowering: str = "auto") -> NetworkFn:
  """The Nature DQN network (Mnih et al. 2015, "Human-level control through
  deep reinforcement learning", Methods, "Model architecture").

  Frames ``(B, 4, 84, 84)`` uint8 (channels first: a gymnasium
  ``FrameStackObservation`` stack of 84x84 grayscale frames, what
  ``baselax.atari`` gives; ``channels_first=False`` takes ``(B, 84, 84, 4)``)
  are scaled to [0, 1] inside the network, so the replay buffer keeps bytes.
  Then conv 32 8x8 stride 4, conv 64 4x4 stride 2, conv 64 3x3 stride 1
  (ReLU, no padding: 84 -> 20 -> 9 -> 7, 3,136 features), ``hidden_sizes``
  ReLU layers (one of 512) and a linear head: 1.7M parameters for 6
  actions. ``dueling``,
  ``atoms`` and ``noisy`` shape the head as in :func:`q_head` (the convs stay
  plain, as in Fortunato et al. 2018). ``conv_lowering``: how the
  convolutions compute (:class:`Conv2D`).
  """
  hidden_sizes = tuple(int(h) for h in hidden_sizes)
  check_lowering(conv_lowering)

  def creator(action_space: gymnasium.Space) -> hk.Transformed:
    num_actions = _num_actions(action_space)

    def forward(obs: jax.Array) -> jax.Array:
      x = jnp.asarray(obs, jnp.float32) / 255.0
      if x.ndim != 4:
        raise ValueError(f"nature_q_network takes stacked frames (B, C, H, W) or "
                         f"(B, H, W, C), got shape {x.shape}.")
      if channels_first:  # haiku convolves NHWC, the layout XLA prefers on CPU
        x = jnp.transpose(x, (0, 2, 3, 1))
      for channels, kernel, stride in ((32, 8, 4), (64, 4, 2), (64, 3, 1)):
        x = jax.nn.relu(Conv2D(channels, kernel, stride=stride, padding="VALID",
                               lowering=conv_lowering)(x))
      x = hk.Flatten()(x)
      return q_head(x, hidden_sizes, num_actions, dueling, atoms=atoms, noisy=noisy)

    return _transform(forward, noisy)

  return creator


def is_atari_frames(observation_space: gymnasium.Space) -> bool:
  """Whether observations are a channels-first stack of 84x84 frames
  ``(C, 84, 84)``, the input of :func:`nature_q_network`."""
  shape = tuple(observation_space.shape or ())
  return len(shape) == 3 and shape[1:] == (84, 84) and shape[0] < 84


def _transform(forward: Callable[..., jax.Array], noisy: bool) -> hk.Transformed:
  # A noisy network keeps the rng argument of its apply: it draws noise.
  transformed = hk.transform(forward)
  return transformed if noisy else hk.without_apply_rng(transformed)


def is_image(observation_space: gymnasium.Space) -> bool:
  """Whether observations are images ``(H, W, C)`` a conv net can take."""
  shape = observation_space.shape or ()
  return len(shape) == 3 and min(shape[:2]) >= 3


def default_q_network(observation_space: gymnasium.Space) -> NetworkFn:
  """A sensible Q-network for an observation space: the Nature net for 84x84
  frame stacks (Atari), the MinAtar conv net for other images, else an MLP."""
  if is_atari_frames(observation_space):
    return nature_q_network()
  return conv_q_network() if is_image(observation_space) else mlp_q_network()
