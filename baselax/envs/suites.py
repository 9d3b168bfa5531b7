"""Environment ids with a suite prefix, and the registry of suites.

``make("navix:Navix-Empty-5x5-v0")`` builds the env ``Navix-Empty-5x5-v0`` of
the suite ``navix``; an id without a prefix is a gymnax id, as it always was
(``make("CartPole-v1")``). Each suite is one adapter module in
``baselax.envs`` with ``make(name, num_envs, **kwargs)`` and
``registered_ids()``, and one line in :data:`SUITES`; its package is an
optional extra (``pip install -e ".[navix]"``), imported only when an id of
that suite is made.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any, NamedTuple

from baselax.errors import ConfigError

if TYPE_CHECKING:  # imported when used: it imports jax and gymnasium
  from baselax.envs.protocol import JaxVectorEnv


class Suite(NamedTuple):
  """One suite: its adapter module, the package it needs and the extra that
  installs it (``None``: a core dependency)."""

  module: str
  package: str
  extra: str | None


#: Every suite ``make`` knows. Adding one is an adapter module and a line here.
SUITES = {
  "gymnax": Suite("baselax.envs.gymnax_env", "gymnax", None),
  "minatar": Suite("baselax.envs.minatar_env", "gymnax", None),
  "craftax": Suite("baselax.envs.craftax_env", "craftax", "craftax"),
  "jumanji": Suite("baselax.envs.jumanji_env", "jumanji", "jumanji"),
  "navix": Suite("baselax.envs.navix_env", "navix", "navix"),
  "xminigrid": Suite("baselax.envs.xminigrid_env", "xminigrid", "xminigrid"),
}


def split_id(env_id: str) -> tuple[str, str]:
  """``("navix", "Navix-Empty-5x5-v0")`` for ``"navix:Navix-Empty-5x5-v0"``;
  ``("gymnax", id)`` for an id without a prefix."""
  if not isinstance(env_id, str):
    raise ConfigError(
      f"env_id must be a string such as 'CartPole-v1' or "
      f"'navix:Navix-Empty-5x5-v0', got {env_id!r}."
    )
  suite, sep, name = env_id.partition(":")
  if not sep:
    return "gymnax", env_id
  if suite not in SUITES:
    raise ConfigError(
      f"Unknown env suite {suite!r} in env_id {env_id!r}. Suites: "
      f"{', '.join(SUITES)} (e.g. navix:Navix-Empty-5x5-v0; a gymnax "
      f"id needs no prefix)."
    )
  return suite, name


def adapter(suite: str, env_id: str | None = None):
  """The adapter module of ``suite``; refuses a suite whose package is absent
  (naming ``env_id``, the id asked for, if given)."""
  entry = SUITES[suite]
  if importlib.util.find_spec(entry.package) is None:
    what = f"env_id {env_id}" if env_id else f"env suite {suite}"
    raise ConfigError(
      f'{what} needs the {entry.package} package: pip install -e ".[{entry.extra}]"'
    )
  return importlib.import_module(entry.module)


def registered_ids(suite: str = "gymnax") -> tuple[str, ...]:
  """The ids ``make`` takes for ``suite`` (gymnax's without a prefix)."""
  if suite not in SUITES:
    raise ConfigError(f"Unknown env suite {suite!r}. Suites: {', '.join(SUITES)}.")
  names = adapter(suite).registered_ids()
  return tuple(names) if suite == "gymnax" else tuple(f"{suite}:{n}" for n in names)


def make(env_id: str, num_envs: int = 1, **kwargs: Any) -> JaxVectorEnv:
  """Makes the env of ``env_id`` behind the baselax env protocol.

  Args:
    env_id: a gymnax id (``"CartPole-v1"``, ``"Breakout-MinAtar"``) or
      ``"suite:name"`` for another suite: ``"craftax:Craftax-Classic-Symbolic-v1"``,
      ``"jumanji:Snake-v1"``, ``"navix:Navix-Empty-5x5-v0"``,
      ``"xminigrid:MiniGrid-Empty-5x5"``; see :func:`registered_ids`.
    num_envs: copies stepped by the gym API (the trainer sets its own).
    **kwargs: forwarded to the suite's constructor (see each adapter).

  Returns:
    A :class:`~baselax.envs.protocol.JaxVectorEnv`: the functional core the
    trainer compiles and a ``gymnasium.vector.VectorEnv``.

  Raises:
    ConfigError: an unknown suite or id (the message lists the suite's ids),
      or a suite whose package is not installed (it names the extra).
    ValueError: ``num_envs < 1``.
  """
  suite, name = split_id(env_id)
  module = adapter(suite, env_id)
  if suite == "gymnax":
    return module.make(name, num_envs, **kwargs)
  from baselax.envs.protocol import check_num_envs

  check_num_envs(num_envs)
  names = module.registered_ids()
  if name not in names:
    raise ConfigError(
      f"Unknown {suite} env_id {env_id!r}. Valid ids: {', '.join(f'{suite}:{n}' for n in names)}."
    )
  return module.make(name, num_envs, **kwargs)
