"""The MinAtar of the papers: ``minatar:`` ids, the presets that name the
papers' settings, the pieces they need (RMSProp, delayed epsilon, reward
clipping, the last-100-episodes return), and the conv layer's matmul lowering."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from baselax import envs
from baselax.agents import q_config, registry
from baselax.anakin import loop
from baselax.envs import minatar_env
from baselax.errors import ConfigError
from baselax.experiment import launch, presets
from test_experiment import run_cli

# --- the environments ----------------------------------------------------------


def test_minatar_ids_have_the_papers_settings():
  assert envs.registered_ids("minatar") == tuple(
      f"minatar:{g}" for g in ("Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders"))
  for game, channels in (("Breakout", 4), ("Seaquest", 10)):
    env = envs.make(f"minatar:{game}")
    assert env.env_id == f"minatar:{game}" and env.single_action_space.n == 6
    assert env.single_observation_space.shape == (10, 10, channels)
    assert env.max_episode_steps is None
    assert env.env_params.max_steps_in_episode == minatar_env.NO_TIME_LIMIT
  assert envs.make("minatar:Asterix").env_params.ramping
  assert not envs.make("minatar:Asterix", difficulty_ramping=False).env_params.ramping
  # gymnax's own ids are as they were: minimal actions, a 1,000-step cap.
  gymnax_breakout = envs.make("Breakout-MinAtar")
  assert gymnax_breakout.single_action_space.n == 3
  assert gymnax_breakout.max_episode_steps == 1000
  with pytest.raises(ConfigError, match="minatar:Pong.*Valid ids: minatar:Asterix"):
    envs.make("minatar:Pong")


def test_freeway_ends_in_a_termination_on_its_2501st_frame():
  env = envs.make("minatar:Freeway")
  obs, state = env.functional_reset(jax.random.PRNGKey(0), 2)

  def step(carry, key):
    state, t = carry
    state, out = env.functional_step(key, state, jnp.zeros((2,), jnp.int32))
    return (state, t + 1), (out.terminated, out.truncated)

  _, (terminated, truncated) = jax.lax.scan(step, (state, 0),
                                            jax.random.split(jax.random.PRNGKey(1), 2600))
  assert not truncated.any()
  # Standing still never scores or dies: only the game's end ends it, on the
  # 2,501st frame as in the original package.
  assert np.flatnonzero(terminated[:, 0]).tolist() == [2500]
  assert env.max_episode_steps == 2501
  with pytest.raises(ConfigError, match="SpaceInvaders always ramps"):
    envs.make("minatar:SpaceInvaders", difficulty_ramping=False)


def test_sticky_actions_repeat_the_previous_action_with_their_probability():
  """Breakout's paddle position follows the executed actions: with p = 1
  every action is the first one (no-op), with p = 0 every one is taken."""
  for prob, moves in ((1.0, False), (0.0, True)):
    env = envs.make("minatar:Breakout", sticky_action_prob=prob)
    _, state = env.functional_reset(jax.random.PRNGKey(0), 1)
    for key in jax.random.split(jax.random.PRNGKey(1), 3):
      state, _ = env.functional_step(key, state, jnp.array([1]))  # left
    assert (int(state.env_state.pos[0]) != 4) == moves
  # p = 0.5: about half the requested actions are replaced by the previous one.
  env = envs.make("minatar:Breakout", sticky_action_prob=0.5)
  _, state = env.functional_reset(jax.random.PRNGKey(0), 4000)
  state, _ = env.functional_step(jax.random.PRNGKey(2), state, jnp.full((4000,), 3))
  assert 0.45 < float(jnp.mean(state.last_action == 0)) < 0.55
  assert env.env_id == "minatar:Breakout(sticky_action_prob=0.5)"


# --- the pieces the presets use -------------------------------------------------


def test_rmsprop_is_pytorchs_centered_rmsprop():
  """One step by hand: avg = sqrt(E[g^2] - E[g]^2) + eps, step = lr * g / avg."""
  config = registry.get("dqn").config_cls(optimizer="rmsprop")
  opt = q_config.optimizer(config)(0.1)
  params = jnp.array([1.0, -2.0])
  grads = jnp.array([0.5, 3.0])
  update, _ = opt.update(grads, opt.init(params), params)
  sq, mean = 0.05 * grads**2, 0.05 * grads
  np.testing.assert_allclose(update, -0.1 * grads / (np.sqrt(sq - mean**2) + 0.01), rtol=1e-6)
  adam = q_config.optimizer(registry.get("dqn").config_cls(optimizer_eps=0.5))(0.1)
  update, _ = adam.update(grads, adam.init(params), params)
  np.testing.assert_allclose(update, -0.1 * grads / (np.abs(grads) + 0.5), rtol=1e-5)


def test_exploration_steps_hold_epsilon_until_learning_then_decay():
  trainer = launch.parse(["--num-envs", "4", "--learning-starts", "400",
                          "--batch-size", "32"]).trainer
  sizes = trainer.derive(1)
  schedule = q_config.delayed_epsilon(1.0, 0.1, 800, sizes)
  # learning starts after 100 predict calls (4 envs each); the decay takes 200.
  got = [float(schedule(c)) for c in (0, 99, 100, 150, 200, 300, 10_000)]
  np.testing.assert_allclose(got, [1.0, 1.0, 1.0, 0.775, 0.55, 0.1, 0.1], rtol=1e-6)


def test_recent_returns_keep_the_last_episodes_in_order():
  recent, count = jnp.zeros((4,)), jnp.int32(0)
  for returns, done in (([1., 2., 3.], [1, 0, 1]), ([4., 5., 6.], [1, 1, 1]),
                        ([7., 8., 9.], [0, 0, 0])):
    recent, count = loop.remember_returns(recent, count, jnp.array(returns),
                                          jnp.array(done, bool))
  # Episodes 1, 3, 4, 5, 6 ended in that order; the ring holds the last 4.
  assert int(count) == 5
  assert sorted(np.asarray(recent).tolist()) == [3.0, 4.0, 5.0, 6.0]
  assert float(recent[0]) == 6.0  # the fifth episode overwrote the first


# --- presets -------------------------------------------------------------------


def test_presets_set_defaults_that_flags_override():
  spec = launch.parse(["--preset", "young-tian-2019"])
  assert spec.experiment.preset == "young-tian-2019"
  assert spec.experiment.env_id == "minatar:Breakout"
  assert (spec.agent.optimizer, spec.agent.huber_delta, spec.agent.hidden_sizes) == (
      "rmsprop", 1.0, (128,))
  assert (spec.trainer.num_envs, spec.trainer.batch_size, spec.trainer.learning_starts,
          spec.trainer.total_env_steps) == (1, 32, 5000, 5_000_000)
  spec = launch.parse(["--preset", "young-tian-2019", "--learning-rate", "0.001",
                       "--env-id", "minatar:Asterix"])
  assert (spec.agent.learning_rate, spec.experiment.env_id) == (0.001, "minatar:Asterix")
  assert spec.agent.target_update_interval == 1000  # still the preset's
  rainbow = launch.parse(["--preset", "revisiting-rainbow", "--agent", "rainbow"])
  assert (rainbow.trainer.n_step, rainbow.trainer.prioritized,
          rainbow.trainer.importance_exponent_end, rainbow.agent.hidden_sizes,
          rainbow.agent.conv_padding, rainbow.trainer.reward_clip) == (
              3, True, 0.5, (), "same", 1.0)


def test_every_preset_value_is_a_flag_of_its_agent():
  trainer_and_experiment = set(launch.parse([]).trainer.__dataclass_fields__) | set(
      launch.parse([]).experiment.__dataclass_fields__)
  for preset in presets.PRESETS.values():
    for agent in preset.agents:
      fields = set(registry.get(agent).config_cls.__dataclass_fields__)
      unknown = set(preset.values(agent)) - fields - trainer_and_experiment
      assert not unknown, (preset.name, agent, unknown)
      launch.parse(["--preset", preset.name, "--agent", agent])  # every value valid


def test_preset_run_records_the_preset_and_its_values(tmp_path):
  run_dir = tmp_path / "run"
  proc = run_cli("--preset", "revisiting-rainbow-fast", "--total-env-steps", "2000",
                 "--eval-every", "1000", "--learning-starts", "500", "--buffer-size",
                 "1000", "--eval-episodes", "2", "--eval-max-steps", "50",
                 "--run-dir", str(run_dir), "--quiet", "--no-tensorboard",
                 "--compilation-cache", "none")
  assert proc.returncode == 0, proc.stderr
  config = json.loads((run_dir / "config.json").read_text())
  assert config["experiment"]["preset"] == "revisiting-rainbow-fast"
  assert config["agent"]["optimizer_eps"] == 3.125e-4
  assert config["agent"]["hidden_sizes"] == [] and config["trainer"]["num_envs"] == 4
  assert config["trainer"]["learning_starts"] == 500  # the flag, not the preset
  rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
  assert all(len(row["recent_return"]) == 1 for row in rows)


@pytest.mark.parametrize("argv,message", [
    (["--preset", "nature-2015"], "--preset nature-2015: unknown preset"),
    (["--preset", "young-tian-2019", "--agent", "c51"],
     "--preset young-tian-2019 is for --agent dqn, not c51"),
    (["--hidden-sizes", "none", "64"], "--hidden-sizes: none stands alone"),
    (["--optimizer", "sgd"], "--optimizer sgd: optimizer must be adam or rmsprop"),
    (["--reward-clip", "0"], "reward_clip must be > 0"),
])
def test_bad_preset_and_flags_are_refused_in_one_line(argv, message, capsys):
  """Refused while parsing (the command line's exit code 2 path, as every
  refusal in test_experiment's table)."""
  with pytest.raises(SystemExit) as exit_info:
    launch.parse(argv)
  assert exit_info.value.code == 2
  err = capsys.readouterr().err
  assert message in err and len(err.strip().splitlines()) == 1


def test_an_unknown_minatar_game_is_refused_before_compiling():
  proc = run_cli("--env-id", "minatar:Pong", "--total-env-steps", "1000", "--quiet",
                 "--no-tensorboard", "--compilation-cache", "none")
  assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
  assert "--env-id minatar:Pong: Unknown minatar env_id 'minatar:Pong'. Valid ids: " \
         "minatar:Asterix" in proc.stderr


def test_reward_clip_clips_what_the_replay_stores():
  from baselax.replay import records
  from baselax.envs.protocol import EnvStep
  step = EnvStep(obs=jnp.zeros((3, 1)), reward=jnp.array([-5.0, 0.5, 10.0]),
                 terminated=jnp.zeros(3, bool), truncated=jnp.zeros(3, bool),
                 final_obs=jnp.zeros((3, 1)))
  record = records.step_record(jnp.zeros((3, 1)), jnp.zeros(3, jnp.int32), step, 1.0)
  assert record["reward"].tolist() == [-1.0, 0.5, 1.0]
  assert records.step_record(jnp.zeros((3, 1)), jnp.zeros(3, jnp.int32),
                            step)["reward"].tolist() == [-5.0, 0.5, 10.0]
