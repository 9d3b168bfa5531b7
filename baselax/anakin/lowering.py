"""How the compiled chunk is lowered: XLA:CPU's rolled threefry loop, unrolled.

JAX lowers every ``threefry2x32`` (each ``jax.random.split``, ``uniform``,
``randint``, ``fold_in``) on CPU as a ``fori_loop`` of 5 iterations, to keep
compile times short. Inside a scan step that is a while loop per call, each
iteration 17 small kernels (13 of them copies of the loop carry): the Anakin
step makes 13 such calls (acting, env steps and auto-resets, sampling), about
1,100 kernel launches per step against about 250 for everything else. Lowered
unrolled, as JAX does on GPU and TPU, each call is one fused elementwise
kernel. The arithmetic is the same, so the bits drawn are the same: only
compilation (a few seconds longer) and speed change.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

try:  # JAX internals: without them the default (rolled) lowering stays.
  from jax._src.interpreters import mlir
  from jax._src.random import threefry2x32 as _threefry
  _ROLLED = _threefry._threefry2x32_cpu_lowering_rule
  _UNROLLED = _threefry._threefry2x32_lowering_rule
  _PRIMITIVE = _threefry.threefry2x32_p
except (ImportError, AttributeError):  # pragma: no cover - another JAX layout
  _PRIMITIVE = None


@contextlib.contextmanager
def unrolled_threefry() -> Iterator[None]:
  """While open, programs lowered for CPU get the unrolled threefry.

  Bit-identical random numbers; a no-op where this JAX has another layout.
  Lowering is global in JAX, so the default is restored on exit.
  """
  if _PRIMITIVE is None:
    yield
    return
  mlir.register_lowering(_PRIMITIVE, _UNROLLED, platform="cpu")
  try:
    yield
  finally:
    mlir.register_lowering(_PRIMITIVE, _ROLLED, platform="cpu")
