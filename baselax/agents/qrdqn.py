"""QR-DQN (Dabney, Rowland, Bellemare & Munos 2018, "Distributional
reinforcement learning with quantile regression", arXiv:1710.10044).

QR-DQN learns ``N`` quantiles of the return of every action instead of its
mean, with the quantile Huber loss. It is DQN with another loss: acting
(epsilon-greedy on the mean of the quantiles), the optimizer step, the device
average and the target copy are :class:`~baselax.agents.DQN`'s.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import chex
import jax
import jax.numpy as jnp
import optax

from baselax.agents import base, dqn, hyperparams, q_config, value_learning


def quantile_huber_loss(
  dist_tm1: chex.Array, dist_target: chex.Array, kappa: float = 1.0
) -> chex.Array:
  """Quantile-regression Huber loss of one transition (Dabney et al. 2018, eq. 10).

  Args:
    dist_tm1: ``[N]`` predicted quantiles of the taken action, at the
      midpoints ``tau_i = (i + 0.5) / N``.
    dist_target: ``[N']`` target samples ``r + discount * z'`` (held fixed).
    kappa: the Huber threshold (> 0).

  Returns:
    ``[]`` the loss, summed over predicted quantiles, averaged over targets.
  """
  chex.assert_rank([dist_tm1, dist_target], 1)
  n = dist_tm1.shape[0]
  taus = (jnp.arange(n, dtype=jnp.float32) + 0.5) / n
  u = jax.lax.stop_gradient(dist_target)[None, :] - dist_tm1[:, None]  # [N, N']
  huber = optax.huber_loss(u, delta=kappa)
  weight = jnp.abs(taus[:, None] - (u < 0).astype(jnp.float32))
  return jnp.sum(jnp.mean(weight * huber / kappa, axis=1))


def quantile_q_learning(
  dist_tm1: chex.Array,
  a_tm1: chex.Numeric,
  r_t: chex.Numeric,
  discount_t: chex.Numeric,
  dist_t: chex.Array,
  dist_t_selector: chex.Array,
  kappa: float = 1.0,
) -> tuple[chex.Array, chex.Array]:
  """QR-DQN's loss and TD error for one transition.

  The next action is greedy on the mean quantiles of ``dist_t_selector`` (the
  target net's own for QR-DQN, the online net's for its Double form); the
  target quantiles are ``r_t + discount_t * dist_t[a*]``, so ``discount_t =
  0`` (termination) leaves all of them at ``r_t``, and a truncated transition
  bootstraps with ``discount_t = gamma`` (``gamma^k`` for a k-step window).

  Args:
    dist_tm1: ``[A, N]`` online quantiles at the start state.
    a_tm1: ``[]`` action taken.
    r_t: ``[]`` reward (n-step: the discounted sum).
    discount_t: ``[]`` bootstrap discount.
    dist_t: ``[A, N]`` target-network quantiles at the next state.
    dist_t_selector: ``[A, N]`` quantiles whose means pick the next action.
    kappa: Huber threshold.

  Returns:
    ``([]`` loss, ``[]`` TD error of the means ``mean(target) - mean(dist_tm1[a])``).
  """
  chex.assert_rank([dist_tm1, a_tm1, r_t, discount_t, dist_t, dist_t_selector], [2, 0, 0, 0, 2, 2])
  a_t = jnp.argmax(jnp.mean(dist_t_selector, axis=-1))
  target = jax.lax.stop_gradient(r_t + discount_t * value_learning.select(dist_t, a_t))
  predicted = value_learning.select(dist_tm1, a_tm1)
  return (quantile_huber_loss(predicted, target, kappa), jnp.mean(target) - jnp.mean(predicted))


class QRDQN(dqn.DQN):
  """QR-DQN: DQN's API (``Params``, ``PolicyOutput``, ``OptimState``) on quantiles.

  Args:
    *args: as for :class:`~baselax.agents.DQN`; the network returns quantiles
      ``(B, A, N)``, e.g. ``baselax.networks.mlp_q_network(atoms=N)``.
    **kwargs: as for :class:`~baselax.agents.DQN`.
    kappa: the quantile Huber loss threshold. Defaults to 1.

  The loss is ``mean_b(weight_b * quantile_huber(z_b, r_b + discount_b *
  z'_b))`` with ``discount`` = ``data["discount"]`` when present (n-step),
  else ``gamma * (1 - terminated)``. ``OptimOutput.td_error`` is the TD error
  of the quantile means (prioritized replay's priority).
  """

  # The quantile Huber loss compares every pair of quantiles: (B, N, N).
  contract = dataclasses.replace(dqn.DQN.contract, pairwise_loss=True)

  def __init__(self, *args: Any, kappa: float = 1.0, **kwargs: Any):
    self.kappa = base.python_scalar(hyperparams.check("kappa", kappa))
    super().__init__(*args, **kwargs)

  def action_values(self, online: Any, obs: jax.Array, rng: jax.Array | None = None) -> jax.Array:
    """Q-values ``(B, A)``: the mean of each action's quantiles."""
    return jnp.mean(self.quantiles(online, obs, rng), axis=-1)

  def quantiles(self, params: Any, obs: jax.Array, rng: jax.Array | None = None) -> jax.Array:
    """Quantiles ``(B, A, N)``; refuses a network without a quantile axis."""
    dist = self.network.apply(params, obs, rng)
    if dist.ndim != 3:
      raise ValueError(
        f"QRDQN needs a network returning quantiles (B, A, N), got "
        f"shape {dist.shape}; use e.g. mlp_q_network(atoms=N)."
      )
    return dist

  def loss(
    self, online: Any, target: Any, data: Mapping[str, jax.Array], key: jax.Array | None = None
  ) -> tuple[jax.Array, dqn.DQN.OptimOutput]:
    online_key, target_key, selector_key = self.noise_keys(key, 3)
    dist_tm1 = self.quantiles(online, data["obs"], online_key)
    dist_t = self.quantiles(target, data["next_obs"], target_key)
    selector = self.quantiles(online, data["next_obs"], selector_key) if self.double_dqn else dist_t
    selector = self.mask_next(selector, data)  # valid next actions only
    discount_t = self.discount(data)
    per_sample, td = jax.vmap(quantile_q_learning, in_axes=(0, 0, 0, 0, 0, 0, None))(
      dist_tm1,
      jnp.asarray(data["action"], jnp.int32),
      jnp.asarray(data["reward"], jnp.float32),
      discount_t,
      dist_t,
      selector,
      self.kappa,
    )
    if "weight" in data:
      per_sample = jnp.asarray(data["weight"], jnp.float32) * per_sample
    loss = jnp.mean(per_sample)
    return loss, self.OptimOutput(loss=loss, q_mean=jnp.mean(dist_tm1), td_error=td)


@dataclasses.dataclass(frozen=True)
class QRDQNConfig(q_config.QLearningConfig):
  """QR-DQN's flags.

  Attributes:
    learning_rate: Adam step size (at the start, if decayed).
    num_quantiles: quantiles per action, N (>= 1).
    kappa: threshold of the quantile Huber loss (> 0).
  """

  learning_rate: float = 5e-4
  num_quantiles: int = 21
  kappa: float = 1.0


def build(config: QRDQNConfig, env: Any, sizes: Any) -> QRDQN:
  """A :class:`QRDQN` for ``env`` from its registry config."""
  return QRDQN(
    q_config.q_network(config, env, atoms=config.num_quantiles),
    env,
    kappa=config.kappa,
    double_dqn=config.double_dqn,
    **q_config.agent_kwargs(config, sizes),
  )
