"""Pure categorical (C51) maths on single transitions (batch with ``jax.vmap``).

Bellemare, Dabney & Munos 2017, "A distributional perspective on
reinforcement learning" (arXiv:1707.06887). A return distribution is a
categorical over fixed, evenly spaced atoms ``z`` (the support) with
probabilities ``softmax(logits)``. Names carry time as in rlax.
"""

import chex
import jax
import jax.numpy as jnp

from baselax.agents import value_learning


def categorical_projection(z_p: chex.Array, probs: chex.Array, z_q: chex.Array) -> chex.Array:
  """Projects a categorical on atoms ``z_p`` onto the evenly spaced support ``z_q``.

  Bellemare et al. 2017, Algorithm 1: each atom ``z_p[i]`` is clipped to
  ``[z_q[0], z_q[-1]]`` and its mass split between the two nearest atoms of
  ``z_q`` in proportion to closeness (all of it on one atom when it lands
  there exactly). Written as a triangular kernel, which is the same split and
  needs no special case when ``floor == ceil``::

    out[j] = sum_i probs[i] * clip(1 - |clip(z_p[i]) - z_q[j]| / dz, 0, 1)

  Args:
    z_p: ``[N]`` atoms of the distribution to project (e.g. ``r + discount * z``).
    probs: ``[N]`` their probabilities.
    z_q: ``[K]`` the support, evenly spaced and increasing (``K >= 2``).

  Returns:
    ``[K]`` probabilities on ``z_q`` (they sum to ``sum(probs)``).
  """
  chex.assert_rank([z_p, probs, z_q], 1)
  v_min, v_max = z_q[0], z_q[-1]
  delta_z = (v_max - v_min) / (z_q.shape[0] - 1)
  clipped = jnp.clip(z_p, v_min, v_max)
  weights = jnp.clip(1.0 - jnp.abs(clipped[:, None] - z_q[None, :]) / delta_z, 0.0, 1.0)
  return probs @ weights  # a dot, which XLA:CPU keeps fast under vmap


def categorical_q_values(atoms: chex.Array, logits: chex.Array) -> chex.Array:
  """Action values ``[..., A]``: the mean of each action's categorical ``[..., A, K]``."""
  return jnp.sum(jax.nn.softmax(logits, axis=-1) * atoms, axis=-1)


def categorical_q_learning(
  q_atoms_tm1: chex.Array,
  q_logits_tm1: chex.Array,
  a_tm1: chex.Numeric,
  r_t: chex.Numeric,
  discount_t: chex.Numeric,
  q_atoms_t: chex.Array,
  q_logits_t: chex.Array,
  q_t_selector: chex.Array = None,
) -> chex.Array:
  """C51's loss for one transition: cross-entropy to the projected target.

  The next action is greedy on ``q_t_selector`` (``[A]`` action values: the
  online network's for the Double form) or, when it is ``None``, on the mean
  of the target categoricals ``q_logits_t``. The target distribution
  ``r_t + discount_t * z`` with the next action's probabilities is projected
  onto ``q_atoms_tm1`` (held fixed); ``discount_t = 0`` (termination) puts all
  of its mass on ``r_t``, a truncated transition bootstraps with ``gamma``
  (``gamma^k`` for a k-step window). Same maths as
  ``rlax.categorical_q_learning`` / ``rlax.categorical_double_q_learning``.

  Args:
    q_atoms_tm1: ``[K]`` support of the online distribution.
    q_logits_tm1: ``[A, K]`` online logits at the start state.
    a_tm1: ``[]`` action taken.
    r_t: ``[]`` reward (n-step: the discounted sum).
    discount_t: ``[]`` bootstrap discount.
    q_atoms_t: ``[K]`` support of the target distribution.
    q_logits_t: ``[A, K]`` target-network logits at the next state.
    q_t_selector: optional ``[A]`` values that pick the next action.

  Returns:
    ``[]`` the cross-entropy ``-sum_j target_j log p_j`` (also the priority
    Rainbow uses for prioritized replay).
  """
  chex.assert_rank(
    [q_atoms_tm1, q_logits_tm1, a_tm1, r_t, discount_t, q_atoms_t, q_logits_t],
    [1, 2, 0, 0, 0, 1, 2],
  )
  if q_t_selector is None:
    q_t_selector = categorical_q_values(q_atoms_t, q_logits_t)
  chex.assert_rank(q_t_selector, 1)
  a_t = jnp.argmax(q_t_selector)
  target_z = r_t + discount_t * q_atoms_t
  target_p = jax.nn.softmax(value_learning.select(q_logits_t, a_t))
  target = jax.lax.stop_gradient(categorical_projection(target_z, target_p, q_atoms_tm1))
  return -jnp.sum(target * jax.nn.log_softmax(value_learning.select(q_logits_tm1, a_tm1)))
