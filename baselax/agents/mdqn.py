"""Munchausen-DQN (Vieillard, Pietquin & Geist 2020, "Munchausen reinforcement
learning", arXiv:2007.14430).

M-DQN adds the scaled log-policy of the action taken to the reward and
bootstraps from the soft (entropy-regularised) value of the target
network's softmax policy. It is DQN with another TD error
(:func:`~baselax.agents.value_learning.munchausen_q_learning`); acting,
the loss shape (``0.5 td^2`` or Huber), the optimizer step, the device
average and the target copy are :class:`~baselax.agents.DQN`'s.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional, Tuple, Union

import jax
import jax.numpy as jnp
import optax

from baselax.agents import base
from baselax.agents import dqn
from baselax.agents import q_config
from baselax.agents import value_learning
from baselax.errors import ConfigError


def check_munchausen(alpha: Any, tau: Any, l0: Any) -> None:
  """Refuses Munchausen settings out of range (``ConfigError`` naming the
  field); a traced (swept) value was checked on the host and is skipped."""
  traced = base.is_traced
  if not traced(alpha) and not 0.0 <= alpha <= 1.0:
    raise ConfigError(f"munchausen_alpha must be in [0, 1], got {alpha!r}.")
  if not traced(tau) and not tau > 0:
    raise ConfigError(f"munchausen_tau must be > 0, got {tau!r}.")
  if not traced(l0) and not l0 < 0:
    raise ConfigError(f"munchausen_l0 must be < 0, got {l0!r}.")


class MDQN(dqn.DQN):
  """Munchausen-DQN: DQN's API with the Munchausen target.

  Args:
    network: as for :class:`~baselax.agents.DQN`.
    env: as for DQN.
    learning_rate: as for DQN.
    discount_factor: as for DQN. Defaults to 0.99.
    epsilon_schedule: as for DQN.
    target_update_interval: as for DQN. Defaults to 50.
    alpha: scale of the log-policy bonus, in [0, 1]. Defaults to 0.9 (the paper's).
    tau: entropy temperature (> 0). Defaults to 0.03 (the paper's).
    l0: lower clip of ``tau * log pi`` (< 0). Defaults to -1 (the paper's).
    **kwargs: DQN's keyword options ``huber_delta``, ``max_grad_norm``,
      ``optimizer``, ``noisy``; not ``double``.

  The TD error is ``r + alpha * clip(tau log pi(a|s), l0, 0) + discount *
  sum_a' pi(a'|s') (q'(s', a') - tau log pi(a'|s')) - q(s, a)`` with ``pi =
  softmax(q_target / tau)``; the loss is DQN's on it. With n-step batches the
  bonus is that of the window's first action and ``r`` the window's
  discounted reward.
  """

  # Its soft value averages over every next action, so an action mask is
  # not honoured: envs with one are refused (baselax.anakin.contract).
  contract = dataclasses.replace(dqn.DQN.contract, action_mask=False)

  def __init__(self, network: base.NetworkFn, env: Any,
               learning_rate: Union[float, optax.Schedule],
               discount_factor: float = 0.99,
               epsilon_schedule: optax.Schedule = dqn.default_epsilon_schedule(),
               target_update_interval: int = 50, *, alpha: float = 0.9,
               tau: float = 0.03, l0: float = -1.0, **kwargs: Any):
    check_munchausen(alpha, tau, l0)
    if kwargs.get("double"):
      raise ConfigError("MDQN has no Double form: its target is the soft value of the "
                        "softmax policy, with no greedy action to select.")
    self.alpha, self.tau, self.l0 = (base.python_scalar(v) for v in (alpha, tau, l0))
    super().__init__(network, env, learning_rate, discount_factor, epsilon_schedule,
                     target_update_interval, **kwargs)

  def td_errors(self, online: Any, target: Any, data: Mapping[str, jax.Array],
                key: Optional[jax.Array] = None) -> Tuple[jax.Array, jax.Array]:
    """Per-sample Munchausen TD errors ``(B,)`` and the online values ``(B, A)``."""
    online_key, target_key, target_tm1_key = self.noise_keys(key, 3)
    q_tm1 = self.network.apply(online, data["obs"], online_key)
    q_t = self.network.apply(target, data["next_obs"], target_key)
    q_target_tm1 = self.network.apply(target, data["obs"], target_tm1_key)
    td = jax.vmap(value_learning.munchausen_q_learning,
                  in_axes=(0, 0, 0, 0, 0, 0, None, None, None))(
        q_tm1, jnp.asarray(data["action"], jnp.int32),
        jnp.asarray(data["reward"], jnp.float32), self.discount(data), q_t,
        q_target_tm1, self.alpha, self.tau, self.l0)
    return td, q_tm1


@dataclasses.dataclass(frozen=True)
class MDQNConfig(q_config.QLearningConfig):
  """Munchausen-DQN's flags (defaults: the paper's alpha, tau and l0).

  Attributes:
    munchausen_alpha: scale of the log-policy bonus, in [0, 1] (0 = soft DQN).
    munchausen_tau: entropy temperature of the softmax policy (> 0).
    munchausen_l0: lower clip of tau * log pi in the bonus (< 0).
    huber: Huber loss (delta 1) instead of 0.5 td^2.
  """
  munchausen_alpha: float = 0.9
  munchausen_tau: float = 0.03
  munchausen_l0: float = -1.0
  huber: bool = False

  def __post_init__(self):
    super().__post_init__()
    check_munchausen(self.munchausen_alpha, self.munchausen_tau, self.munchausen_l0)
    if self.double_dqn:
      raise ConfigError("double_dqn does not apply to mdqn: its target is the soft "
                        "value of the softmax policy, with no greedy action to select.")


def build(config: MDQNConfig, env: Any, sizes: Any) -> MDQN:
  """An :class:`MDQN` for ``env`` from its registry config (its config refuses
  ``double_dqn``: the soft value replaces the max, so no action is selected)."""
  return MDQN(q_config.q_network(config, env), env, alpha=config.munchausen_alpha,
              tau=config.munchausen_tau, l0=config.munchausen_l0,
              huber_delta=1.0 if config.huber else None,
              **q_config.agent_kwargs(config, sizes))
