"""A classic host-loop trainer for environments that are not written in JAX.

The same ``BaseAgent`` objects and the same ``TrainingConfig`` fields, trained by
a Python loop over any ``gymnasium.vector.VectorEnv`` (Atari through ale-py,
envpool, a user's simulator, or a ``baselax.envs.GymnaxEnv``): the Anakin
trainer's replay (``baselax.replay``: n-step, prioritized, and frame stacks
kept one frame a step) and learning step (``baselax.learner``), jitted, and
the same transition semantics (``next_obs`` is the true final observation at
an episode's end; terminated and truncated kept apart).

* ``trainer.py``: :func:`train`, the loop.
* ``stepping.py``: stepping the env into step records (gymnasium's three
  autoreset modes), greedy :func:`evaluate`.

It is also the baseline that ``scripts/bench.py`` compares Anakin with: every
step crosses between Python and the accelerator, which Anakin never does.
"""

from baselax.hostloop.stepping import evaluate, greedy_actions
from baselax.hostloop.trainer import train

__all__ = ["evaluate", "greedy_actions", "train"]
