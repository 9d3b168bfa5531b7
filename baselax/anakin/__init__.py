"""The Anakin trainer (Podracer, Hessel et al. 2021): the whole RL loop on device.

* :class:`AnakinConfig`: a frozen, typed configuration.
* :func:`make_train`: a pure ``train_fn(key) -> (state, metrics)`` for one run,
  jittable and vmappable over keys.
* :func:`train`: the runner (pmap over devices, vmap over seeds, compiled
  chunks with greedy evaluation in between, logging, checkpoints, resume).
* :class:`Checkpointer`: orbax checkpoints of the whole training state.
* :mod:`~baselax.anakin.distributed`: many processes/hosts on ``jax.distributed``.

Read ``loop.py`` top to bottom for the scanned step, ``runner.py`` for the
device wiring.

Names are imported on first use (see ``baselax/__init__.py``): the config
classes do not import gymnax, so they can be built before
``jax.distributed.initialize``.
"""

import importlib

_WHERE = {
    "AnakinConfig": "config", "Derived": "config",
    "TrainState": "loop", "make_anakin": "loop", "make_train": "loop",
    "Checkpointer": "checkpoint",
    "DistributedConfig": "distributed",
    "DEVICE_AXIS": "runner", "NonFiniteError": "runner", "TrainResult": "runner",
    "train": "runner",
}
_SUBMODULES = ("checkpoint", "config", "distributed", "loop", "replay", "runner")

__all__ = list(_WHERE)


def __getattr__(name):
  if name in _WHERE:
    return getattr(importlib.import_module(f"baselax.anakin.{_WHERE[name]}"), name)
  if name in _SUBMODULES:
    return importlib.import_module(f"baselax.anakin.{name}")
  raise AttributeError(f"module 'baselax.anakin' has no attribute {name!r}")


def __dir__():
  return sorted(__all__ + list(_SUBMODULES))
