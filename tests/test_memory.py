"""Replay memory (issue 14): one copy of each observation, exact at truncation;
compact observation storage, exact or refused; buffers planned before compiling.
"""

import dataclasses
import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from baselax import anakin, envs, networks
from baselax.agents import DQN
from baselax.envs.protocol import truncation_interval
from baselax.replay import buffers, codecs, integers, records, store
from baselax.replay import memory
from baselax.errors import ConfigError

import probe_envs

GAMMA = 0.5    # k-step rewards 1, 1.5, 1.75 tell k = 1, 2, 3 apart
LIMIT = 3      # the hand-made stream's time limit: truncated at t = 3


# --- one copy, exact at truncation ----------------------------------------------

def episode_stream(num_envs: int, steps: int):
  """Step records ``(num_envs, steps, ...)`` of episodes truncated at ``LIMIT``
  steps, some terminated earlier. Observation ``(tag, t)``: ``tag`` names the
  episode (unique), ``t`` its step; the true final one is ``(tag, t + 1)``."""
  obs = np.zeros((num_envs, steps, 2), np.float32)
  final = np.zeros_like(obs)
  terminated = np.zeros((num_envs, steps), bool)
  truncated = np.zeros((num_envs, steps), bool)
  tag = 1
  for e in range(num_envs):
    t = 0
    for s in range(steps):
      obs[e, s] = (tag, t)
      final[e, s] = (tag, t + 1)
      terminated[e, s] = (tag * 7 + e) % 5 == 0 and t == 1
      truncated[e, s] = not terminated[e, s] and t + 1 == LIMIT
      t += 1
      if terminated[e, s] or truncated[e, s]:
        tag, t = tag + 1, 0
  return {"obs": jnp.asarray(obs), "action": jnp.zeros((num_envs, steps), jnp.int32),
          "reward": jnp.ones((num_envs, steps)), "terminated": jnp.asarray(terminated),
          "truncated": jnp.asarray(truncated), "next_obs": jnp.asarray(final)}


def audit(batch, n):
  """``(bad, truncated)``: transitions that are not real k-step ones of one
  episode, and those that bootstrap from a truncation (their ``next_obs`` is
  the true final observation ``(tag, LIMIT)``, never the next episode's first)."""
  obs, next_obs = batch["obs"], batch["next_obs"]
  sums = jnp.cumsum(GAMMA ** jnp.arange(n, dtype=jnp.float32))
  k = 1 + jnp.argmin(jnp.abs(batch["reward"][:, None] - sums[None]), axis=1)
  same_episode = (next_obs[:, 0] == obs[:, 0]) & (next_obs[:, 1] == obs[:, 1] + k)
  # a terminated transition never bootstraps: its next_obs is unused
  good = (obs[:, 0] >= 1) & (batch["terminated"] | same_episode)
  truncated = ~batch["terminated"] & (next_obs[:, 1] == LIMIT)
  return jnp.sum(~good), jnp.sum(truncated)


def make_buffer(config, stream, **kwargs):
  return buffers.make_replay(buffers.ReplayConfig.of(config),
                             jax.tree.map(lambda x: x[0, 0], stream), GAMMA, **kwargs)


@functools.partial(jax.jit, static_argnums=(0, 2))
def add_and_sample(buf, stream, n):
  """Adds the stream one step at a time, sampling a batch after each add."""
  state = buf.init()

  def step(carry, t):
    state, key = carry
    key, sample_key = jax.random.split(key)
    records = jax.tree.map(lambda x: jax.lax.dynamic_slice_in_dim(x, t, 1, 1), stream)
    state = buf.add(state, records)
    sample = buf.sample(state, sample_key, jnp.float32(0.5))
    bad, truncated = audit(sample.batch, n)
    learned = t >= n  # a window of n + 1 steps is in
    return (state, key), (learned * bad, learned * truncated)

  steps = jax.tree.leaves(stream)[0].shape[1]
  return jax.lax.scan(step, (state, jax.random.PRNGKey(0)), jnp.arange(steps))[1]


KINDS = [(1, False), (1, True), (3, False), (3, True)]


@pytest.mark.parametrize("n_step,prioritized", KINDS,
                         ids=["item", "per-item", "nstep", "per-nstep"])
def test_a_truncated_transition_bootstraps_from_the_true_final_observation(
    n_step, prioritized):
  """12 steps per env, wrapped 6 times; a truncation every 3 steps at most,
  so 5 final observations per env (floor(11 / 3) + 2) beside the 12."""
  config = anakin.AnakinConfig(buffer_size=24, num_envs=2, batch_size=16,
                               learning_starts=16, n_step=n_step,
                               prioritized=prioritized)
  stream = episode_stream(2, 72)
  buf = make_buffer(config, stream, truncation_interval=LIMIT)
  assert buf.capacity == 24 and buf.final_slots == 5
  bad, truncated = add_and_sample(buf, stream, n_step)
  assert int(bad.sum()) == 0
  assert int(truncated.sum()) > 50  # the case under test is sampled often
  if n_step == 1 and not prioritized:
    # A side store sized for a time limit the env does not keep loses final
    # observations, and the audit sees it: what makes the bound matter.
    undersized = make_buffer(config, stream, truncation_interval=100)
    assert undersized.final_slots == 1
    assert int(add_and_sample(undersized, stream, n_step)[0].sum()) > 0


def test_one_copy_of_each_observation():
  """The buffer's arrays hold each observation once (plus the bounded side
  store): at most one observation plus 32 bytes per transition in float32."""
  for env_id in ("CartPole-v1", "Breakout-MinAtar"):
    env = envs.make(env_id)
    agent = DQN(networks.default_q_network(env.single_observation_space), env, 1e-3)
    obs_bytes = codecs.observation_spec(env).size * 4
    for n_step, prioritized in KINDS:
      config = anakin.AnakinConfig(buffer_size=10_000, num_envs=10, n_step=n_step,
                                   prioritized=prioritized, obs_storage="float32")
      nbytes, capacity, _ = memory.replay_bytes(agent, env, config)
      assert capacity == 10_000
      assert obs_bytes < nbytes / capacity <= obs_bytes + 32, (env_id, n_step, prioritized)
      if env_id == "Breakout-MinAtar":  # 0/1 channels: bits under auto
        auto = memory.replay_bytes(agent, env, dataclasses.replace(
            config, obs_storage="auto"))[0]
        assert auto <= nbytes / 4
  # the count is the buffer state's real arrays
  buf = buffers.make_replay(buffers.ReplayConfig.of(config),
                            records.example_record(agent, env), 0.99,
                            codec=codecs.obs_codec("auto", env),
                            truncation_interval=truncation_interval(env))
  state = jax.jit(buf.init)()
  assert sum(x.nbytes for x in jax.tree.leaves(state)) == memory.replay_bytes(
      agent, env, dataclasses.replace(config, obs_storage="auto"))[0]


def test_the_time_limit_bounds_the_side_store():
  assert truncation_interval(envs.make("CartPole-v1")) == 500
  assert truncation_interval(envs.GymnaxEnv(probe_envs.TaggedCounter())) == 7

  class EarlyTruncation(probe_envs.ConstantRewardTimeLimit):
    def is_truncated(self, state, params):  # not gymnax's time limit: no bound
      return state.time >= 2

  assert truncation_interval(envs.GymnaxEnv(EarlyTruncation())) == 1
  # K = floor((L - 1) / T) + 2, one when the time limit outlasts the buffer
  assert [store.final_slots(1000, t) for t in (1, 10, 500, 999, 1000, 10**9)] == [
      1001, 101, 3, 3, 1, 1]


# --- compact storage --------------------------------------------------------------

def test_auto_storage_is_the_smallest_exact_one():
  cases = {"Breakout-MinAtar": ("bool", 50), "CartPole-v1": ("float32", 16),
           "FourRooms-misc": ("uint8", 4)}  # FourRooms: int32 Box [1, 11]
  for env_id, (name, stored) in cases.items():
    codec = codecs.obs_codec("auto", envs.make(env_id))
    assert (codec.name, codec.stored_bytes) == (name, stored), env_id


def test_compact_storage_round_trips_the_observations_exactly():
  env = envs.make("Breakout-MinAtar")
  bits, uint8 = codecs.obs_codec("bool", env), codecs.obs_codec("uint8", env)

  @jax.jit
  def mismatches(key):
    obs, state = env.functional_reset(key, 16)

    def step(carry, key):
      obs, state = carry
      act_key, env_key = jax.random.split(key)
      state, out = env.functional_step(env_key, state,
                                       jax.random.randint(act_key, (16,), 0, 3))
      seen = jnp.stack([out.obs, out.final_obs])
      bad = sum(jnp.sum(c.decode(c.encode(seen)) != seen) for c in (bits, uint8))
      return (out.obs, state), bad

    return jnp.sum(jax.lax.scan(step, (obs, state), jax.random.split(key, 200))[1])

  assert int(mismatches(jax.random.PRNGKey(0))) == 0
  ones = jnp.ones((2, 10, 10, 4)).at[0, 3, 4, 1].set(0.0)
  assert bits.encode(ones).shape == (2, 50) and bits.encode(ones).dtype == jnp.uint8
  np.testing.assert_array_equal(bits.decode(bits.encode(ones)), ones)


def test_a_storage_that_is_not_exact_is_refused():
  cartpole = envs.make("CartPole-v1")
  for storage in ("uint8", "bool"):
    with pytest.raises(ConfigError, match=f"obs_storage={storage} cannot store the "
                       "observations of CartPole-v1 exactly.*not proven to be integers"):
      codecs.obs_codec(storage, cartpole)
  with pytest.raises(ConfigError, match=r"integers in \[1, 11\]"):
    codecs.obs_codec("bool", envs.make("FourRooms-misc"))
  with pytest.raises(ConfigError, match="obs_storage must be one of auto, float32"):
    anakin.AnakinConfig(obs_storage="float16")


def test_the_integer_proof_follows_casts_and_data_movement_only():
  x = jax.ShapeDtypeStruct((4,), jnp.float32)
  proof = integers.traced_integer_range
  assert proof(lambda x: (x > 0).astype(jnp.float32), x) == (0.0, 1.0)
  assert proof(lambda x: jnp.where(x > 0, (x > 1).astype(jnp.float32), 3.0), x) == (0.0, 3.0)
  assert proof(lambda x: jax.lax.cond(x[0] > 0, lambda: jnp.zeros(4),
                                      lambda: jnp.ones(4)), x) == (0.0, 1.0)
  assert proof(lambda x: jnp.concatenate([(x > 0).astype(jnp.float32)[::-1],
                                          jnp.zeros(2)]), x) == (0.0, 1.0)
  assert proof(lambda x: (x > 0).astype(jnp.float32) * 2.0, x) is None   # arithmetic
  assert proof(lambda x: x, x) is None                                    # a float input
  # an observation with a float part and a 0/1 action mask appended stays float
  assert proof(lambda x: jnp.concatenate([x, (x > 0).astype(jnp.float32)]), x) is None
  assert proof(lambda x: (x > 0).astype(jnp.uint8), x) == (0.0, 1.0)
  byte = jax.ShapeDtypeStruct((4,), jnp.uint8)                            # by dtype
  assert proof(lambda b: b.astype(jnp.float32), byte) == (0.0, 255.0)


# --- the memory plan ----------------------------------------------------------------

def cartpole_agent():
  env = envs.make("CartPole-v1")
  return DQN(networks.mlp_q_network((8,)), env, 1e-3), env


def test_the_plan_refuses_buffers_that_do_not_fit_with_the_largest_that_does():
  agent, env = cartpole_agent()
  config = anakin.AnakinConfig(buffer_size=1_000_000, num_envs=10, num_seeds=4)
  derived = config.derive(1)
  available = ("host", 50_000_000)
  plan = memory.plan(agent, env, config, derived, local_devices=1, available=available)
  assert plan.buffers_per_device == 4 and plan.capacity == 1_000_000
  assert plan.required_bytes == 4 * plan.buffer_bytes > 0.9 * 50e6
  largest = plan.largest_buffer_size
  assert largest % 10 == 0 and 0 < largest < 1_000_000
  fits = lambda size: memory.plan(  # noqa: E731
      agent, env, dataclasses.replace(config, buffer_size=size), derived,
      local_devices=1, available=available).fits
  assert fits(largest) and not fits(largest + 10)
  with pytest.raises(ConfigError) as error:
    plan.check()
  message = str(error.value)
  assert "\n" not in message
  assert f"the largest buffer_size that fits is {largest:,}" in message
  # Host memory is shared by the CPU devices; an accelerator's is per device.
  two = memory.plan(agent, env, config, derived, local_devices=2, available=available)
  assert two.required_bytes == 2 * plan.required_bytes
  gpus = memory.plan(agent, env, config, derived, local_devices=2,
                     available=("device", 50_000_000))
  assert gpus.required_bytes == plan.required_bytes
  assert json.loads(json.dumps(plan.to_json()))["total_bytes"] == plan.total_bytes


def test_the_main_job_refuses_before_compiling_and_records_the_plan(tmp_path, capsys):
  from baselax.experiment import launch
  with pytest.raises(SystemExit) as exit_:
    launch.run(["--buffer-size", "100000000000", "--run-dir", str(tmp_path / "big"),
                "--quiet", "--compilation-cache", "none"])
  err = capsys.readouterr().err.strip()
  assert exit_.value.code == 2 and "\n" not in err
  assert err.startswith("anakin_dqn.py: error: --buffer-size 100000000000: the replay "
                        "buffers (buffer_size 100,000,000,000) need")
  assert "the largest buffer_size that fits is" in err
  assert not os.path.exists(tmp_path / "big")  # refused before the run directory
  with pytest.raises(SystemExit) as exit_:
    launch.run(["--obs-storage", "uint8", "--run-dir", str(tmp_path / "u8"), "--quiet",
                "--compilation-cache", "none"])
  assert exit_.value.code == 2
  assert "--obs-storage uint8: obs_storage=uint8 cannot store" in capsys.readouterr().err
  # a run logs the plan at start-up and writes it to config.json
  out = launch.run(["--total-env-steps", "2000", "--learning-starts", "500",
                    "--eval-every", "2000", "--eval-episodes", "1", "--no-tensorboard",
                    "--compilation-cache", "none", "--run-dir", str(tmp_path / "ok")])
  printed = capsys.readouterr().out
  assert "replay memory: " in printed
  assert printed.index("replay memory: ") < printed.index("compiled in")
  with open(tmp_path / "ok" / "config.json") as f:
    saved = json.load(f)["replay_memory"]
  assert (saved["obs_storage"], saved["stored_obs_bytes"], saved["capacity"]) == (
      "float32", 16, 10_000)
  assert saved["bytes_per_transition"] == pytest.approx(
      saved["buffer_bytes"] / 10_000) and saved["bytes_per_transition"] < 16 + 32
  assert out.result.metrics["env_steps"][-1] == 2000


# --- the truncation probe learns with every buffer kind --------------------------

@pytest.mark.parametrize("n_step,prioritized", [(1, True), (3, False)],
                         ids=["per-item", "nstep"])
def test_truncation_probe_learns_q_of_ten(n_step, prioritized):
  """Q = 1 / (1 - 0.9) = 10 where episodes end only by the time limit (the
  item and prioritized n-step buffers: tests/test_anakin.py)."""
  agent, env, config = probe_envs.truncation_probe(
      total_env_steps=12_000, eval_every=12_000, eval_episodes=1, n_step=n_step,
      prioritized=prioritized)
  result = anakin.train(agent, env, config, on_chunk=lambda record: None)
  q = probe_envs.probe_q(agent, result)
  np.testing.assert_allclose(q, 10.0, atol=0.5)  # treating truncation as an end: ~4.1
