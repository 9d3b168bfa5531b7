"""baselax.agents module provides RL agents implementations with JAX.

``BaseAgent`` is the contract (with :class:`AgentContract`, what an agent's
update honours); ``DQN``, ``QRDQN``, ``C51`` (also Rainbow's core) and
``MDQN`` are the library's agents, and
:mod:`baselax.agents.registry` names them for ``--agent``.
"""

from baselax.agents.base import AgentContract, BaseAgent
from baselax.agents.c51 import C51
from baselax.agents.dqn import DQN
from baselax.agents.mdqn import MDQN
from baselax.agents.qrdqn import QRDQN

__all__ = ["AgentContract", "BaseAgent", "C51", "DQN", "MDQN", "QRDQN"]
