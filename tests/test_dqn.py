"""DQN and the documented agent API (``BaseAgent``): the maths on hand-computed
batches, acting, jit and pmap, bad inputs, one rule per hyperparameter, and noisy
acting."""

import inspect

import chex
import gymnasium
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from baselax import envs
from baselax import networks
from baselax.agents import BaseAgent
from baselax.agents import DQN
from baselax.agents import value_learning

import helpers


def make_dqn(**kwargs):
  kwargs.setdefault("learning_rate", 1e-3)
  return DQN(helpers.identity_q_network, helpers.spaces_env(), **kwargs)


# --- API conformance ----------------------------------------------------------


def test_base_agent_is_abstract_with_documented_methods():
  assert inspect.isabstract(BaseAgent)
  assert BaseAgent.__abstractmethods__ == {"predict", "update"}
  params = list(inspect.signature(BaseAgent.__init__).parameters)
  assert params == ["self", "network", "env", "learning_rate"]
  assert BaseAgent.OptimState._fields == ("count", "opt_state")
  for name in ("init_params", "init_optimizer", "init_policy", "predict",
               "update", "jit"):
    assert callable(getattr(BaseAgent, name))
  assert list(inspect.signature(BaseAgent.predict).parameters)[:6] == [
      "self", "params", "policy_state", "obs", "key", "evaluation"]
  assert list(inspect.signature(BaseAgent.update).parameters)[:4] == [
      "self", "params", "optimizer_state", "data"]


def test_dqn_documented_constructor_and_defaults():
  sig = inspect.signature(DQN.__init__)
  # The documented positional arguments, in order; the variants are
  # keyword-only additions that default to plain DQN.
  assert list(sig.parameters)[:7] == [
      "self", "network", "env", "learning_rate", "discount_factor",
      "epsilon_schedule", "target_update_interval"]
  extra = list(sig.parameters.values())[7:]
  assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in extra)
  assert {p.name: p.default for p in extra} == {
      "double_dqn": False, "huber_delta": None, "max_grad_norm": None, "optimizer": None,
      "noisy": False, "double": None}  # double: the deprecated old name of double_dqn
  assert sig.parameters["discount_factor"].default == 0.99
  assert sig.parameters["target_update_interval"].default == 50
  schedule = sig.parameters["epsilon_schedule"].default
  expected = optax.polynomial_schedule(init_value=0.9, end_value=0.05, power=1.,
                                       transition_steps=50000)
  for step in (0, 1, 12345, 25000, 50000, 80000):
    np.testing.assert_allclose(schedule(step), expected(step), rtol=1e-6)
  assert issubclass(DQN, BaseAgent)
  assert DQN.Params._fields == ("policy", "target")
  assert DQN.PolicyOutput._fields == ("actions", "q_values", "epsilon")
  assert DQN.OptimState._fields == ("count", "opt_state")
  assert "loss" in DQN.OptimOutput._fields


# --- The TD maths -------------------------------------------------------------

# Q(s) = w * s with w = 1, so the Q-values are the observations themselves.
BATCH = dict(
    obs=np.array([[1., 2.], [3., 4.]], np.float32),
    action=np.array([1, 0]),
    reward=np.array([1., -1.], np.float32),
    terminated=np.array([0., 1.], np.float32),
    next_obs=np.array([[5., 6.], [7., 8.]], np.float32),
)


def test_td_loss_on_hand_computed_batch():
  agent = make_dqn(discount_factor=0.5, learning_rate=0.1)
  params = agent.init_params(jax.random.PRNGKey(3))
  # td0 = 1 + 0.5 * max(5, 6) - 2 = 2; td1 = -1 + 0 (terminal) - 3 = -4.
  # loss = mean(0.5 * [4, 16]) = 5.
  loss, out = agent.loss(params.policy, params.target, BATCH)
  np.testing.assert_allclose(loss, 5.0, rtol=1e-6)
  np.testing.assert_allclose(out.q_mean, 2.5, rtol=1e-6)
  opt = agent.init_optimizer(params)
  out, new_params, new_opt = agent.update(params, opt, BATCH)
  np.testing.assert_allclose(out.loss, 5.0, rtol=1e-6)
  # d loss / d w = mean(-td * s[a]) = mean(-2 * 2, 4 * 3) = 4 > 0, and Adam's
  # first step has size lr: w goes from 1 to 1 - 0.1.
  np.testing.assert_allclose(new_params.policy["~"]["w"], 0.9, rtol=1e-5)
  assert int(new_opt.count) == 1


def test_truncation_bootstraps_termination_does_not():
  agent = make_dqn(discount_factor=0.9)
  params = agent.init_params(jax.random.PRNGKey(0))
  batch = dict(BATCH, terminated=np.array([0., 0.], np.float32))
  loss_bootstrap, _ = agent.loss(params.policy, params.target, batch)
  # td1 = -1 + 0.9 * 8 - 3 = 3.2; td0 = 1 + 0.9 * 6 - 2 = 4.4.
  np.testing.assert_allclose(loss_bootstrap, 0.25 * (4.4**2 + 3.2**2), rtol=1e-5)


def test_q_learning_matches_rlax():
  rlax = pytest.importorskip("rlax")
  key = jax.random.PRNGKey(7)
  k1, k2, k3, k4, k5 = jax.random.split(key, 5)
  q_tm1 = jax.random.normal(k1, (16, 4))
  q_t = jax.random.normal(k2, (16, 4))
  a_tm1 = jax.random.randint(k3, (16,), 0, 4)
  r_t = jax.random.normal(k4, (16,))
  discount_t = 0.99 * (jax.random.uniform(k5, (16,)) > 0.3)
  ours = jax.vmap(value_learning.q_learning)(q_tm1, a_tm1, r_t, discount_t, q_t)
  theirs = jax.vmap(rlax.q_learning)(q_tm1, a_tm1, r_t, discount_t, q_t)
  np.testing.assert_allclose(ours, theirs, rtol=1e-6)


def test_target_copied_exactly_at_interval():
  agent = make_dqn(target_update_interval=3, learning_rate=0.1)
  params = agent.init_params(jax.random.PRNGKey(0))
  opt = agent.init_optimizer(params)
  initial_target = params.target["~"]["w"]
  for n in range(1, 8):
    _, params, opt = agent.update(params, opt, BATCH)
    w, w_target = params.policy["~"]["w"], params.target["~"]["w"]
    assert int(opt.count) == n
    if n % 3 == 0:
      np.testing.assert_array_equal(w_target, w)
    else:
      assert w_target != w
      if n < 3:
        np.testing.assert_array_equal(w_target, initial_target)


# --- Acting -------------------------------------------------------------------


def test_epsilon_follows_schedule_and_evaluation_is_greedy():
  schedule = optax.linear_schedule(1.0, 0.1, transition_steps=4)
  agent = make_dqn(epsilon_schedule=schedule)
  params = agent.init_params(jax.random.PRNGKey(0))
  state = agent.init_policy(jax.random.PRNGKey(0))
  obs = np.array([[0., 1.], [2., 1.], [5., -3.]], np.float32)
  key = jax.random.PRNGKey(1)
  for n in range(6):
    key, sub = jax.random.split(key)
    out, state = agent.predict(params, state, obs, sub, evaluation=False)
    np.testing.assert_allclose(out.epsilon, schedule(n), rtol=1e-6)
    assert int(state.count) == n + 1
  out, eval_state = agent.predict(params, state, obs, key, evaluation=True)
  np.testing.assert_array_equal(out.actions, np.argmax(obs, -1))
  assert float(out.epsilon) == 0.0
  assert int(eval_state.count) == int(state.count)  # evaluation does not explore


def test_each_row_explores_independently():
  agent = make_dqn(epsilon_schedule=lambda count: 1.0)
  params = agent.init_params(jax.random.PRNGKey(0))
  state = agent.init_policy(None)
  obs = np.ones((64, 2), np.float32)  # identical rows
  out, _ = agent.predict(params, state, obs, jax.random.PRNGKey(5))
  assert len(np.unique(np.asarray(out.actions))) == 2
  assert out.actions.shape == (64,)


def test_jitted_and_unjitted_agree():
  plain, jitted = make_dqn(), make_dqn().jit()
  params = plain.init_params(jax.random.PRNGKey(0))
  opt = plain.init_optimizer(params)
  state = plain.init_policy(None)
  obs = np.random.default_rng(0).normal(size=(32, 2)).astype(np.float32)
  key = jax.random.PRNGKey(9)
  a, sa = plain.predict(params, state, obs, key, evaluation=False)
  b, sb = jitted.predict(params, state, obs, key, evaluation=False)
  chex.assert_trees_all_close((a, sa), (b, sb))
  g_a = plain.predict(params, state, obs, key, evaluation=True)
  g_b = jitted.predict(params, state, obs, key, evaluation=True)
  chex.assert_trees_all_close(g_a, g_b)
  u_a = plain.update(params, opt, BATCH)
  u_b = jitted.update(params, opt, BATCH)
  chex.assert_trees_all_close(u_a, u_b, rtol=1e-6)


def test_prng_sequence_and_key_array_both_accepted():
  agent = make_dqn(epsilon_schedule=lambda c: 0.5)
  for jit in (False, True):
    if jit:
      agent.jit()
    seq = hk.PRNGSequence(4)
    params = agent.init_params(seq)
    opt = agent.init_optimizer(params, seq)
    state = agent.init_policy(seq)
    obs = np.zeros((8, 2), np.float32)
    out_seq, _ = agent.predict(params, state, obs, hk.PRNGSequence(11))
    out_key, _ = agent.predict(params, state, obs, next(hk.PRNGSequence(11)))
    np.testing.assert_array_equal(out_seq.actions, out_key.actions)
    agent.update(params, opt, BATCH)


def test_predict_accepts_a_single_observation():
  env = gymnasium.make("CartPole-v1")
  agent = DQN(networks.mlp_q_network((8,)), env, 1e-3)
  params = agent.init_params(jax.random.PRNGKey(0))
  obs, _ = env.reset(seed=0)
  out, _ = agent.predict(params, agent.init_policy(None), obs,
                         jax.random.PRNGKey(0), evaluation=True)
  assert out.actions.shape == () and out.q_values.shape == (2,)
  env.step(int(out.actions))


@pytest.mark.parametrize("make_env", [
    lambda: envs.make("CartPole-v1", num_envs=8),
    lambda: gymnasium.make("CartPole-v1"),
    lambda: gymnasium.make_vec("CartPole-v1", num_envs=3),
])
def test_dqn_builds_on_gym_like_envs(make_env):
  env = make_env()
  agent = DQN(networks.mlp_q_network((16,)), env, 1e-3).jit()
  seq = hk.PRNGSequence(0)
  params = agent.init_params(seq)
  opt = agent.init_optimizer(params, seq)
  obs, _ = env.reset(seed=0)
  obs = np.atleast_2d(obs)
  out, _ = agent.predict(params, agent.init_policy(seq), obs, seq)
  assert out.actions.shape == (obs.shape[0],)
  data = dict(obs=obs, action=np.asarray(out.actions), reward=np.ones(len(obs)),
              terminated=np.zeros(len(obs)), next_obs=obs)
  out, params, opt = agent.update(params, opt, data)
  assert np.isfinite(out.loss) and int(opt.count) == 1


def test_hk_transform_with_apply_rng_is_accepted():
  def creator(action_space):
    return hk.transform(lambda x: hk.Linear(action_space.n)(x))
  agent = DQN(creator, helpers.spaces_env(), 1e-3)
  params = agent.init_params(jax.random.PRNGKey(0))
  out, _ = agent.predict(params, agent.init_policy(None), np.ones((3, 2)),
                         jax.random.PRNGKey(0))
  assert out.q_values.shape == (3, 2)


# --- Multi-device -------------------------------------------------------------


def test_update_with_axis_name_under_pmap_syncs_params():
  out = helpers.run_in_subprocess("""
      import jax, numpy as np
      from baselax import networks
      from baselax.agents import DQN
      import helpers
      assert jax.local_device_count() == 4
      agent = DQN(networks.mlp_q_network((8,)), helpers.spaces_env(), 1e-2)
      params = agent.init_params(jax.random.PRNGKey(0))
      opt = agent.init_optimizer(params)
      rep = lambda t: jax.tree.map(lambda x: np.stack([x] * 4), t)
      rng = np.random.default_rng(0)
      data = dict(obs=rng.normal(size=(4, 16, 2)).astype(np.float32),
                  action=rng.integers(0, 2, (4, 16)),
                  reward=rng.normal(size=(4, 16)).astype(np.float32),
                  terminated=np.zeros((4, 16), np.float32),
                  next_obs=rng.normal(size=(4, 16, 2)).astype(np.float32))
      def step(p, o, d, axis_name):
        return agent.update(p, o, d, axis_name=axis_name)
      synced = jax.pmap(lambda p, o, d: step(p, o, d, "i"), axis_name="i")
      unsynced = jax.pmap(lambda p, o, d: step(p, o, d, None), axis_name="i")
      p, o = rep(params), rep(opt)
      for _ in range(3):
        out, p, o = synced(p, o, data)
      leaves = jax.tree.leaves(p.policy)
      same = all(np.array_equal(l[0], l[i]) for l in leaves for i in range(4))
      _, p2, _ = unsynced(rep(params), rep(opt), data)
      differ = any(not np.array_equal(l[0], l[1]) for l in jax.tree.leaves(p2.policy))
      loss_same = bool(np.all(out.loss == out.loss[0]))
      print("RESULT", same, differ, loss_same)
      """)
  assert "RESULT True True True" in out


# --- Bad input ----------------------------------------------------------------


def test_bad_inputs_raise_clear_errors():
  env = helpers.spaces_env()
  with pytest.raises(ValueError, match="Discrete action space"):
    DQN(networks.mlp_q_network(), envs.make("Pendulum-v1"), 1e-3)
  with pytest.raises(ValueError, match="learning_rate must be > 0"):
    DQN(helpers.identity_q_network, env, 0.0)
  with pytest.raises(ValueError, match="learning_rate must be > 0"):
    DQN(helpers.identity_q_network, env, -1e-3)
  for gamma in (0.0, 1.5, -0.1):
    with pytest.raises(ValueError, match="discount_factor"):
      DQN(helpers.identity_q_network, env, 1e-3, discount_factor=gamma)
  for interval in (0, -3):
    with pytest.raises(ValueError, match="target_update_interval"):
      DQN(helpers.identity_q_network, env, 1e-3, target_update_interval=interval)
  with pytest.raises(TypeError, match="gym-like"):
    DQN(helpers.identity_q_network, object(), 1e-3)
  agent = make_dqn()
  params = agent.init_params(jax.random.PRNGKey(0))
  opt = agent.init_optimizer(params)
  batch = {k: v for k, v in BATCH.items() if k != "next_obs"}
  with pytest.raises(ValueError, match="next_obs"):
    agent.update(params, opt, batch)
  with pytest.raises(ValueError, match="next_obs"):
    agent.jit().update(params, opt, batch)


def test_learning_rate_schedule_is_accepted():
  agent = DQN(helpers.identity_q_network, helpers.spaces_env(),
              optax.linear_schedule(0.1, 0.0, 10))
  params = agent.init_params(jax.random.PRNGKey(0))
  _, new, _ = agent.update(params, agent.init_optimizer(params), BATCH)
  np.testing.assert_allclose(new.policy["~"]["w"], 0.9, rtol=1e-5)


# --- one rule per hyperparameter, whichever way the value comes in --------------

#: (agent, hyperparameter, an invalid value): the constructor's keyword and the
#: registry config's field (the flag) have the same name.
INVALID = [
    ("dqn", "learning_rate", -0.001), ("dqn", "discount_factor", 1.5),
    ("dqn", "target_update_interval", 0), ("dqn", "huber_delta", 0.0),
    ("dqn", "max_grad_norm", -1.0), ("c51", "num_atoms", 1), ("c51", "v_min", 200.0),
    ("qrdqn", "kappa", 0.0), ("mdqn", "munchausen_alpha", 2.0),
    ("mdqn", "munchausen_tau", 0.0), ("mdqn", "munchausen_l0", 0.5),
]


@pytest.mark.parametrize("agent,name,value", INVALID, ids=lambda x: str(x))
def test_each_hyperparameter_is_refused_with_one_message_by_constructor_and_flag(
    agent, name, value, capsys):
  from baselax.agents import C51, MDQN, QRDQN
  from baselax.errors import ConfigError
  from baselax.experiment import launch
  cls, atoms = {"dqn": (DQN, None), "c51": (C51, 51), "qrdqn": (QRDQN, 5),
                "mdqn": (MDQN, None)}[agent]
  kwargs = {"learning_rate": 1e-3, name: value}
  with pytest.raises(ConfigError) as constructed:
    cls(networks.mlp_q_network((4,), atoms=atoms), envs.make("CartPole-v1"), **kwargs)
  message = str(constructed.value)
  with pytest.raises(SystemExit) as parsed:
    launch.parse(["--agent", agent, f"--{name.replace('_', '-')}", str(value)])
  err = capsys.readouterr().err
  assert parsed.value.code == 2 and len(err.strip().splitlines()) == 1
  assert err.startswith(f"anakin_dqn.py: error: --{name.replace('_', '-')} {value}: "), err
  assert message in err, (message, err)  # the same words, after the flag


def test_old_keyword_names_still_work_and_say_their_new_names():
  from baselax.agents import MDQN
  env = envs.make("CartPole-v1")
  with pytest.warns(DeprecationWarning, match=r"DQN\(double=...\) is deprecated: use "
                                              r"double_dqn="):
    agent = DQN(networks.mlp_q_network((4,)), env, 1e-3, double=True)
  assert agent.double_dqn and agent.double
  with pytest.warns(DeprecationWarning, match="use munchausen_tau="):
    mdqn = MDQN(networks.mlp_q_network((4,)), env, 1e-3, tau=0.1)
  assert mdqn.munchausen_tau == 0.1
  with pytest.raises(TypeError, match="pass double_dqn= only"):
    hyperparams_renamed = __import__("baselax.agents.hyperparams", fromlist=["x"])
    hyperparams_renamed.renamed_keywords("DQN", {"double": 1, "double_dqn": 1},
                                         {"double": "double_dqn"})


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
