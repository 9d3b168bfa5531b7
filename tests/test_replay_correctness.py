"""Replay correctness: every batch is real, consecutive experience.

Every window any replay buffer hands to ``agent.update`` is ``k <= n``
consecutive steps of one episode of one env, and no slot that was never
written is ever sampled (issue 17: prioritized buffers sampled the sum tree's
right-most leaf, past the buffer or unwritten, and kept it).
"""

import functools
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flashbax.buffers import sum_tree

from baselax import anakin, envs, networks
from baselax.agents import DQN
from baselax.replay import buffers

import probe_envs

GAMMA = 0.5  # k-step rewards sum_{i<k} GAMMA^i = 1, 1.5, 1.75 tell k apart
TAGGED_MAX_STEPS = probe_envs.TaggedCounter().max_steps  # its episodes' time limit


def bad_windows(data, n: int) -> jax.Array:
  """How many transitions of a ``TaggedCounter`` batch are not real k-step ones.

  A real one starts in a written slot (tag >= 1), and unless it terminated
  (then it never bootstraps and ``next_obs`` is any observation) its
  ``next_obs`` is the same episode ``k`` steps on, the true final observation
  if the episode was truncated there; ``k`` (1..n) is read from the reward.
  """
  obs, next_obs = data["obs"], data["next_obs"]
  sums = jnp.cumsum(GAMMA ** jnp.arange(n, dtype=jnp.float32))  # k = 1..n
  k = 1 + jnp.argmin(jnp.abs(data["reward"][:, None] - sums[None]), axis=1)
  same_episode = (next_obs[:, 0] == obs[:, 0]) & (next_obs[:, 1] == obs[:, 1] + k)
  good = ((obs[:, 0] >= 1) & (data["terminated"] | same_episode)
          & jnp.isclose(data["reward"], sums[k - 1]))
  return jnp.sum(~good).astype(jnp.float32)


def truncated_windows(data, max_steps: int) -> jax.Array:
  """How many transitions of a ``TaggedCounter`` batch bootstrap from a truncation."""
  return jnp.sum((data["next_obs"][:, 1] == max_steps) & ~data["terminated"]
                 ).astype(jnp.float32)


class AuditOutput(NamedTuple):
  loss: jax.Array
  q_mean: jax.Array
  td_error: jax.Array
  bad_windows: jax.Array  # summed by the trainer like any scalar field
  windows: jax.Array
  truncated_windows: jax.Array


class AuditedDQN(DQN):
  """DQN whose update also counts the bad transitions of the batch it gets."""

  def __init__(self, *args, n_step: int, **kwargs):
    super().__init__(*args, **kwargs)
    self.n_step = n_step

  def update(self, params, optimizer_state, data, **kwargs):
    out, params, optimizer_state = super().update(params, optimizer_state, data,
                                                  **kwargs)
    audit = AuditOutput(loss=out.loss, q_mean=out.q_mean, td_error=out.td_error,
                        bad_windows=bad_windows(data, self.n_step),
                        windows=jnp.float32(data["obs"].shape[0]),
                        truncated_windows=truncated_windows(data, TAGGED_MAX_STEPS))
    return audit, params, optimizer_state


def test_the_audit_catches_unwritten_and_broken_windows():
  """The audit itself: it passes real transitions and flags each kind of bad one."""
  obs = jnp.array([[5.0, 2.0], [5.0, 2.0], [0.0, 0.0], [5.0, 2.0], [5.0, 2.0],
                   [5.0, 2.0], [5.0, 6.0]])
  data = {"obs": obs,
          "next_obs": jnp.array([[5.0, 3.0], [5.0, 5.0], [0.0, 0.0],
                                 [6.0, 3.0], [5.0, 4.0], [9.0, 0.0], [5.0, 7.0]]),
          "reward": jnp.array([1.0, 1.75, 0.0, 1.0, 1.0, 1.0, 1.0]),
          "terminated": jnp.array([False] * 5 + [True, False])}
  # real 1-step; real 3-step; unwritten; other episode; 2 steps with 1-step
  # reward; terminated (next_obs unused); truncated at step 7 (true final obs)
  assert float(bad_windows(data, 3)) == 3.0
  keep = jnp.array([0, 1, 5, 6])
  assert float(bad_windows({k: v[keep] for k, v in data.items()}, 3)) == 0.0
  assert float(truncated_windows(data, TAGGED_MAX_STEPS)) == 1.0
  # the next episode's first observation in place of the true final one is caught
  pure_jax_rl = {**data, "next_obs": data["next_obs"].at[6].set(jnp.array([9.0, 0.0]))}
  assert float(bad_windows({k: v[keep] for k, v in pure_jax_rl.items()}, 3)) == 1.0


#: (n_step, prioritized, buffer_size, train_every), with two envs. Capacities
#: 20 and 24 wrap hundreds of times in 6,000 env steps; 2048 never fills in
#: 2,000 (so unwritten slots, the sum tree's right-most leaf among them, exist
#: all along). Compiling dominates the cost, so the cases are few; the
#: replay-level test below sweeps more capacities.
AUDIT_CASES = [
    (3, True, 20, 1), (3, True, 2048, 1), (1, True, 24, 2),
    (1, False, 2048, 1), (3, False, 20, 3),
]


@pytest.mark.parametrize(
    "n_step,prioritized,buffer_size,train_every", AUDIT_CASES,
    ids=[f"{'per-' if p else ''}{'item' if n == 1 else 'nstep'}-{b}-te{t}"
         for n, p, b, t in AUDIT_CASES])
def test_update_only_gets_consecutive_steps_of_one_env(n_step, prioritized,
                                                        buffer_size, train_every):
  env = envs.GymnaxEnv(probe_envs.TaggedCounter())
  agent = AuditedDQN(networks.mlp_q_network((8,)), env, 1e-3,
                     discount_factor=GAMMA, n_step=n_step)
  total = 2_000 if buffer_size == 2048 else 6_000
  config = anakin.AnakinConfig(
      total_env_steps=total, num_envs=2, buffer_size=buffer_size, batch_size=8,
      # 20+ scan steps before learning: the trees are empty for the first
      # n - 1 of them (where the old code planted priority on leaf 2^depth - 1)
      learning_starts=42, train_every=train_every, eval_every=total,
      eval_episodes=1, eval_max_steps=8, n_step=n_step, prioritized=prioritized)
  derived = config.derive(1)
  _, metrics = jax.jit(anakin.make_train(agent, env, config))(jax.random.PRNGKey(0))
  updates = float(metrics["updates"].sum())
  assert updates == derived.total_updates > 100
  assert float(metrics["windows"].sum()) == updates * config.batch_size
  assert float(metrics["bad_windows"].sum()) == 0.0
  # truncated windows were sampled, and each bootstrapped from the true final obs
  assert float(metrics["truncated_windows"].sum()) > 0


# --- the prioritized buffers directly ---------------------------------------------

def tagged_transitions(t, num_envs, length):
  """``length`` steps of ``num_envs`` endless episodes from step ``t`` (step records)."""
  tag = jnp.arange(1, num_envs + 1, dtype=jnp.float32)[:, None]
  time = (t + jnp.arange(length, dtype=jnp.float32))[None]
  obs = jnp.stack(jnp.broadcast_arrays(tag, time), -1)
  return {"obs": obs, "action": jnp.zeros((num_envs, length), jnp.int32),
          "reward": jnp.ones((num_envs, length)),
          "terminated": jnp.zeros((num_envs, length), bool),
          "truncated": jnp.zeros((num_envs, length), bool),
          "next_obs": obs.at[..., 1].add(1.0)}


def make_prioritized(buffer_size, num_envs, n_step, batch_size=8, **config):
  config = anakin.AnakinConfig(buffer_size=buffer_size, num_envs=num_envs,
                               batch_size=batch_size, learning_starts=batch_size,
                               n_step=n_step, prioritized=True, **config)
  example = jax.tree.map(lambda x: x[0, 0], tagged_transitions(0, 1, 1))
  buf = buffers.make_replay(buffers.ReplayConfig.of(config), example, GAMMA)
  return buf, buf.init()


@functools.partial(jax.jit, static_argnums=(0, 3, 4, 5))
def add(buf, state, t, num_envs, length, n_step):
  del n_step  # every buffer takes the same step records
  return buf.add(state, tagged_transitions(t, num_envs, length))


def leaf_sampleable(state, indices):
  tree = state.steps.sum_tree_state
  return (indices < tree.capacity) & (sum_tree.get_batch(tree, indices) > 0)


def test_heavy_tailed_priorities_never_yield_unsampleable_items():
  """Thousands of updates with priorities spanning 20 decades (alpha = 1) make
  the tree's internal sums drift from its leaves, so flashbax's own draw (same
  key) lands on zero or out-of-range leaves now and then. Ours never does."""
  flashbax_misses = 0
  for buffer_size, num_envs, n_step, length in [
      (20, 1, 1, 1), (24, 2, 3, 3), (32, 4, 3, 1), (2048, 8, 3, 1)]:
    buf, state = make_prioritized(buffer_size, num_envs, n_step, priority_exponent=1.0)

    def step(carry, t, buf=buf, num_envs=num_envs, n_step=n_step, length=length):
      state, key = carry
      key, sample_key, priority_key = jax.random.split(key, 3)
      state = add(buf, state, t * length, num_envs, length, n_step)
      raw = sum_tree.stratified_sample(state.steps.sum_tree_state, 8, sample_key)
      sample = buf.sample(state, sample_key, jnp.float32(0.5))
      ok = leaf_sampleable(state, sample.indices)
      ok &= bad_windows(sample.batch, n_step) == 0
      ok &= jnp.isfinite(sample.batch["weight"]) & (sample.batch["weight"] > 0)
      priorities = jnp.exp(8.0 * jax.random.normal(priority_key, sample.indices.shape))
      learned = t >= 8
      state = buf.set_priorities(state, sample.indices, priorities, learned)
      return (state, key), (learned * jnp.sum(~leaf_sampleable(state, raw)),
                            learned * jnp.sum(~ok))

    run = jax.jit(lambda s, step=step: jax.lax.scan(
        step, (s, jax.random.PRNGKey(1)), jnp.arange(20_000))[1])
    raw_bad, bad = run(state)
    assert int(bad.sum()) == 0, (buffer_size, num_envs, n_step)
    flashbax_misses += int(raw_bad.sum())
  assert flashbax_misses > 0  # the stress does reach the failure it guards against


def test_a_drifted_or_empty_tree_still_yields_written_windows_only():
  """The two ways flashbax's descent leaves the sampleable leaves, made certain:
  a query at or past the total of the leaves (here the root is doubled, as
  drift or a uniform draw rounded to 1.0 would make it), and an empty tree."""
  for n_step, num_envs in ((1, 1), (3, 2)):
    buf, state = make_prioritized(20, num_envs, n_step)
    # Reference: flashbax's sampler on an empty tree gives the right-most leaf.
    empty = sum_tree.stratified_sample(state.steps.sum_tree_state, 8,
                                       jax.random.PRNGKey(0))
    np.testing.assert_array_equal(empty, 31)
    state = add(buf, state, 0, num_envs, 5, n_step)  # 5 steps of each env
    tree = state.steps.sum_tree_state
    drifted = state._replace(steps=state.steps.replace(
        sum_tree_state=tree.replace(nodes=tree.nodes.at[0].mul(2.0))))
    raw = sum_tree.stratified_sample(drifted.steps.sum_tree_state, 8,
                                     jax.random.PRNGKey(0))
    assert not bool(leaf_sampleable(state, raw).all())  # flashbax: unwritten leaves
    keys = jax.random.split(jax.random.PRNGKey(1), 20)
    sample = jax.jit(jax.vmap(lambda k: buf.sample(drifted, k, jnp.float32(0.0))))(keys)
    assert bool(jax.vmap(leaf_sampleable, (None, 0))(state, sample.indices).all())
    assert float(jax.vmap(bad_windows, (0, None))(sample.batch, n_step).sum()) == 0.0


def test_set_priorities_writes_only_where_learned_and_sampleable():
  buf, state = make_prioritized(20, 1, 1)
  state = add(buf, state, 0, 1, 10, 1)  # steps 0..9 written: windows 0..8 complete
  nodes = state.steps.sum_tree_state.nodes
  indices = jnp.array([2, 3, 9, 12, 31])  # complete, complete, no successor yet,
  #                                          unwritten, past the end
  masked = buf.set_priorities(state, indices, jnp.full((5,), 9.0), jnp.bool_(False))
  chex.assert_trees_all_equal(masked.steps.sum_tree_state.nodes, nodes)
  new = buf.set_priorities(state, indices, jnp.array([9.0, 0.0, 9.0, 9.0, 9.0]))
  leaves = sum_tree.get_batch(new.steps.sum_tree_state, jnp.arange(32))
  expected = np.array(sum_tree.get_batch(state.steps.sum_tree_state, jnp.arange(32)))
  assert expected[8] > 0 and expected[9] == 0  # the newest step is not an item yet
  # only the complete window with a priority > 0 changes, to priority^alpha
  expected[2] = 9.0 ** anakin.AnakinConfig().priority_exponent
  np.testing.assert_allclose(leaves, expected, rtol=1e-6)
  assert float(new.steps.sum_tree_state.nodes[0]) == pytest.approx(float(expected.sum()))
