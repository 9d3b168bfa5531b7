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


def sorted_categorical_projection(
  z_p: chex.Array, probs: chex.Array, z_q: chex.Array
) -> chex.Array:
  """Projects a categorical on non-decreasing atoms ``z_p`` onto the evenly spaced support ``z_q``.

  Bellemare et al. 2017, Algorithm 1, in O(N + K): each atom ``z_p[j]`` is
  clipped to ``[z_q[0], z_q[-1]]``; in index units ``b_j = (z_p[j] - v_min)
  / dz`` its mass goes ``1 - frac_j`` to atom ``floor(b_j)`` and ``frac_j``
  to the next (``frac_j = b_j - floor(b_j)``), as the triangular kernel of
  :func:`categorical_projection` does. Because ``z_p`` is sorted the
  atoms that share a floor are consecutive, so each output atom's share is a
  difference of two cumulative sums taken at the ends of those runs.

  Why not a scatter-add: the run ends are written with a scatter that *sets*
  distinct indices, so the result does not depend on the order of additions
  on any backend (a scatter-add with repeated indices is atomic, hence
  unordered, on a GPU); the kernel form is ``O(N K)`` and, batched, its
  ``(B, N, K)`` weights dominated C51's update on CartPole
  (``docs/results/classic/NOTES.md``).

  Args:
    z_p: ``[N]`` atoms of the distribution to project, **non-decreasing**
      (``r + discount * z`` with ``discount >= 0`` always is). Unsorted
      atoms give a wrong answer, silently: use :func:`categorical_projection`.
    probs: ``[N]`` their probabilities (non-negative).
    z_q: ``[K]`` the support, evenly spaced and increasing (``K >= 2``).

  Returns:
    ``[K]`` probabilities on ``z_q`` (they sum to ``sum(probs)``). Its
    gradient is not the projection's where the running max ties (an atom
    of zero probability): use it as a target, under ``stop_gradient``.
  """
  chex.assert_rank([z_p, probs, z_q], 1)
  num_atoms = z_q.shape[0]
  v_min, v_max = z_q[0], z_q[-1]
  # Clipped in index units: a value clipped to v_max can divide to a hair
  # above K - 1, and the mass it sends above the last atom would be lost.
  b = jnp.clip((z_p - v_min) / ((v_max - v_min) / (num_atoms - 1)), 0, num_atoms - 1)
  floor = jnp.floor(b)
  frac = b - floor
  floor = floor.astype(jnp.int32)
  # [2, N]: the mass each atom sends to its floor, and to the atom above.
  shares = jnp.stack([probs * (1.0 - frac), probs * frac])
  running = jax.lax.associative_scan(jnp.add, shares, axis=1)
  # The last atom of each run of equal floors writes its running sums at the
  # run's floor; every other atom writes out of range (dropped).
  run_end = jnp.concatenate([floor[1:] != floor[:-1], jnp.ones((1,), bool)])
  at_ends = (
    jnp.zeros((2, num_atoms), probs.dtype)
    .at[:, jnp.where(run_end, floor, num_atoms)]
    .set(running, mode="drop")
  )
  # Running sums of non-negative shares do not decrease (a rounding step
  # down is at most an ulp, and the max keeps the shares >= 0), so a running
  # max carries them over floors no atom has: up_to[:, i] is the mass of the
  # atoms with floor <= i.
  up_to = jax.lax.associative_scan(jnp.maximum, at_ends, axis=1)
  per_floor = jnp.diff(up_to, axis=1, prepend=0.0)
  return per_floor[0] + jnp.pad(per_floor[1, :-1], (1, 0))


def categorical_projection(z_p: chex.Array, probs: chex.Array, z_q: chex.Array) -> chex.Array:
  """Projects a categorical on atoms ``z_p``, in any order, onto the evenly spaced support ``z_q``.

  Bellemare et al. 2017, Algorithm 1, in O(N K) (C51's loss uses
  :func:`sorted_categorical_projection`, O(N + K)): each atom is clipped to
  ``[z_q[0], z_q[-1]]`` and its mass split between the two nearest atoms of
  ``z_q`` in proportion to closeness, written as a triangular kernel, which
  needs no special case when an atom lands exactly on the support::

    out[j] = sum_i probs[i] * clip(1 - |clip(z_p[i]) - z_q[j]| / dz, 0, 1)

  Args:
    z_p: ``[N]`` atoms of the distribution to project.
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
  return probs @ weights


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
  target = jax.lax.stop_gradient(sorted_categorical_projection(target_z, target_p, q_atoms_tm1))
  return -jnp.sum(target * jax.nn.log_softmax(value_learning.select(q_logits_tm1, a_tm1)))
