"""n-step returns from a window of one-step transitions of one env.

Sutton 1988; Hessel et al. 2018 ("Rainbow"): computed at sampling time from
``n`` consecutive steps of one env. The window stops at the first episode end
inside it; a window cut by truncation bootstraps from the true final
observation with ``gamma^k``, one cut by termination does not bootstrap.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

from baselax.replay.records import Batch


def window_return(reward: jax.Array, terminated: jax.Array, truncated: jax.Array, discount: float):
  """The k-step return of a window of ``n`` one-step transitions of one env.

  The window stops at the first episode end inside it (``k <= n`` steps)::

      reward   = sum_{i<k} discount^i * r_i
      discount = discount^k * (1 - terminated_{k-1})

  Args:
    reward, terminated, truncated: ``(n,)``.
    discount: the per-step discount ``gamma``.

  Returns:
    ``(k, reward, discount)``.
  """
  chex.assert_rank(reward, 1)
  n = reward.shape[0]
  done = jnp.logical_or(terminated, truncated)
  # Step i is inside the window if no episode ended before it.
  ended_before = jnp.concatenate([jnp.zeros((1,), bool), jnp.cumsum(done[:-1]) > 0])
  inside = jnp.logical_not(ended_before)
  k = jnp.sum(inside)  # window length, 1..n
  powers = discount ** jnp.arange(n, dtype=jnp.float32)
  total = jnp.sum(jnp.where(inside, powers * reward, 0.0))
  bootstrap = (discount ** k.astype(jnp.float32)) * (1.0 - terminated[k - 1].astype(jnp.float32))
  return k, total, bootstrap


def n_step_transition(sequence: Batch, discount: float) -> Batch:
  """Reduces ``n`` consecutive one-step transitions of one env to one n-step transition.

  See :func:`window_return`; ``next_obs = next_obs_{k-1}`` (the true final
  obs if the episode ended), so a window cut by truncation bootstraps from the
  true final observation with ``discount^k``, and one cut by termination does
  not bootstrap.

  Args:
    sequence: dict of ``(n, ...)`` arrays with keys ``obs``, ``action``,
      ``reward``, ``terminated``, ``truncated``, ``next_obs``.
    discount: the per-step discount ``gamma``.

  Returns:
    One transition (no leading axis) with ``obs``, ``action``, ``reward``,
    ``terminated``, ``next_obs`` and ``discount``.
  """
  k, reward, bootstrap = window_return(
    sequence["reward"], sequence["terminated"], sequence["truncated"], discount
  )
  last = k - 1
  return {
    "obs": jax.tree.map(lambda x: x[0], sequence["obs"]),
    "action": sequence["action"][0],
    "reward": reward,
    "terminated": sequence["terminated"][last],
    "next_obs": jax.tree.map(lambda x: x[last], sequence["next_obs"]),
    "discount": bootstrap,
  }
