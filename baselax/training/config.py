"""What every trainer is configured with: :class:`TrainingConfig` and the sizes it derives.

:class:`TrainingConfig` holds the settings both trainers share (the env-step
budget, the envs, the replay, learning, evaluation); the Anakin trainer's
:class:`~baselax.anakin.AnakinConfig` adds how seeds and devices share a
run. :class:`Derived` holds the loop sizes either computes, never written
back into a config.
"""

from __future__ import annotations

import dataclasses
import math
import types
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, NamedTuple

from baselax.errors import ConfigError

#: Default cap on a greedy evaluation episode, in env steps: the Atari
#: evaluation convention of 108,000 frames (30 minutes) at frame-skip 4
#: (Machado et al. 2018). It bounds evaluation for envs whose own limit is huge.
DEFAULT_EVAL_MAX_STEPS = 27_000

#: The values of :attr:`TrainingConfig.obs_storage` (``baselax.replay.codecs``).
OBS_STORAGES = ("auto", "float32", "uint8", "bool")


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
  """What a training run is, for any trainer: budget, envs, replay, learning, evaluation.

  Env-step counts are per seed and summed over all envs and devices: one
  iteration of one seed steps ``num_envs * D`` envs, ``D`` being the devices
  that one seed is spread over (1 but in the Anakin trainer's ``data`` and
  ``groups`` layouts, :class:`~baselax.anakin.AnakinConfig`).

  Attributes:
    total_env_steps: env steps to train for, per seed (rounded up to whole
      chunks; the exact figure is :attr:`Derived.total_env_steps`).
    num_envs: parallel envs per device (and per seed).
    buffer_size: capacity, in transitions, of each replay buffer (rounded down
      to a multiple of num_envs: each env keeps buffer_size // num_envs steps).
      There is one buffer per (device, seed) in the Anakin trainer.
    batch_size: transitions sampled per update (per device).
    learning_starts: env steps (per seed, all devices) to collect before
      learning, rounded up to whole scan steps of S = num_envs * devices *
      train_every env steps; the first update comes at the end of the next
      scan step, after (ceil(learning_starts / S) + 1) * S env steps (264 for
      256 with 8 envs on one device).
    train_every: scan iterations (each one env step of every env) between
      updates; one update follows every ``train_every`` iterations.
    seed: the first seed; seed ``i`` of the run uses ``PRNGKey(seed + i)``, so it
      is the same run as ``seed + i`` alone.
    eval_every: env steps between greedy evaluations; training runs as compiled
      chunks of this many env steps, with an evaluation after each.
    eval_episodes: greedy episodes per evaluation, per seed (split over devices).
    eval_max_steps: cap, in env steps, on an evaluation episode; one still
      running at the cap counts with its return so far. ``None``: the env's
      own time limit (``env.max_episode_steps``, 10,000 if it has
      none) but at most 27,000, the Atari evaluation cap (108,000 frames at
      frame-skip 4), so an env that never ends cannot stall evaluation.
    n_step: n-step returns (Sutton 1988): each sampled transition sums up to
      n discounted rewards and bootstraps from the n-th next observation, or
      from the true final one if the episode ended first (not at all if it
      terminated). The discount is the agent's ``discount_factor``. 1 = DQN's
      one-step target.
    sampling: how the replay samples, by name: uniform, or prioritized (prioritized experience
      replay, Schaul et al. 2016: in proportion to |TD error|^priority_exponent, corrected with
      importance-sampling weights; needs an agent whose OptimOutput has a per-sample td_error and
      whose update reads data["weight"], as DQN's), or a variant you registered
      (baselax.replay.register_sampling). --prioritized is --sampling prioritized.
    priority_exponent: alpha, how strongly priorities shape sampling (0 = uniform).
    importance_exponent: beta at the start of the run, annealed linearly to
      importance_exponent_end at its end.
    importance_exponent_end: beta at the end of the run (1 in Schaul et al.
      2016; equal to importance_exponent for a constant beta, as Dopamine's 0.5).
    reward_clip: clip rewards to [-reward_clip, reward_clip] where they enter the replay buffer
      (what the agent learns from; Dopamine's runner clips to 1); training returns are logged
      unclipped. none = no clipping.
    priority_epsilon: added to |TD error| so no transition gets priority 0.
    obs_storage: how the replay buffers store observations (each once): auto (the smallest exact
      storage the observation space and the env prove: bool for 0/1 values such as MinAtar's, uint8
      for integers in [0, 255], else the env's own dtype), float32, uint8 (integers in [0, 255]), or
      bool (0/1 values, packed 8 per byte). Observations are decoded before the network sees them; a
      storage that could not hold every observation exactly is refused.
  """

  total_env_steps: int = 300_000
  num_envs: int = 10
  buffer_size: int = 10_000
  batch_size: int = 128
  learning_starts: int = 10_000
  train_every: int = 1
  seed: int = 0
  eval_every: int = 10_000
  eval_episodes: int = 32
  eval_max_steps: int | None = None
  n_step: int = 1
  sampling: str = "uniform"
  priority_exponent: float = 0.6
  importance_exponent: float = 0.4
  importance_exponent_end: float = 1.0
  priority_epsilon: float = 1e-6
  reward_clip: float | None = None
  obs_storage: str = "auto"
  # The old boolean, accepted by the constructor (and as --prioritized):
  # prioritized=True is sampling="prioritized". Read as a property below.
  prioritized: dataclasses.InitVar[bool | None] = None

  #: Flags that set a field: ``{flag: (field, value on, value off)}``.
  FLAG_ALIASES: ClassVar[Mapping[str, tuple[str, Any, Any]]] = types.MappingProxyType(
    {"prioritized": ("sampling", "prioritized", "uniform")}
  )
  #: Settings renamed since runs were first written: ``{old: (new, convert)}``.
  #: Saved configurations and checkpoint fingerprints are read through
  #: :func:`migrate`, so an older run resumes as it was.
  RENAMED: ClassVar[Mapping[str, tuple[str, Callable[[Any], Any]]]] = types.MappingProxyType(
    {"prioritized": ("sampling", lambda on: "prioritized" if on else "uniform")}
  )

  def __post_init__(self, prioritized: bool | None = None):
    if prioritized is not None:
      if prioritized and self.sampling not in ("uniform", "prioritized"):
        raise ConfigError(
          f"prioritized=True asks for sampling='prioritized', but sampling "
          f"is {self.sampling!r}: pass one of them."
        )
      object.__setattr__(self, "sampling", "prioritized" if prioritized else "uniform")
    if not isinstance(self.sampling, str) or not self.sampling:
      raise ConfigError(
        f"{self.name_of('sampling')} must be the name of a sampling "
        f"variant (uniform, prioritized), got {self.sampling!r}."
      )
    self._check_values()
    self._check_sizes()

  def _check_values(self) -> None:
    """Each setting on its own."""

    def positive(name):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{self.name_of(name)} must be a positive integer, got {value!r}.")

    for name in (
      "total_env_steps",
      "num_envs",
      "buffer_size",
      "batch_size",
      "train_every",
      "eval_every",
      "eval_episodes",
      "n_step",
    ):
      positive(name)
    for name in ("priority_exponent", "importance_exponent", "importance_exponent_end"):
      if not 0.0 <= getattr(self, name) <= 1.0:
        raise ConfigError(f"{self.name_of(name)} must be in [0, 1], got {getattr(self, name)!r}.")
    if self.reward_clip is not None and not self.reward_clip > 0:
      raise ConfigError(
        f"{self.name_of('reward_clip')} must be > 0 (or none), got {self.reward_clip!r}."
      )
    if not self.priority_epsilon > 0:
      raise ConfigError(
        f"{self.name_of('priority_epsilon')} must be > 0, got {self.priority_epsilon!r}."
      )
    if self.obs_storage not in OBS_STORAGES:
      raise ConfigError(
        f"{self.name_of('obs_storage')} must be one of "
        f"{', '.join(OBS_STORAGES)}, got {self.obs_storage!r}."
      )
    if self.eval_max_steps is not None:
      positive("eval_max_steps")
    if (
      isinstance(self.learning_starts, bool)
      or not isinstance(self.learning_starts, int)
      or self.learning_starts < 0
    ):
      raise ConfigError(
        f"{self.name_of('learning_starts')} must be an integer >= 0, got {self.learning_starts!r}."
      )
    if not isinstance(self.seed, int) or isinstance(self.seed, bool):
      raise ConfigError(f"{self.name_of('seed')} must be an integer, got {self.seed!r}.")

  def _check_sizes(self) -> None:
    """The sizes against each other."""
    # Every buffer keeps buffer_size // num_envs steps of each env and samples
    # windows of n_step + 1 of them (baselax.replay).
    if self.buffer_size // self.num_envs < max(2 * self.n_step, self.train_every):
      raise ConfigError(
        f"With n_step={self.n_step} the buffer keeps buffer_size // num_envs "
        f"= {self.buffer_size // self.num_envs} steps per env, fewer than "
        f"max(2 * n_step, train_every) = {max(2 * self.n_step, self.train_every)}. "
        f"Raise buffer_size."
      )
    if self.batch_size > self.buffer_size:
      raise ConfigError(
        f"batch_size ({self.batch_size}) is larger than buffer_size "
        f"({self.buffer_size}): a batch is drawn from one buffer. Lower "
        f"batch_size or raise buffer_size."
      )
    if self.buffer_size < 2 * self.num_envs:
      raise ConfigError(
        f"buffer_size ({self.buffer_size}) must hold at least two steps of "
        f"all {self.num_envs} envs (>= {2 * self.num_envs})."
      )
    if self.learning_starts < self.batch_size:
      raise ConfigError(
        f"learning_starts ({self.learning_starts}) is below batch_size "
        f"({self.batch_size}): the first update would sample from a buffer "
        f"holding fewer transitions than a batch. Set learning_starts >= "
        f"batch_size."
      )

  def name_of(self, field: str) -> str:
    """``Class.field``, as the messages name a setting."""
    return f"{type(self).__name__}.{field}"

  def placement(self, num_devices: int = 1, num_points: int = 1) -> Placement:
    """How the run sits on ``num_devices`` devices: one run (``num_points``
    sweep points) spread over all of them. The Anakin trainer's config adds
    seeds and layouts."""
    return Placement("data", num_devices, num_points)

  def derive(self, num_devices: int = 1, num_points: int = 1) -> Derived:
    """Computes the loop sizes for ``num_devices`` devices (never stored back);
    ``num_points``: hyperparameter-sweep points (1 = no sweep)."""
    return Derived.from_config(self, num_devices, num_points)


# ``config.prioritized`` reads as before: whether sampling is prioritized.
# (the InitVar of that name is no class attribute, hence the ignore)
TrainingConfig.prioritized = property(  # type: ignore[attr-defined]
  lambda self: self.sampling == "prioritized",
  doc="Whether ``sampling`` is ``prioritized`` (the constructor's old boolean).",
)


def migrate(
  settings: Mapping[str, Any],
  renamed: Mapping[str, tuple[str, Callable[[Any], Any]]] = TrainingConfig.RENAMED,
  prefix: str = "",
  introduced: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
  """``settings`` (a saved config section, or a fingerprint whose keys are
  ``prefix + name``) with the ``renamed`` settings (a config class's
  ``RENAMED``) under their new names, and the ``introduced`` ones (``{name:
  the value runs had before the setting existed}``) filled in where absent."""
  out = dict(settings)
  for old, (new, convert) in renamed.items():
    if prefix + old in out and prefix + new not in out:
      out[prefix + new] = convert(out.pop(prefix + old))
  for name, value in (introduced or {}).items():
    out.setdefault(prefix + name, value)
  return out


class Placement(NamedTuple):
  """Where a run's pieces go: the layout's name, the devices one run is
  spread over, and the independent runs (seeds x sweep points)."""

  layout: str
  seed_devices: int
  num_runs: int


@dataclasses.dataclass(frozen=True)
class Derived:
  """Loop sizes computed from a :class:`TrainingConfig` and a device count.

  The run is ``num_chunks`` compiled chunks of ``steps_per_chunk`` scan steps;
  a scan step is ``train_every`` env iterations then one update (once learning
  has started), so it is ``env_steps_per_step`` env steps per seed. The
  independent runs are ``num_runs = num_seeds * num_points`` (sweep points,
  see ``baselax.anakin.sweep``). A run is spread over ``seed_devices``
  devices: all of them (``layout == "data"``) or one (``"seeds"``,
  ``runs_per_device`` runs vmapped on each).
  """

  num_devices: int
  layout: str  # "data", "seeds" or "groups"
  seed_devices: int  # devices one run is spread over
  runs_per_device: int  # runs (seeds x sweep points) held by one device
  env_steps_per_iteration: int  # num_envs * seed_devices
  env_steps_per_step: int  # ... * train_every
  steps_per_chunk: int
  num_chunks: int
  learning_starts_step: int  # first scan step that updates
  eval_episodes_per_device: int
  num_runs: int = 1  # seeds x sweep points

  @property
  def env_steps_per_chunk(self) -> int:
    return self.steps_per_chunk * self.env_steps_per_step

  @property
  def total_env_steps(self) -> int:
    return self.num_chunks * self.env_steps_per_chunk

  @property
  def total_steps(self) -> int:
    """Scan steps of the whole run (an update each once learning has
    started): prioritized replay's beta anneals over them."""
    return self.num_chunks * self.steps_per_chunk

  @property
  def total_updates(self) -> int:
    return max(0, self.total_steps - self.learning_starts_step)

  # Schedules are written in env steps; agents count predict calls (and
  # updates: total_updates). This is the only place that arithmetic lives.

  def predict_calls(self, env_steps: float) -> int:
    """Exploring ``predict`` calls one (device, seed) makes in ``env_steps``
    env steps per seed (at least 1): one call steps ``num_envs`` envs on every
    device. Use it for schedules an agent evaluates at ``PolicyState.count``
    (exploration); a schedule over updates spans :attr:`total_updates`."""
    return max(1, int(env_steps / self.env_steps_per_iteration))

  @classmethod
  def from_config(cls, config: TrainingConfig, num_devices: int, num_points: int = 1) -> Derived:
    layout, seed_devices, num_runs = config.placement(num_devices, num_points)
    total_devices, num_devices = num_devices, seed_devices
    per_iteration = config.num_envs * num_devices
    per_step = per_iteration * config.train_every
    if config.total_env_steps < per_step:
      raise ConfigError(
        f"total_env_steps ({config.total_env_steps}) is smaller than one "
        f"scan step ({per_step} = num_envs {config.num_envs} x devices "
        f"{num_devices} x train_every {config.train_every}). Raise "
        f"total_env_steps or lower num_envs/train_every."
      )
    total_steps = math.ceil(config.total_env_steps / per_step)
    steps_per_eval = max(1, round(config.eval_every / per_step))
    num_chunks = max(1, math.ceil(total_steps / steps_per_eval))
    steps_per_chunk = math.ceil(total_steps / num_chunks)
    learning_starts_step = math.ceil(config.learning_starts / per_step)
    per_env_steps = learning_starts_step * config.train_every
    if per_env_steps < config.n_step:
      raise ConfigError(
        f"Learning starts after {per_env_steps} steps of each env, fewer than "
        f"n_step ({config.n_step}): no n-step window exists yet. Raise "
        f"learning_starts to at least {config.n_step * per_iteration}."
      )
    per_device_items = per_env_steps * config.num_envs
    if per_device_items < config.batch_size:
      raise ConfigError(
        f"With {num_devices} devices each buffer holds only "
        f"{per_device_items} transitions when learning starts, fewer than "
        f"batch_size ({config.batch_size}). Raise learning_starts to at "
        f"least {config.batch_size * num_devices}."
      )
    return cls(
      num_devices=total_devices,
      layout=layout,
      seed_devices=num_devices,
      runs_per_device=num_runs // (total_devices // num_devices),
      env_steps_per_iteration=per_iteration,
      env_steps_per_step=per_step,
      steps_per_chunk=steps_per_chunk,
      num_chunks=num_chunks,
      learning_starts_step=learning_starts_step,
      eval_episodes_per_device=math.ceil(config.eval_episodes / num_devices),
      num_runs=num_runs,
    )
