"""The agent registry: ``--agent NAME`` of the experiment layer.

An entry is a frozen config dataclass (its fields become the command-line
flags, its ``Attributes:`` docstring their help) and a build function::

    build(config, env, sizes) -> BaseAgent

where ``sizes`` is the trainer's :class:`~baselax.training.Derived`,
which converts schedules given in env steps into ``predict`` calls and
updates (``sizes.predict_calls(env_steps)``, ``sizes.total_updates``).
Registering a user's agent takes one call::

    from baselax.agents import registry
    registry.register("myagent", MyAgentConfig, build_my_agent)

and ``baselax.experiment.main(["--agent", "myagent", ...])`` then gives it the
whole run: flags, run directory, loggers, checkpoints, resume, evaluation.
Nothing here imports gymnax, so flags can be parsed before
``jax.distributed.initialize``.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable, Mapping
from typing import Any

from baselax.agents import c51, dqn, mdqn, qrdqn
from baselax.errors import ConfigError
from baselax.training import config as training_config
from baselax.training.config import TrainingConfig

BuildFn = Callable[[Any, Any, Any], Any]


@dataclasses.dataclass(frozen=True)
class AgentEntry:
  """One registered agent.

  Attributes:
    name: what ``--agent`` takes.
    config_cls: a frozen dataclass of the agent's settings; its
      ``__post_init__`` validates them (raising ``ConfigError``).
    build: ``build(config, env, sizes) -> BaseAgent``.
    module: the module that registered it (recorded in ``config.json`` so
      evaluation can find it again).
    trainer_defaults: ``{TrainingConfig field: value}`` the command line uses as
      the trainer flags' defaults when this agent is chosen (Rainbow's
      ``n_step=3, sampling="prioritized"``); flags still override them, and a
      resumed run takes its saved values.
  """

  name: str
  config_cls: type
  build: BuildFn
  module: str
  trainer_defaults: Mapping[str, Any] = dataclasses.field(
    default_factory=lambda: types.MappingProxyType({})
  )


_REGISTRY: dict[str, AgentEntry] = {}


def register(
  name: str,
  config_cls: type,
  build: BuildFn,
  *,
  overwrite: bool = False,
  trainer_defaults: Mapping[str, Any] | None = None,
) -> AgentEntry:
  """Registers an agent under ``name``; returns its entry.

  ``trainer_defaults``: trainer settings (``TrainingConfig`` field names) this
  agent runs with unless the command line says otherwise.

  Raises:
    ValueError: ``name`` is taken (pass ``overwrite=True`` to replace it),
      ``config_cls`` is not a frozen dataclass, or a ``trainer_defaults`` key
      is not an ``TrainingConfig`` field.
  """
  if not name or not name.replace("_", "").replace("-", "").isalnum():
    raise ValueError(f"agent names are letters, digits, '-' and '_', got {name!r}.")
  params = getattr(config_cls, "__dataclass_params__", None)  # @dataclass's options
  if not (dataclasses.is_dataclass(config_cls) and params is not None and params.frozen):
    raise ValueError(
      f"{getattr(config_cls, '__name__', config_cls)} must be a "
      f"frozen dataclass (@dataclasses.dataclass(frozen=True))."
    )
  if name in _REGISTRY and not overwrite:
    raise ValueError(
      f"an agent named {name!r} is already registered "
      f"(from {_REGISTRY[name].module}); pick another name."
    )
  # An old setting name (prioritized=True) is read under its new one.
  trainer_defaults = training_config.migrate(trainer_defaults or {}, TrainingConfig.RENAMED)
  unknown = set(trainer_defaults) - {f.name for f in dataclasses.fields(TrainingConfig)}
  if unknown:
    raise ValueError(
      f"agent {name!r}: trainer_defaults {sorted(unknown)} are not TrainingConfig fields."
    )
  entry = AgentEntry(
    name,
    config_cls,
    build,
    getattr(build, "__module__", None) or "__main__",
    types.MappingProxyType(trainer_defaults),
  )
  _REGISTRY[name] = entry
  return entry


def get(name: str) -> AgentEntry:
  """The entry registered as ``name``.

  Raises:
    ConfigError: unknown name; the message lists the registered ones.
  """
  if name not in _REGISTRY:
    raise ConfigError(f"unknown agent {name!r}; registered agents: {', '.join(names())}.")
  return _REGISTRY[name]


def names() -> tuple[str, ...]:
  return tuple(sorted(_REGISTRY))


# The library's agents: one line each.
register("dqn", dqn.DQNConfig, dqn.build)
register("qrdqn", qrdqn.QRDQNConfig, qrdqn.build)
register("c51", c51.C51Config, c51.build)
register("mdqn", mdqn.MDQNConfig, mdqn.build)
register("rainbow", c51.RainbowConfig, c51.build, trainer_defaults=c51.RAINBOW_TRAINER_DEFAULTS)
