"""Pure value-learning maths on single transitions (batch with ``jax.vmap``).

Names carry time as in rlax: ``q_tm1`` are action values at the state where
the action ``a_tm1`` was taken, ``r_t`` and ``discount_t`` come with the next
state, ``q_t`` are the (target) action values there.
"""

import chex
import jax
import jax.numpy as jnp


def q_learning(q_tm1: chex.Array, a_tm1: chex.Numeric, r_t: chex.Numeric,
               discount_t: chex.Numeric, q_t: chex.Array) -> chex.Array:
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


def double_q_learning(q_tm1: chex.Array, a_tm1: chex.Numeric, r_t: chex.Numeric,
                      discount_t: chex.Numeric, q_t_value: chex.Array,
                      q_t_selector: chex.Array) -> chex.Array:
  """Double Q-learning TD error for one transition (van Hasselt et al. 2016).

  The online network picks the next action and the target network values it,
  which removes most of Q-learning's overestimation:
  ``td = r_t + discount_t * q_t_value[argmax_a q_t_selector[a]] - q_tm1[a_tm1]``.

  Args are those of :func:`q_learning`, with ``q_t`` split in two:
  ``q_t_value`` ``[A]``, the target network's values at the next state, and
  ``q_t_selector`` ``[A]``, the online network's, which pick the action.
  Returns the ``[]`` TD error.
  """
  chex.assert_rank([q_tm1, a_tm1, r_t, discount_t, q_t_value, q_t_selector],
                   [1, 0, 0, 0, 1, 1])
  target = r_t + discount_t * q_t_value[jnp.argmax(q_t_selector)]
  return jax.lax.stop_gradient(target) - q_tm1[a_tm1]


def epsilon_greedy(key: chex.PRNGKey, q_values: chex.Array,
                   epsilon: chex.Numeric) -> chex.Array:
  """Epsilon-greedy actions for a batch ``[B, A] -> [B]``, independently per row.

  Each row draws its own exploration coin and its own random action, so two
  rows with equal observations can take different actions.
  """
  chex.assert_rank(q_values, 2)
  batch, num_actions = q_values.shape
  explore_key, action_key = jax.random.split(key)
  explore = jax.random.uniform(explore_key, (batch,)) < epsilon
  random_actions = jax.random.randint(action_key, (batch,), 0, num_actions)
  return jnp.where(explore, random_actions, jnp.argmax(q_values, axis=-1))
