"""The Anakin trainer (Podracer, Hessel et al. 2021): the whole RL loop on device.

* :class:`AnakinConfig`: a frozen, typed configuration (the shared
  :class:`~baselax.training.TrainingConfig` plus seeds and devices).
* :func:`make_train`: a pure ``train_fn(key) -> (state, metrics)`` for one run,
  jittable and vmappable over keys.
* :func:`train`: the runner (pmap over devices, vmap over seeds, compiled
  chunks with greedy evaluation in between, logging, checkpoints, resume).
* :class:`Checkpointer`: orbax checkpoints of the whole training state
  (``baselax.training.checkpoint``, shared with the host loop).
* :class:`Sweep`: a grid of agent settings trained as one program (``sweep.py``).
* :mod:`~baselax.anakin.distributed`: many processes/hosts on ``jax.distributed``.

Read ``loop.py`` top to bottom for the scanned step, ``program.py`` for the
device wiring (the one place that introduces the device axis), ``runner.py``
for the chunk loop, ``contract.py`` for what an agent must offer a run.

Names are imported on first use (see ``baselax/__init__.py``): the config
classes do not import gymnax, so they can be built before
``jax.distributed.initialize``.
"""

from baselax._lazy import lazy_attributes

_WHERE = {
  "AnakinConfig": "config",
  "Derived": "baselax.training.config",
  "TrainState": "loop",
  "make_anakin": "loop",
  "make_train": "loop",
  "Checkpointer": "baselax.training.checkpoint",
  "check_agent": "baselax.learner.contract",
  "DistributedConfig": "distributed",
  "NonFiniteError": "baselax.training.guards",
  "DEVICE_AXIS": "program",
  "build": "program",
  "TrainResult": "runner",
  "train": "runner",
  "Sweep": "sweep",
}
_SUBMODULES = ("config", "distributed", "loop", "program", "runner", "sweep")

__all__ = list(_WHERE)

__getattr__, __dir__ = lazy_attributes(__name__, _WHERE, _SUBMODULES)
