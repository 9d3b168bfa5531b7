"""baselax: RL agents in JAX and an on-device (Anakin) trainer.

Sub-packages: ``baselax.agents`` (``BaseAgent``, ``DQN``, ``QRDQN``, the
registry), ``baselax.envs`` (the gymnax gym adapter), ``baselax.networks``
(network creators), ``baselax.replay`` (the Anakin trainer's replay),
``baselax.training`` (what both trainers share: config, chunk driver,
checkpoints, guards), ``baselax.anakin`` (the on-device trainer),
``baselax.hostloop`` (the Python-loop trainer) and ``baselax.experiment``
(the research run of any registered agent).

Sub-packages are imported on first use. gymnax creates JAX arrays when it is
imported, which starts JAX's backend, and ``jax.distributed.initialize`` must
run before that: so ``import baselax`` (and ``from baselax.anakin import
AnakinConfig``, and the agents and their registry) must not import gymnax.
"""

from baselax._lazy import lazy_attributes

try:  # one version source: the installed package's metadata (pyproject.toml)
  from importlib import metadata as _metadata

  __version__ = _metadata.version("baselax")
except _metadata.PackageNotFoundError:  # pragma: no cover - a checkout on sys.path
  __version__ = "0+unknown"
__all__ = [
  "agents",
  "anakin",
  "envs",
  "errors",
  "experiment",
  "hostloop",
  "metrics",
  "networks",
  "replay",
  "training",
]

__getattr__, __dir__ = lazy_attributes(__name__, {}, __all__)
