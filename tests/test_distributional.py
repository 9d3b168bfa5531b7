"""C51, Munchausen-DQN, noisy nets and Rainbow: the maths on hand-computed
numbers, C51 against rlax, the noisy layer's properties, the contract's
update key, the registry and command line, a Rainbow run stopped, resumed and
evaluated, and one short CartPole learning check per new agent."""

import subprocess
import sys

import gymnasium
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import rlax

import helpers
from baselax import anakin, experiment, networks
from baselax import envs as baselax_envs
from baselax.agents import C51, DQN, distributional, registry, value_learning
from baselax.experiment import loggers

SMALL = ["--total-env-steps", "4000", "--eval-every", "1000", "--num-envs", "4",
         "--learning-starts", "500", "--buffer-size", "2000", "--batch-size", "32",
         "--eval-episodes", "4", "--checkpoint-every", "1000", "--quiet",
         "--no-tensorboard", "--compilation-cache", "none"]
Z = jnp.linspace(0.0, 4.0, 5)   # the support 0, 1, 2, 3, 4 (dz = 1)


# --- the C51 projection and loss ------------------------------------------------


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_projection_splits_mass_between_neighbours_and_clips_to_the_edges(jit):
  project = jax.jit(distributional.categorical_projection) if jit else \
      distributional.categorical_projection
  # 1.5 splits half-half between atoms 1 and 2; 2.0 lands on atom 2; 10 is
  # clipped to v_max = 4; -3 to v_min = 0; 3.25 goes 3/4 to atom 3, 1/4 to 4.
  out = project(jnp.array([1.5, 2.0, 10.0, -3.0, 3.25]),
                jnp.array([0.2, 0.2, 0.2, 0.2, 0.2]), Z)
  np.testing.assert_allclose(out, [0.2, 0.1, 0.3, 0.15, 0.25], atol=1e-6)


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


# --- Munchausen ------------------------------------------------------------------


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


# --- noisy layers ---------------------------------------------------------------


def _noisy_layer():
  net = hk.transform(lambda x: networks.NoisyLinear(3)(x))
  x = jnp.array([[1.0, -2.0, 0.5, 3.0]])
  return net, net.init(jax.random.PRNGKey(0), x), x


def test_noisy_layer_mean_is_the_mean_weights_and_noise_follows_the_key():
  net, params, x = _noisy_layer()
  mean = net.apply(params, None, x)      # no rng: the mean weights
  p = params["noisy_linear"]
  np.testing.assert_allclose(mean, x @ p["w_mu"] + p["b_mu"], rtol=1e-6)
  np.testing.assert_allclose(p["w_sigma"], 0.5 / np.sqrt(4))   # sigma0 / sqrt(p)
  keys = jax.random.split(jax.random.PRNGKey(1), 20000)
  samples = jax.vmap(lambda k: net.apply(params, k, x))(keys)
  assert float(jnp.std(samples)) > 0.1
  np.testing.assert_allclose(jnp.mean(samples, axis=0), mean, atol=0.03)
  a, b = net.apply(params, keys[0], x), net.apply(params, keys[1], x)
  assert not np.allclose(a, b)                                        # differs by key
  np.testing.assert_array_equal(a, net.apply(params, keys[0], x))     # fixed for a key


def test_noisy_layer_one_matmul_form_equals_the_per_row_form():
  """A call on many rows computes x @ (mu + sigma * outer(e_in, e_out)); a
  call on one row f(e_out) * ((x * f(e_in)) @ sigma): the same numbers."""
  net, params, _ = _noisy_layer()
  x = jax.random.normal(jax.random.PRNGKey(3), (5, 4))
  key = jax.random.PRNGKey(4)
  rows = jax.vmap(lambda row: net.apply(params, key, row[None])[0])(x)
  np.testing.assert_allclose(net.apply(params, key, x), rows, rtol=1e-5, atol=1e-6)


def test_noisy_predict_explores_per_row_and_evaluates_on_the_mean():
  env = gymnasium.make("CartPole-v1")
  agent = DQN(networks.mlp_q_network((16,), noisy=True), env, 1e-3,
              epsilon_schedule=lambda _: 0.0, noisy=True)
  assert agent.contract.update_key and not DQN.contract.update_key
  params = agent.init_params(jax.random.PRNGKey(0))
  obs = jnp.ones((6, 4))
  out, _ = agent.predict(params, agent.init_policy(), obs, jax.random.PRNGKey(1))
  assert not np.allclose(out.q_values[0], out.q_values[1])   # own noise per row
  greedy, _ = agent.predict(params, agent.init_policy(), obs, jax.random.PRNGKey(1),
                            evaluation=True)
  np.testing.assert_allclose(greedy.q_values,
                             agent.network.apply(params.policy, obs), rtol=1e-6)
  # update: the key changes the noise (and so the step); without one it runs too.
  batch = {"obs": obs, "action": jnp.zeros(6, jnp.int32), "reward": jnp.ones(6),
           "terminated": jnp.zeros(6), "next_obs": obs}
  opt = agent.init_optimizer(params)
  l1 = agent.update(params, opt, batch, key=jax.random.PRNGKey(2))[0].loss
  l2 = agent.update(params, opt, batch, key=jax.random.PRNGKey(3))[0].loss
  l0 = agent.update(params, opt, batch)[0].loss
  assert len({float(l0), float(l1), float(l2)}) == 3


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


# --- configs, registry and command line -------------------------------------------


@pytest.mark.parametrize("flags, message", [
    (["--agent", "c51", "--v-min", "5", "--v-max", "1"], "v_min must be < v_max"),
    (["--agent", "c51", "--num-atoms", "1"], "num_atoms must be an integer >= 2"),
    (["--agent", "mdqn", "--munchausen-tau", "0"], "munchausen_tau must be > 0"),
    (["--agent", "mdqn", "--munchausen-alpha", "1.5"], "munchausen_alpha must be in [0, 1]"),
    (["--agent", "mdqn", "--munchausen-l0", "0"], "munchausen_l0 must be < 0"),
    (["--agent", "mdqn", "--double-dqn"], "double_dqn does not apply to mdqn"),
], ids=["support", "atoms", "tau", "alpha", "l0", "double"])
def test_bad_flags_are_one_line_usage_errors(flags, message, capsys):
  with pytest.raises(SystemExit) as exit_info:
    experiment.parse(flags)
  assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_rainbow_entry_supplies_trainer_defaults_that_flags_override():
  assert {"c51", "mdqn", "rainbow"} <= set(registry.names())
  spec = experiment.parse(["--agent", "rainbow"])
  assert spec.trainer.n_step == 3 and spec.trainer.prioritized
  assert spec.trainer.priority_exponent == 0.5
  assert spec.agent.noisy and spec.agent.dueling and spec.agent.double_dqn
  spec = experiment.parse(["--agent", "rainbow", "--n-step", "1", "--no-prioritized"])
  assert spec.trainer.n_step == 1 and not spec.trainer.prioritized
  assert experiment.parse(["--agent", "c51"]).trainer == anakin.AnakinConfig()
  with pytest.raises(ValueError, match=r"trainer_defaults \['nstep'\] are not TrainingConfig"):
    registry.register("typo", registry.get("c51").config_cls, registry.get("c51").build,
                      trainer_defaults={"nstep": 3})
  assert "typo" not in registry.names()


def test_new_agents_are_reachable_from_the_command_line(capsys):
  for name, flag in (("c51", "--v-max"), ("mdqn", "--munchausen-alpha"),
                     ("rainbow", "--num-atoms")):
    with pytest.raises(SystemExit) as exit_info:
      experiment.parse(["--agent", name, "--help"])
    help_text = capsys.readouterr().out
    assert exit_info.value.code == 0 and flag in help_text and "--noisy" in help_text
  out = subprocess.run([sys.executable, "experiments/anakin_dqn.py", "--agent", "rainbow",
                        "--help"], cwd=helpers.REPO, capture_output=True, text=True,
                       timeout=60)
  assert out.returncode == 0 and "--v-min" in out.stdout


class StopAfter(loggers.Logger):
  def __init__(self, chunk):
    self.chunk = chunk

  def write(self, record):
    return record.chunk == self.chunk


@pytest.mark.slow
def test_rainbow_learns_cartpole_and_stops_resumes_and_evaluates(tmp_path):
  path = str(tmp_path / "rainbow")
  stopped = experiment.run([
      "--agent", "rainbow", "--total-env-steps", "50000", "--eval-every", "10000",
      "--learning-rate", "1e-3", "--learning-starts", "5000", "--quiet",
      "--no-tensorboard", "--compilation-cache", "none", "--run-dir", path],
      loggers=[StopAfter(1)])
  assert stopped.interrupted
  resumed = experiment.run(["--resume", path, "--quiet"])
  assert not resumed.interrupted and resumed.result.first_chunk == 2
  assert resumed.result.config.n_step == 3 and resumed.result.config.prioritized
  assert isinstance(resumed.result.params, C51.Params)
  # A constant-action greedy policy scores about 9, random play about 22; at
  # 50k steps seeds 0-3 measured 86 to 500 (4 seeds: mean 215).
  assert resumed.eval_return.mean() >= 60
  out = experiment.evaluate([path, "--episodes", "3"])
  assert out["returns"].shape == (1, 3) and np.all(out["returns"] >= 1)


def test_noisy_c51_trains_in_the_host_loop():
  from baselax import hostloop
  env = gymnasium.vector.SyncVectorEnv([lambda: gymnasium.make("CartPole-v1")] * 2)
  config = anakin.AnakinConfig(total_env_steps=400, num_envs=2, buffer_size=400,
                               batch_size=16, learning_starts=100, eval_every=400)
  agent = C51(networks.mlp_q_network((16,), atoms=11, noisy=True), env, 1e-3,
              num_atoms=11, noisy=True)
  result = hostloop.train(agent, env, config)
  assert np.isfinite(result.metrics["loss"]).all()


# --- learning -------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("agent", ["c51", "mdqn"])   # rainbow: above
def test_each_new_agent_learns_cartpole_quickly(agent, tmp_path):
  out = experiment.run([
      "--agent", agent, "--total-env-steps", "50000", "--learning-rate", "1e-3",
      "--learning-starts", "5000", "--quiet", "--no-tensorboard",
      "--run-dir", str(tmp_path / "run")])
  # A constant-action greedy policy scores about 9, random play about 22.
  assert out.eval_return.mean() >= 100
