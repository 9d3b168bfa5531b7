"""Munchausen-DQN (Vieillard et al. 2020): its target by hand."""

import jax.numpy as jnp
import numpy as np
from baselax.agents import value_learning


def test_munchausen_target_on_a_two_action_example():
  # tau = 1 keeps the logs readable: the target net's values at s are
  # (0, log 3), so pi(.|s) = (1/4, 3/4) and tau log pi(a=0|s) = log(1/4) =
  # -1.386, clipped to l0 = -1; alpha = 0.5 gives a bonus of -0.5. At s' the
  # values (0, 0) make pi uniform: soft value = 0 - 1 * log(1/2) = log 2.
  q_tm1 = jnp.array([0.3, -1.0])
  q_target_tm1 = jnp.array([0.0, np.log(3.0)])
  q_t = jnp.array([0.0, 0.0])
  td = value_learning.munchausen_q_learning(q_tm1, 0, 1.0, 0.9, q_t, q_target_tm1,
                                            alpha=0.5, tau=1.0, l0=-1.0)
  np.testing.assert_allclose(td, 1.0 - 0.5 + 0.9 * np.log(2.0) - 0.3, rtol=1e-6)
  # Action 1: tau log pi = log(3/4) = -0.288 is inside the clip.
  td1 = value_learning.munchausen_q_learning(q_tm1, 1, 1.0, 0.0, q_t, q_target_tm1,
                                             alpha=0.5, tau=1.0, l0=-1.0)
  np.testing.assert_allclose(td1, 1.0 + 0.5 * np.log(0.75) - (-1.0), rtol=1e-6)
  # As tau -> 0 with alpha = 0 it is Q-learning (max instead of soft max).
  q_t = jnp.array([2.0, -1.0])
  np.testing.assert_allclose(
      value_learning.munchausen_q_learning(q_tm1, 0, 1.0, 0.9, q_t, q_target_tm1,
                                           alpha=0.0, tau=1e-4),
      value_learning.q_learning(q_tm1, 0, 1.0, 0.9, q_t), atol=1e-4)
