"""baselax: RL agents in JAX and an on-device (Anakin) trainer.

Sub-packages: ``baselax.agents`` (``BaseAgent``, ``DQN``), ``baselax.envs``
(the gymnax gym adapter), ``baselax.networks`` (network creators) and
``baselax.anakin`` (the trainer).
"""

from baselax import agents
from baselax import envs
from baselax import networks

__version__ = "0.1.0"
__all__ = ["agents", "envs", "networks"]
