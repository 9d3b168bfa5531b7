"""Environments: the gymnax gym adapter and space helpers."""

from baselax.envs.gymnax_env import EnvStep
from baselax.envs.gymnax_env import GymnaxEnv
from baselax.envs.gymnax_env import make
from baselax.envs.gymnax_env import registered_ids
from baselax.envs.spaces import env_spaces
from baselax.envs.spaces import to_gymnasium_space

__all__ = ["EnvStep", "GymnaxEnv", "make", "registered_ids", "env_spaces",
           "to_gymnasium_space"]
