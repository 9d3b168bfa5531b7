"""``AnakinConfig``: the Anakin trainer's configuration.

It is :class:`~baselax.training.TrainingConfig` (what every trainer is
configured with: budget, envs, replay, learning, evaluation) plus how the
independent runs of one program (seeds, sweep points) and the devices share
the work: ``num_seeds``, ``num_devices``, ``parallel``,
``devices_per_group``. The loop sizes of either are a
:class:`~baselax.training.Derived`.
"""

from __future__ import annotations

import dataclasses

from baselax.errors import ConfigError
from baselax.training.config import (
  DEFAULT_EVAL_MAX_STEPS,
  OBS_STORAGES,
  Derived,
  Placement,
  TrainingConfig,
)

__all__ = ["AnakinConfig", "DEFAULT_EVAL_MAX_STEPS", "Derived", "OBS_STORAGES"]


@dataclasses.dataclass(frozen=True)
class AnakinConfig(TrainingConfig):
  """Configuration of an Anakin training run: a :class:`TrainingConfig` whose
  runs are ``num_seeds`` seeds compiled into one program, on devices.

  Attributes:
    num_seeds: independent runs compiled into one program (a ``vmap`` axis).
    num_devices: local devices to ``pmap`` over; ``None`` uses all of them.
    parallel: how the devices share the run: data (every seed spread over all devices, gradients
      averaged: one large run per seed), seeds (the seeds spread over the devices, each whole on one
      device, no collective: independent runs; num_seeds must be a multiple of the devices), groups
      (the devices form groups of devices_per_group; the seeds are spread over the groups and each
      seed is spread over its group's devices, averaging gradients within the group only: e.g. 8
      GPUs as 4 groups of 2), or auto (seeds when num_seeds > 1 is a multiple of the devices, else
      data). A seed's result does not depend on where it ran.
    devices_per_group: with parallel=groups, the devices in a group (it must divide the devices, and
      the groups the seeds).
  """

  num_seeds: int = 1
  num_devices: int | None = None
  parallel: str = "auto"
  devices_per_group: int | None = None

  def __post_init__(self, prioritized: bool | None = None):
    super().__post_init__(prioritized)
    for name in ("num_seeds", "num_devices", "devices_per_group"):
      value = getattr(self, name)
      if value is None and name != "num_seeds":
        continue
      if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{self.name_of(name)} must be a positive integer, got {value!r}.")
    if self.parallel not in ("auto", "data", "seeds", "groups"):
      raise ConfigError(
        f"{self.name_of('parallel')} must be auto, data, seeds or groups, got {self.parallel!r}."
      )
    if (self.parallel == "groups") != (self.devices_per_group is not None):
      raise ConfigError(
        "parallel=groups and devices_per_group go together: groups of "
        "devices_per_group devices each (e.g. --parallel groups --devices-per-group 2)."
      )

  def layout(self, num_devices: int, num_points: int = 1) -> str:
    """``"data"``, ``"seeds"`` or ``"groups"``: :attr:`parallel` resolved for ``num_devices``.

    ``num_points``: hyperparameter-sweep points (``baselax.anakin.sweep``);
    the independent runs are ``num_seeds * num_points``.

    Raises:
      ConfigError: ``parallel="seeds"`` or ``"groups"`` with runs that do not divide evenly.
    """
    runs = self.num_seeds * num_points
    if self.parallel == "auto":
      seeds = runs > 1 and num_devices > 1 and runs % num_devices == 0
      return "seeds" if seeds else "data"
    if self.parallel == "groups":
      size = self.devices_per_group
      assert size is not None  # __post_init__: groups and devices_per_group go together
      if num_devices % size or runs % (num_devices // size):
        raise ConfigError(
          f"parallel=groups makes groups of devices_per_group={size} devices, which "
          f"must divide the {num_devices} device(s), and the groups must divide the "
          f"{runs} run(s) (seeds x sweep points): pick devices_per_group among the "
          f"divisors of {num_devices} with {num_devices} / devices_per_group dividing "
          f"{runs}."
        )
    if self.parallel == "seeds" and runs % num_devices:
      what = (
        f"num_seeds ({self.num_seeds})"
        if num_points == 1
        else f"num_seeds x sweep points ({self.num_seeds} x {num_points} = {runs})"
      )
      raise ConfigError(
        f"parallel=seeds spreads the seeds over the devices, but {what} is not "
        f"a multiple of the {num_devices} device(s): use a multiple of "
        f"{num_devices} runs, or parallel=data."
      )
    return self.parallel

  def placement(self, num_devices: int = 1, num_points: int = 1) -> Placement:
    """The layout, the devices one run is spread over (all in ``data``, one in
    ``seeds``, a group's in ``groups``) and the runs (seeds x sweep points)."""
    layout = self.layout(num_devices, num_points)
    seed_devices = {"data": num_devices, "seeds": 1}.get(layout, self.devices_per_group or 1)
    return Placement(layout, seed_devices, self.num_seeds * num_points)
