"""The integer proof: are an env's observations integers, and in what range?

A compact replay storage (``uint8``, ``bool``; :mod:`baselax.replay.codecs`)
must round-trip every observation exactly, so it needs a proof that every
observation value is an integer in its range. The range comes from the env's
gymnasium ``observation_space`` (``Box`` low/high/dtype); integer and bool
dtypes are integers by type. A float ``Box`` (MinAtar declares
``Box(0, 1, float32)``) is proven integer-valued by tracing the env's reset
and step: :func:`traced_integer_range` follows each observation back through
the jaxpr to casts from bool or integer arrays (MinAtar builds its channels
as bools, then casts), and anything else (arithmetic on floats, an appended
float action mask, ...) leaves it unproven.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

Range = tuple[float, float] | None


def space_range(space: Any) -> tuple[bool, Range]:
  """``(integral, (low, high))`` a gymnasium ``Box`` promises for every value.

  Integer and bool dtypes are integral by type; the range is the Box's
  finite bounds (clipped to the dtype's), ``None`` if unbounded.
  """
  if not isinstance(space, gymnasium.spaces.Box):
    return False, None
  dtype = np.dtype(space.dtype)
  integral = dtype == np.bool_ or np.issubdtype(dtype, np.integer)
  low, high = np.asarray(space.low, np.float64), np.asarray(space.high, np.float64)
  bounds = (float(low.min()), float(high.max())) if low.size else None
  if bounds is not None and not np.all(np.isfinite(bounds)):
    bounds = None
  typed = _dtype_range(dtype)
  if typed is not None:
    bounds = typed if bounds is None else _intersect(bounds, typed)
  return integral, bounds


def proven_range(env: Any) -> Range:
  """The range of the env's observation values if they are proven integers, else None.

  Integers by the space's dtype, or by tracing (:func:`traced_integer_range`);
  bounded by the space and, when traced, by what the trace proves.
  """
  space = getattr(env, "single_observation_space", None)
  integral, bounds = space_range(space)
  if not isinstance(space, gymnasium.spaces.Box):
    return None
  if integral:
    return bounds
  traced = _cached_trace(env)
  if traced is None:
    return None
  return traced if bounds is None else _intersect(traced, bounds)


def within(values: Range, low: float, high: float) -> bool:
  return values is not None and low <= values[0] and values[1] <= high


def _intersect(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
  return (max(a[0], b[0]), min(a[1], b[1]))


def _union(ranges) -> Range:
  ranges = list(ranges)
  if not ranges or any(r is None for r in ranges):
    return None
  return (min(r[0] for r in ranges), max(r[1] for r in ranges))


def _dtype_range(dtype: Any) -> Range:
  dtype = np.dtype(dtype)
  if dtype == np.bool_:
    return (0.0, 1.0)
  if np.issubdtype(dtype, np.integer):
    info = np.iinfo(dtype)
    return (float(info.min), float(info.max))
  return None


# --- the integer proof: a backward walk over the env's jaxpr ------------------------

#: Primitives whose output values are some of their operands' values (by
#: position; ``None``: all operands).
_PASS_THROUGH = {
  "reshape": (0,),
  "broadcast_in_dim": (0,),
  "squeeze": (0,),
  "expand_dims": (0,),
  "transpose": (0,),
  "rev": (0,),
  "copy": (0,),
  "copy_p": (0,),
  "slice": (0,),
  "dynamic_slice": (0,),
  "gather": (0,),
  "reduce_max": (0,),
  "reduce_min": (0,),
  "convert_element_type": (0,),
  "reduce_precision": (0,),
  "stop_gradient": (0,),
  "optimization_barrier": None,
  "dynamic_update_slice": (0, 1),
  "pad": (0, 1),
  "scatter": (0, 2),
  "scatter-max": (0, 2),
  "scatter-min": (0, 2),
  "scatter_max": (0, 2),
  "scatter_min": (0, 2),
  "concatenate": None,
  "max": None,
  "min": None,
  "clamp": None,
}
#: Call-like primitives and the parameter holding the called jaxpr.
_CALLS = ("jaxpr", "call_jaxpr", "fun_jaxpr")


class _Frame:
  """One jaxpr being walked: who produced each variable, and what its inputs are."""

  def __init__(self, jaxpr: Any, consts, args):
    self.jaxpr = jaxpr
    self.producer = {v: (eqn, i) for eqn in jaxpr.eqns for i, v in enumerate(eqn.outvars)}
    self.consts = dict(zip(jaxpr.constvars, consts, strict=True))
    self.args = dict(zip(jaxpr.invars, args, strict=True))  # var -> () -> Range
    self.memo: dict[Any, Range] = {}
    self.calls: dict[int, Any] = {}


def _concrete_range(value: Any) -> Range:
  a = np.asarray(value)
  if a.size == 0 or not (a.dtype == np.bool_ or np.issubdtype(a.dtype, np.number)):
    return None
  a = a.astype(np.float64)
  if not np.all(np.isfinite(a)) or not np.all(a == np.round(a)):
    return None
  return (float(a.min()), float(a.max()))


def _atom_range(frame: _Frame, atom: Any) -> Range:
  if hasattr(atom, "val"):  # a literal
    return _concrete_range(atom.val)
  if atom in frame.memo:
    return frame.memo[atom]
  frame.memo[atom] = None  # a cycle proves nothing
  typed = _dtype_range(atom.aval.dtype) if hasattr(atom.aval, "dtype") else None
  if atom in frame.consts:
    found = _concrete_range(frame.consts[atom])
  elif atom in frame.args:
    found = frame.args[atom]()
  elif atom in frame.producer:
    found = _eqn_range(frame, *frame.producer[atom])
  else:
    found = None
  # An integer or bool variable holds integers whatever produced it.
  result = typed if found is None else (found if typed is None else _intersect(found, typed))
  frame.memo[atom] = result
  return result


def _sub_frame(frame: _Frame, key: Any, closed: Any, operands) -> _Frame | None:
  if key not in frame.calls:
    jaxpr, consts = (closed.jaxpr, closed.consts) if hasattr(closed, "jaxpr") else (closed, ())
    if len(jaxpr.invars) != len(operands):
      frame.calls[key] = None
    else:
      frame.calls[key] = _Frame(
        jaxpr, consts, [(lambda op=op: _atom_range(frame, op)) for op in operands]
      )
  return frame.calls[key]


def _eqn_range(frame: _Frame, eqn: Any, index: int) -> Range:
  name = eqn.primitive.name
  operands = eqn.invars
  if name == "select_n":
    return _union(_atom_range(frame, op) for op in operands[1:])
  if name in _PASS_THROUGH:
    positions = _PASS_THROUGH[name]
    chosen = (
      operands if positions is None else [operands[p] for p in positions if p < len(operands)]
    )
    return _union(_atom_range(frame, op) for op in chosen)
  if name == "cond":
    subs = [
      _sub_frame(frame, (id(eqn), b), branch, operands[1:])
      for b, branch in enumerate(eqn.params["branches"])
    ]
    frames = [sub for sub in subs if sub is not None]
    if len(frames) < len(subs):
      return None
    return _union(_atom_range(sub, sub.jaxpr.outvars[index]) for sub in frames)
  for param in _CALLS:
    if param in eqn.params:
      sub = _sub_frame(frame, id(eqn), eqn.params[param], operands)
      return None if sub is None else _atom_range(sub, sub.jaxpr.outvars[index])
  return None


def traced_integer_range(fn: Callable[..., Any], *args: Any) -> Range:
  """The range of ``fn(*args)``'s values (every leaf) if they are proven integers.

  ``args`` may be ``jax.ShapeDtypeStruct``; integer and bool inputs count as
  integers of their dtype, float inputs as unknown. The proof follows each
  output back through data movement (reshape, select, concatenate, gather,
  ...), calls and conds, to literals, integer or bool values, and casts of
  them; any other producer of a float (arithmetic, a division) is unproven.
  """
  closed = jax.make_jaxpr(fn)(*args)
  root = _Frame(
    closed.jaxpr,
    closed.consts,
    [(lambda v=v: _dtype_range(v.aval.dtype)) for v in closed.jaxpr.invars],
  )
  limit = sys.getrecursionlimit()
  sys.setrecursionlimit(max(limit, 20_000))
  try:
    return _union(_atom_range(root, out) for out in closed.jaxpr.outvars)
  except RecursionError:
    return None
  finally:
    sys.setrecursionlimit(limit)


_TRACE_CACHE: dict[int, tuple[Any, Range]] = {}


def _cached_trace(env: Any) -> Range:
  """:func:`env_integer_range`, once per env object."""
  cached = _TRACE_CACHE.get(id(env))
  if cached is not None and cached[0] is env:
    return cached[1]
  found = env_integer_range(env)
  _TRACE_CACHE[id(env)] = (env, found)
  return found


def env_integer_range(env: Any) -> Range:
  """The range of every observation ``env`` can emit, if proven integer (see above).

  Traces ``functional_reset`` and ``functional_step`` (its next and true
  final observations) of one env.
  """
  key = jax.ShapeDtypeStruct((2,), jnp.uint32)
  _, state = jax.eval_shape(lambda k: env.functional_reset(k, 1), key)
  space: Any = getattr(env, "single_action_space", None)
  if isinstance(space, gymnasium.spaces.Discrete):
    actions = jax.ShapeDtypeStruct((1,), jnp.int32)
  else:
    actions = jax.ShapeDtypeStruct((1, *space.shape), space.dtype)

  def step_obs(key, state, actions):
    step = env.functional_step(key, state, actions)[1]
    return step.obs, step.final_obs

  return _union(
    [
      traced_integer_range(lambda k: env.functional_reset(k, 1)[0], key),
      traced_integer_range(step_obs, key, state, actions),
    ]
  )
