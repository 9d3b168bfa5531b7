"""How a trainer lowers and compiles an agent's program for XLA:CPU.

Agents stay backend-agnostic: what they declare about their loss
(``AgentContract.pairwise_loss``) is all :func:`compiler_options` reads; the
options themselves are chosen here, once, for both trainers (the Anakin
chunk, the host loop's jitted steps).

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
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

import jax

try:  # JAX internals: without them the default (rolled) lowering stays.
  from jax._src.interpreters import mlir
  from jax._src.random import threefry2x32 as _threefry

  _ROLLED = _threefry._threefry2x32_cpu_lowering_rule
  _UNROLLED = _threefry._threefry2x32_lowering_rule
  _PRIMITIVE = _threefry.threefry2x32_p
except (ImportError, AttributeError):  # pragma: no cover - another JAX layout
  _PRIMITIVE = None  # type: ignore[assignment]  # (checked before use)


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


#: XLA debug options every program is compiled with on a CPU backend.
CPU_COMPILER_OPTIONS: dict[str, Any] = {
  "xla_cpu_scheduler_type": "CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED"
}

#: XLA:CPU hands single dots, and by default also elementwise and reduce
#: fusions, to the YNNPACK library. Its reduce and elementwise kernels run
#: pairwise ``(B, N, N)`` loss terms (QR-DQN's quantile Huber loss) several
#: times slower than XLA's own loop fusions, while elsewhere they are as fast
#: or a little faster: a loss declared pairwise
#: (``AgentContract.pairwise_loss``) keeps YNNPACK to single dots.
#: Reductions then run in XLA's order: results may differ in the last bits.
DOTS_ONLY_TO_YNNPACK: Mapping[str, str] = MappingProxyType(
  {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}
)


def compiler_options(agent: Any) -> dict[str, Any]:
  """The XLA options an agent's program is compiled with on this backend:
  :data:`CPU_COMPILER_OPTIONS` on a CPU, with :data:`DOTS_ONLY_TO_YNNPACK`
  for a pairwise loss; none elsewhere."""
  if jax.default_backend() != "cpu":
    return {}
  contract = getattr(agent, "contract", None)
  pairwise = bool(getattr(contract, "pairwise_loss", False))
  return {**CPU_COMPILER_OPTIONS, **(DOTS_ONLY_TO_YNNPACK if pairwise else {})}


def jit(fn: Any, agent: Any, **kwargs: Any) -> Any:
  """``jax.jit(fn, **kwargs)`` compiled with :func:`compiler_options` (the
  host loop's steps: the options of the Anakin chunk)."""
  options = compiler_options(agent)
  if not options:
    return jax.jit(fn, **kwargs)
  return jax.jit(fn, compiler_options=options, **kwargs)


def compile_chunk(lowered: Any, options: Mapping[str, Any]) -> Any:
  """``lowered.compile()`` with ``options`` (:func:`compiler_options`).

  A JAX whose XLA does not know an option compiles with its defaults.
  """
  if not options:
    return lowered.compile()
  try:
    return lowered.compile(compiler_options=dict(options))
  except jax.errors.JaxRuntimeError as e:  # pragma: no cover - another XLA
    if "No such compile option" not in str(e):
      raise
    return lowered.compile()
