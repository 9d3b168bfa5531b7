"""baselax: RL agents in JAX and an on-device (Anakin) trainer.

Sub-packages: ``baselax.agents`` (``BaseAgent``, ``DQN``), ``baselax.envs``
(the gymnax gym adapter), ``baselax.networks`` (network creators) and
``baselax.anakin`` (the trainer).

Sub-packages are imported on first use. gymnax creates JAX arrays when it is
imported, which starts JAX's backend, and ``jax.distributed.initialize`` must
run before that: so ``import baselax`` (and ``from baselax.anakin import
AnakinConfig``) must not import gymnax.
"""

import importlib

__version__ = "0.1.0"
__all__ = ["agents", "anakin", "envs", "hostloop", "networks", "runs"]


def __getattr__(name):
  if name in __all__:
    return importlib.import_module(f"baselax.{name}")
  raise AttributeError(f"module 'baselax' has no attribute {name!r}")
