"""Network creators in the documented form ``Callable[[gym.Space], haiku.Transformed]``.

* :mod:`~baselax.networks.q_networks`: the Q-network creators
  (:func:`mlp_q_network`, :func:`conv_q_network` for MinAtar,
  :func:`nature_q_network` for Atari), the head (:func:`q_head`: dueling,
  atoms, noisy) and the one place that picks a network for an observation
  space (:func:`auto_kind`, :func:`default_q_network`).
* :mod:`~baselax.networks.layers`: the layers they are built of
  (:class:`NoisyLinear`, :class:`Conv2D` as a matmul on CPU).
"""

from baselax.networks.layers import (
  CONV_LOWERINGS,
  Conv2D,
  NoisyLinear,
  check_lowering,
  conv_as_matmul,
  factorised_noise,
  materialised,
  noisy_mlp,
)
from baselax.networks.q_networks import (
  CREATORS,
  DUELING_HIDDEN,
  NetworkFn,
  auto_kind,
  conv_q_network,
  default_q_network,
  is_atari_frames,
  is_image,
  mlp_q_network,
  nature_q_network,
  q_head,
)

__all__ = [
  "CONV_LOWERINGS",
  "CREATORS",
  "Conv2D",
  "DUELING_HIDDEN",
  "NetworkFn",
  "NoisyLinear",
  "auto_kind",
  "check_lowering",
  "conv_as_matmul",
  "conv_q_network",
  "default_q_network",
  "factorised_noise",
  "is_atari_frames",
  "is_image",
  "materialised",
  "mlp_q_network",
  "nature_q_network",
  "noisy_mlp",
  "q_head",
]
