"""C51 (Bellemare et al. 2017): the categorical projection and loss by hand and against rlax, and C51 in the host loop."""

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import rlax
from hypothesis import given, settings
from hypothesis import strategies as st
from baselax import anakin, networks
from baselax.agents import C51, distributional


Z = jnp.linspace(0.0, 4.0, 5)   # the support 0, 1, 2, 3, 4 (dz = 1)


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("project", [distributional.sorted_categorical_projection,
                                     distributional.categorical_projection],
                         ids=["sorted", "kernel"])
def test_projection_splits_mass_between_neighbours_and_clips_to_the_edges(project, jit):
  project = jax.jit(project) if jit else project
  # 1.5 splits half-half between atoms 1 and 2; 2.0 lands on atom 2; 10 is
  # clipped to v_max = 4; -3 to v_min = 0; 3.25 goes 3/4 to atom 3, 1/4 to 4.
  out = project(jnp.array([-3.0, 1.5, 2.0, 3.25, 10.0]),
                jnp.array([0.2, 0.2, 0.2, 0.2, 0.2]), Z)
  np.testing.assert_allclose(out, [0.2, 0.1, 0.3, 0.15, 0.25], atol=1e-6)


def test_the_kernel_projects_atoms_in_any_order():
  out = distributional.categorical_projection(
      jnp.array([1.5, 2.0, 10.0, -3.0, 3.25]), jnp.array([0.2, 0.2, 0.2, 0.2, 0.2]), Z)
  np.testing.assert_allclose(out, [0.2, 0.1, 0.3, 0.15, 0.25], atol=1e-6)


@st.composite
def _sorted_categoricals(draw):
  """A support and a categorical on sorted atoms: C51's targets ``r + d z``
  (terminal d = 0 puts every atom on one point; d = 1 and a reward on the
  grid put atoms exactly on the support) and sorted atoms drawn freely
  (repeats, runs outside the support, gaps of empty atoms)."""
  num_atoms = draw(st.sampled_from([2, 3, 5, 11, 51]))
  v_min = draw(st.floats(-100, 10))
  v_max = v_min + draw(st.floats(0.5, 200))
  support = np.linspace(v_min, v_max, num_atoms, dtype=np.float32)
  n = draw(st.sampled_from([1, 2, 5, 11, 51]))
  if draw(st.booleans()):
    dz = (v_max - v_min) / (num_atoms - 1)
    r = draw(st.one_of(st.floats(-300, 300), st.integers(-60, 60).map(lambda k: k * dz)))
    d = draw(st.sampled_from([0.0, 1.0, 0.99]) | st.floats(0, 1))
    atoms = r + d * np.linspace(v_min, v_max, n)
  else:
    atoms = np.sort(draw(st.lists(st.floats(v_min - 50, v_max + 50) |
                                  st.sampled_from(support.tolist()), min_size=n, max_size=n)))
  logits = draw(st.lists(st.floats(-20, 20), min_size=n, max_size=n))
  probs = jax.nn.softmax(jnp.asarray(logits, jnp.float32))
  return jnp.asarray(atoms, jnp.float32), probs, jnp.asarray(support)


def _exact_projection(z_p, probs, z_q):
  """Algorithm 1 in float64 on the float32 inputs, atom by atom."""
  z_p, probs, z_q = (np.asarray(x, np.float64) for x in (z_p, probs, z_q))
  k = len(z_q)
  b = (np.clip(z_p, z_q[0], z_q[-1]) - z_q[0]) / ((z_q[-1] - z_q[0]) / (k - 1))
  b = np.clip(b, 0, k - 1)
  floor = np.floor(b).astype(int)
  out = np.zeros(k + 1)
  np.add.at(out, floor, probs * (1 - (b - floor)))
  np.add.at(out, floor + 1, probs * (b - floor))
  return out[:k]


# Compiled once per shape (25 pairs of sizes), then fast for every example.
SORTED = jax.jit(distributional.sorted_categorical_projection)


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(case=_sorted_categoricals())
def test_the_sorted_projection_is_algorithm_1_on_sorted_atoms(case):
  """The O(N + K) projection C51 uses against Algorithm 1 in float64: the
  same probabilities (float32 places an atom within about K ulps of its
  index position), none negative, the total mass kept."""
  z_p, probs, z_q = case
  out = SORTED(z_p, probs, z_q)
  tolerance = 2e-6 + 4 * np.finfo(np.float32).eps * z_q.shape[0]
  np.testing.assert_allclose(out, _exact_projection(z_p, probs, z_q), rtol=0, atol=tolerance)
  assert float(jnp.min(out)) >= 0.0
  np.testing.assert_allclose(jnp.sum(out), jnp.sum(probs), atol=2e-6)


def _loss_and_target(r, discount, logits_t, a_t):
  """The cross-entropy from uniform online logits, and by hand its target."""
  logits_tm1 = jnp.zeros((2, 5))
  ce = distributional.categorical_q_learning(Z, logits_tm1, 0, r, discount, Z, logits_t,
                                            jnp.eye(2)[a_t])
  return float(ce)


def test_terminal_transition_puts_all_mass_on_the_reward():
  logits_t = jnp.array([[9.0, 0, 0, 0, 0], [0, 0, 0, 0, 9.0]])
  # discount 0: every target atom is r = 2, so the target is one-hot on atom 2
  # and the cross-entropy to uniform online probabilities is log 5.
  np.testing.assert_allclose(_loss_and_target(2.0, 0.0, logits_t, 1), np.log(5), rtol=1e-6)
  # With online logits peaked on atom 2 the loss is -log softmax(.)[2].
  logits_tm1 = jnp.array([[0.0, 0, 3.0, 0, 0], [0, 0, 0, 0, 0]])
  ce = distributional.categorical_q_learning(Z, logits_tm1, 0, 2.0, 0.0, Z, logits_t)
  np.testing.assert_allclose(ce, -jax.nn.log_softmax(logits_tm1[0])[2], rtol=1e-6)


def test_truncated_transition_bootstraps_from_the_next_distribution():
  # A time-limit truncation is not terminated: discount gamma = 0.5. The
  # next action's distribution is one-hot on atom 4 (value 4), so the target
  # atom is 1 + 0.5 * 4 = 3: all mass on atom 3 (a terminal one would put it
  # on atom 1). Picked by the selector (action 1), not by action 0.
  logits_t = jnp.array([[50.0, 0, 0, 0, 0], [0, 0, 0, 0, 50.0]])
  logits_tm1 = jnp.array([[0.0, 1.0, 2.0, 3.0, 4.0], [0, 0, 0, 0, 0]])
  ce = distributional.categorical_q_learning(Z, logits_tm1, 0, 1.0, 0.5, Z, logits_t)
  np.testing.assert_allclose(ce, -jax.nn.log_softmax(logits_tm1[0])[3], rtol=1e-5)
  ce_terminal = distributional.categorical_q_learning(Z, logits_tm1, 0, 1.0, 0.0, Z,
                                                      logits_t)
  np.testing.assert_allclose(ce_terminal, -jax.nn.log_softmax(logits_tm1[0])[1], rtol=1e-5)


def test_targets_outside_the_support_go_to_the_edge_atoms():
  logits_t = jnp.array([[0.0, 0, 0, 0, 50.0], [0, 0, 0, 0, 0]])   # greedy: action 0, value 4
  logits_tm1 = jnp.array([[0.0, 1.0, 2.0, 3.0, 4.0], [0, 0, 0, 0, 0]])
  # 5 + 0.9 * 4 = 8.6 > v_max: all mass on atom 4; -7 + 0 < v_min: on atom 0.
  high = distributional.categorical_q_learning(Z, logits_tm1, 0, 5.0, 0.9, Z, logits_t)
  low = distributional.categorical_q_learning(Z, logits_tm1, 0, -7.0, 0.0, Z, logits_t)
  log_p = jax.nn.log_softmax(logits_tm1[0])
  np.testing.assert_allclose([high, low], [-log_p[4], -log_p[0]], rtol=1e-5)


@pytest.mark.parametrize("double", [False, True], ids=["c51", "double"])
def test_c51_loss_matches_rlax_on_random_inputs(double):
  key = jax.random.PRNGKey(0)
  keys = jax.random.split(key, 7)
  batch, actions, num_atoms = 64, 3, 11
  atoms = jnp.linspace(-3.0, 5.0, num_atoms)
  logits_tm1 = jax.random.normal(keys[0], (batch, actions, num_atoms))
  logits_t = 2.0 * jax.random.normal(keys[1], (batch, actions, num_atoms))
  a_tm1 = jax.random.randint(keys[2], (batch,), 0, actions)
  r_t = 3.0 * jax.random.normal(keys[3], (batch,))   # some targets leave the support
  discount_t = jnp.where(jax.random.uniform(keys[4], (batch,)) < 0.2, 0.0, 0.9)
  selector = jax.random.normal(keys[5], (batch, actions))
  if double:
    ours = jax.vmap(distributional.categorical_q_learning,
                    in_axes=(None, 0, 0, 0, 0, None, 0, 0))(
        atoms, logits_tm1, a_tm1, r_t, discount_t, atoms, logits_t, selector)
    theirs = jax.vmap(rlax.categorical_double_q_learning,
                      in_axes=(None, 0, 0, 0, 0, None, 0, 0))(
        atoms, logits_tm1, a_tm1, r_t, discount_t, atoms, logits_t, selector)
  else:
    ours = jax.vmap(distributional.categorical_q_learning,
                    in_axes=(None, 0, 0, 0, 0, None, 0))(
        atoms, logits_tm1, a_tm1, r_t, discount_t, atoms, logits_t)
    theirs = jax.vmap(rlax.categorical_q_learning, in_axes=(None, 0, 0, 0, 0, None, 0))(
        atoms, logits_tm1, a_tm1, r_t, discount_t, atoms, logits_t)
  np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)


def test_noisy_c51_trains_in_the_host_loop():
  from baselax import hostloop
  env = gymnasium.vector.SyncVectorEnv([lambda: gymnasium.make("CartPole-v1")] * 2)
  config = anakin.AnakinConfig(total_env_steps=400, num_envs=2, buffer_size=400,
                               batch_size=16, learning_starts=100, eval_every=400)
  agent = C51(networks.mlp_q_network((16,), atoms=11, noisy=True), env, 1e-3,
              num_atoms=11, noisy=True)
  result = hostloop.train(agent, env, config)
  assert np.isfinite(result.metrics["loss"]).all()
