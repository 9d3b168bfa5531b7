"""Atari (the Arcade Learning Environment) through the host loop.

    python experiments/hostloop_atari.py --env-id ALE/Pong-v5
    python experiments/hostloop_atari.py --resume runs/ALE_Pong-v5-dqn-20261128-120000

The experiment (:func:`run`, :func:`main`): the flags of
:class:`~baselax.envs.atari_env.AtariConfig` (the env and its preprocessing,
``baselax/envs/atari_env.py``), :class:`HostLoopConfig` and any registered
agent's config, with the Nature DQN / CleanRL ``dqn_atari`` settings as
defaults (:data:`AGENT_DEFAULTS`, :data:`RUN_DEFAULTS`), trained by
:func:`baselax.hostloop.train` with the experiment layer's run directory,
loggers, checkpoints, resume and summary (the main job's own code:
``baselax.experiment.launch``).

Needs ale-py (``pip install -e ".[atari]"``; its ROMs ship with it).
"""

from __future__ import annotations

import dataclasses
import time
import types
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

import numpy as np

from baselax.agents import registry
from baselax.anakin.config import AnakinConfig
from baselax.envs.atari_env import (
  INSTALL,
  AtariConfig,
  AtariSnapshot,
  LifeLossTerminal,
  check_env_id,
  make_vector_env,
)
from baselax.errors import ConfigError
from baselax.experiment import config as config_lib
from baselax.experiment import launch
from baselax.experiment import loggers as loggers_lib
from baselax.experiment import rundir as rundir_lib
from baselax.experiment import summary as summary_lib

PROG = "hostloop_atari.py"
DESCRIPTION = (
  "Train a registered agent on an Atari game (ale-py) with the host "
  "loop: DQN's preprocessing and the Nature network by default."
)

#: Sections of config.json that define the experiment; a resumed run must match them.
EXPERIMENT_SECTIONS = ("experiment", "atari", "agent", "trainer")


@dataclasses.dataclass(frozen=True)
class AtariExperimentConfig:
  """What is trained on which game.

  Attributes:
    agent: a registered agent (baselax.agents.registry): dqn, qrdqn, c51, mdqn or rainbow (with
      its n-step prioritized replay), or one you registered.
    env_id: an ale-py id, e.g. ALE/Pong-v5, ALE/Breakout-v5 (v5: sticky actions 0.25) or
      PongNoFrameskip-v4 (no sticky actions).
  """

  agent: str = "dqn"
  env_id: str = "ALE/Pong-v5"


@dataclasses.dataclass(frozen=True)
class HostLoopConfig:
  """The host loop's settings (the fields of AnakinConfig it uses, same meaning).

  Attributes:
    total_env_steps: agent steps (each frame_skip emulator frames) to train for, over all envs
      (rounded up to whole chunks of eval_every).
    num_envs: envs stepped together (a gymnasium SyncVectorEnv); the action of each comes from one
      batched predict call.
    buffer_size: replay capacity in steps over all envs (each env keeps buffer_size / num_envs);
      with compact_frames a step stores one frame.
    batch_size: transitions sampled per update.
    learning_starts: env steps collected before the first update.
    train_every: vector steps (num_envs env steps each) between updates.
    seed: seeds the params, exploration, replay sampling and the envs.
    eval_every: env steps between greedy evaluations; also the chunk of training between
      checkpoints, and what Ctrl-C waits for.
    eval_episodes: greedy games per evaluation, played on min(eval_episodes, 8) envs at once.
    eval_max_steps: cap, in agent steps, on an evaluation game; none = 27,000 (108,000 frames).
    n_step: n-step returns (Sutton 1988): each sampled transition sums up to n rewards.
    sampling: how the replay samples: uniform, or prioritized (Schaul et al. 2016).
      --prioritized is --sampling prioritized.
    priority_exponent: alpha, how strongly priorities shape sampling (0 = uniform).
    importance_exponent: beta at the start of the run, annealed linearly to
      importance_exponent_end at its end.
    importance_exponent_end: beta at the end of the run.
    priority_epsilon: added to |TD error| so no transition gets priority 0.
    compact_frames: the replay keeps the newest frame of each step (7 KB a step at 84x84)
      instead of the whole stack (28 KB); exact, and checked on every step.
  """

  total_env_steps: int = 10_000_000
  num_envs: int = 1
  buffer_size: int = 100_000
  batch_size: int = 32
  learning_starts: int = 80_000
  train_every: int = 4
  seed: int = 0
  eval_every: int = 100_000
  eval_episodes: int = 4
  eval_max_steps: int | None = None
  n_step: int = 1
  sampling: str = "uniform"
  priority_exponent: float = 0.6
  importance_exponent: float = 0.4
  importance_exponent_end: float = 1.0
  priority_epsilon: float = 1e-6
  compact_frames: bool = True

  #: --prioritized is --sampling prioritized (TrainingConfig's alias).
  FLAG_ALIASES: ClassVar[Mapping[str, tuple[str, Any, Any]]] = AnakinConfig.FLAG_ALIASES

  def __post_init__(self):
    self.anakin()  # AnakinConfig checks every shared field

  def anakin(self) -> AnakinConfig:
    """The :class:`AnakinConfig` that ``hostloop.train`` takes."""
    return AnakinConfig(
      **{
        f.name: getattr(self, f.name)
        for f in dataclasses.fields(self)
        if f.name != "compact_frames"
      }
    )


#: The agent flags' defaults for Atari: CleanRL's dqn_atari (Nature DQN's
#: network, lr 1e-4 Adam, epsilon 1 -> 0.01 over 10% of the run, the target
#: copied every 1,000 env steps = 250 updates, L2 loss).
AGENT_DEFAULTS: dict[str, Any] = dict(
  learning_rate=1e-4,
  lr_decay=False,
  discount_factor=0.99,
  target_update_interval=250,
  epsilon_start=1.0,
  epsilon_end=0.01,
  exploration_fraction=0.1,
  network="auto",
  hidden_sizes=(512,),
)

#: The run flags' defaults for Atari (a checkpoint every 500k env steps).
RUN_DEFAULTS: dict[str, Any] = dict(checkpoint_every=500_000)


# ---------------------------------------------------------------------------
# The experiment: flags -> checks -> run directory -> host loop -> summary.


class Spec(NamedTuple):
  """A parsed command line: one frozen config per section."""

  experiment: AtariExperimentConfig
  atari: AtariConfig
  agent: Any  # the registered agent's config dataclass
  trainer: HostLoopConfig
  run: config_lib.RunConfig
  loggers: config_lib.LoggerConfig

  @property
  def sections(self) -> dict[str, Any]:
    return {
      "experiment": self.experiment,
      "atari": self.atari,
      "agent": self.agent,
      "trainer": self.trainer,
      "run": self.run,
      "loggers": self.loggers,
    }

  def identity(self) -> dict[str, Any]:
    """The settings beyond the trainer's that define the run (checkpoint fingerprint)."""
    out = {}
    for name in ("experiment", "atari", "agent"):
      out.update({f"{name}.{k}": v for k, v in dataclasses.asdict(getattr(self, name)).items()})
    out["trainer.compact_frames"] = self.trainer.compact_frames
    return out


def _epilog() -> str:
  return f"registered agents: {', '.join(registry.names())}. Needs {INSTALL}."


#: The Atari run: the host loop, the game's preprocessing, DQN's Atari settings.
PIPELINE = launch.Pipeline(
  prog=PROG,
  description=DESCRIPTION,
  spec_type=Spec,
  sections=(
    ("experiment", AtariExperimentConfig, "experiment"),
    ("atari", AtariConfig, "atari preprocessing"),
    ("agent", None, "agent"),
    ("trainer", HostLoopConfig, "host loop"),
    ("run", config_lib.RunConfig, "run"),
    ("loggers", config_lib.LoggerConfig, "loggers"),
  ),
  experiment_sections=EXPERIMENT_SECTIONS,
  defaults=types.MappingProxyType({**AGENT_DEFAULTS, **RUN_DEFAULTS}),
  epilog=_epilog,
)


def parse(argv: Sequence[str] | None = None, prog: str = PROG) -> Spec:
  """The :class:`Spec` of a command line: the experiment layer's one parse
  (``baselax.experiment.launch.parse``) with :data:`PIPELINE`."""
  return launch.parse(argv, prog, PIPELINE)


class Prepared(NamedTuple):
  """What :func:`prepare` built and checked, before anything is compiled."""

  env: Any
  eval_env: Any
  agent: Any
  sizes: Any


def prepare(spec: Spec) -> Prepared:
  """Builds the envs and the agent; refuses what cannot run.

  Raises:
    ConfigError: ale-py missing, an unknown id, an agent that cannot train on
      the game, or trainer sizes that do not fit.
  """
  check_env_id(spec.experiment.env_id)
  if spec.trainer.compact_frames and spec.atari.frame_stack < 2:
    raise ConfigError(
      f"compact_frames stores the frames of stacks of 2 or more; "
      f"frame_stack is {spec.atari.frame_stack}: raise it or pass "
      f"--no-compact-frames."
    )
  trainer = spec.trainer.anakin()
  sizes = trainer.derive(1)
  env = make_vector_env(spec.experiment.env_id, trainer.num_envs, spec.atari)
  eval_env = make_vector_env(spec.experiment.env_id, min(trainer.eval_episodes, 8), spec.atari)
  agent = launch.build_agent(spec, env, sizes, trainer)
  return Prepared(env, eval_env, agent, sizes)


def truncation_interval(atari: AtariConfig) -> int:
  """The fewest agent steps between two truncations of one game: the episode
  cap in emulator frames, less the no-ops of the reset, in steps of
  ``frame_skip`` frames (the replay keeps that many fewer final observations)."""
  return max(1, (atari.max_episode_frames - atari.noop_max) // atari.frame_skip)


def run(
  argv: Sequence[str] | None = None, *, prog: str = PROG, loggers: Sequence[loggers_lib.Logger] = ()
) -> summary_lib.ExperimentResult:
  """Runs the Atari experiment a command line describes (see the module doc).

  Raises:
    SystemExit(2): a bad setting (one line on stderr), before anything is compiled.
    SystemExit(1): training stopped on a non-finite loss or params.
  """
  t0 = time.perf_counter()
  spec = parse(argv, prog)
  import jax

  from baselax import hardware, hostloop

  loggers_lib.setup_logging(spec.run.quiet)
  launch.use_compilation_cache(spec.run)
  with launch.usage_errors(spec, prog):
    prepared = prepare(spec)
    run_dir, checkpointer, chunks_done = rundir_lib.open_run(
      spec, prepared, extra={"trainer_kind": "hostloop"}
    )
  sizes = prepared.sizes
  trainer = spec.trainer.anakin()
  hardware.print_accelerator_hint()
  frame_bytes = spec.atari.screen_size**2
  per_item = frame_bytes * (1 if spec.trainer.compact_frames else spec.atari.frame_stack)
  print(
    f"baselax {spec.experiment.agent} ({type(prepared.agent).__name__}) host loop on "
    f"{spec.experiment.env_id} | jax {jax.__version__} {jax.default_backend()} | "
    f"{trainer.num_envs} env(s) | {trainer.total_env_steps:,} env steps | replay "
    f"{trainer.buffer_size:,} x {per_item:,} B = "
    f"{trainer.buffer_size * per_item / 2**30:.2f} GiB | {run_dir.path}",
    flush=True,
  )
  console = loggers_lib.ConsoleLogger.for_run(sizes, chunks_done) if not spec.run.quiet else None
  sinks = loggers_lib.make_loggers(
    run_dir,
    spec.loggers,
    console=console,
    title=f"{spec.experiment.agent} on {spec.experiment.env_id} (host loop)",
    extra=loggers,
    config={k: dataclasses.asdict(v) for k, v in spec.sections.items()},
  )
  try:
    with launch.training_errors(prog, run_dir), launch.usage_errors(spec, prog):
      result = hostloop.train(
        prepared.agent,
        prepared.env,
        trainer,
        eval_env=prepared.eval_env,
        on_chunk=sinks.write,
        compact_frames=spec.trainer.compact_frames,
        reward_fn=np.sign if spec.atari.clip_rewards else None,
        terminal_fn=LifeLossTerminal() if spec.atari.terminal_on_life_loss else None,
        truncation_interval=truncation_interval(spec.atari),
        env_snapshot=AtariSnapshot(),
        checkpointer=checkpointer,
        resume=chunks_done is not None,
        identity=spec.identity(),
      )
  finally:
    launch.close_run(sinks, checkpointer, run_dir)
    prepared.env.close()
    prepared.eval_env.close()
  out = summary_lib.summarise(
    result, sizes.env_steps_per_chunk, 1, run_dir, time.perf_counter() - t0
  )
  summary_lib.print_summary(out, prog)
  return out


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
  """The command-line entry point: the exit code (130 if stopped by Ctrl-C or SIGTERM)."""
  return 130 if run(argv, prog=prog).interrupted else 0
