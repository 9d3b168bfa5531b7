"""How the chunk is lowered and compiled for XLA:CPU.

**The threefry loop, unrolled.**

JAX lowers every ``threefry2x32`` (each ``jax.random.split``, ``uniform``,
``randint``, ``fold_in``) on CPU as a ``fori_loop`` of 5 iterations, to keep
compile times short. Inside a scan step that is a while loop per call, each
iteration 17 small kernels (13 of them copies of the loop carry): the Anakin
step makes 13 such calls (acting, env steps and auto-resets, sampling), about
1,100 kernel launches per step against about 250 for everything else. Lowered
unrolled, as JAX does on GPU and TPU, each call is one fused elementwise
kernel. The arithmetic is the same, so the bits drawn are the same: only
compilation (a few seconds longer) and speed change.

**The memory-optimised thunk schedule.** XLA:CPU runs a program's kernels
("thunks") in the order its scheduler chose, on a thread pool, and hands work
to a second thread only when more than 8 kernels are ready at once. With the
default schedule the learner's two independent forward passes (online
network on ``obs``, target network on ``next_obs``: a quarter of a DQN
update's arithmetic each) ran one after the other on one thread; with
``CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED`` they overlap on two. Same kernels,
same arithmetic, so bit-identical results (a test checks it); what it gains
is measured by ``scripts/bench.py`` (``docs/guides/benchmarks.md``).
"""

from __future__ import annotations

import contextlib
from types import MappingProxyType
from typing import Any, Dict, Iterator, Mapping

import jax

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


#: XLA debug options the chunk is compiled with on a CPU backend.
CPU_COMPILER_OPTIONS: Dict[str, Any] = {
    "xla_cpu_scheduler_type": "CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED"}


def compile_chunk(lowered: Any, extra_options: Mapping[str, Any] = MappingProxyType({})
                  ) -> Any:
  """``lowered.compile()``, with :data:`CPU_COMPILER_OPTIONS` and
  ``extra_options`` (the agent's ``cpu_compiler_options``) on CPU.

  A JAX whose XLA does not know an option compiles with its defaults.
  """
  if jax.default_backend() != "cpu":
    return lowered.compile()
  try:
    return lowered.compile(compiler_options={**CPU_COMPILER_OPTIONS, **extra_options})
  except jax.errors.JaxRuntimeError as e:  # pragma: no cover - another XLA
    if "No such compile option" not in str(e):
      raise
    return lowered.compile()
