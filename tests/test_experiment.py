"""The main job's command line: generated from the configs, bad values refused."""

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

import helpers

sys.path.insert(0, helpers.REPO + "/experiments")
import anakin_dqn  # noqa: E402
import cli  # noqa: E402
from baselax.anakin import AnakinConfig  # noqa: E402

CLASSES = [(anakin_dqn.DQNExperimentConfig, "agent"), (AnakinConfig, "trainer"),
           (anakin_dqn.RunConfig, "run"), (anakin_dqn.DistributedConfig, "multi-process")]


def test_every_config_field_is_a_flag_with_its_default():
  exp, config, run, dist = cli.parse(CLASSES, "test", argv=[])
  assert exp == anakin_dqn.DQNExperimentConfig() and config == AnakinConfig()
  assert run == anakin_dqn.RunConfig() and not dist.enabled
  argv = ["--env-id", "Breakout-MinAtar", "--total-env-steps", "12345",
          "--num-envs", "7", "--num-seeds", "3", "--num-devices", "2",
          "--seed", "9", "--learning-rate", "0.01", "--hidden-sizes", "8", "4",
          "--lr-decay", "--eval-max-steps", "none", "--buffer-size", "5000",
          "--run-dir", "out/x", "--quiet", "--no-tensorboard"]
  exp, config, run, dist = cli.parse(CLASSES, "test", argv=argv + [
      "--coordinator-address", "10.0.0.1:1234", "--num-processes", "4",
      "--process-id", "3"])
  assert (dist.coordinator_address, dist.num_processes, dist.process_id) == (
      "10.0.0.1:1234", 4, 3)
  assert (run.run_dir, run.quiet, run.tensorboard, run.resume) == (
      "out/x", True, False, None)
  assert (exp.env_id, exp.learning_rate, exp.hidden_sizes, exp.lr_decay) == (
      "Breakout-MinAtar", 0.01, (8, 4), True)
  assert (config.total_env_steps, config.num_envs, config.num_seeds,
          config.num_devices, config.seed, config.buffer_size,
          config.eval_max_steps) == (12345, 7, 3, 2, 9, 5000, None)
  help_text = subprocess.run(
      [sys.executable, "experiments/anakin_dqn.py", "--help"], cwd=helpers.REPO,
      capture_output=True, text=True, check=True).stdout
  for cls, _ in CLASSES:
    for field in dataclasses.fields(cls):
      assert "--" + field.name.replace("_", "-") in help_text


@pytest.mark.parametrize("argv, message", [
    (["--batch-size", "20000"], "batch_size (20000) is larger than buffer_size"),
    (["--num-envs", "0"], "num_envs must be a positive integer"),
    (["--num-envs", "ten"], "invalid int value: 'ten'"),
    (["--network", "resnet"], "--network must be auto, mlp or conv"),
    (["--checkpoint-every", "0"], "--checkpoint-every must be >= 1"),
    (["--resume", "a", "--run-dir", "b"], "leave out --run-dir"),
    (["--coordinator-address", "h:1"], "go together: pass all three"),
    (["--coordinator-address", "h:1", "--num-processes", "2", "--process-id", "2"],
     "--process-id must be in [0, 1]"),
])
def test_bad_flags_are_refused_with_a_readable_message(argv, message, capsys):
  with pytest.raises(SystemExit) as exit_info:
    cli.parse(CLASSES, "test", argv=argv)
  assert exit_info.value.code == 2
  assert message in capsys.readouterr().err


def test_unknown_env_id_is_refused_before_training():
  with pytest.raises(SystemExit, match="Unknown gymnax env id 'CartPol'"):
    anakin_dqn.main(["--env-id", "CartPol"])


def test_custom_agent_example_trains_with_the_unchanged_trainer():
  import custom_agent
  result = custom_agent.main(["--total-env-steps", "60000", "--num-seeds", "2"])
  assert isinstance(result.params, custom_agent.QRDQN.Params)
  # Its own OptimOutput scalars are logged; it learns (random play is about 22).
  assert np.all(np.isfinite(result.metrics["loss"][-1]))
  assert result.metrics["eval_return"][-1].max() >= 60


def test_quantile_huber_loss_by_hand():
  import custom_agent
  import jax.numpy as jnp
  # One quantile (tau = 0.5), target above the prediction by 3: Huber(3) = 2.5,
  # weight |0.5 - 0| = 0.5 -> 1.25; below by 0.5: 0.5 * 0.125 = 0.0625.
  assert float(custom_agent.quantile_huber_loss(jnp.array([0.0]), jnp.array([3.0]))) == (
      pytest.approx(1.25))
  assert float(custom_agent.quantile_huber_loss(jnp.array([0.5]), jnp.array([0.0]))) == (
      pytest.approx(0.0625))
