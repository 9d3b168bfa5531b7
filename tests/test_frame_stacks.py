"""Frame-stack storage (``replay.codecs.frame_codec``): the store keeps each frame
once and gives back exactly the transitions the env produced, one-step and
n-step, across episode starts, terminations, truncations and life losses."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from baselax.errors import ConfigError
from baselax.replay import buffers, codecs, windows
from baselax.replay import store as store_lib

K = 4  # frames in a stack


class StackedEpisodes:
  """Envs whose observations are stacks of the last K frames (reset padding),
  each frame unique (a counter in two bytes); episodes end at random by
  termination or truncation, and some steps are life losses (terminated for
  learning, the episode goes on)."""

  def __init__(self, num_envs, seed):
    self.rng = np.random.default_rng(seed)
    self.counter = 0
    self.stacks = np.stack([self.reset() for _ in range(num_envs)])

  def frame(self):
    self.counter += 1
    return np.array([self.counter // 256, self.counter % 256], np.uint8)

  def reset(self):
    return np.stack([self.frame()] * K)  # FrameStackObservation(padding_type="reset")

  def step(self):
    """One step of every env: ``(record, true transitions)``."""
    n = len(self.stacks)
    obs = self.stacks.copy()
    final = np.stack([np.concatenate([s[1:], self.frame()[None]]) for s in obs])
    u = self.rng.random(n)
    terminated, truncated = u < 0.08, (u >= 0.08) & (u < 0.14)
    life_loss = (u >= 0.14) & (u < 0.2)
    reward = self.rng.normal(size=n).astype(np.float32)
    action = self.rng.integers(0, 3, n).astype(np.int32)
    ended = terminated | truncated
    first = np.zeros(n, bool)  # set below for the next step's record
    self.stacks = np.stack([self.reset() if e else f for e, f in zip(ended, final)])
    record = {
      "obs": obs,
      "action": action,
      "reward": reward,
      "terminated": terminated | life_loss,
      "truncated": truncated,
      "next_obs": final,
    }
    return record, ended, first


def fill(num_envs, steps, n_step, seed=0, buffer_size=None):
  """Adds ``steps`` steps of :class:`StackedEpisodes`; returns the replay, its
  state and every env's true transitions in order."""
  env = StackedEpisodes(num_envs, seed)
  spec = jax.ShapeDtypeStruct((K, 2), np.uint8)
  example = {
    "obs": spec,
    "action": jax.ShapeDtypeStruct((), np.int32),
    "reward": jax.ShapeDtypeStruct((), np.float32),
    "terminated": jax.ShapeDtypeStruct((), bool),
    "truncated": jax.ShapeDtypeStruct((), bool),
    "next_obs": spec,
    "first": jax.ShapeDtypeStruct((), bool),
  }
  config = buffers.ReplayConfig(
    buffer_size=buffer_size or num_envs * steps, num_envs=num_envs, batch_size=8, n_step=n_step
  )
  replay = buffers.make_replay(
    config, example, 0.9 if n_step > 1 else None, codec=codecs.frame_codec(spec)
  )
  add = jax.jit(replay.add)
  state = replay.init()
  starts = np.ones(num_envs, bool)
  truth = [[] for _ in range(num_envs)]
  for _ in range(steps):
    record, ended, _ = env.step()
    record["first"] = starts
    for i in range(num_envs):
      truth[i].append({k: np.asarray(v[i]) for k, v in record.items()})
    state = add(state, {k: jnp.asarray(v)[:, None] for k, v in record.items()})
    starts = ended
  return replay, state, truth


def expected(steps, n_step):
  """The transition of a window of true steps, as the replay should give it."""
  if n_step == 1:
    s = steps[0]
    stop_next = s["next_obs"] if s["truncated"] or not s["terminated"] else None
    return {**{k: s[k] for k in ("obs", "action", "reward", "terminated")}, "next": stop_next}
  seq = {k: jnp.stack([s[k] for s in steps]) for k in steps[0]}
  out = windows.n_step_transition(seq, 0.9)
  bootstraps = float(out["discount"]) > 0
  return {
    "obs": seq["obs"][0],
    "action": seq["action"][0],
    "reward": out["reward"],
    "terminated": out["terminated"],
    "discount": out["discount"],
    "next": out["next_obs"] if bootstraps else None,
  }


@pytest.mark.parametrize("n_step", [1, 3])
def test_frame_stacks_give_back_exactly_the_transitions(n_step):
  """Every window the replay can sample (all rows, all starts, the ring
  wrapped) is the true transition: obs, action, reward, terminated (with life
  losses) and, where it bootstraps, next_obs (the true final one at a
  truncation)."""
  num_envs, steps, length = 3, 160, 48
  replay, state, truth = fill(num_envs, steps, n_step, buffer_size=num_envs * length)
  store = replay.store
  assert store.history == K - 1 and state.records.dtype == jnp.uint32
  # Each frame once: a row holds one 2-byte frame (one word), not 2K of them.
  assert store.layout.obs_words == 1
  # The ring wrapped: the windows held start at the oldest column kept.
  rows, starts = np.meshgrid(np.arange(num_envs), np.arange(length - store.window + 1))
  head = int(state.steps.current_index)
  rows, starts = rows.ravel(), (head + starts.ravel()) % length
  batch = jax.device_get(
    store_lib.transitions(store, state, jnp.asarray(rows), jnp.asarray(starts))
  )
  checked = 0
  for b, (row, start) in enumerate(zip(rows, starts)):
    t = steps - length + (start - head) % length + K - 1  # the transition's step
    want = expected(truth[row][t : t + n_step], n_step)
    np.testing.assert_array_equal(batch["obs"][b], want["obs"])
    assert batch["action"][b] == want["action"]
    np.testing.assert_allclose(batch["reward"][b], want["reward"], rtol=1e-6)
    assert batch["terminated"][b] == want["terminated"]
    if n_step > 1:
      np.testing.assert_allclose(batch["discount"][b], want["discount"], rtol=1e-6)
    if want["next"] is not None:
      np.testing.assert_array_equal(batch["next_obs"][b], want["next"])
      checked += 1
  assert checked > len(rows) // 2  # most windows bootstrap: their next_obs was checked


def test_sampling_draws_whole_windows_only():
  """Before the ring wraps, a row's first K - 1 steps are never a transition;
  every sampled one is a true one."""
  replay, state, truth = fill(2, 20, 1)
  sample = jax.jit(replay.sample)
  seen = set()
  for i in range(50):
    batch = jax.device_get(sample(state, jax.random.PRNGKey(i), jnp.zeros(())).batch)
    for obs in batch["obs"]:
      step = next(
        t for r in truth for t, s in enumerate(r) if np.array_equal(s["obs"], obs)
      )
      assert step >= K - 1
      seen.add(step)
  assert seen == set(range(K - 1, 20 - 1))  # every whole window is drawn


def test_frame_stacks_need_a_stack_axis_and_first_flags():
  for shape in [(84,), (1, 84, 84)]:
    with pytest.raises(ConfigError, match="stacked along axis 0"):
      codecs.frame_codec(jax.ShapeDtypeStruct(shape, np.uint8))
  replay, state, _ = fill(1, 12, 1)
  record = {
    "obs": jnp.zeros((1, 1, K, 2), jnp.uint8),
    "action": jnp.zeros((1, 1), jnp.int32),
    "reward": jnp.zeros((1, 1)),
    "terminated": jnp.zeros((1, 1), bool),
    "truncated": jnp.zeros((1, 1), bool),
    "next_obs": jnp.zeros((1, 1, K, 2), jnp.uint8),
  }
  with pytest.raises(ValueError, match="records\\['first'\\]"):
    replay.add(state, record)
