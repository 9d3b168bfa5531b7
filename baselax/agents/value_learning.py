"""Pure value-learning maths on single transitions (batch with ``jax.vmap``).

Names carry time as in rlax: ``q_tm1`` are action values at the state where
the action ``a_tm1`` was taken, ``r_t`` and ``discount_t`` come with the next
state, ``q_t`` are the (target) action values there.
"""

import chex
import jax
import jax.numpy as jnp


def q_learning(
  q_tm1: chex.Array,
  a_tm1: chex.Numeric,
  r_t: chex.Numeric,
  discount_t: chex.Numeric,
  q_t: chex.Array,
) -> chex.Array:
  """Q-learning TD error for one transition (Watkins & Dayan 1992; Mnih et al. 2015).

  ``td = r_t + discount_t * max_a q_t[a] - q_tm1[a_tm1]``. The target is held
  fixed (``stop_gradient``). ``discount_t`` is ``gamma * (1 - terminated)``:
  a time-limit truncation is not a termination and keeps ``gamma``.

  Args:
    q_tm1: ``[A]`` online action values at the start state.
    a_tm1: ``[]`` action taken.
    r_t: ``[]`` reward.
    discount_t: ``[]`` discount (0 at terminal transitions).
    q_t: ``[A]`` target-network action values at the next state.

  Returns:
    ``[]`` TD error.
  """
  chex.assert_rank([q_tm1, a_tm1, r_t, discount_t, q_t], [1, 0, 0, 0, 1])
  target = r_t + discount_t * jnp.max(q_t)
  return jax.lax.stop_gradient(target) - q_tm1[a_tm1]


def double_q_learning(
  q_tm1: chex.Array,
  a_tm1: chex.Numeric,
  r_t: chex.Numeric,
  discount_t: chex.Numeric,
  q_t_value: chex.Array,
  q_t_selector: chex.Array,
) -> chex.Array:
  """Double Q-learning TD error for one transition (van Hasselt et al. 2016).

  The online network picks the next action and the target network values it,
  which removes most of Q-learning's overestimation:
  ``td = r_t + discount_t * q_t_value[argmax_a q_t_selector[a]] - q_tm1[a_tm1]``.

  Args are those of :func:`q_learning`, with ``q_t`` split in two:
  ``q_t_value`` ``[A]``, the target network's values at the next state, and
  ``q_t_selector`` ``[A]``, the online network's, which pick the action.
  Returns the ``[]`` TD error.
  """
  chex.assert_rank([q_tm1, a_tm1, r_t, discount_t, q_t_value, q_t_selector], [1, 0, 0, 0, 1, 1])
  target = r_t + discount_t * q_t_value[jnp.argmax(q_t_selector)]
  return jax.lax.stop_gradient(target) - q_tm1[a_tm1]


def select(values: chex.Array, index: chex.Numeric) -> chex.Array:
  """``values[index]``: the row of ``values`` ``[A, ...]`` at ``index`` ``[]``.

  Written as a masked sum over ``A`` (exact: every other row adds zero), not
  a gather: under ``vmap`` XLA:CPU fuses a gather into each elementwise
  consumer of the row and redoes it there, per element of, e.g., a
  quantile loss's ``[N, N']`` grid; a reduction it computes once.
  """
  hit = jnp.arange(values.shape[0]) == index
  hit = hit.reshape(hit.shape + (1,) * (values.ndim - 1))
  return jnp.sum(jnp.where(hit, values, 0.0), axis=0)


def epsilon_greedy(
  key: chex.PRNGKey, q_values: chex.Array, epsilon: chex.Numeric, mask: chex.Array | None = None
) -> chex.Array:
  """Epsilon-greedy actions for a batch ``[B, A] -> [B]``, independently per row.

  Each row draws its own exploration coin and its own random action, so two
  rows with equal observations can take different actions. With ``mask``
  ``[B, A]`` (True = valid; see :func:`mask_invalid`) both the greedy and the
  random action are valid ones, the random one uniform over them.
  """
  chex.assert_rank(q_values, 2)
  batch, num_actions = q_values.shape
  explore_key, action_key = jax.random.split(key)
  explore = jax.random.uniform(explore_key, (batch,)) < epsilon
  if mask is None:
    random_actions = jax.random.randint(action_key, (batch,), 0, num_actions)
  else:
    valid = valid_actions(mask)
    random_actions = jax.random.categorical(action_key, jnp.where(valid, 0.0, -jnp.inf), axis=-1)
    q_values = mask_invalid(q_values, mask)
  return jnp.where(explore, random_actions, jnp.argmax(q_values, axis=-1))


def valid_actions(mask: chex.Array) -> chex.Array:
  """``mask`` ``[..., A]`` as booleans, a row with no valid action counting all
  as valid (so every row has a max and an argmax)."""
  mask = jnp.asarray(mask, jnp.bool_)
  return mask | ~jnp.any(mask, axis=-1, keepdims=True)


def mask_invalid(values: chex.Array, mask: chex.Array | None) -> chex.Array:
  """Action values ``[..., A, *rest]`` (``rest``: e.g. a distribution's atoms)
  with invalid actions (``mask`` ``[..., A]`` False) at ``-inf``, so max and
  argmax see only valid ones; ``mask=None``: unchanged.

  A row with no valid action is left as it is (see :func:`valid_actions`).
  """
  if mask is None:
    return values
  valid = valid_actions(mask)
  valid = valid.reshape(valid.shape + (1,) * (jnp.ndim(values) - valid.ndim))
  return jnp.where(valid, values, -jnp.inf)


def munchausen_q_learning(
  q_tm1: chex.Array,
  a_tm1: chex.Numeric,
  r_t: chex.Numeric,
  discount_t: chex.Numeric,
  q_t: chex.Array,
  q_target_tm1: chex.Array,
  alpha: float = 0.9,
  tau: float = 0.03,
  l0: float = -1.0,
) -> chex.Array:
  """Munchausen Q-learning TD error for one transition (Vieillard, Pietquin &
  Geist 2020, "Munchausen reinforcement learning", eq. 2 and sec. 4).

  With the target network's softmax policy ``pi = softmax(q / tau)``, the
  target adds the scaled log-policy of the action taken to the reward and
  replaces the max by a soft (entropy-regularised) value::

    target = r_t + alpha * clip(tau * log pi(a_tm1 | s_tm1), l0, 0)
             + discount_t * sum_a pi(a | s_t) * (q_t[a] - tau * log pi(a | s_t))
    td = target - q_tm1[a_tm1]

  ``discount_t = 0`` at a termination drops the soft value only; the bonus
  belongs to the action taken. The target is held fixed (``stop_gradient``).

  Args:
    q_tm1: ``[A]`` online action values at the start state.
    a_tm1: ``[]`` action taken.
    r_t: ``[]`` reward (n-step: the discounted sum).
    discount_t: ``[]`` bootstrap discount (0 at terminations).
    q_t: ``[A]`` target-network action values at the next state.
    q_target_tm1: ``[A]`` target-network action values at the start state
      (they give the log-policy of the bonus).
    alpha: scale of the Munchausen bonus, in [0, 1] (0: soft DQN).
    tau: entropy temperature (> 0).
    l0: lower clip of the scaled log-policy (< 0); keeps the bonus finite
      when ``pi(a_tm1)`` is near 0.

  Returns:
    ``[]`` TD error.
  """
  chex.assert_rank([q_tm1, a_tm1, r_t, discount_t, q_t, q_target_tm1], [1, 0, 0, 0, 1, 1])
  # tau * log softmax(q / tau), computed stably.
  tau_log_pi_tm1 = tau * jax.nn.log_softmax(q_target_tm1 / tau)
  tau_log_pi_t = tau * jax.nn.log_softmax(q_t / tau)
  pi_t = jax.nn.softmax(q_t / tau)
  bonus = alpha * jnp.clip(tau_log_pi_tm1[a_tm1], l0, 0.0)
  soft_value_t = jnp.sum(pi_t * (q_t - tau_log_pi_t))
  target = r_t + bonus + discount_t * soft_value_t
  return jax.lax.stop_gradient(target) - q_tm1[a_tm1]
