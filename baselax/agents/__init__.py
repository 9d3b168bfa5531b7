"""baselax.agents module provides RL agents implementations with JAX.

``BaseAgent`` is the contract (with :class:`AgentContract`, what an agent's
update honours); ``DQN`` and ``QRDQN`` are the library's agents, and
:mod:`baselax.agents.registry` names them for ``--agent``.
"""

from baselax.agents.base import AgentContract
from baselax.agents.base import BaseAgent
from baselax.agents.dqn import DQN
from baselax.agents.qrdqn import QRDQN

__all__ = ["AgentContract", "BaseAgent", "DQN", "QRDQN"]
