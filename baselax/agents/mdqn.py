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
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax

from baselax.agents import base, dqn, hyperparams, q_config, value_learning
from baselax.errors import ConfigError


class MDQN(dqn.DQN):
  """Munchausen-DQN: DQN's API with the Munchausen target.

  Args:
    network: as for :class:`~baselax.agents.DQN`.
    env: as for DQN.
    learning_rate: as for DQN.
    discount_factor: as for DQN. Defaults to 0.99.
    epsilon_schedule: as for DQN.
    target_update_interval: as for DQN. Defaults to 50.
    munchausen_alpha: scale of the log-policy bonus, in [0, 1]. Defaults to
      0.9 (the paper's).
    munchausen_tau: entropy temperature (> 0). Defaults to 0.03 (the paper's).
    munchausen_l0: lower clip of ``tau * log pi`` (< 0). Defaults to -1 (the
      paper's). (``alpha=``, ``tau=``, ``l0=`` are the deprecated old names of
      these three.)
    **kwargs: DQN's keyword options ``huber_delta``, ``max_grad_norm``,
      ``optimizer``, ``noisy``; not ``double_dqn``.

  The TD error is ``r + alpha * clip(tau log pi(a|s), l0, 0) + discount *
  sum_a' pi(a'|s') (q'(s', a') - tau log pi(a'|s')) - q(s, a)`` with ``pi =
  softmax(q_target / tau)``; the loss is DQN's on it. With n-step batches the
  bonus is that of the window's first action and ``r`` the window's
  discounted reward.
  """

  # Its soft value averages over every next action, so an action mask is
  # not honoured: envs with one are refused (baselax.learner.contract).
  contract = dataclasses.replace(dqn.DQN.contract, action_mask=False)

  def __init__(
    self,
    network: base.NetworkFn,
    env: Any,
    learning_rate: float | optax.Schedule,
    discount_factor: float = 0.99,
    # DQN's documented default (the seed API's): one schedule made at import.
    epsilon_schedule: optax.Schedule = dqn.default_epsilon_schedule(),  # noqa: B008
    target_update_interval: int = 50,
    *,
    munchausen_alpha: float = 0.9,
    munchausen_tau: float = 0.03,
    munchausen_l0: float = -1.0,
    **kwargs: Any,
  ):
    old = {k: kwargs.pop(k) for k in ("alpha", "tau", "l0") if k in kwargs}
    if old:
      new = hyperparams.renamed_keywords("MDQN", old, {k: f"munchausen_{k}" for k in old})
      munchausen_alpha = new.get("munchausen_alpha", munchausen_alpha)
      munchausen_tau = new.get("munchausen_tau", munchausen_tau)
      munchausen_l0 = new.get("munchausen_l0", munchausen_l0)
    hyperparams.check_all(
      dict(
        munchausen_alpha=munchausen_alpha,
        munchausen_tau=munchausen_tau,
        munchausen_l0=munchausen_l0,
      )
    )
    check_no_double(kwargs.get("double_dqn") or kwargs.get("double"))
    self.munchausen_alpha, self.munchausen_tau, self.munchausen_l0 = (
      base.python_scalar(v) for v in (munchausen_alpha, munchausen_tau, munchausen_l0)
    )
    super().__init__(
      network,
      env,
      learning_rate,
      discount_factor,
      epsilon_schedule,
      target_update_interval,
      **kwargs,
    )

  def td_errors(
    self, online: Any, target: Any, data: Mapping[str, jax.Array], key: jax.Array | None = None
  ) -> tuple[jax.Array, jax.Array]:
    """Per-sample Munchausen TD errors ``(B,)`` and the online values ``(B, A)``."""
    online_key, target_key, target_tm1_key = self.noise_keys(key, 3)
    q_tm1 = self.network.apply(online, data["obs"], online_key)
    q_t = self.network.apply(target, data["next_obs"], target_key)
    q_target_tm1 = self.network.apply(target, data["obs"], target_tm1_key)
    td = jax.vmap(
      value_learning.munchausen_q_learning, in_axes=(0, 0, 0, 0, 0, 0, None, None, None)
    )(
      q_tm1,
      jnp.asarray(data["action"], jnp.int32),
      jnp.asarray(data["reward"], jnp.float32),
      self.discount(data),
      q_t,
      q_target_tm1,
      self.munchausen_alpha,
      self.munchausen_tau,
      self.munchausen_l0,
    )
    return td, q_tm1


def check_no_double(double_dqn: Any) -> None:
  """Refuses ``double_dqn=True``: M-DQN's target is the soft value of the
  softmax policy, with no greedy action to select."""
  if double_dqn:
    raise ConfigError(
      "double_dqn does not apply to mdqn: its target is the soft "
      "value of the softmax policy, with no greedy action to select."
    )


@dataclasses.dataclass(frozen=True)
class MDQNConfig(q_config.DQNConfig):
  """Munchausen-DQN's flags (defaults: the paper's alpha, tau and l0).

  Attributes:
    munchausen_alpha: scale of the log-policy bonus, in [0, 1] (0 = soft DQN).
    munchausen_tau: entropy temperature of the softmax policy (> 0).
    munchausen_l0: lower clip of tau * log pi in the bonus (< 0).
  """

  munchausen_alpha: float = 0.9
  munchausen_tau: float = 0.03
  munchausen_l0: float = -1.0

  def __post_init__(self):
    super().__post_init__()
    check_no_double(self.double_dqn)


def build(config: MDQNConfig, env: Any, sizes: Any) -> MDQN:
  """An :class:`MDQN` for ``env`` from its registry config."""
  return MDQN(
    q_config.q_network(config, env),
    env,
    munchausen_alpha=config.munchausen_alpha,
    munchausen_tau=config.munchausen_tau,
    munchausen_l0=config.munchausen_l0,
    huber_delta=config.huber_delta,
    **q_config.agent_kwargs(config, sizes),
  )
