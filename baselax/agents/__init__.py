"""baselax.agents module provides RL agents implementations with JAX."""

from baselax.agents.base import BaseAgent
from baselax.agents.dqn import DQN

__all__ = ["BaseAgent", "DQN"]
