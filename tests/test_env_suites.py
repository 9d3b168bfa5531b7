"""The env protocol and the suite adapters (Craftax, Jumanji, Navix,
XLand-MiniGrid): ids, spaces, the jitted functional core, episode ends,
action masks. All suites share this file so their slow imports share one
process; each suite's checks compile one program (module-scoped fixture).
"""

import types

import gymnasium
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

# The suites are in .[dev]; without them (a bare install) this file skips.
for _package in ("craftax", "jumanji", "navix", "xminigrid"):
  pytest.importorskip(_package)

import jumanji  # noqa: E402
import jumanji.wrappers  # noqa: E402
from jumanji.types import StepType  # noqa: E402

from baselax import anakin, envs, training  # noqa: E402
from baselax.agents import C51, DQN, MDQN, QRDQN, value_learning  # noqa: E402
from baselax.envs import jumanji_env, suites  # noqa: E402
from baselax.errors import ConfigError  # noqa: E402
from baselax.learner import contract  # noqa: E402


class CutAfter3(jumanji.wrappers.Wrapper):
  """A Jumanji env whose episodes are cut after 3 steps the way Jumanji marks
  a truncation: a LAST step with discount 1 (``jumanji.types.truncation``).
  Jumanji's own single-agent envs end at their time limit with discount 0."""

  def step(self, state, action):
    state, timestep = self._env.step(state, action)
    cut = (state.step_count >= 3) & ~timestep.last()
    return state, timestep.replace(
        step_type=jnp.where(cut, StepType.LAST, timestep.step_type),
        discount=jnp.where(cut, 1.0, timestep.discount))


class Twin:
  """The reference trajectory of a 3-step env: its unlimited twin, reset with
  the same key and stepped with the same keys and actions."""

  def __init__(self, env):
    self.env = env

  def start(self, key, state):
    del state
    return self.env.functional_reset(key, NUM_ENVS)[1]

  def step(self, key, state, actions):
    return self.env.functional_step(key, state, actions)


class CraftaxSteps:
  """Craftax's reference trajectory without a second reset program (compiling
  Craftax is what makes it slow to test): Craftax's own step, from the same
  state, with the keys ``SuiteEnv.functional_step`` gives env ``i``'s step
  (``split(key, N + resets)[i]``), and no reset."""

  def __init__(self, env):
    self.env = env

  def start(self, key, state):
    del key
    return state

  def step(self, key, state, actions):
    n = actions.shape[0]
    keys = jax.random.split(key, n + -(-n // self.env.reset_ratio))[:n]
    raw, state, reward, _, _ = jax.vmap(self.env.env.step, in_axes=(0, 0, 0, None))(
        keys, state, actions, self.env.env_params)
    false = jnp.zeros((n,), bool)
    obs = self.env.observe(raw)
    return state, envs.EnvStep(obs, reward, false, false, obs)


#: Per suite: an easy id, the same env with episodes cut after 3 steps, its
#: reference trajectory, the obs shape and action count, whether it has an
#: action mask, and an action that cannot end an episode in 3 steps (None:
#: the first valid one).
CASES = {
    "navix": ("navix:Navix-Empty-5x5-v0",
              lambda: envs.make("navix:Navix-Empty-5x5-v0", NUM_ENVS, max_steps=3),
              Twin, (5, 5, 3), 7, False, 0),
    "xminigrid": ("xminigrid:MiniGrid-Empty-5x5",
                  lambda: envs.make("xminigrid:MiniGrid-Empty-5x5", NUM_ENVS, max_steps=3),
                  Twin, (7, 7, 2), 6, False, 1),
    # 725 = the 12x12x5 grid, the step count and the 4-entry action mask.
    "jumanji": ("jumanji:Snake-v1",
                lambda: jumanji_env.JumanjiEnv(CutAfter3(jumanji.make("Snake-v1")), NUM_ENVS),
                Twin, (725,), 4, True, None),
    "craftax": ("craftax:Craftax-Classic-Symbolic-v1",
                lambda: envs.make("craftax:Craftax-Classic-Symbolic-v1", NUM_ENVS,
                                  max_timesteps=3),
                CraftaxSteps, (1345,), 17, False, 0),
}
NUM_ENVS = 3
#: These programs run 3 steps: compiling them fast matters, not their speed.
FAST_COMPILE = {"xla_backend_optimization_level": 0,
                "xla_llvm_disable_expensive_passes": True}


def rollout(short, reference, pick, key):
  """Resets the 3-step env and steps it 3 times beside its reference
  trajectory; returns (reset obs, (EnvSteps, reference EnvSteps), each (3, N))."""
  obs, state = short.functional_reset(key, NUM_ENVS)
  ref_state = reference.start(key, state)

  def step(carry, step_key):
    obs, state, ref_state = carry
    actions = pick(obs)
    state, out = short.functional_step(step_key, state, actions)
    ref_state, ref_out = reference.step(step_key, ref_state, actions)
    return (out.obs, state, ref_state), (out, ref_out)

  _, outs = jax.lax.scan(step, (obs, state, ref_state), jax.random.split(key, 3))
  return obs, outs


@pytest.fixture(scope="module", params=list(CASES))
def suite_run(request):
  """One compiled program per suite: the 3-step rollout and its reference."""
  env_id, make_short, make_reference, *_, action = CASES[request.param]
  short = make_short()
  reference = make_reference(envs.make(env_id, num_envs=NUM_ENVS)
                             if make_reference is Twin else short)
  num_actions = short.single_action_space.n
  if action is None:  # the first valid action of each env
    pick = lambda obs: jnp.argmax(envs.action_mask(obs, num_actions), -1)
  else:
    pick = lambda obs: jnp.full((obs.shape[0],), action, jnp.int32)
  key = jax.random.PRNGKey(3)
  program = jax.jit(lambda key: rollout(short, reference, pick, key)).lower(key).compile(
      compiler_options=FAST_COMPILE)
  return request.param, short, reference, jax.device_get(program(key))


def test_builds_by_id_with_gymnasium_spaces_and_the_protocol(suite_run):
  name, short, reference, (reset_obs, _) = suite_run
  env_id, _, _, obs_shape, num_actions, has_mask, _ = CASES[name]
  made = [short] + ([reference.env] if isinstance(reference, Twin) else [])
  for env in made:
    assert isinstance(env, envs.JaxEnv) and isinstance(env, gymnasium.vector.VectorEnv)
    assert envs.gymnax_env.check_env(env) is env
    assert env.single_observation_space.shape == obs_shape
    assert env.single_observation_space.dtype == np.float32
    assert env.single_action_space == gymnasium.spaces.Discrete(num_actions)
    assert env.has_action_mask is has_mask
  if isinstance(reference, Twin):
    assert reference.env.env_id == env_id and reference.env.max_episode_steps > 3
  assert short.env_id != env_id  # the identity shows the constructor arguments
  assert reset_obs.shape == (NUM_ENVS, *obs_shape) and reset_obs.dtype == np.float32
  for row in reset_obs:
    assert short.single_observation_space.contains(row)


def test_truncation_keeps_the_true_final_obs_and_does_not_terminate(suite_run):
  name, _, _, (_, (shorts, refs)) = suite_run
  for t in range(3):
    short, ref = (jax.tree.map(lambda x: x[t], out) for out in (shorts, refs))
    # The cut changes nothing but the flags: same keys, same dynamics.
    assert not ref.terminated.any() and not ref.truncated.any()
    np.testing.assert_array_equal(short.final_obs, ref.obs)
    if t < 2:
      assert not short.truncated.any() and not short.terminated.any()
  short = jax.tree.map(lambda x: x[2], shorts)
  assert short.truncated.all() and not short.terminated.any()
  if name == "craftax":  # 3 envs ended at once, 1 fresh reset: they share it
    assert np.array_equal(short.obs[0], short.obs[1]) and np.array_equal(
        short.obs[0], short.obs[2])
  # final_obs is where the episode got to; obs already starts the next one.
  assert all(not np.array_equal(short.obs[i], short.final_obs[i])
             for i in range(NUM_ENVS))


def test_gym_api_over_any_protocol_implementation():
  # The suite envs are JaxVectorEnvs (the fixture checks it); the same gym
  # view wraps an implementation that is not one.
  class Bare:  # the protocol's members and nothing else
    def __init__(self, inner):
      self.inner = inner
      self.single_observation_space = inner.single_observation_space
      self.single_action_space = inner.single_action_space
      self.max_episode_steps, self.env_id = inner.max_episode_steps, "bare"
      self.has_action_mask = False

    def functional_reset(self, key, num_envs=None):
      return self.inner.functional_reset(key, num_envs)

    def functional_step(self, key, state, actions):
      return self.inner.functional_step(key, state, actions)

  bare = Bare(envs.make("CartPole-v1"))
  assert isinstance(bare, envs.JaxEnv) and envs.gymnax_env.check_env(bare) is bare
  view = envs.vector_env(bare, num_envs=3)
  assert isinstance(view, gymnasium.vector.VectorEnv) and view.env_id == "bare"
  obs, _ = view.reset(seed=1)
  assert obs.shape == (3, 4)
  assert view.step(np.array([0, 1, 1]))[0].shape == (3, 4)
  with pytest.raises(TypeError, match="JaxEnv"):
    envs.vector_env(object())


def test_jumanji_observation_and_time_limit():
  env = envs.make("jumanji:Snake-v1", num_envs=1, time_limit=2)
  assert env.layout.names == ("grid", "step_count", "action_mask")

  def episode(key):
    state, raw = env.reset_one(key)
    raws, flags = [raw], []
    for _ in range(2):
      action = jnp.argmax(envs.action_mask(env.observe(raw), 4))
      state, raw, _, terminated, truncated = env.step_one(None, state, action)
      raws.append(raw)
      flags.append((terminated, truncated))
    return raws, [env.observe(r) for r in raws], flags

  key = jax.random.PRNGKey(0)
  raws, flats, flags = jax.device_get(
      jax.jit(episode).lower(key).compile(compiler_options=FAST_COMPILE)(key))
  # One float vector: the grid, the step count scaled by its declared bounds
  # (0..time_limit - 1), then the action mask (baselax.envs.observations).
  for raw, flat in zip(raws, flats):
    np.testing.assert_array_equal(flat[:720], np.ravel(raw.grid))
    assert flat[720] == raw.step_count / 1
    np.testing.assert_array_equal(flat[-4:], np.asarray(raw.action_mask, np.float32))
    np.testing.assert_array_equal(envs.action_mask(flat, 4), raw.action_mask)
  # Snake ends at its time limit with discount 0, a termination as Jumanji
  # reports it (the step count is observed); CutAfter3 covers a truncation.
  assert [tuple(map(bool, f)) for f in flags] == [(False, False), (True, False)]


def test_ids_errors_and_checkpoint_identity(monkeypatch):
  assert "navix:Navix-Empty-5x5-v0" in envs.registered_ids("navix")
  assert "CartPole-v1" in envs.registered_ids()
  with pytest.raises(ConfigError, match=r"Unknown navix env_id 'navix:Nope'.*"
                     r"navix:Navix-Empty-5x5-v0"):
    envs.make("navix:Nope")
  with pytest.raises(ConfigError, match="Unknown env suite 'foo'.*xminigrid"):
    envs.make("foo:Bar")
  with pytest.raises(ValueError, match="num_envs"):
    envs.make("navix:Navix-Empty-5x5-v0", num_envs=0)
  with pytest.raises(ConfigError, match="reset_ratio"):
    envs.make("navix:Navix-Empty-5x5-v0", reset_ratio=0)
  monkeypatch.setitem(suites.SUITES, "craftax",
                      suites.Suite("baselax.envs.craftax_env", "no_such_package_xyz",
                                   "craftax"))
  with pytest.raises(ConfigError, match=r'pip install -e "\.\[craftax\]"'):
    envs.make("craftax:Craftax-Classic-Symbolic-v1")
  env = envs.make("navix:Navix-Empty-5x5-v0")
  agent = DQN(hk_linear_q, env, 1e-3)
  identity = training.checkpoint.run_identity(anakin.AnakinConfig(), agent, env)
  assert identity["env"] == "navix:Navix-Empty-5x5-v0"


# --- action masks -------------------------------------------------------------

A = 4  # actions; a masked observation is A values followed by A mask entries


def hk_linear_q(action_space):
  """Q(s) = s[:A] (one scalar weight, 1 at init): Q-values are the obs's head."""
  n = action_space.n

  def forward(obs):
    return hk.get_parameter("w", [], init=jnp.ones) * obs.reshape(obs.shape[0], -1)[:, :n]

  return hk.without_apply_rng(hk.transform(forward))


def masked_env():
  return types.SimpleNamespace(
      single_observation_space=gymnasium.spaces.Box(-np.inf, np.inf, (2 * A,), np.float32),
      single_action_space=gymnasium.spaces.Discrete(A), has_action_mask=True,
      env_id="masked")


def quantile_net(action_space):
  """QR-DQN quantiles: the Q-values of hk_linear_q, 3 equal quantiles each."""
  n = action_space.n

  def forward(obs):
    q = hk.get_parameter("w", [], init=jnp.ones) * obs[:, :n]
    return jnp.repeat(q[..., None], 3, axis=-1)

  return hk.without_apply_rng(hk.transform(forward))


def test_dqn_greedy_and_exploring_actions_are_valid_ones():
  agent = DQN(hk_linear_q, masked_env(), 1e-3, epsilon_schedule=lambda _: 1.0)
  plain = DQN(hk_linear_q, helpers_env(), 1e-3, epsilon_schedule=lambda _: 1.0)
  assert agent.has_action_mask and not plain.has_action_mask
  q = np.array([[9., 5., 1., 0.], [0., 1., 2., 9.], [3., 9., 9., 0.]], np.float32)
  mask = np.array([[0, 1, 1, 0], [1, 1, 0, 0], [0, 0, 0, 0]], np.float32)
  obs = np.concatenate([q, mask], axis=1)
  rows = np.repeat(obs[:2], 500, axis=0)

  def act(key):
    params = agent.init_params(key)
    greedy, _ = agent.predict(params, agent.init_policy(), obs, key, evaluation=True)
    explore, _ = agent.predict(params, agent.init_policy(), rows, key)
    # An explicit mask, to an agent whose env has none.
    given, _ = plain.predict(params, plain.init_policy(), rows[:, :A], key,
                             action_mask=rows[:, A:])
    return greedy, explore.actions, given.actions

  key = jax.random.PRNGKey(0)
  greedy, explore, given = jax.device_get(
      jax.jit(act).lower(key).compile(compiler_options=FAST_COMPILE)(key))
  # The best valid action; a row with no valid action falls back to all.
  np.testing.assert_array_equal(greedy.actions, [1, 1, 1])
  np.testing.assert_array_equal(greedy.q_values, q)  # the network's, unmasked
  for actions in (explore, given):  # epsilon = 1: uniform over the valid ones
    assert set(actions[:500]) == {1, 2} and set(actions[500:]) == {0, 1}
    assert 150 < (actions[:500] == 1).sum() < 350


def helpers_env():
  return types.SimpleNamespace(
      observation_space=gymnasium.spaces.Box(-np.inf, np.inf, (A,), np.float32),
      action_space=gymnasium.spaces.Discrete(A))


def masked_batch(q_tm1, action, reward):
  """Two transitions of ``masked_env`` for ``hk_linear_q``-like networks
  (observations are Q-values then the mask). Next Q-values are 8, 6, 2, 1
  and 5, 0, 7, 1 with the largest of each row invalid: the valid maxima
  are 6 and 5."""
  q_tm1 = np.asarray(q_tm1, np.float32)
  q_t = np.array([[8., 6., 2., 1.], [5., 0., 7., 1.]], np.float32)
  mask_t = np.array([[0, 1, 1, 0], [1, 1, 0, 1]], np.float32)
  return {"obs": np.concatenate([q_tm1, np.ones_like(q_tm1)], 1),
          "next_obs": np.concatenate([q_t, mask_t], 1),
          "action": np.asarray(action), "reward": np.asarray(reward, np.float32),
          "terminated": np.zeros(len(action), bool)}


@pytest.mark.parametrize("agent_cls,double", [(DQN, False), (DQN, True), (QRDQN, False)])
def test_bootstrap_takes_the_max_over_valid_next_actions(agent_cls, double):
  net = quantile_net if agent_cls is QRDQN else hk_linear_q
  agent = agent_cls(net, masked_env(), 1e-3, discount_factor=0.5, double_dqn=double)
  params = agent.init_params(jax.random.PRNGKey(0))
  data = masked_batch(q_tm1=[[1., 2., 3., 4.], [0., 0., 0., 0.]], action=[3, 0],
                      reward=[1., 2.])
  _, out = agent.loss(params.policy, params.target, data)
  # Valid maxima 6 and 5 (the invalid 8 and 7 are skipped): r + 0.5 * max - q.
  np.testing.assert_allclose(out.td_error, [1 + 0.5 * 6 - 4, 2 + 0.5 * 5 - 0])


def categorical_net(action_space):
  """C51 logits: each action's categorical is one atom of the support -10..10
  (21 atoms), the integer Q-value of hk_linear_q (log-probabilities 0 there
  and -100 one atom away)."""
  n = action_space.n

  def forward(obs):
    q = hk.get_parameter("w", [], init=jnp.ones) * obs[:, :n]
    return -100.0 * jnp.square(q[..., None] - jnp.linspace(-10.0, 10.0, 21))

  return hk.without_apply_rng(hk.transform(forward))


@pytest.mark.parametrize("double", [False, True])
def test_c51_bootstraps_from_the_best_valid_next_action(double):
  unmasked = types.SimpleNamespace(**{**vars(masked_env()), "has_action_mask": False})
  agents = {name: C51(categorical_net, env, 1e-3, discount_factor=0.5, double_dqn=double,
                      num_atoms=21, v_min=-10.0, v_max=10.0)
            for name, env in (("masked", masked_env()), ("unmasked", unmasked))}
  params = agents["masked"].init_params(jax.random.PRNGKey(0))
  data = masked_batch(q_tm1=[[1., 2., 3., 4.], [4., 0., 0., 0.]], action=[3, 0],
                      reward=[1., 1.5])
  td = {name: np.asarray(agent.loss(params.policy, params.target, data)[1].td_error)
        for name, agent in agents.items()}
  # Valid best next values 6 and 5 (the invalid 8 and 7 skipped): the targets
  # 1 + 0.5 * 6 and 1.5 + 0.5 * 5 are both the atom 4, where the taken
  # action's categorical sits: cross-entropy 0. Bootstrapping from the
  # invalid actions would put the target on atom 5: cross-entropy 100.
  np.testing.assert_allclose(td["masked"], [0.0, 0.0], atol=1e-3)
  np.testing.assert_allclose(td["unmasked"], [100.0, 100.0], rtol=1e-3)


def test_an_agent_that_cannot_honour_a_mask_is_refused_before_compiling():
  env = masked_env()
  contract.check_agent(DQN(hk_linear_q, env, 1e-3), anakin.AnakinConfig())
  with pytest.raises(ConfigError, match=r"masked has an action mask.*agent MDQN.*"
                     r"declares action_mask=True"):
    contract.check_agent(MDQN(hk_linear_q, env, 1e-3), anakin.AnakinConfig())
  # The env the run trains on counts, not only the agent's own.
  with pytest.raises(ConfigError, match="MDQN"):
    contract.check_agent(MDQN(hk_linear_q, helpers_env(), 1e-3),
                                anakin.AnakinConfig(), env)


def test_masked_epsilon_greedy_and_helpers():
  q = jnp.array([[1., 5., 3.]])
  np.testing.assert_array_equal(value_learning.mask_invalid(q, jnp.array([[1, 0, 1]])),
                                [[1., -np.inf, 3.]])
  np.testing.assert_array_equal(value_learning.mask_invalid(q, jnp.zeros((1, 3))), q)
  np.testing.assert_array_equal(value_learning.mask_invalid(q, None), q)
  key = jax.random.PRNGKey(0)
  greedy = value_learning.epsilon_greedy(key, q, 0.0, jnp.array([[1, 0, 1]]))
  assert int(greedy[0]) == 2
