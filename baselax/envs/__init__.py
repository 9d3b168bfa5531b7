"""Environments: the env protocol, the gym adapter, the suite adapters.

``make(env_id)`` builds any env the Anakin trainer takes: a gymnax id
(``"CartPole-v1"``) or ``"suite:name"`` for Craftax, Jumanji, Navix and
XLand-MiniGrid (:mod:`baselax.envs.suites`). Every env implements
:class:`JaxEnv` (:mod:`baselax.envs.protocol`), and is a
``gymnasium.vector.VectorEnv`` too.

Names are imported on first use: importing gymnax starts JAX's backend, and
agents (which read spaces through :mod:`baselax.envs.spaces`) must be
importable before ``jax.distributed.initialize``.
"""

from baselax._lazy import lazy_attributes

_WHERE = {
  "EnvStep": "protocol",
  "JaxEnv": "protocol",
  "JaxVectorEnv": "protocol",
  "action_mask": "protocol",
  "vector_env": "protocol",
  "GymnaxEnv": "gymnax_env",
  "make": "suites",
  "registered_ids": "suites",
  "SUITES": "suites",
  "env_spaces": "spaces",
  "to_gymnasium_space": "spaces",
}
_SUBMODULES = (
  "protocol",
  "observations",
  "suite_env",
  "suites",
  "gymnax_env",
  "minatar_env",
  "spaces",
  "craftax_env",
  "jumanji_env",
  "navix_env",
  "xminigrid_env",
)

__all__ = list(_WHERE)

__getattr__, __dir__ = lazy_attributes(__name__, _WHERE, _SUBMODULES)
