"""Run directories, checkpoints, exact resume, Ctrl-C, the NaN guard, evaluate.py."""

import json
import os
import signal
import subprocess
import sys
import time
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import helpers
from baselax import anakin, envs, experiment, metrics, networks, training
from baselax.agents import DQN
from baselax.training import driver
from baselax.experiment import loggers

# 4 chunks of 1,000 env steps; learning starts in the first chunk.
SMALL = ["--total-env-steps", "4000", "--eval-every", "1000", "--num-envs", "4",
         "--learning-starts", "500", "--buffer-size", "2000", "--batch-size", "32",
         "--eval-episodes", "4", "--checkpoint-every", "1000", "--quiet"]
SMALL_CONFIG = anakin.AnakinConfig(
    total_env_steps=4000, eval_every=1000, num_envs=4, learning_starts=500,
    buffer_size=2000, batch_size=32, eval_episodes=4, num_seeds=2)


def strict_json(line):
  def refuse(constant):
    raise ValueError(f"non-standard JSON constant {constant}")
  return json.loads(line, parse_constant=refuse)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("runs") / "cartpole")
  out = experiment.run(SMALL + ["--run-dir", path, "--num-seeds", "2"])
  assert out.run_dir == path and not out.interrupted
  return path


def test_a_short_run_writes_the_whole_run_directory(run_dir):
  config = strict_json(open(os.path.join(run_dir, "config.json")).read())
  assert config["experiment"] == {"agent": "dqn", "env_id": "CartPole-v1", "preset": None,
                                  "sweep": []}
  assert config["trainer"]["num_seeds"] == 2 and config["agent_class"] == "DQN"
  lines = [strict_json(l) for l in open(os.path.join(run_dir, "metrics.jsonl"))]
  assert [l["chunk"] for l in lines] == [0, 1, 2, 3]
  assert [l["env_steps"] for l in lines] == [1000, 2000, 3000, 4000]
  for line in lines:
    assert len(line["eval_return"]) == 2 and len(line["train_return"]) == 2
    assert line["sps"] > 0 and line["wall_time"] > 0
  assert None not in lines[0]["loss"] and lines[-1]["updates"] == [250, 250]
  events = [f for f in os.listdir(run_dir) if f.startswith("events.out.tfevents")]
  assert events and os.path.getsize(os.path.join(run_dir, events[0])) > 0
  from PIL import Image
  with Image.open(os.path.join(run_dir, "learning_curve.png")) as image:
    assert image.size[0] > 100 and image.size[1] > 100
  checkpointer = anakin.Checkpointer(os.path.join(run_dir, "checkpoints"))
  assert checkpointer.latest_step() == 4
  checkpointer.close()


def test_evaluate_loads_the_final_params_and_renders_a_gif(run_dir, tmp_path, capsys):
  gif = str(tmp_path / "episode.gif")
  out = experiment.evaluate([run_dir, "--episodes", "3", "--gif", gif])
  assert out["returns"].shape == (2, 3) and np.all(out["returns"] >= 1)
  printed = capsys.readouterr().out
  assert "seed 0:" in printed and "seed 1:" in printed and "±" in printed
  from PIL import Image
  with Image.open(gif) as image:
    # One frame per step of the rendered episode (CartPole: reward 1 per step).
    assert image.n_frames == int(out["gif_return"])
  with pytest.raises(SystemExit) as exit_info:
    experiment.evaluate([str(tmp_path), "--gif", gif])
  assert exit_info.value.code == 2
  assert "is not a run directory" in capsys.readouterr().err


def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path):
  env = envs.make("CartPole-v1")
  agent = DQN(networks.mlp_q_network((16,)), env, 1e-3)
  straight = anakin.train(agent, env, SMALL_CONFIG, on_chunk=lambda s: None)

  stop_after_two = anakin.Checkpointer(str(tmp_path), every_chunks=3)
  half = anakin.train(agent, env, SMALL_CONFIG,
                      on_chunk=lambda s: s.chunk == 1,
                      checkpointer=stop_after_two)
  assert half.stopped_early and stop_after_two.latest_step() == 2
  stop_after_two.close()

  resumed = anakin.train(agent, env, SMALL_CONFIG, on_chunk=lambda s: None,
                         checkpointer=anakin.Checkpointer(str(tmp_path)),
                         resume=True)
  assert not resumed.stopped_early
  same = jax.tree.map(lambda a, b: np.array_equal(np.asarray(a), np.asarray(b)),
                      straight.state, resumed.state)
  assert all(jax.tree.leaves(same)), "resumed state differs from uninterrupted"
  np.testing.assert_array_equal(straight.metrics["eval_returns"],
                                resumed.metrics["eval_returns"])
  assert resumed.metrics["eval_return"].shape == (4, 2)


def test_a_checkpoint_of_another_run_is_refused(tmp_path, run_dir, capsys):
  env = envs.make("CartPole-v1")
  agent = DQN(networks.mlp_q_network((16,)), env, 1e-3)
  checkpointer = anakin.Checkpointer(str(tmp_path), every_chunks=4)
  anakin.train(agent, env, SMALL_CONFIG, on_chunk=lambda s: None,
               checkpointer=checkpointer)
  other_config = SMALL_CONFIG.__class__(**{**SMALL_CONFIG.__dict__, "num_envs": 8})
  with pytest.raises(ValueError, match="trainer.num_envs: checkpoint has 4, this run has 8"):
    anakin.train(agent, env, other_config, checkpointer=checkpointer, resume=True)
  wider = DQN(networks.mlp_q_network((32,)), env, 1e-3)
  with pytest.raises(ValueError, match="differently shaped training state"):
    anakin.train(wider, env, SMALL_CONFIG, checkpointer=checkpointer, resume=True)
  acrobot = envs.make("Acrobot-v1")
  with pytest.raises(ValueError, match="env: checkpoint has 'CartPole-v1', this run has 'Acrobot-v1'"):
    anakin.train(DQN(networks.mlp_q_network((16,)), acrobot, 1e-3), acrobot,
                 SMALL_CONFIG, checkpointer=checkpointer, resume=True)
  checkpointer.close()

  # The command line refuses before building anything, naming each flag.
  with pytest.raises(SystemExit) as exit_info:
    experiment.run(["--resume", run_dir, "--env-id", "Acrobot-v1",
                    "--learning-rate", "0.1"])
  assert exit_info.value.code == 2
  err = capsys.readouterr().err
  assert "--env-id: the run has 'CartPole-v1', you asked for 'Acrobot-v1'" in err
  assert "--learning-rate: the run has 0.00025, you asked for 0.1" in err
  with pytest.raises(SystemExit) as exit_info:
    experiment.run(SMALL + ["--run-dir", run_dir])
  assert exit_info.value.code == 2
  assert "already holds a run" in capsys.readouterr().err


class NaNAfter(DQN):
  """A DQN rigged to turn its params into NaN from update ``nan_from`` on."""

  nan_from = 400

  def update(self, params, optimizer_state, data, **kwargs):
    out, new_params, new_state = super().update(params, optimizer_state, data, **kwargs)
    poison = jnp.where(optimizer_state.count >= self.nan_from, jnp.nan, 1.0)
    return out, jax.tree.map(lambda p: p * poison, new_params), new_state


def test_the_nan_guard_stops_and_keeps_the_last_good_checkpoint(tmp_path):
  env = envs.make("CartPole-v1")
  agent = NaNAfter(networks.mlp_q_network((16,)), env, 1e-3)
  config = SMALL_CONFIG.__class__(**{**SMALL_CONFIG.__dict__, "num_seeds": 1})
  # 250 scan steps per chunk, learning from step 125: update 400 is in chunk 2.
  checkpointer = anakin.Checkpointer(str(tmp_path), every_chunks=1)
  with pytest.raises(anakin.NonFiniteError, match=r"Non-finite .*params.* in chunk 2 "
                     r"\(env steps 2,000 to 3,000\).*last good checkpoint \(2 chunks"):
    anakin.train(agent, env, config, on_chunk=lambda s: None,
                 checkpointer=checkpointer)
  assert checkpointer.latest_step() == 2
  program = anakin.program.build(agent, env, config)
  restored = checkpointer.restore(
      program.init(program.seed_keys, program.device_indices),
      {**training.checkpoint.run_identity(config, agent, env), "num_devices": 1})
  assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(restored.state.params))
  checkpointer.close()


# Ctrl-C, and SIGTERM: what a scheduler (SLURM, Kubernetes, a preemptible VM)
# sends before it kills a job.
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_stop_signal_writes_a_checkpoint_and_exits_cleanly(tmp_path, signum):
  path = str(tmp_path / "interrupted")
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  proc = subprocess.Popen(
      [sys.executable, "experiments/anakin_dqn.py", "--run-dir", path,
       "--total-env-steps", "5000000", "--eval-every", "2000", "--num-envs", "4",
       "--learning-starts", "500", "--buffer-size", "2000", "--batch-size", "32",
       "--eval-episodes", "2", "--checkpoint-every", "1000000"],
      cwd=helpers.REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
      text=True)
  try:
    metrics = os.path.join(path, "metrics.jsonl")
    deadline = time.time() + 120
    while time.time() < deadline and not (
        os.path.exists(metrics) and open(metrics).read().count("\n") >= 2):
      assert proc.poll() is None, proc.communicate()
      time.sleep(0.2)
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=120)
  finally:
    if proc.poll() is None:
      proc.kill()
  assert proc.returncode == 130, stderr[-3000:]
  assert "Traceback" not in stderr
  assert f"--resume {path}" in stdout
  chunks = len(open(metrics).read().splitlines())
  checkpointer = anakin.Checkpointer(os.path.join(path, "checkpoints"))
  assert checkpointer.latest_step() == chunks  # the chunk it stopped after
  checkpointer.close()


def test_ctrl_c_during_on_chunk_is_not_lost():
  # The handler runs inside on_chunk (the next bytecode after the kill); a
  # driver that merged on_chunk's False into the request afterwards lost it
  # and trained on (CI saw a Ctrl-C'd run finish with exit code 0).
  def on_chunk(record):
    os.kill(os.getpid(), signal.SIGINT)
    return False

  derived = types.SimpleNamespace(num_chunks=5, env_steps_per_chunk=1)
  saved = []
  stopped = driver.drive(
      range(5), lambda c: (record(c), []), derived, history=[], save=saved.append,
      on_chunk=on_chunk, stop_enabled=True)
  assert stopped and saved == [1]


def record(chunk=0, eval_returns=((1.0, 3.0), (np.nan, np.nan))):
  return metrics.ChunkRecord.from_sums(
      chunk=chunk, env_steps=10 * (chunk + 1), wall_time=1.0, sps=10.0,
      episode_return_sum=[4.0, 0.0], episodes=[2, 0], updates=[5, 5],
      scalar_sums={"loss": [1.0, 2.0]}, eval_returns=np.array(eval_returns))


def test_tensorboard_is_optional_and_jsonl_is_strict(tmp_path, monkeypatch):
  monkeypatch.setitem(sys.modules, "tensorboardX", None)  # "not installed"
  run = experiment.rundir.RunDirectory(str(tmp_path), {"a": 1})
  sinks = loggers.make_loggers(run, experiment.LoggerConfig(), console=None,
                               title="t", config={})
  assert not any(isinstance(s, loggers.TensorBoardLogger) for s in sinks.loggers)
  sinks.write(record())
  sinks.close()
  assert not [f for f in os.listdir(tmp_path) if f.startswith("events")]
  line = strict_json(open(run.metrics_path).read())
  assert line["eval_return"] == [2.0, None] and line["train_return"] == [2.0, None]
  assert line["loss"] == [0.2, 0.4]
  assert metrics.record_from_json(line).to_dict().keys() == record().to_dict().keys()
  with pytest.raises(ImportError, match=r"pip install -e '.\[tensorboard\]'"):
    loggers.TensorBoardLogger(str(tmp_path))
