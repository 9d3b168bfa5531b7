"""Layers of the Q-networks: noisy linear layers and a convolution that can
compute as a matmul (``baselax.networks``' creators build on them).

* :class:`NoisyLinear`, :func:`noisy_mlp`, :func:`factorised_noise`,
  :func:`materialised`: noisy nets (Fortunato et al. 2018) and how their
  noise is drawn once per forward pass.
* :class:`Conv2D`, :func:`conv_as_matmul`: ``hk.Conv2D`` computed as
  patches times a matrix on CPU.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

#: How :class:`Conv2D` computes: ``auto`` (``matmul`` on CPU, XLA's
#: convolution elsewhere), ``matmul`` or ``xla``.
CONV_LOWERINGS = ("auto", "matmul", "xla")


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

  def __init__(self, output_size: int, sigma0: float = 0.5, name: str | None = None):
    super().__init__(name=name)
    self.output_size = int(output_size)
    self.sigma0 = float(sigma0)

  def __call__(self, x: jax.Array, noise: tuple[jax.Array, jax.Array] | None = None) -> jax.Array:
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
      (noise,) = factorised_noise(key, [(p, self.output_size)], x.dtype)
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
    if self.lowering == "xla" or (self.lowering == "auto" and jax.default_backend() != "cpu"):
      return False
    return (
      isinstance(self.padding, str)
      and self.channel_index == -1
      and self.mask is None
      and self.feature_group_count == 1
      and set(self.kernel_dilation) == {1}
      and inputs.ndim == 4
    )

  def __call__(self, inputs: jax.Array, **kwargs) -> jax.Array:
    inputs = jnp.asarray(inputs)
    if not self._as_matmul(inputs):
      return super().__call__(inputs, **kwargs)
    # hk.Conv2D's parameters, created exactly as it creates them.
    w_shape = self.kernel_shape + (inputs.shape[-1], self.output_channels)
    w_init = self.w_init or hk.initializers.TruncatedNormal(
      stddev=1.0 / np.sqrt(np.prod(w_shape[:-1]))
    )
    w = hk.get_parameter("w", w_shape, inputs.dtype, init=w_init)
    out = conv_as_matmul(inputs, w, self.stride, self.padding)
    if self.with_bias:
      out = out + hk.get_parameter("b", (self.output_channels,), inputs.dtype, init=self.b_init)
    return out


def check_lowering(lowering: str) -> None:
  if lowering not in CONV_LOWERINGS:
    raise ValueError(f"conv lowering must be one of {', '.join(CONV_LOWERINGS)}, got {lowering!r}.")


def conv_as_matmul(x: jax.Array, w: jax.Array, stride: Sequence[int], padding: str) -> jax.Array:
  """``lax.conv_general_dilated(x, w, stride, padding)`` for NHWC ``x``
  ``(B, H, W, C)`` and HWIO ``w`` ``(kh, kw, C, O)``, as patches ``@`` kernel:
  returns ``(B, H', W', O)``."""
  kh, kw, cin, cout = w.shape
  (top, bottom), (left, right) = jax.lax.padtype_to_pads(
    x.shape[1:3], (kh, kw), tuple(stride), padding
  )
  x = jnp.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
  sh, sw = stride
  out_h = (x.shape[1] - kh) // sh + 1
  out_w = (x.shape[2] - kw) // sw + 1
  # Window (i, j) of every output pixel; concatenated in (i, j, c) order,
  # which is the order of the kernel's rows once reshaped.
  patches = jnp.concatenate(
    [
      x[:, i : i + sh * (out_h - 1) + 1 : sh, j : j + sw * (out_w - 1) + 1 : sw, :]
      for i in range(kh)
      for j in range(kw)
    ],
    axis=-1,
  )
  return patches @ w.reshape(kh * kw * cin, cout)


def factorised_noise(
  key: jax.Array, shapes: Sequence[tuple[int, int]], dtype=jnp.float32
) -> list[tuple[jax.Array, jax.Array]]:
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
  return list(zip(parts[0::2], parts[1::2], strict=True))


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


def noisy_mlp(
  output_sizes: Sequence[int],
  activation: Callable[[jax.Array], jax.Array] = jax.nn.relu,
  name: str | None = None,
) -> Callable[..., jax.Array]:
  """``hk.nets.MLP`` with :class:`NoisyLinear` layers (no activation after the last).

  The returned ``forward(x, noise=None)`` takes one ``(f(e_in), f(e_out))``
  pair per layer (:func:`factorised_noise`), or draws a pair per layer.
  """

  def forward(x, noise=None):
    with hk.experimental.name_scope(name or "noisy_mlp"):
      for i, size in enumerate(output_sizes):
        x = NoisyLinear(size, name=f"noisy_linear_{i}")(x, None if noise is None else noise[i])
        if i < len(output_sizes) - 1:
          x = activation(x)
    return x

  return forward
