"""The experiment's own config sections (the agent's and the trainer's live
with the agent and in ``baselax.anakin``). Each field is a command-line flag."""

from __future__ import annotations

import dataclasses
import os

from baselax.errors import ConfigError

#: Sections of config.json that define the experiment; a resumed run must match them.
EXPERIMENT_SECTIONS = ("experiment", "agent", "trainer")


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
  """What is trained on what.

  Attributes:
    agent: a registered agent (baselax.agents.registry, listed at the end of --help), or one you
      registered. Its
      own flags are listed in the 'agent' group (--agent NAME --help shows them).
    env_id: an env with discrete actions: a gymnax id (CartPole-v1, Breakout-MinAtar), minatar:GAME
      (the MinAtar papers' settings: minatar:Breakout, Asterix, Freeway, Seaquest, SpaceInvaders) or
      suite:name for Craftax, Jumanji, Navix, XLand-MiniGrid (craftax:Craftax-Classic-Symbolic-v1,
      jumanji:Snake-v1, navix:Navix-Empty-5x5-v0, xminigrid:MiniGrid-Empty-5x5; pip install -e
      ".[navix]" etc.).
    preset: a paper's settings by name (young-tian-2019, revisiting-rainbow, and their -fast forms;
      listed at the end of --help): they become the flags' defaults, and flags given still override
      them.
    sweep: SETTING=V1,V2,... (repeat the flag for a grid): train every combination of these values
      of the agent's numeric settings x every seed as ONE compiled program, e.g. --sweep
      learning_rate=1e-4,3e-4,1e-3 --sweep target_update_interval=50,200. Settings that set shapes
      or code paths (hidden_sizes, n_step, booleans) cannot be swept.
  """

  agent: str = "dqn"
  env_id: str = "CartPole-v1"
  preset: str | None = None
  sweep: tuple[str, ...] = dataclasses.field(default=(), metadata={"repeatable": True})


@dataclasses.dataclass(frozen=True)
class RunConfig:
  """Where the run's output goes, and how it is shown (not part of the experiment).

  Attributes:
    run_dir: the run directory (config.json, metrics.jsonl, TensorBoard events, learning_curve.png,
      checkpoints/); none = runs/<env>-<agent>-<timestamp>.
    resume: a run directory to continue from its newest checkpoint; its saved configuration is the
      default for every flag, and flags that change the experiment are refused.
    checkpoint_every: env steps (per seed) between checkpoints, rounded to whole chunks; a
      checkpoint is also written at the end and on Ctrl-C.
    quiet: print only the final summary (no progress).
    all_cores: with several seeds on a CPU, run them on every core: JAX gets one host device per
      core (as many as divide num_seeds) and the seeds are spread over them (parallel=seeds). Set
      before JAX starts; off when --num-devices or --parallel data is given.
    compilation_cache: directory of JAX's persistent compilation cache (re-runs skip most of the
      compile time); none to disable.
  """

  run_dir: str | None = None
  resume: str | None = None
  checkpoint_every: int = 100_000
  quiet: bool = False
  all_cores: bool = True
  compilation_cache: str = "~/.cache/baselax/xla"

  def __post_init__(self):
    if self.checkpoint_every < 1:
      raise ConfigError(f"checkpoint_every must be >= 1 env step, got {self.checkpoint_every}.")
    if (
      self.resume is not None
      and self.run_dir is not None
      and (os.path.abspath(self.run_dir) != os.path.abspath(self.resume))
    ):
      raise ConfigError("resume RUN_DIR continues in RUN_DIR; leave out --run-dir.")


@dataclasses.dataclass(frozen=True)
class LoggerConfig:
  """Where each chunk's record goes besides the console and metrics.jsonl.

  Attributes:
    tensorboard: write TensorBoard event files to the run directory (needs tensorboardX: pip install
      -e ".[tensorboard]"; without it the run goes on without them).
    wandb_project: log to this Weights & Biases project (needs wandb: pip install -e ".[wandb]");
      none = no W&B.
    wandb_entity: the W&B team or user (none = your default).
    wandb_mode: online, or offline (written under the run directory's wandb/, for `wandb sync`
      later; needs no network).
  """

  tensorboard: bool = True
  wandb_project: str | None = None
  wandb_entity: str | None = None
  wandb_mode: str = "online"

  def __post_init__(self):
    if self.wandb_mode not in ("online", "offline"):
      raise ConfigError(f"wandb_mode must be online or offline, got {self.wandb_mode!r}.")
    if self.wandb_entity is not None and self.wandb_project is None:
      raise ConfigError("wandb_entity needs --wandb-project too (W&B logs to a project).")
