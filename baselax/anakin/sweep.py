"""Hyperparameter sweeps: agents that differ only in some values, as one program.

A sweep is a grid of values of an agent's settings (``learning_rate`` x
``target_update_interval``, say). Every grid point x every seed is one
independent run, and all runs are compiled into ONE program, mapped exactly
like seeds (``vmap`` on a device, spread over devices in the ``seeds``
layout; see ``program.py``). Runs are laid out point-major::

    run r = p * num_seeds + s      seed s of grid point p

and seed ``s`` of every point starts from ``PRNGKey(config.seed + s)``:
the points see the same seeds (common random numbers), so seed ``s`` of a
point is the same run as that point's values trained alone with seed
``config.seed + s`` (up to floating-point reassociation under ``vmap``).

How one program holds many agents: the agent of a point is built *while
tracing*, with the point's values as traced scalars (:attr:`Sweep.build`).
So a setting can be swept when the agent uses it in array arithmetic
(learning rate, discount, epsilon schedule ends, target-copy interval,
gradient-clip norm) and not to choose shapes or Python branches (network
sizes, n-step, booleans). :func:`check_sweepable` finds out by tracing,
before anything is compiled, and names the setting that cannot be swept.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np

from baselax.errors import ConfigError

#: ``build(values) -> BaseAgent``; ``values`` maps each swept setting to a
#: scalar: a Python number for a host check, a traced array in the program.
BuildFn = Callable[[Mapping[str, Any]], Any]

#: Errors that mean "this value was used where a Python value is needed" (a
#: Python branch or conversion, or an agent's own check of a Python value).
#: Anything else is a bug, and is not disguised as a refusal.
_TRACING_ERRORS = (jax.errors.JAXTypeError, ConfigError)


@dataclasses.dataclass(frozen=True)
class Sweep:
  """A grid of agent settings trained as one program.

  Attributes:
    values: ``{setting: (P,) array}``, the value of each swept setting at each
      of the ``P`` grid points (see :func:`grid`); floats as float32, integers
      as int32 in the program.
    build: ``build(values) -> BaseAgent``, the agent of one point. It is
      called with Python numbers to validate each point on the host, and with
      traced scalars while the program is traced; it must not branch on them.
  """

  values: Mapping[str, np.ndarray]
  build: BuildFn

  def __post_init__(self):
    sizes = {name: np.shape(v) for name, v in self.values.items()}
    if (
      not sizes
      or len({s for s in sizes.values()}) != 1
      or any(len(s) != 1 or s[0] < 1 for s in sizes.values())
    ):
      raise ValueError(
        f"Sweep.values must be one or more (P,) arrays of equal length, got shapes {sizes}."
      )

  @property
  def names(self) -> tuple[str, ...]:
    return tuple(self.values)

  @property
  def num_points(self) -> int:
    return int(np.shape(next(iter(self.values.values())))[0])

  def point(self, p: int) -> dict[str, Any]:
    """``{setting: Python number}`` of grid point ``p``."""
    return {name: np.asarray(v)[p].item() for name, v in self.values.items()}

  def points(self) -> list[dict[str, Any]]:
    return [self.point(p) for p in range(self.num_points)]

  def run_values(self, num_seeds: int) -> dict[str, np.ndarray]:
    """``{setting: (P * num_seeds,)}``: each point's values, once per seed (run order)."""
    return {name: np.repeat(program_dtype(v), num_seeds) for name, v in self.values.items()}

  def check_points(self) -> None:
    """Builds every point's agent from Python values, so the agent's own
    checks refuse a bad value (on the host, before anything is traced).

    Raises:
      ConfigError: naming the point and the setting's value.
    """
    for values in self.points():
      try:
        self.build(values)
      except ConfigError as error:
        shown = ", ".join(f"{k}={v}" for k, v in values.items())
        raise ConfigError(f"sweep point {shown} is refused: {error}") from error


def program_dtype(values: Any) -> np.ndarray:
  """Sweep values as the program holds them: integers int32, the rest float32."""
  values = np.asarray(values)
  if values.dtype == bool:
    raise ConfigError(
      "boolean settings choose code paths and cannot be swept: run one experiment per value."
    )
  return values.astype(np.int32 if np.issubdtype(values.dtype, np.integer) else np.float32)


def grid(axes: Sequence[tuple[str, Sequence[Any]]]) -> dict[str, np.ndarray]:
  """The full grid of ``axes`` (``[(setting, values), ...]``), row-major: the
  first axis varies slowest. Returns ``{setting: (P,)}`` with ``P`` the
  product of the axes' lengths."""
  names = [name for name, _ in axes]
  if len(set(names)) != len(names):
    raise ConfigError(
      f"a setting is swept twice: {names}; give each once, with all its values (name=v1,v2,...)."
    )
  product = list(itertools.product(*[tuple(values) for _, values in axes]))
  return {name: np.asarray([point[i] for point in product]) for i, name in enumerate(names)}


def replace_values(config: Any, values: Mapping[str, Any]) -> Any:
  """``config`` (a frozen dataclass) with ``values`` substituted.

  With Python values this is ``dataclasses.replace`` (the config's checks
  run). With traced values the checks cannot run (they would branch on an
  array), so the fields are set without them: the values were checked on
  the host first (:meth:`Sweep.check_points`).
  """
  if not any(isinstance(v, jax.core.Tracer) for v in values.values()):
    return dataclasses.replace(config, **values)
  out = object.__new__(type(config))
  for field in dataclasses.fields(config):
    object.__setattr__(out, field.name, values.get(field.name, getattr(config, field.name)))
  return out


def check_sweepable(sweep: Sweep, trace: Callable[[Mapping[str, Any]], Any], owner: str) -> None:
  """Refuses a setting the agent cannot take as an array, naming it.

  ``trace(values)`` traces what the program will compile for one run with
  ``values`` (``{setting: scalar}``); it is evaluated abstractly
  (``jax.eval_shape``, nothing is compiled). All settings are tried at once;
  on failure each alone, to name the one at fault.

  Raises:
    ConfigError: ``owner`` (the agent) uses a setting as a Python value.
  """
  examples = {
    name: jax.ShapeDtypeStruct((), program_dtype(v).dtype) for name, v in sweep.values.items()
  }
  try:
    jax.eval_shape(trace, examples)
    return
  except _TRACING_ERRORS:
    pass
  for name, example in examples.items():
    try:
      jax.eval_shape(trace, {name: example})
    except _TRACING_ERRORS as error:
      reason = str(error).strip().splitlines()[0][:160]
      raise ConfigError(
        f"sweep: {owner} cannot take {name} as an array (it uses it as a Python "
        f"value: a shape, a branch or a check; {type(error).__name__}: {reason}). "
        f"Run one experiment per value of {name} instead."
      ) from None
  raise ConfigError(
    f"sweep: {owner} cannot take {', '.join(sweep.names)} together "
    f"as arrays; sweep them one at a time."
  )
