"""The command line of a run, for any kind of run: its sections, defaults and
the checks of ``--resume``.

A :class:`Pipeline` describes a kind of run (the Anakin main job,
:data:`ANAKIN`; the host loop's Atari runs, ``baselax.atari.PIPELINE``):
which config sections it has, their defaults, and which of them define
the experiment. :func:`parse` is the one parse both go through.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from baselax import metrics as metrics_lib
from baselax.agents import registry
from baselax.anakin.config import AnakinConfig
from baselax.anakin.distributed import DistributedConfig
from baselax.errors import ConfigError
from baselax.experiment import cli, sweeps
from baselax.experiment import config as config_lib
from baselax.experiment import presets as presets_lib
from baselax.experiment import rundir as rundir_lib

DESCRIPTION = "Train a registered agent with the Anakin trainer."
PROG = "anakin_dqn.py"


class Spec(NamedTuple):
  """A parsed command line: one frozen config per section."""

  experiment: config_lib.ExperimentConfig
  agent: Any  # the registered agent's config dataclass
  trainer: AnakinConfig
  run: config_lib.RunConfig
  loggers: config_lib.LoggerConfig
  distributed: DistributedConfig

  @property
  def sections(self) -> dict[str, Any]:
    """``{name: config}`` of the sections saved to ``config.json``."""
    return {
      "experiment": self.experiment,
      "agent": self.agent,
      "trainer": self.trainer,
      "run": self.run,
      "loggers": self.loggers,
    }

  def identity(self) -> dict[str, Any]:
    """The experiment's settings beyond the trainer's (for checkpoints and processes)."""
    out = {f"experiment.{k}": v for k, v in dataclasses.asdict(self.experiment).items()}
    out.update({f"agent.{k}": v for k, v in dataclasses.asdict(self.agent).items()})
    return out


class Pipeline(NamedTuple):
  """A kind of run the experiment layer composes (the Anakin main job, the
  host loop's Atari runs): its sections, their defaults and how it is named.

  Attributes:
    prog: the program's name in messages.
    description: ``--help``'s first line.
    spec_type: the NamedTuple of parsed sections (its fields, in order).
    sections: ``(section, config class or None for the agent's, title)``.
    experiment_sections: the sections that define the experiment: what
      ``--resume`` compares with the saved run.
    defaults: flag defaults of this kind of run, under the agent's own
      trainer defaults, a preset and the flags.
    epilog: what ``--help`` ends with (the agents, the presets).
  """

  prog: str
  description: str
  spec_type: Any
  sections: tuple[tuple[str, Any, str], ...]
  experiment_sections: tuple[str, ...]
  defaults: Mapping[str, Any] = types.MappingProxyType({})
  epilog: Callable[[], str] = lambda: ""


def _pre_parse(argv: Sequence[str] | None) -> argparse.Namespace:
  pre = argparse.ArgumentParser(add_help=False)
  pre.add_argument("--resume")
  pre.add_argument("--agent")
  pre.add_argument("--preset")
  return pre.parse_known_args(argv)[0]


def parse(
  argv: Sequence[str] | None = None, prog: str | None = None, pipeline: Pipeline | None = None
) -> Any:
  """The parsed sections of a command line (a :class:`Spec` for the main job,
  ``pipeline.spec_type`` for another); refuses bad flags (one line, exit 2).

  ``--agent NAME`` picks which registered config supplies the agent flags;
  the flags' defaults are, from the weakest, the configs', the pipeline's
  (Atari's DQN settings), the agent entry's ``trainer_defaults`` (Rainbow's
  n-step and prioritized replay: a setting the pipeline's trainer does not
  have is named in a warning) and ``--preset NAME``'s (``presets.py``).
  With ``--resume RUN_DIR`` the saved configuration supplies every default,
  and a flag that changes the experiment is refused, naming what differs.
  """
  pipeline = pipeline or ANAKIN
  prog = prog or pipeline.prog
  pre = _pre_parse(argv)
  fields = {name: cls for name, cls, _ in pipeline.sections if cls is not None}
  presets_here = "preset" in {f.name for f in dataclasses.fields(fields["experiment"])}
  defaults, saved = dict(pipeline.defaults), None
  try:
    if pre.resume is not None:
      saved = rundir_lib.load_config(pre.resume)
      missing = [s for s in pipeline.experiment_sections if s not in saved]
      if missing:
        raise ConfigError(
          f"--resume: {pre.resume} is not a {prog} run (no "
          f"{', '.join(missing)} section in config.json)."
        )
      defaults = rundir_lib.resume_defaults(saved, pipeline.experiment_sections)
    preset = presets_lib.get(pre.preset) if pre.preset and presets_here and saved is None else None
    agent_name = (
      pre.agent or (defaults or {}).get("agent") or (preset.default_agent if preset else "dqn")
    )
    entry = registry.get(agent_name)
    if saved is None:
      # The agent's own trainer defaults, then the preset's; flags override them.
      defaults.update(trainer_defaults(entry, fields["trainer"], prog))
      defaults.update(preset.values(agent_name) if preset else {})
  except ConfigError as error:
    cli.usage_error(error, prog)
  classes = [
    (
      cls or entry.config_cls,
      title if cls is not None else f"agent ({entry.name}: {entry.config_cls.__name__})",
    )
    for _, cls, title in pipeline.sections
  ]

  def check(parsed):
    if "sweep" in {f.name for f in dataclasses.fields(parsed[0])}:
      try:  # the sweep's settings, before JAX starts (values are checked in prepare)
        sweeps.parse_axes(
          parsed[0].sweep,
          entry.config_cls,
          entry.name,
          [f.name for f in dataclasses.fields(fields["trainer"])],
        )
      except ConfigError as error:
        return f"--{error}"
    if saved is None:
      return None
    named = dict(zip([name for name, _, _ in pipeline.sections], parsed, strict=True))
    return resume_differences(
      pre.resume, saved, {section: named[section] for section in pipeline.experiment_sections}
    )

  parsed = cli.parse(
    classes,
    description=pipeline.description,
    argv=argv,
    defaults=defaults,
    check=check,
    prog=prog,
    epilog=pipeline.epilog(),
    unknown_hint=f"agent {entry.name}'s flags and the others: --agent {entry.name} --help",
  )
  return pipeline.spec_type(*parsed)


def trainer_defaults(entry: Any, trainer_cls: type, prog: str) -> dict[str, Any]:
  """The agent entry's trainer defaults that ``trainer_cls`` has; the others
  are named in a warning (the host loop has no n-step or prioritized replay)."""
  names = {f.name for f in dataclasses.fields(trainer_cls)}
  dropped = {k: v for k, v in entry.trainer_defaults.items() if k not in names}
  if dropped:
    print(
      f"{prog}: warning: agent {entry.name}'s trainer defaults "
      f"{', '.join(f'{k}={v}' for k, v in dropped.items())} are not settings of this "
      f"trainer ({trainer_cls.__name__}): it trains without them.",
      file=sys.stderr,
      flush=True,
    )
  return {k: v for k, v in entry.trainer_defaults.items() if k in names}


def resume_differences(
  run_path: str, saved: Mapping[str, Any], sections: Mapping[str, Any]
) -> str | None:
  """What refuses ``--resume``: the settings of ``sections`` that differ from
  the saved run's (``None``: none). A setting added since the run was saved
  compares with its default."""

  def saved_value(section, config, k):
    if k in saved[section]:
      return saved[section][k]
    field = {f.name: f for f in dataclasses.fields(config)}[k]
    return metrics_lib.to_json(field.default) if field.default is not dataclasses.MISSING else None

  diffs = [
    f"{cli.flag_name(k)}: the run has {saved_value(section, config, k)!r}, you asked for {v!r}"
    for section, config in sections.items()
    for k, v in metrics_lib.to_json(dataclasses.asdict(config)).items()
    if saved_value(section, config, k) != v
  ]
  if not diffs:
    return None
  return (
    f"cannot resume {run_path} with a different experiment: "
    + "; ".join(diffs)
    + ". Leave these flags out to continue the run as it was, or start a new run."
  )


def _anakin_epilog() -> str:
  return (
    f"registered agents: {', '.join(registry.names())} (--agent NAME --help lists "
    f"that agent's flags; baselax train --import MODULE first imports a module that "
    f"registers agents of its own)\n\nAtari ids (ALE/Pong-v5, ...) train through the "
    f"host loop: baselax train --env-id ALE/Pong-v5 --help lists their flags.\n\n"
    f"{presets_lib.help_text()}"
  )


#: The main job: the Anakin trainer on a JAX env, with presets and sweeps.
ANAKIN = Pipeline(
  prog=PROG,
  description=DESCRIPTION,
  spec_type=Spec,
  sections=(
    ("experiment", config_lib.ExperimentConfig, "experiment"),
    ("agent", None, "agent"),
    ("trainer", AnakinConfig, "trainer"),
    ("run", config_lib.RunConfig, "run"),
    ("loggers", config_lib.LoggerConfig, "loggers"),
    ("distributed", DistributedConfig, "multi-process"),
  ),
  experiment_sections=config_lib.EXPERIMENT_SECTIONS,
  epilog=_anakin_epilog,
)
