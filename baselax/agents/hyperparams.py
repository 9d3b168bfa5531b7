"""Every agent hyperparameter's rule, stated once.

The agents' constructors and their registry configs (whose fields are the
command line's flags) take the same settings under the same names; both
check a value with :func:`check`, so a bad value gets one message whichever
way it came in (the command line prefixes the flag). A swept value arrives
traced (``baselax.anakin.sweep``): it was checked on the host, and
:func:`check` lets it through.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax

from baselax.errors import ConfigError


class Rule(NamedTuple):
  """What a valid value is, in words (``must be ...``) and as a test; what a
  bad one raises (a value of the wrong kind of thing: ``TypeError``)."""

  text: str
  ok: Callable[[Any], bool]
  error: type[Exception] = ConfigError


def _number(v: Any) -> bool:
  return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _integer(v: Any) -> bool:
  return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _optional(rule: Callable[[Any], bool]) -> Callable[[Any], bool]:
  return lambda v: v is None or rule(v)


#: ``{hyperparameter: Rule}``: the settings of the DQN family.
RULES: dict[str, Rule] = {
  "learning_rate": Rule("> 0 (typically 1e-4 to 1e-3)", lambda v: _number(v) and v > 0),
  "discount_factor": Rule("in (0, 1]", lambda v: _number(v) and 0.0 < v <= 1.0),
  "target_update_interval": Rule("an integer >= 1", lambda v: _integer(v) and v >= 1),
  "huber_delta": Rule("> 0 (or None: 0.5 td^2)", _optional(lambda v: _number(v) and v > 0)),
  "max_grad_norm": Rule("> 0 (or None: no clipping)", _optional(lambda v: _number(v) and v > 0)),
  "epsilon_start": Rule("in [0, 1]", lambda v: _number(v) and 0.0 <= v <= 1.0),
  "epsilon_end": Rule("in [0, 1]", lambda v: _number(v) and 0.0 <= v <= 1.0),
  "exploration_fraction": Rule("in (0, 1]", lambda v: _number(v) and 0.0 < v <= 1.0),
  "exploration_steps": Rule(
    "an integer >= 1 (or None: exploration_fraction)", _optional(lambda v: _integer(v) and v >= 1)
  ),
  "optimizer_eps": Rule(
    "> 0 (or None: the optimizer's default)", _optional(lambda v: _number(v) and v > 0)
  ),
  "num_atoms": Rule("an integer >= 2", lambda v: _integer(v) and v >= 2),
  "num_quantiles": Rule("an integer >= 1", lambda v: _integer(v) and v >= 1),
  "kappa": Rule("> 0", lambda v: _number(v) and v > 0),
  "munchausen_alpha": Rule("in [0, 1]", lambda v: _number(v) and 0.0 <= v <= 1.0),
  "munchausen_tau": Rule("> 0", lambda v: _number(v) and v > 0),
  "munchausen_l0": Rule("< 0", lambda v: _number(v) and v < 0),
  "epsilon_schedule": Rule(
    "an optax.Schedule (a callable of the step count), e.g. "
    "optax.linear_schedule(1.0, 0.05, 10000)",
    callable,
    TypeError,
  ),
}


def check(name: str, value: Any) -> Any:
  """Returns ``value`` if it keeps :data:`RULES`'s rule for ``name`` (or is traced).

  Raises:
    ConfigError: ``"{name} must be {rule}, got {value!r}."`` (``TypeError``
      for the rules of callables).
  """
  if isinstance(value, jax.core.Tracer):
    return value
  rule = RULES[name]
  if not rule.ok(value):
    raise rule.error(f"{name} must be {rule.text}, got {value!r}.")
  return value


def check_all(values: Mapping[str, Any]) -> None:
  """:func:`check` of every ``{name: value}`` that has a rule."""
  for name, value in values.items():
    if name in RULES:
      check(name, value)


def renamed_keywords(
  owner: str, kwargs: dict[str, Any], renames: Mapping[str, str]
) -> dict[str, Any]:
  """``kwargs`` with deprecated keyword names (``{old: new}``) under their new
  names, warning once per call site (``DQN(double=True)`` is
  ``DQN(double_dqn=True)``).

  Raises:
    TypeError: both names given.
  """
  out = dict(kwargs)
  for old, new in renames.items():
    if old not in out:
      continue
    if new in out:
      raise TypeError(f"{owner}: pass {new}= only ({old}= is its old name).")
    warnings.warn(
      f"{owner}({old}=...) is deprecated: use {new}=...", DeprecationWarning, stacklevel=3
    )
    out[new] = out.pop(old)
  return out
