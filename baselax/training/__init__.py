"""What both trainers share, below them: the run's settings and sizes, the
chunk driver, checkpoints, the guards that stop a run, and how a program is
compiled.

* :mod:`~baselax.training.config`: :class:`TrainingConfig` (what every
  trainer is configured with) and :class:`Derived` (the loop sizes).
* :mod:`~baselax.training.driver`: the chunk loop (run a chunk, record it,
  check it, save or stop).
* :mod:`~baselax.training.checkpoint`: :class:`Checkpointer`, orbax
  checkpoints with manifests.
* :mod:`~baselax.training.shards`: every process's part of a multi-process
  run's checkpoints, and the step they all resume from.
* :mod:`~baselax.training.jsonarrays`: numpy arrays as JSON, for what a
  trainer keeps beside a checkpoint (the host loop's env snapshots).
* :mod:`~baselax.training.guards`: Ctrl-C and SIGTERM as stop requests, the
  non-finite guard, what cannot be resumed.
* :mod:`~baselax.training.lowering`: the compiler options a trainer compiles
  an agent's program with.

The Anakin trainer (``baselax.anakin``) and the host loop
(``baselax.hostloop``) both build on these; nothing here imports either.
"""

from baselax._lazy import lazy_attributes

_WHERE = {
  "TrainingConfig": "config",
  "Derived": "config",
  "Checkpointer": "checkpoint",
  "NonFiniteError": "guards",
  "drive": "driver",
}
_SUBMODULES = ("checkpoint", "config", "driver", "guards", "jsonarrays", "lowering", "shards")

__all__ = list(_WHERE)

__getattr__, __dir__ = lazy_attributes(__name__, _WHERE, _SUBMODULES)
