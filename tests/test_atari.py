"""Atari through the host loop: DQN's preprocessing on real ALE games, the
compact frame replay, and a short training run through the script's entry
point (``baselax.atari.run``, what ``experiments/hostloop_atari.py`` calls).

The ALE tests need ale-py and OpenCV (``pip install -e ".[atari]"``, both in
``.[dev]``) and are skipped only when they are absent; the replay tests need
neither.
"""

import dataclasses
import functools
import importlib.util
import json
import os

import gymnasium
import helpers
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

from baselax import anakin, hostloop, networks
from baselax.agents import DQN
from baselax.errors import ConfigError

needs_ale = pytest.mark.skipif(
    importlib.util.find_spec("ale_py") is None or importlib.util.find_spec("cv2") is None,
    reason="ale-py / OpenCV not installed: pip install -e '.[atari]'")


# --------------------------------------------------------------------------
# Frame stacks in the replay: every held transition is exactly one the env produced.


class RandomFrames(gymnasium.Env):
  """3x3 uint8 frames of random bytes; episodes end at random, by termination
  (p = 0.08) or truncation (p = 0.05)."""
  observation_space = gymnasium.spaces.Box(0, 255, (3, 3), np.uint8)
  action_space = gymnasium.spaces.Discrete(2)

  def reset(self, *, seed=None, options=None):
    super().reset(seed=seed)
    return self._frame(), {}

  def step(self, action):
    u = self.np_random.random()
    return self._frame(), float(action), bool(u < 0.08), bool(0.08 <= u < 0.13), {}

  def _frame(self):
    return self.np_random.integers(0, 256, (3, 3), dtype=np.uint8)


def stacked_env(num_envs, mode):
  return gymnasium.vector.SyncVectorEnv(
      [lambda: gymnasium.wrappers.FrameStackObservation(RandomFrames(), 4)] * num_envs,
      autoreset_mode=mode)


@functools.lru_cache(maxsize=None)  # reading a buffer does not change it: share them
def collect(mode, buffer_size, compact, steps=400):
  """Every item the replay holds after ``steps`` env steps of 2 envs (no
  learning: the same trajectory whichever storage), ``(2 envs, items, ...)``."""
  env = stacked_env(2, mode)
  agent = DQN(networks.mlp_q_network((8,)), env, 1e-3)
  config = anakin.AnakinConfig(total_env_steps=steps, num_envs=2, buffer_size=buffer_size,
                               batch_size=8, learning_starts=steps, eval_every=steps)
  result = hostloop.train(agent, env, config, compact_frames=compact)
  held = helpers.held_transitions(result)
  nbytes = result.state["buffer"].records.nbytes
  return {k: v.reshape(2, -1, *v.shape[1:]) for k, v in held.items()}, nbytes


@pytest.mark.parametrize("mode", [AutoresetMode.SAME_STEP, AutoresetMode.NEXT_STEP])
def test_frame_replay_holds_exactly_the_transitions(mode):
  """Frame stacks kept one frame a step give back, item for item, what whole
  observations give (the first 3 steps of each env excepted: no window holds
  their older frames), terminations and truncations included."""
  plain, plain_bytes = collect(mode, 10_000, compact=False)
  compact, compact_bytes = collect(mode, 10_000, compact=True)
  assert plain["obs"].shape[1] == 199 and compact["obs"].shape[1] == 196
  assert plain["terminated"].sum() > 10  # terminations happened
  for key in plain:
    np.testing.assert_array_equal(compact[key], plain[key][:, 3:], err_msg=key)
  assert compact["obs"].dtype == np.uint8
  # A step's row: its newest 9-byte frame in 3 words (+ 3 for action, reward,
  # flags), against the whole 36-byte stack in 9 (+ 3).
  assert compact_bytes * 2 == plain_bytes


def test_frame_replay_forgets_the_oldest_and_holds_only_whole_stacks():
  plain, _ = collect(AutoresetMode.SAME_STEP, 10_000, compact=False)
  compact, _ = collect(AutoresetMode.SAME_STEP, 120, compact=True)  # 60 steps per env
  # The ring wrapped: the last 60 steps of each env, 56 whole windows.
  for key in plain:
    np.testing.assert_array_equal(compact[key], plain[key][:, 199 - 56:], err_msg=key)


class RandomStacks(RandomFrames):
  """Observations of the frame stacks' shape that are not frame stacks."""
  observation_space = gymnasium.spaces.Box(0, 255, (4, 3, 3), np.uint8)

  def _frame(self):
    return self.np_random.integers(0, 256, (4, 3, 3), dtype=np.uint8)


@pytest.mark.parametrize("make, message", [
    (RandomStacks, "not its observation shifted by one frame"),
    (lambda: gymnasium.wrappers.FrameStackObservation(RandomFrames(), 4, padding_type="zero"),
     "does not repeat its first frame"),
])
def test_frame_replay_refuses_observations_that_are_not_frame_stacks(make, message):
  env = gymnasium.vector.SyncVectorEnv([make] * 2, autoreset_mode=AutoresetMode.SAME_STEP)
  agent = DQN(networks.mlp_q_network((8,)), env, 1e-3)
  config = anakin.AnakinConfig(total_env_steps=200, num_envs=2, buffer_size=100,
                               batch_size=8, learning_starts=200, eval_every=200)
  with pytest.raises(ValueError, match=message):
    hostloop.train(agent, env, config, compact_frames=True)
  early = dataclasses.replace(config, learning_starts=4, batch_size=2)
  with pytest.raises(ConfigError, match="whole sampled window"):
    hostloop.train(agent, stacked_env(2, AutoresetMode.SAME_STEP), early, compact_frames=True)


# --------------------------------------------------------------------------
# DQN's preprocessing on real games.


class RawFrames(gymnasium.Wrapper):
  """Records the grayscale screen after every emulator frame."""

  def __init__(self, env):
    super().__init__(env)
    self.frames = []

  def step(self, action):
    out = self.env.step(action)
    self.frames.append(self.env.unwrapped.ale.getScreenGrayscale().copy())
    return out


@needs_ale
def test_pong_preprocessing_skips_max_pools_resizes_and_stacks():
  import cv2
  from baselax.envs import atari_env as atari
  env = atari.make_env("ALE/Pong-v5")
  assert env.observation_space == gymnasium.spaces.Box(0, 255, (4, 84, 84), np.uint8)
  assert env.action_space == gymnasium.spaces.Discrete(6)
  assert env.unwrapped.ale.getFloat("repeat_action_probability") == pytest.approx(0.25)
  preprocessing = env.env
  preprocessing.env = raw = RawFrames(preprocessing.env)
  noops = []
  for seed in range(3):
    raw.frames.clear()
    obs, _ = env.reset(seed=seed)
    noops.append(len(raw.frames))
    assert obs.dtype == np.uint8 and obs.shape == (4, 84, 84)
    assert all(np.array_equal(obs[0], obs[i]) for i in range(4))  # reset padding
  assert all(1 <= n <= 30 for n in noops) and len(set(noops)) > 1  # noop reset
  for t in range(12):
    raw.frames.clear()
    next_obs, reward, terminated, truncated, _ = env.step(t % 6)
    assert len(raw.frames) == 4  # frame skip
    pooled = np.maximum(raw.frames[-2], raw.frames[-1])  # max of the last two
    assert np.array_equal(next_obs[-1], cv2.resize(pooled, (84, 84),
                                                    interpolation=cv2.INTER_AREA))
    assert np.array_equal(next_obs[:-1], obs[1:])  # the stack shifts by one
    assert not (terminated or truncated)
    obs = next_obs


@needs_ale
def test_the_episode_cap_truncates_and_the_vector_env_keeps_the_final_obs():
  from baselax.envs import atari_env as atari
  config = atari.AtariConfig(max_episode_frames=400)  # <= 100 agent steps
  env = atari.make_vector_env("ALE/Pong-v5", 1, config)
  assert env.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
  obs, _ = env.reset(seed=0)
  for t in range(101):
    next_obs, reward, terminated, truncated, info = env.step(np.array([t % 6]))
    assert not terminated[0]  # Pong cannot end in 400 frames
    if truncated[0]:
      break
    obs = next_obs
  assert truncated[0] and t >= 90
  final = info["final_obs"][0]
  assert np.array_equal(final[:-1], obs[0, 1:])  # the true last stack ...
  assert all(np.array_equal(next_obs[0, 0], next_obs[0, i]) for i in range(4))
  assert not np.array_equal(final, next_obs[0])  # ... not the next game's first


@needs_ale
def test_terminal_on_life_loss_is_a_learning_signal_and_the_game_goes_on():
  from baselax.envs import atari_env as atari
  env = atari.make_vector_env("ALE/Breakout-v5", 1)
  hook = atari.LifeLossTerminal()
  obs, info = env.reset(seed=0)
  lives = int(info["lives"][0])
  rng = np.random.default_rng(0)
  for _ in range(2_000):
    next_obs, _, terminated, truncated, info = env.step(rng.integers(0, 4, 1))
    stored = hook(terminated, truncated, info)
    if int(info["lives"][0]) < lives:
      break
    assert not stored[0]
    obs = next_obs
  assert int(info["lives"][0]) == lives - 1
  assert stored[0] and not terminated[0] and not truncated[0]
  assert np.array_equal(next_obs[0, :-1], obs[0, 1:])  # no reset: the game goes on


# --------------------------------------------------------------------------
# A short training run through the entry point, stopped and resumed.


class StopAfterFirstChunk:
  def write(self, record):
    return record.chunk == 0

  def close(self):
    pass


@needs_ale
def test_hostloop_atari_trains_writes_a_run_directory_and_resumes(tmp_path, capsys):
  from baselax import atari
  run_dir = str(tmp_path / "pong")
  flags = ["--env-id", "ALE/Pong-v5", "--total-env-steps", "320", "--num-envs", "2",
           "--train-every", "1", "--learning-starts", "100", "--buffer-size", "1000",
           "--batch-size", "8", "--eval-every", "160", "--eval-episodes", "2",
           "--eval-max-steps", "30", "--max-episode-frames", "240",
           "--target-update-interval", "20", "--n-step", "3", "--prioritized",
           "--no-tensorboard", "--quiet"]
  # The resumed session compiles the same programs: a cache of this test's own
  # makes that a read.
  flags += ["--compilation-cache", str(tmp_path / "xla")]
  first = atari.run([*flags, "--run-dir", run_dir], loggers=[StopAfterFirstChunk()])
  assert first.interrupted
  with pytest.raises(SystemExit) as refused:  # another experiment in the same directory
    atari.run(["--resume", run_dir, "--learning-rate", "0.001", "--quiet",
               "--compilation-cache", str(tmp_path / "xla")])
  assert refused.value.code == 2
  assert "--learning-rate: the run has 0.0001" in capsys.readouterr().err
  out = atari.run(["--resume", run_dir, "--quiet", "--compilation-cache",
                   str(tmp_path / "xla")])
  assert not out.interrupted and out.result.first_chunk == 1
  with open(os.path.join(run_dir, "config.json")) as f:
    config = json.load(f)
  assert config["experiment"]["env_id"] == "ALE/Pong-v5"
  assert config["trainer_kind"] == "hostloop" and config["agent"]["network"] == "auto"
  assert config["trainer"]["n_step"] == 3 and config["trainer"]["sampling"] == "prioritized"
  with open(os.path.join(run_dir, "metrics.jsonl")) as f:
    lines = [json.loads(line) for line in f]
  assert [line["chunk"] for line in lines] == [0, 1]
  # 160 env steps (80 vector steps) a chunk: the first update follows vector
  # step ceil(100 / 2) + 1 = 51, so chunk 0 has 30 and chunk 1 has 80.
  assert [line["updates"] for line in lines] == [[30.0], [80.0]]
  assert all(np.isfinite(line["loss"][0]) for line in lines)
  # 240-frame games (<= 60 agent steps) were truncated in both sessions
  assert all(line["train_episodes"][0] >= 2 for line in lines)
  assert len(lines[1]["eval_returns"][0]) == 2
  assert os.path.exists(os.path.join(run_dir, "summary.json"))
  # The resumed games went on where they were: the same metrics, chunk for
  # chunk, as a run that was never stopped.
  whole = str(tmp_path / "whole")
  atari.run([*flags, "--run-dir", whole])
  with open(os.path.join(whole, "metrics.jsonl")) as f:
    uninterrupted = [json.loads(line) for line in f]
  timing = ("sps", "wall_time")
  assert ([{k: v for k, v in line.items() if k not in timing} for line in lines]
          == [{k: v for k, v in line.items() if k not in timing} for line in uninterrupted])
  assert sorted(os.listdir(os.path.join(run_dir, "checkpoints"))) == ["1", "2"]
  replay = out.result.state["replay"]
  assert replay.codec.name == "frames" and replay.store.layout.obs_words == 84 * 84 // 4
  assert replay.prioritized and replay.store.window == 3 + 3 + 1  # frames, n-step, next
  params = out.result.state["params"].policy
  assert params["conv2_d"]["w"].shape == (8, 8, 4, 32)  # the Nature network
  # evaluate.py on an Atari run: greedy games of the preprocessed game it trained on.
  from baselax import experiment
  evaluated = experiment.evaluate([run_dir, "--episodes", "2", "--max-steps", "30"])
  assert evaluated["returns"].shape == (1, 2) and np.isfinite(evaluated["mean"])


def test_every_agent_gets_its_trainer_defaults_on_atari(capsys):
  """Rainbow's n-step prioritized replay reaches the host loop, as on JAX envs;
  a flag still overrides it."""
  from baselax import atari
  rainbow = atari.parse(["--agent", "rainbow"]).trainer
  assert (rainbow.n_step, rainbow.sampling, rainbow.priority_exponent) == (3, "prioritized", 0.5)
  assert atari.parse(["--agent", "rainbow", "--n-step", "1"]).trainer.n_step == 1
  assert atari.parse(["--agent", "dqn"]).trainer.sampling == "uniform"
  assert "warning" not in capsys.readouterr().err


@needs_ale
def test_bad_atari_flags_are_one_line_errors(capsys, tmp_path):
  from baselax import atari
  anakin_run = tmp_path / "anakin"
  anakin_run.mkdir()
  (anakin_run / "config.json").write_text(json.dumps(
      {"experiment": {"agent": "dqn", "env_id": "CartPole-v1"}, "agent": {}, "trainer": {}}))
  for argv, expected in ((["--env-id", "ALE/Pongg-v5"], "did you mean ALE/Pong-v5"),
                         (["--repeat-action-probability", "2"], "in [0, 1]"),
                         (["--resume", str(anakin_run)],
                          "is not a hostloop_atari.py run (no atari section")):
    with pytest.raises(SystemExit) as error:
      atari.run(argv)
    assert error.value.code == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1
