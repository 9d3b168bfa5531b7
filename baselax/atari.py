"""Atari (the Arcade Learning Environment) through the host loop.

    python experiments/hostloop_atari.py --env-id ALE/Pong-v5
    python experiments/hostloop_atari.py --resume runs/ALE_Pong-v5-dqn-20261128-120000

Two parts:

* The env: ale-py's ``AtariEnv`` with ``frameskip=1``, then gymnasium's
  ``AtariPreprocessing`` (noop reset, frame skip with a max-pool of the last
  two frames, 84x84 grayscale) and ``FrameStackObservation``: observations
  are uint8 ``(4, 84, 84)``, channels first, the input of
  :func:`baselax.networks.nature_q_network`. An episode is a whole game, cut
  at 108,000 frames (27,000 agent steps) as a truncation, not a termination.
  Reward clipping and terminal on life loss are learning signals applied by
  the host loop (``reward_fn``, ``terminal_fn``), so returns are game scores. :func:`make_env` builds one, :func:`make_vector_env` a
  ``SyncVectorEnv`` of them.
* The experiment (:func:`run`, :func:`main`): the flags of :class:`AtariConfig`,
  :class:`HostLoopConfig` and any registered agent's config, with the
  Nature DQN / CleanRL ``dqn_atari`` settings as defaults
  (:data:`AGENT_DEFAULTS`, :data:`TRAINER_DEFAULTS`), trained by
  :func:`baselax.hostloop.train` with the experiment layer's run directory,
  loggers, checkpoints, resume and summary.

Needs ale-py (``pip install -e ".[atari]"``; its ROMs ship with it).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import sys
import time
from typing import Any, Dict, NamedTuple, Optional, Sequence

import numpy as np

from baselax import metrics as metrics_lib
from baselax.agents import registry
from baselax.anakin.config import AnakinConfig
from baselax.errors import ConfigError
from baselax.experiment import cli
from baselax.experiment import config as config_lib
from baselax.experiment import launch
from baselax.experiment import loggers as loggers_lib
from baselax.experiment import rundir as rundir_lib
from baselax.experiment import summary as summary_lib

PROG = "hostloop_atari.py"
DESCRIPTION = ("Train a registered agent on an Atari game (ale-py) with the host "
               "loop: DQN's preprocessing and the Nature network by default.")
INSTALL = "pip install -e '.[atari]'"

#: Sections of config.json that define the experiment; a resumed run must match them.
EXPERIMENT_SECTIONS = ("experiment", "atari", "agent", "trainer")


@dataclasses.dataclass(frozen=True)
class AtariExperimentConfig:
  """What is trained on which game.

  Attributes:
    agent: a registered agent (baselax.agents.registry): dqn, qrdqn, c51, mdqn or rainbow (its n-step and prioritised replay are Anakin-only: here they train with one-step uniform replay), or one you registered.
    env_id: an ale-py id, e.g. ALE/Pong-v5, ALE/Breakout-v5 (v5: sticky actions 0.25) or PongNoFrameskip-v4 (no sticky actions).
  """
  agent: str = "dqn"
  env_id: str = "ALE/Pong-v5"


@dataclasses.dataclass(frozen=True)
class AtariConfig:
  """DQN's Atari preprocessing (Mnih et al. 2015; Machado et al. 2018 for the episode cap and sticky actions).

  Attributes:
    noop_max: at a reset, take a random number of no-op actions in [1, noop_max] (0: none), so episodes start in different states.
    frame_skip: emulator frames per agent step (the action is repeated); the observation is the max of the last two frames (Atari sprites flicker).
    screen_size: frames are resized to screen_size x screen_size grayscale.
    frame_stack: observations stack the last frame_stack frames, channels first: (frame_stack, screen_size, screen_size) uint8.
    terminal_on_life_loss: a lost life is a terminal transition for learning (no bootstrap past it) while the game goes on, as the Nature paper's (and CleanRL's EpisodicLifeEnv); Machado et al. 2018 advise against it. Returns are always whole games.
    repeat_action_probability: sticky actions: each emulator frame repeats the previous action with this probability; none = the id's own (v5: 0.25, v4 and NoFrameskip-v4: 0).
    max_episode_frames: emulator frames after which an episode is truncated (not terminated): 108,000 = 30 minutes of play = 27,000 agent steps at frame_skip 4.
    clip_rewards: learn from the sign of each reward (DQN's reward clipping); returns are always reported in game score.
  """
  noop_max: int = 30
  frame_skip: int = 4
  screen_size: int = 84
  frame_stack: int = 4
  terminal_on_life_loss: bool = False
  repeat_action_probability: Optional[float] = None
  max_episode_frames: int = 108_000
  clip_rewards: bool = True

  def __post_init__(self):
    for name, low in (("noop_max", 0), ("frame_skip", 1), ("screen_size", 8),
                      ("frame_stack", 1), ("max_episode_frames", 1)):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}.")
    p = self.repeat_action_probability
    if p is not None and not 0.0 <= p <= 1.0:
      raise ConfigError(f"repeat_action_probability must be in [0, 1] (or none), got {p!r}.")


@dataclasses.dataclass(frozen=True)
class HostLoopConfig:
  """The host loop's settings (the fields of AnakinConfig it uses, same meaning).

  Attributes:
    total_env_steps: agent steps (each frame_skip emulator frames) to train for, over all envs (rounded up to whole chunks of eval_every).
    num_envs: envs stepped together (a gymnasium SyncVectorEnv); the action of each comes from one batched predict call.
    buffer_size: replay capacity: frames with compact_frames (each env keeps buffer_size / num_envs, about one transition a frame), else transitions.
    batch_size: transitions sampled per update.
    learning_starts: env steps collected before the first update.
    train_every: vector steps (num_envs env steps each) between updates.
    seed: seeds the params, exploration, replay sampling and the envs.
    eval_every: env steps between greedy evaluations; also the chunk of training between checkpoints, and what Ctrl-C waits for.
    eval_episodes: greedy games per evaluation, played on min(eval_episodes, 8) envs at once.
    eval_max_steps: cap, in agent steps, on an evaluation game; none = 27,000 (108,000 frames).
    compact_frames: the replay keeps every frame once (7 KB a transition at 84x84) instead of obs and next_obs (56 KB); exact, and checked as it is filled.
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
  eval_max_steps: Optional[int] = None
  compact_frames: bool = True

  def __post_init__(self):
    self.anakin()  # AnakinConfig checks every shared field

  def anakin(self) -> AnakinConfig:
    """The :class:`AnakinConfig` that ``hostloop.train`` takes."""
    return AnakinConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                           if f.name != "compact_frames"})


#: The agent flags' defaults for Atari: CleanRL's dqn_atari (Nature DQN's
#: network, lr 1e-4 Adam, epsilon 1 -> 0.01 over 10% of the run, the target
#: copied every 1,000 env steps = 250 updates, L2 loss).
AGENT_DEFAULTS: Dict[str, Any] = dict(
    learning_rate=1e-4, lr_decay=False, discount_factor=0.99,
    target_update_interval=250, epsilon_start=1.0, epsilon_end=0.01,
    exploration_fraction=0.1, network="auto", hidden_sizes=(512,))

#: The run flags' defaults for Atari (a checkpoint every 500k env steps).
RUN_DEFAULTS: Dict[str, Any] = dict(checkpoint_every=500_000)


def _ale():
  """Imports ale-py (registering its envs with gymnasium), or says how to install it."""
  try:
    import ale_py
    import cv2  # noqa: F401  (gymnasium's AtariPreprocessing resizes with it)
  except ImportError as error:
    raise ConfigError(f"Atari needs ale-py (its ROMs ship with it) and OpenCV: "
                      f"{INSTALL} ({error}).") from error
  import gymnasium
  gymnasium.register_envs(ale_py)
  return ale_py


def atari_ids() -> Sequence[str]:
  """Every gymnasium id registered by ale-py (``ALE/Pong-v5``, ``PongNoFrameskip-v4``, ...)."""
  _ale()
  import gymnasium
  return sorted(k for k, spec in gymnasium.registry.items()
                if str(spec.entry_point).startswith("ale_py"))


def check_env_id(env_id: str) -> None:
  """Refuses an id ale-py does not register (one line, with close matches).

  Raises:
    ConfigError: ale-py is missing, or ``env_id`` is not an Atari id.
  """
  ids = atari_ids()
  if env_id in ids:
    return
  close = difflib.get_close_matches(env_id, ids, n=3)
  hint = f"did you mean {', '.join(close)}? " if close else ""
  raise ConfigError(f"env_id {env_id!r} is not an Atari id of ale-py: {hint}ids are "
                    f"ALE/<Game>-v5 (e.g. ALE/Pong-v5, ALE/Breakout-v5), "
                    f"<Game>NoFrameskip-v4, ...; {len(ids)} in all.")


def make_env(env_id: str, config: AtariConfig = AtariConfig()) -> Any:
  """One Atari env with DQN's preprocessing (see the module doc).

  Observations ``(frame_stack, screen_size, screen_size)`` uint8; rewards in
  game score; an episode is a whole game, ``truncated`` at
  ``max_episode_frames`` (reward clipping and terminal on life loss are
  learning signals: ``hostloop.train(reward_fn=, terminal_fn=)``).
  """
  _ale()
  import gymnasium
  from gymnasium import wrappers

  kwargs: Dict[str, Any] = dict(frameskip=1,  # AtariPreprocessing skips and max-pools
                                max_num_frames_per_episode=config.max_episode_frames)
  if config.repeat_action_probability is not None:
    kwargs["repeat_action_probability"] = config.repeat_action_probability
  env = gymnasium.make(env_id, disable_env_checker=True, **kwargs)
  env = wrappers.AtariPreprocessing(
      env, noop_max=config.noop_max, frame_skip=config.frame_skip,
      screen_size=config.screen_size,
      # A life loss is a learning signal (LifeLossTerminal), not an episode
      # end: with the wrapper's own flag every lost life would reset the game.
      terminal_on_life_loss=False, grayscale_obs=True, scale_obs=False)
  return wrappers.FrameStackObservation(env, config.frame_stack)


class LifeLossTerminal:
  """DQN's terminal on life loss, for ``hostloop.train(terminal_fn=...)``.

  Marks a transition terminated when the env's ``info["lives"]`` dropped in
  it, so learning does not bootstrap past a lost life, while the game itself
  goes on (no reset). A step that ended the episode is left as the env says
  (with ``SAME_STEP`` autoreset its info is the next game's).
  """

  def __init__(self):
    self.lives: Optional[np.ndarray] = None

  def __call__(self, terminated: np.ndarray, truncated: np.ndarray,
               info: Dict[str, Any]) -> np.ndarray:
    lives = np.asarray(info["lives"])
    lost = (np.zeros_like(terminated, bool) if self.lives is None
            else lives < self.lives)
    self.lives = lives
    return np.logical_or(terminated, lost & ~np.logical_or(terminated, truncated))


def make_vector_env(env_id: str, num_envs: int, config: AtariConfig = AtariConfig()) -> Any:
  """``num_envs`` of :func:`make_env` in a gymnasium ``SyncVectorEnv``.

  Autoreset is ``SAME_STEP``: an env whose episode ends returns the next
  episode's first observation, the true final one in ``info["final_obs"]``
  (which the host loop stores as ``next_obs``), and no step is lost to resets.
  """
  import gymnasium
  from gymnasium.vector import AutoresetMode
  return gymnasium.vector.SyncVectorEnv(
      [lambda: make_env(env_id, config)] * num_envs,
      autoreset_mode=AutoresetMode.SAME_STEP)


# ---------------------------------------------------------------------------
# The experiment: flags -> checks -> run directory -> host loop -> summary.


class Spec(NamedTuple):
  """A parsed command line: one frozen config per section."""
  experiment: AtariExperimentConfig
  atari: AtariConfig
  agent: Any                      # the registered agent's config dataclass
  trainer: HostLoopConfig
  run: config_lib.RunConfig
  loggers: config_lib.LoggerConfig

  @property
  def sections(self) -> Dict[str, Any]:
    return {"experiment": self.experiment, "atari": self.atari, "agent": self.agent,
            "trainer": self.trainer, "run": self.run, "loggers": self.loggers}

  def identity(self) -> Dict[str, Any]:
    """The settings beyond the trainer's that define the run (checkpoint fingerprint)."""
    out = {}
    for name in ("experiment", "atari", "agent"):
      out.update({f"{name}.{k}": v for k, v in
                  dataclasses.asdict(getattr(self, name)).items()})
    out["trainer.compact_frames"] = self.trainer.compact_frames
    return out


def parse(argv: Optional[Sequence[str]] = None, prog: str = PROG) -> Spec:
  """The :class:`Spec` of a command line; refuses bad flags (one line, exit 2).

  With ``--resume RUN_DIR`` the saved configuration supplies every default,
  and a flag that would change the experiment is refused, naming it.
  """
  import argparse
  pre = argparse.ArgumentParser(add_help=False)
  pre.add_argument("--resume")
  pre.add_argument("--agent")
  known = pre.parse_known_args(argv)[0]
  saved = None
  defaults: Dict[str, Any] = {**AGENT_DEFAULTS, **RUN_DEFAULTS}
  try:
    if known.resume is not None:
      saved = rundir_lib.load_config(known.resume)
      missing = [s for s in EXPERIMENT_SECTIONS if s not in saved]
      if missing:
        raise ConfigError(f"resume: {known.resume} is not a {prog} run (no "
                          f"{', '.join(missing)} section in config.json).")
      defaults = {k: v for section in (*EXPERIMENT_SECTIONS, "loggers")
                  for k, v in saved.get(section, {}).items()}
    entry = registry.get(known.agent or defaults.get("agent", "dqn"))
  except ConfigError as error:
    cli.usage_error(error, prog)

  def check(parsed):
    if saved is None:
      return None
    diffs = [f"{cli.flag_name(k)}: the run has {saved[section].get(k)!r}, you asked "
             f"for {v!r}"
             for section, config in zip(EXPERIMENT_SECTIONS, parsed)
             for k, v in metrics_lib.to_json(dataclasses.asdict(config)).items()
             if k in saved[section] and saved[section][k] != v]
    if diffs:
      return (f"cannot resume {known.resume} with a different experiment: " +
              "; ".join(diffs) + ". Leave these flags out to continue the run as it "
              "was, or start a new run.")
    return None

  parsed = cli.parse(
      [(AtariExperimentConfig, "experiment"), (AtariConfig, "atari preprocessing"),
       (entry.config_cls, f"agent ({entry.name}: {entry.config_cls.__name__})"),
       (HostLoopConfig, "host loop"), (config_lib.RunConfig, "run"),
       (config_lib.LoggerConfig, "loggers")],
      description=DESCRIPTION, argv=argv, defaults=defaults, check=check, prog=prog,
      epilog=f"registered agents: {', '.join(registry.names())}. Needs {INSTALL}.")
  return Spec(*parsed)


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
    raise ConfigError(f"compact_frames stores the frames of stacks of 2 or more; "
                      f"frame_stack is {spec.atari.frame_stack}: raise it or pass "
                      f"--no-compact-frames.")
  trainer = spec.trainer.anakin()
  sizes = trainer.derive(1)
  env = make_vector_env(spec.experiment.env_id, trainer.num_envs, spec.atari)
  eval_env = make_vector_env(spec.experiment.env_id, min(trainer.eval_episodes, 8),
                             spec.atari)
  agent = launch.build_agent(spec, env, sizes, trainer)
  return Prepared(env, eval_env, agent, sizes)


def run(argv: Optional[Sequence[str]] = None, *, prog: str = PROG,
        loggers: Sequence[loggers_lib.Logger] = ()) -> summary_lib.ExperimentResult:
  """Runs the Atari experiment a command line describes (see the module doc).

  Raises:
    SystemExit(2): a bad setting (one line on stderr), before anything is compiled.
    SystemExit(1): training stopped on a non-finite loss or params.
  """
  t0 = time.perf_counter()
  spec = parse(argv, prog)
  import jax
  from baselax import hardware, hostloop
  from baselax.anakin import guards

  loggers_lib.setup_logging(spec.run.quiet)
  if spec.run.compilation_cache.lower() != "none":
    jax.config.update("jax_compilation_cache_dir",
                      os.path.expanduser(spec.run.compilation_cache))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)

  def usage(error):
    cli.usage_error(cli.name_the_flag(str(error), cli.sections_of(
        [spec.experiment, spec.atari, spec.agent, spec.trainer, spec.run,
         spec.loggers])), prog)

  try:
    prepared = prepare(spec)
    run_dir, checkpointer, chunks_done = rundir_lib.open_run(
        spec, prepared, extra={"trainer_kind": "hostloop"})
  except ConfigError as error:
    usage(error)
  sizes = prepared.sizes
  trainer = spec.trainer.anakin()
  hint = hardware.accelerator_hint()
  if hint:
    print(hint, flush=True)
  frame_bytes = spec.atari.screen_size ** 2
  per_item = frame_bytes * (1 if spec.trainer.compact_frames else 2 * spec.atari.frame_stack)
  print(f"baselax {spec.experiment.agent} ({type(prepared.agent).__name__}) host loop on "
        f"{spec.experiment.env_id} | jax {jax.__version__} {jax.default_backend()} | "
        f"{trainer.num_envs} env(s) | {trainer.total_env_steps:,} env steps | replay "
        f"{trainer.buffer_size:,} x {per_item:,} B = "
        f"{trainer.buffer_size * per_item / 2**30:.2f} GiB | {run_dir.path}", flush=True)
  console = (loggers_lib.ConsoleLogger.for_run(sizes, chunks_done)
             if not spec.run.quiet else None)
  sinks = loggers_lib.make_loggers(
      run_dir, spec.loggers, console=console,
      title=f"{spec.experiment.agent} on {spec.experiment.env_id} (host loop)",
      extra=loggers, config={k: dataclasses.asdict(v) for k, v in spec.sections.items()})
  try:
    result = hostloop.train(
        prepared.agent, prepared.env, trainer, eval_env=prepared.eval_env,
        on_chunk=sinks.write, compact_frames=spec.trainer.compact_frames,
        reward_fn=np.sign if spec.atari.clip_rewards else None,
        terminal_fn=LifeLossTerminal() if spec.atari.terminal_on_life_loss else None,
        checkpointer=checkpointer, resume=chunks_done is not None,
        identity=spec.identity())
  except ConfigError as error:
    usage(error)
  except guards.NonFiniteError as error:
    print(f"{prog}: error: {error}", file=sys.stderr, flush=True)
    raise SystemExit(1)
  finally:
    sinks.close()
    checkpointer.close()
    run_dir.close()
    prepared.env.close()
    prepared.eval_env.close()
  out = summary_lib.summarise(result, sizes.env_steps_per_chunk, 1, run_dir,
                              time.perf_counter() - t0)
  summary_lib.print_summary(out, prog)
  return out


def main(argv: Optional[Sequence[str]] = None, prog: str = PROG) -> int:
  """The command-line entry point: the exit code (130 if stopped by Ctrl-C)."""
  return 130 if run(argv, prog=prog).interrupted else 0
