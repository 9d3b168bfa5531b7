"""The agent registry: ``--agent NAME`` of the experiment layer.

An entry is a frozen config dataclass (its fields become the command-line
flags, its ``Attributes:`` docstring their help) and a build function::

    build(config, env, sizes) -> BaseAgent

where ``sizes`` is the trainer's :class:`~baselax.anakin.config.Derived`,
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
from typing import Any, Callable, Dict, Tuple

from baselax.agents import dqn
from baselax.agents import qrdqn
from baselax.errors import ConfigError

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
  """
  name: str
  config_cls: type
  build: BuildFn
  module: str


_REGISTRY: Dict[str, AgentEntry] = {}


def register(name: str, config_cls: type, build: BuildFn, *,
             overwrite: bool = False) -> AgentEntry:
  """Registers an agent under ``name``; returns its entry.

  Raises:
    ValueError: ``name`` is taken (pass ``overwrite=True`` to replace it), or
      ``config_cls`` is not a frozen dataclass.
  """
  if not name or not name.replace("_", "").replace("-", "").isalnum():
    raise ValueError(f"agent names are letters, digits, '-' and '_', got {name!r}.")
  if not (dataclasses.is_dataclass(config_cls) and
          config_cls.__dataclass_params__.frozen):
    raise ValueError(f"{getattr(config_cls, '__name__', config_cls)} must be a "
                     f"frozen dataclass (@dataclasses.dataclass(frozen=True)).")
  if name in _REGISTRY and not overwrite:
    raise ValueError(f"an agent named {name!r} is already registered "
                     f"(from {_REGISTRY[name].module}); pick another name.")
  entry = AgentEntry(name, config_cls, build,
                     getattr(build, "__module__", None) or "__main__")
  _REGISTRY[name] = entry
  return entry


def get(name: str) -> AgentEntry:
  """The entry registered as ``name``.

  Raises:
    ConfigError: unknown name; the message lists the registered ones.
  """
  if name not in _REGISTRY:
    raise ConfigError(f"unknown agent {name!r}; registered agents: "
                      f"{', '.join(names())}.")
  return _REGISTRY[name]


def names() -> Tuple[str, ...]:
  return tuple(sorted(_REGISTRY))


# The library's agents: one line each.
register("dqn", dqn.DQNConfig, dqn.build)
register("qrdqn", qrdqn.QRDQNConfig, qrdqn.build)
