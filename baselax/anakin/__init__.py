"""The Anakin trainer (Podracer, Hessel et al. 2021): the whole RL loop on device.

* :class:`AnakinConfig`: a frozen, typed configuration.
* :func:`make_train`: a pure ``train_fn(key) -> (state, metrics)`` for one run,
  jittable and vmappable over keys.
* :func:`train`: the runner (pmap over devices, vmap over seeds, compiled
  chunks with greedy evaluation in between, logging, checkpoints, resume).
* :class:`Checkpointer`: orbax checkpoints of the whole training state.

Read ``loop.py`` top to bottom for the scanned step, ``runner.py`` for the
device wiring.
"""

from baselax.anakin.config import AnakinConfig
from baselax.anakin.config import Derived
from baselax.anakin.loop import TrainState
from baselax.anakin.loop import make_anakin
from baselax.anakin.loop import make_train
from baselax.anakin.checkpoint import Checkpointer
from baselax.anakin.runner import DEVICE_AXIS
from baselax.anakin.runner import NonFiniteError
from baselax.anakin.runner import TrainResult
from baselax.anakin.runner import train

__all__ = ["AnakinConfig", "Derived", "TrainState", "make_anakin", "make_train",
           "Checkpointer", "DEVICE_AXIS", "NonFiniteError", "TrainResult", "train"]
