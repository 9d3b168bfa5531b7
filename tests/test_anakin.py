"""The Anakin trainer: learning, RNG discipline, the agent contract, devices, bad input."""

import dataclasses
from typing import NamedTuple

import chex
import gymnasium
import helpers
import jax
import jax.numpy as jnp
import numpy as np
import optax
import probe_envs
import pytest
from gymnax.environments import environment

from baselax import anakin, envs, hostloop, networks
from baselax import envs as baselax_envs
from baselax.agents import DQN, BaseAgent
from baselax.anakin import loop

QUIET = dict(on_chunk=lambda summary: None)


def test_truncation_bootstraps_q_reaches_one_over_one_minus_gamma():
  agent, env, config = probe_envs.truncation_probe()
  result = anakin.train(agent, env, config, **QUIET)
  q = probe_envs.probe_q(agent, result)
  # 1 / (1 - 0.9) = 10; treating the time limit as termination gives ~4.1.
  np.testing.assert_allclose(q, 10.0, atol=0.5)
  # every 10-step episode returns 10; the greedy evaluation sees it too
  np.testing.assert_allclose(result.metrics["eval_return"][-1], 10.0)
  np.testing.assert_allclose(result.metrics["train_return"][-1], 10.0)
  assert result.metrics["q_mean"][-1, 0] == pytest.approx(10.0, abs=0.5)


def test_metrics_layout_and_step_accounting():
  agent, env, config = probe_envs.truncation_probe(total_env_steps=4_000, eval_every=1_000,
                                                   num_seeds=2, eval_episodes=3)
  result = anakin.train(agent, env, config, **QUIET)
  derived = result.derived
  m = result.metrics
  assert derived.num_chunks == 4
  np.testing.assert_array_equal(m["env_steps"], [1000, 2000, 3000, 4000])
  assert m["eval_return"].shape == (4, 2)
  assert m["eval_returns"].shape == (4, 2, 3)
  assert m["train_return"].shape == (4, 2)
  assert m["loss"].shape == (4, 2) and m["q_mean"].shape == (4, 2)
  assert m["sps"].shape == (4,) and np.all(m["sps"] > 0)
  assert m["compile_time"] > 0 and m["total_time"] >= m["wall_time"][-1]
  # state layout (devices, seeds, envs, ...) and env steps per (device, seed)
  assert result.state.obs.shape == (1, 2, 8, 1)
  np.testing.assert_array_equal(result.state.env_steps, [[4000, 4000]])
  # updates: one per scan step after learning_starts (200 env steps = 25 steps)
  assert m["updates"].shape == (4, 2)
  assert m["updates"][:, 0].sum() == derived.total_updates == 500 - 25
  # params have a leading seed axis
  assert all(x.shape[0] == 2 for x in jax.tree.leaves(result.params))


def test_same_seed_same_params_different_seeds_differ():
  agent, env, config = probe_envs.truncation_probe(total_env_steps=2_000, eval_every=2_000)
  a = anakin.train(agent, env, config, **QUIET).params
  b = anakin.train(agent, env, config, **QUIET).params
  c = anakin.train(agent, env, dataclasses.replace(config, seed=1), **QUIET).params
  chex.assert_trees_all_equal(a, b)
  assert not all(np.array_equal(x, y) for x, y in
                 zip(jax.tree.leaves(a), jax.tree.leaves(c)))


def test_seeds_in_one_program_are_independent():
  agent, env, config = probe_envs.truncation_probe(total_env_steps=2_000, eval_every=2_000,
                                                   num_seeds=3)
  params = anakin.train(agent, env, config, **QUIET).params
  for leaf in jax.tree.leaves(params.policy):
    assert not np.array_equal(leaf[0], leaf[1])
    assert not np.array_equal(leaf[1], leaf[2])


def test_make_train_is_jittable_and_vmappable_over_keys():
  agent, env, config = probe_envs.truncation_probe(total_env_steps=1_600, eval_every=800)
  train_fn = anakin.make_train(agent, env, config)
  keys = jnp.stack([jax.random.PRNGKey(i) for i in range(3)])
  state, metrics = jax.jit(jax.vmap(train_fn))(keys)
  assert metrics["eval_returns"].shape == (3, 2, config.eval_episodes)
  np.testing.assert_array_equal(state.env_steps, [1600] * 3)
  # the runner's seed i is make_train's PRNGKey(seed + i)
  single_state, _ = jax.jit(train_fn)(keys[1])
  chex.assert_trees_all_close(jax.tree.map(lambda x: x[1], state.params),
                              single_state.params, rtol=1e-5, atol=1e-6)


class TinyAgent(BaseAgent):
  """Not DQN: uniformly random actions, and a linear model of the immediate
  reward ``r(s, a)`` fitted by least squares. Its OptimOutput has its own
  scalar names, which the trainer must log without knowing them."""

  class OptimOutput(NamedTuple):
    mse: jax.Array
    prediction: jax.Array
    per_sample: jax.Array  # not a scalar: the trainer must not log it

  class PolicyOutput(NamedTuple):
    actions: jax.Array

  def predict(self, params, policy_state, obs, key, evaluation=False, **kwargs):
    actions = jax.random.randint(key, (obs.shape[0],), 0, self.action_space.n)
    return self.PolicyOutput(actions), policy_state

  def update(self, params, optimizer_state, data, axis_name=None, **kwargs):
    def loss(p):
      pred = jnp.take_along_axis(self.network.apply(p, data["obs"]),
                                 data["action"][:, None], axis=1)[:, 0]
      err = jnp.square(pred - data["reward"])
      return jnp.mean(err), (pred, err)
    (mse, (pred, err)), grads = jax.value_and_grad(loss, has_aux=True)(params)
    if axis_name is not None:
      grads = jax.lax.pmean(grads, axis_name)
    updates, opt_state = self.optimizer.update(grads, optimizer_state.opt_state)
    out = self.OptimOutput(mse, jnp.mean(pred), err)
    return (out, optax.apply_updates(params, updates),
            self.OptimState(optimizer_state.count + 1, opt_state))


def test_any_base_agent_trains_without_changes_to_the_trainer():
  env = envs.GymnaxEnv(probe_envs.ConstantRewardTimeLimit())
  agent = TinyAgent(networks.mlp_q_network((8,)), env, 1e-2)
  config = anakin.AnakinConfig(total_env_steps=8_000, num_envs=8,
                               buffer_size=1_000, batch_size=32,
                               learning_starts=100, eval_every=4_000,
                               eval_episodes=2, num_devices=1)
  seen = []
  result = anakin.train(agent, env, config, on_chunk=seen.append)
  assert len(seen) == 2 and "mse" in seen[-1].scalars
  assert "per_sample" not in seen[-1].scalars
  assert result.metrics["mse"][-1, 0] < 1e-3 < result.metrics["mse"][0, 0]
  assert result.metrics["prediction"][-1, 0] == pytest.approx(1.0, abs=0.05)


@pytest.mark.slow
def test_default_experiment_solves_cartpole(capsys, tmp_path):
  from baselax import experiment
  out = experiment.run(["--quiet", "--run-dir", str(tmp_path / "run")])
  assert out.result.metrics["eval_returns"].shape[-1] >= 32
  assert out.eval_return.mean() >= 475
  assert out.result.config == anakin.AnakinConfig()  # the defaults, untouched
  printed = capsys.readouterr().out
  assert "final greedy eval return" in printed and "compile" in printed
  assert f"run directory: {tmp_path / 'run'}" in printed


def test_multi_device_params_identical_and_steps_counted():
  out = helpers.run_in_subprocess("""
      import jax, numpy as np
      from baselax import anakin, envs, networks
      from baselax.agents import DQN
      import probe_envs
      assert jax.local_device_count() == 4
      env = envs.GymnaxEnv(probe_envs.ConstantRewardTimeLimit())
      agent = DQN(networks.mlp_q_network((16,)), env, 3e-3, discount_factor=0.9,
                  target_update_interval=20)
      config = anakin.AnakinConfig(total_env_steps=6_400, num_envs=4,
          buffer_size=1_000, batch_size=16, learning_starts=320,
          eval_every=3_200, eval_episodes=8, num_seeds=2)
      result = anakin.train(agent, env, config, on_chunk=lambda s: None)
      leaves = jax.tree.leaves(result.state.params.policy)
      same = all(np.array_equal(l[0], l[d]) for l in leaves for d in range(4))
      keys = np.asarray(result.state.key)  # (devices, seeds, 2)
      keys_differ = all(not np.array_equal(keys[0], keys[d]) for d in range(1, 4))
      steps = result.state.env_steps  # (devices, seeds)
      print("RESULT", same, keys_differ, steps.shape, int(steps.sum(0)[0]),
            int(result.metrics["env_steps"][-1]),
            result.metrics["eval_returns"].shape)
      """)
  line = out.strip().splitlines()[-1]
  assert line == "RESULT True True (4, 2) 6400 6400 (2, 2, 8)", line


def test_bad_inputs_raise_before_compiling():
  agent, env, _ = probe_envs.truncation_probe()
  base = dict(total_env_steps=1_000, num_envs=4, buffer_size=100,
              batch_size=16, learning_starts=16)
  with pytest.raises(ValueError, match="batch_size .* larger than buffer_size"):
    anakin.AnakinConfig(**{**base, "batch_size": 200})
  with pytest.raises(ValueError, match="learning_starts .* below batch_size"):
    anakin.AnakinConfig(**{**base, "learning_starts": 8})
  with pytest.raises(ValueError, match="num_envs must be a positive integer"):
    anakin.AnakinConfig(**{**base, "num_envs": 0})
  with pytest.raises(ValueError, match="smaller than one scan step"):
    anakin.train(agent, env, anakin.AnakinConfig(**{**base, "total_env_steps": 3}))
  with pytest.raises(ValueError, match="only 1 local"):
    anakin.train(agent, env, anakin.AnakinConfig(**base, num_devices=2))
  with pytest.raises(TypeError, match="needs a JAX-native env.*GymnaxEnv"):
    anakin.train(agent, gymnasium.make("CartPole-v1"), anakin.AnakinConfig(**base))
  with pytest.raises(TypeError, match="needs a JAX-native env"):
    anakin.make_train(agent, gymnasium.make("CartPole-v1"), anakin.AnakinConfig(**base))
  config = anakin.AnakinConfig(**base)
  with pytest.raises(dataclasses.FrozenInstanceError):
    config.num_envs = 3  # frozen: derived values are never written back


def test_unrolled_threefry_draws_the_same_bits_without_loops():
  """The trainer compiles its chunk with threefry unrolled (anakin/lowering.py):
  on CPU JAX's default lowering is a loop per draw; unrolled it is straight-line
  code drawing the very same bits. Fails if a JAX upgrade moves the internals
  (the context manager would then silently be a no-op)."""
  from baselax.training import lowering

  def lower(key):  # a new function each time: JAX caches a function's lowering
    def draws(key):
      keys = jax.random.split(key, 3)
      return jax.random.uniform(keys[0], (5,)), jax.random.randint(keys[1], (4,), 0, 9)
    return jax.jit(draws).lower(key)

  key = jax.random.PRNGKey(3)
  rolled = lower(key)
  with lowering.unrolled_threefry():
    unrolled = lower(key)
  if jax.default_backend() == "cpu":
    assert "while" in rolled.as_text() and "while" not in unrolled.as_text()
  for a, b in zip(rolled.compile()(key), unrolled.compile()(key)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  # The default lowering is back once the block ends.
  assert "while" in lower(key).as_text() or jax.default_backend() != "cpu"


def test_cpu_schedule_option_is_known_and_changes_no_bit():
  """On CPU the trainer compiles its chunk with a thunk schedule that lets
  independent kernels overlap (training/lowering.py), plus the options a
  pairwise loss gets (QR-DQN's keeps YNNPACK to dots). On this probe none changes a
  bit: a chunk compiled with and without them ends in identical params.
  Fails if an XLA upgrade drops an option (compile_chunk would then silently
  fall back to the defaults)."""
  from baselax.anakin import program as program_lib
  from baselax.training import lowering

  agent, env, config = probe_envs.truncation_probe(total_env_steps=1_600, eval_every=800,
                                                   learning_starts=400, num_seeds=2)
  prog = program_lib.build(agent, env, config)
  abstract = jax.eval_shape(prog.init, prog.seed_keys, prog.device_indices)
  lowered = prog.chunk.lower(abstract, jax.ShapeDtypeStruct((), jnp.int32))
  compiled = {"default": lowered.compile(),
              "trainer": lowering.compile_chunk(lowered, lowering.compiler_options(agent))}
  if jax.default_backend() == "cpu":  # the options themselves, no fallback
    compiled["option"] = lowered.compile(compiler_options=lowering.CPU_COMPILER_OPTIONS)
    compiled["dots only"] = lowered.compile(compiler_options={
        **lowering.CPU_COMPILER_OPTIONS, **lowering.DOTS_ONLY_TO_YNNPACK})
  ends = {}
  for name, chunk in compiled.items():
    state = prog.init(prog.seed_keys, prog.device_indices)
    for c in range(prog.derived.num_chunks):
      state, metrics = chunk(state, jnp.int32(c * prog.derived.steps_per_chunk))
    assert float(np.sum(metrics["updates"])) > 0  # the update ran
    ends[name] = (state.params, metrics["eval_returns"])
  for name, end in ends.items():
    chex.assert_trees_all_equal(end, ends["default"])


def test_the_trainers_compile_a_pairwise_loss_with_dots_only_to_ynnpack():
  """QR-DQN declares a pairwise loss in its contract, no compiler option; the
  trainers choose the options (the Anakin program carries them to
  compile_chunk, the host loop's jit gets the same); DQN and C51 (whose
  projection is O(N + K)) get the CPU schedule alone."""
  import dataclasses

  from baselax.agents import C51, DQN, QRDQN
  from baselax.agents.base import BaseAgent
  from baselax.anakin import program as program_lib
  from baselax.training import lowering
  assert QRDQN.contract.pairwise_loss
  assert not DQN.contract.pairwise_loss and C51.contract == DQN.contract
  assert not any("compiler" in name for name in dir(BaseAgent))  # no backend flag in the API
  assert dataclasses.replace(QRDQN.contract, pairwise_loss=False) == DQN.contract
  env = envs.make("CartPole-v1")
  qrdqn = QRDQN(networks.mlp_q_network((8,), atoms=5), env, 1e-3)
  dqn = DQN(networks.mlp_q_network((8,)), env, 1e-3)
  cpu = jax.default_backend() == "cpu"
  assert lowering.compiler_options(qrdqn) == (
      {**lowering.CPU_COMPILER_OPTIONS, **lowering.DOTS_ONLY_TO_YNNPACK} if cpu else {})
  assert lowering.compiler_options(dqn) == (lowering.CPU_COMPILER_OPTIONS if cpu else {})
  config = anakin.AnakinConfig(total_env_steps=64, num_envs=2, buffer_size=64,
                               batch_size=4, learning_starts=16, eval_every=64)
  assert program_lib.build(qrdqn, env, config).compiler_options == (
      lowering.compiler_options(qrdqn))


def test_the_trainer_passes_an_update_key_only_when_the_contract_asks():
  seen = []

  class Recording(DQN):
    def update(self, params, optimizer_state, data, axis_name=None, **kwargs):
      seen.append(sorted(kwargs))
      return super().update(params, optimizer_state, data, axis_name, **kwargs)

  env = baselax_envs.make("CartPole-v1", num_envs=2)
  config = anakin.AnakinConfig(total_env_steps=200, num_envs=2, buffer_size=100,
                               batch_size=8, learning_starts=20, eval_every=200,
                               eval_episodes=1, eval_max_steps=5)
  for noisy in (False, True):
    seen.clear()
    agent = Recording(networks.mlp_q_network((8,), noisy=noisy), env, 1e-3, noisy=noisy)
    # Tracing the whole run records every update call it makes.
    jax.eval_shape(anakin.make_train(agent, env, config), jax.random.PRNGKey(0))
    # (The trainer also traces update without a key, for shapes: allowed.)
    assert (["key"] in seen) == noisy


def test_anakin_evaluation_of_a_never_ending_env_stops_at_the_default_cap():
  env = envs.GymnaxEnv(probe_envs.ConstantRewardTimeLimit(),
                       environment.EnvParams(max_steps_in_episode=10 ** 9))
  assert loop.episode_step_limit(env) == loop.DEFAULT_EVAL_MAX_STEPS == 27_000
  assert loop.episode_step_limit(env, 50) == 50
  short = envs.GymnaxEnv(probe_envs.ConstantRewardTimeLimit())  # its own limit: 10
  assert loop.episode_step_limit(short) == 10
  agent = DQN(networks.mlp_q_network((4,)), env, 1e-3)
  config = anakin.AnakinConfig(total_env_steps=64, num_envs=2, buffer_size=64,
                               batch_size=8, learning_starts=8, eval_every=64,
                               eval_episodes=2)
  _, metrics = jax.jit(anakin.make_train(agent, env, config))(jax.random.PRNGKey(0))
  # reward 1 per step: the return is the number of steps counted
  np.testing.assert_array_equal(metrics["eval_returns"], [[27_000.0, 27_000.0]])


def test_first_update_comes_after_the_documented_env_steps():
  """learning_starts=256 with 8 envs (S = 8 env steps per scan step): the first
  update follows (ceil(256 / 8) + 1) * 8 = 264 env steps, in both trainers.
  One chunk per scan step, so the per-chunk update counts show where."""
  config = anakin.AnakinConfig(total_env_steps=288, num_envs=8, buffer_size=512,
                               batch_size=32, learning_starts=256, eval_every=8,
                               eval_episodes=1, eval_max_steps=1)
  expected = np.zeros(36)
  expected[32:] = 1.0  # chunk 32 ends after 33 * 8 = 264 env steps
  env = envs.GymnaxEnv(probe_envs.ConstantRewardTimeLimit())
  agent = DQN(networks.mlp_q_network((4,)), env, 1e-3)
  _, metrics = jax.jit(anakin.make_train(agent, env, config))(jax.random.PRNGKey(0))
  np.testing.assert_array_equal(metrics["updates"], expected)
  host_env = envs.GymnaxEnv(probe_envs.ConstantRewardTimeLimit(), num_envs=8)
  result = hostloop.train(agent, host_env, config, on_chunk=lambda record: None)
  np.testing.assert_array_equal(
      np.asarray(result.metrics["updates"]).reshape(36, -1)[:, 0], expected)
