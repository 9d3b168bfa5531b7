"""Environments: the gymnax gym adapter and space helpers.

Names are imported on first use: importing gymnax starts JAX's backend, and
agents (which read spaces through :mod:`baselax.envs.spaces`) must be
importable before ``jax.distributed.initialize``.
"""

from baselax._lazy import lazy_attributes

_WHERE = {
    "EnvStep": "gymnax_env", "GymnaxEnv": "gymnax_env", "make": "gymnax_env",
    "registered_ids": "gymnax_env",
    "env_spaces": "spaces", "to_gymnasium_space": "spaces",
}
_SUBMODULES = ("gymnax_env", "spaces")

__all__ = list(_WHERE)

__getattr__, __dir__ = lazy_attributes(__name__, _WHERE, _SUBMODULES)
