"""A classic host-loop trainer for environments that are not written in JAX.

The same ``BaseAgent`` objects and the same ``TrainingConfig`` fields, trained by
a Python loop over any ``gymnasium.vector.VectorEnv`` (Atari through ale-py,
envpool, a user's simulator, or a ``baselax.envs.GymnaxEnv``): jitted
``predict`` and ``update``, a numpy replay buffer in host memory, and the same
transition semantics as the Anakin trainer (``next_obs`` is the true final
observation at an episode's end; terminated and truncated kept apart).

* ``trainer.py``: :func:`train`, the loop.
* ``stepping.py``: stepping the env and storing transitions (gymnasium's
  three autoreset modes), greedy :func:`evaluate`.
* ``buffers.py``: :class:`ReplayBuffer` (any observation) and
  :class:`FrameStackReplay` (each frame of stacked frames once).

It is also the baseline that ``scripts/bench.py`` compares Anakin with: every
step crosses between Python and the accelerator, which Anakin never does.
"""

from baselax.hostloop.buffers import FrameStackReplay, ReplayBuffer
from baselax.hostloop.stepping import evaluate, greedy_actions
from baselax.hostloop.trainer import train

__all__ = ["FrameStackReplay", "ReplayBuffer", "evaluate", "greedy_actions", "train"]
