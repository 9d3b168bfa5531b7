"""The experiment layer: the command line of any registered agent, bad input
refused in one line, the agent contract enforced, a user's agent getting the
whole run (run directory, checkpoints, resume, evaluation), W&B offline."""

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import helpers
from baselax import anakin, experiment, metrics, networks
from baselax.agents import AgentContract, BaseAgent, DQN, registry
from baselax.envs import gymnax_env
from baselax.anakin import AnakinConfig
from baselax.errors import ConfigError
from baselax.experiment import cli, loggers

# 4 chunks of 1,000 env steps; learning starts in the first chunk.
SMALL = ["--total-env-steps", "4000", "--eval-every", "1000", "--num-envs", "4",
         "--learning-starts", "500", "--buffer-size", "2000", "--batch-size", "32",
         "--eval-episodes", "4", "--checkpoint-every", "1000", "--quiet",
         "--no-tensorboard", "--compilation-cache", "none"]


class StopAfter(loggers.Logger):
  """Asks the run to stop after chunk ``chunk`` (what Ctrl-C does)."""

  def __init__(self, chunk):
    self.chunk = chunk

  def write(self, record):
    return record.chunk == self.chunk


def run_cli(*argv, timeout=120):
  return subprocess.run([sys.executable, "experiments/anakin_dqn.py", *argv],
                        cwd=helpers.REPO, capture_output=True, text=True,
                        timeout=timeout, env=dict(os.environ, JAX_PLATFORMS="cpu"))


# --- the command line ---------------------------------------------------------


def test_every_config_field_is_a_flag_with_its_default():
  spec = experiment.parse([])
  assert spec.experiment == experiment.ExperimentConfig()
  assert spec.agent == registry.get("dqn").config_cls() and spec.trainer == AnakinConfig()
  assert spec.run == experiment.RunConfig() and not spec.distributed.enabled
  spec = experiment.parse([
      "--env-id", "Breakout-MinAtar", "--total-env-steps", "12345", "--num-envs", "7",
      "--num-seeds", "3", "--num-devices", "2", "--seed", "9", "--learning-rate",
      "0.01", "--hidden-sizes", "8", "4", "--no-lr-decay", "--eval-max-steps", "none",
      "--buffer-size", "5000", "--run-dir", "out/x", "--quiet", "--no-tensorboard",
      "--coordinator-address", "10.0.0.1:1234", "--num-processes", "4",
      "--process-id", "3", "--wandb-project", "p", "--wandb-mode", "offline"])
  assert (spec.distributed.num_processes, spec.distributed.process_id) == (4, 3)
  assert (spec.run.run_dir, spec.run.quiet, spec.loggers.tensorboard) == ("out/x", True, False)
  assert (spec.loggers.wandb_project, spec.loggers.wandb_mode) == ("p", "offline")
  assert spec.experiment.env_id == "Breakout-MinAtar"
  assert (spec.agent.learning_rate, spec.agent.hidden_sizes, spec.agent.lr_decay) == (
      0.01, (8, 4), False)
  assert (spec.trainer.total_env_steps, spec.trainer.num_envs, spec.trainer.num_seeds,
          spec.trainer.num_devices, spec.trainer.seed, spec.trainer.buffer_size,
          spec.trainer.eval_max_steps) == (12345, 7, 3, 2, 9, 5000, None)


@pytest.mark.parametrize("agent", ["dqn", "qrdqn"])
def test_help_lists_every_flag_of_the_chosen_agent(agent):
  help_text = run_cli("--agent", agent, "--help").stdout
  entry = registry.get(agent)
  for cls in (experiment.ExperimentConfig, entry.config_cls, AnakinConfig,
              experiment.RunConfig, experiment.LoggerConfig):
    for field in dataclasses.fields(cls):
      assert cli.flag_name(field.name) in help_text
  assert f"registered agents: {', '.join(registry.names())}" in help_text.replace("\n", " ")
  assert ("--num-quantiles" in help_text) == (agent == "qrdqn")


# Each: the flags, and what the one-line message must say. Each is refused
# with exit code 2 before anything is compiled, and without a traceback.
BAD_INPUTS = [
    (["--learning-rate", "-1"], "--learning-rate -1.0: learning_rate must be > 0"),
    (["--discount-factor", "1.5"], "discount_factor must be in (0, 1]"),
    (["--target-update-interval", "0"], "target_update_interval must be an integer >= 1"),
    (["--epsilon-start", "2"], "--epsilon-start 2.0: epsilon_start must be in [0, 1]"),
    (["--exploration-fraction", "0"], "exploration_fraction must be in (0, 1]"),
    (["--hidden-sizes", "0"], "--hidden-sizes 0: hidden_sizes must be integers >= 1 (or none"),
    (["--max-grad-norm", "-3"], "max_grad_norm must be > 0"),
    (["--network", "resnet"], "network must be auto, mlp, conv or nature"),
    (["--agent", "qrdqn", "--num-quantiles", "0"], "num_quantiles must be an integer >= 1"),
    (["--agent", "qrdqn", "--kappa", "-1"], "--kappa -1.0: kappa must be > 0"),
    (["--agent", "nope"], f"unknown agent 'nope'; registered agents: "
                          f"{', '.join(registry.names())}"),
    (["--num-envs", "0"], "--num-envs 0: AnakinConfig.num_envs must be a positive integer"),
    (["--num-envs", "ten"], "--num-envs: invalid int value: 'ten'"),
    (["--batch-size", "20000"], "batch_size (20000) is larger than buffer_size"),
    (["--priority-exponent", "2"], "priority_exponent must be in [0, 1]"),
    (["--total-env-steps", "5"], "--total-env-steps 5: total_env_steps (5) is smaller"),
    (["--checkpoint-every", "0"], "checkpoint_every must be >= 1"),
    (["--wandb-mode", "sometimes"], "wandb_mode must be online or offline"),
    (["--eval-episodes", "0"], "eval_episodes must be a positive integer"),
    (["--coordinator-address", "h:1"], "go together: pass all three"),
    (["--env-id", "CartPol"], "--env-id CartPol: Unknown gymnax env_id 'CartPol'"),
    # Found by tests/test_fuzz.py: each now leads with the flag it is about.
    (["--agent", "c51", "--munchausen-alpha", "0.9"],
     "--munchausen-alpha 0.9: no such flag (agent c51's flags and the others"),
    (["--total-env-steps", "1.5"], "--total-env-steps: invalid int value: '1.5'"),
    (["--env-id", "Pendulum-v1"], "agent dqn cannot train on env_id Pendulum-v1: "
                                  "DQN needs a Discrete action space"),
    (["--num-devices", "4"], "--num-devices 4: num_devices=4 but only 1 local cpu device"),
    (["--n-step", "400", "--buffer-size", "2000"], "--n-step 400:"),
    (["--resume", "/nonexistent/run"], "/nonexistent/run is not a run directory"),
    (["--sweep", "learning_rate=1e-4,-1"], "--sweep learning_rate=1e-4,-1: sweep point "
                                           "learning_rate=-1.0 is refused: learning_rate must be > 0"),
    (["--sweep", "lr=1e-4"], "--sweep: agent dqn has no setting 'lr'"),
    (["--sweep", "n_step=1,3"], "--sweep: n_step is a trainer setting"),
    (["--sweep", "double_dqn=0,1"], "--sweep: double_dqn is not a number"),
    (["--sweep", "hidden_sizes=8,16"], "--sweep: hidden_sizes is not a number"),
    (["--sweep", "target_update_interval=50,2.5"], "target_update_interval takes int values"),
    (["--sweep", "learning_rate"], "'learning_rate' is not SETTING=V1,V2"),
    (["--agent", "c51", "--sweep", "num_atoms=11,21"], "C51 cannot take num_atoms as an "
                                                        "array"),
]


@pytest.mark.parametrize("argv, message", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_is_one_line_and_exit_code_2(argv, message, capsys):
  with pytest.raises(SystemExit) as exit_info:
    experiment.run(argv + ["--quiet", "--compilation-cache", "none"])
  assert exit_info.value.code == 2
  captured = capsys.readouterr()
  err = captured.err.strip()
  assert message in err and "error:" in err
  assert len(err.splitlines()) == 1 and "Traceback" not in err
  assert "baselax" not in captured.out  # refused before the run began


def test_bad_input_from_a_real_process_has_no_traceback(tmp_path):
  proc = run_cli("--learning-rate", "-1")
  assert proc.returncode == 2 and proc.stdout == ""
  assert proc.stderr.strip().splitlines() == [
      "anakin_dqn.py: error: --learning-rate -1.0: learning_rate must be > 0 (typically "
      "1e-4 to 1e-3), got -1.0. (see anakin_dqn.py --help)"]
  # A directory that holds no checkpoint yet is no run to resume.
  (tmp_path / "config.json").write_text("{}")
  proc = run_cli("--resume", str(tmp_path))
  assert proc.returncode == 2 and "Traceback" not in proc.stderr
  assert len(proc.stderr.strip().splitlines()) == 1


# --- the agent contract ---------------------------------------------------------


class IgnoresOptionalKeys(DQN):
  """A DQN that declares nothing: what an agent that ignores discount/weight is."""
  contract = AgentContract()


class ReadsWeightWithoutTDError(DQN):
  contract = AgentContract(reads=frozenset({"weight", "discount"}))


@pytest.mark.parametrize("agent_cls, config, message", [
    (IgnoresOptionalKeys, AnakinConfig(n_step=3),
     r"n_step=3 needs an agent whose update reads data\['discount'\].*"
     r"IgnoresOptionalKeys does not declare it.*Use n_step=1, or make "
     r"IgnoresOptionalKeys.update use data\['discount'\]"),
    (IgnoresOptionalKeys, AnakinConfig(sampling="prioritized"),
     r"sampling=prioritized needs an agent that can read data\['weight'\].*and return "
     r"per-sample OptimOutput.td_error.*IgnoresOptionalKeys's contract.*Use sampling=uniform"),
    (ReadsWeightWithoutTDError, AnakinConfig(prioritized=True),
     r"can return per-sample OptimOutput.td_error \(B,\); ReadsWeightWithoutTDError"),
])
def test_the_trainer_refuses_what_the_agent_contract_does_not_offer(
    agent_cls, config, message, monkeypatch):
  env = gymnax_env.check_env(gymnax_env.make("CartPole-v1"))
  agent = agent_cls(networks.mlp_q_network((8,)), env, 1e-3)
  compiled = []
  monkeypatch.setattr(anakin.program.jax, "pmap",
                      lambda *a, **k: compiled.append(1))  # nothing may get this far
  with pytest.raises(ConfigError, match=message):
    anakin.train(agent, env, config)
  assert not compiled
  anakin.check_agent(DQN(networks.mlp_q_network((8,)), env, 1e-3),
                     AnakinConfig(n_step=3, prioritized=True))  # DQN offers both


def test_the_contract_names_only_known_batch_keys():
  with pytest.raises(ValueError, match="unknown batch key"):
    AgentContract(reads=frozenset({"discounts"}))


# --- schedules in env steps ------------------------------------------------------


def test_schedules_are_converted_in_one_place():
  sizes = AnakinConfig(total_env_steps=40_000, num_envs=10, learning_starts=1000,
                       train_every=2, eval_every=4000).derive(num_devices=2)
  # One predict call steps 10 envs on each of 2 devices.
  assert sizes.predict_calls(20_000) == 1000
  assert sizes.predict_calls(1) == 1
  # One update per scan step of 10 x 2 x 2 = 40 env steps, from step 25 on.
  assert sizes.total_updates == 1000 - 25
  env = __import__("baselax").envs.make("CartPole-v1")
  agent = registry.get("dqn").build(registry.get("dqn").config_cls(), env, sizes)
  # exploration_fraction 0.5 of 40,000 env steps = 1,000 predict calls.
  assert float(agent.epsilon_schedule(1000)) == pytest.approx(0.05)
  assert float(agent.epsilon_schedule(500)) == pytest.approx(0.525)


# --- a user's agent, registered from this file ----------------------------------


class TinyAgent(BaseAgent):
  """A minimal Q-learner defined here, outside the library."""

  contract = AgentContract(reads=frozenset({"discount"}))

  class Params(NamedTuple):
    online: dict

  class OptimOutput(NamedTuple):
    loss: jax.Array

  def __init__(self, network, env, learning_rate, epsilon):
    super().__init__(network, env, learning_rate)
    self.discount_factor = 0.99
    self.epsilon = epsilon

  def init_params(self, rng):
    return self.Params(super().init_params(rng))

  def init_optimizer(self, params, rng=None):
    return self.OptimState(jnp.zeros((), jnp.int32), self.optimizer.init(params.online))

  def predict(self, params, policy_state, obs, key, evaluation=False, **kwargs):
    q = self.network.apply(params.online, obs)
    eps = 0.0 if evaluation else self.epsilon(policy_state.count)
    actions = __import__("baselax").agents.value_learning.epsilon_greedy(key, q, eps)
    return (DQN.PolicyOutput(actions, q, jnp.asarray(eps, jnp.float32)),
            policy_state if evaluation else self.PolicyState(policy_state.count + 1))

  def update(self, params, optimizer_state, data, axis_name=None, **kwargs):
    def loss(online):
      q = self.network.apply(online, data["obs"])
      q_next = jax.lax.stop_gradient(self.network.apply(online, data["next_obs"]))
      target = data["reward"] + data.get(
          "discount", 0.99 * (1 - data["terminated"].astype(jnp.float32))) * q_next.max(-1)
      return jnp.mean(jnp.square(target - jnp.take_along_axis(
          q, data["action"][:, None], -1)[:, 0]))
    value, grads = jax.value_and_grad(loss)(params.online)
    if axis_name is not None:
      grads, value = jax.lax.pmean((grads, value), axis_name)
    updates, opt_state = self.optimizer.update(grads, optimizer_state.opt_state)
    return (self.OptimOutput(value), self.Params(optax.apply_updates(params.online, updates)),
            self.OptimState(optimizer_state.count + 1, opt_state))


@dataclasses.dataclass(frozen=True)
class TinyConfig:
  """Attributes:
    width: hidden units.
  """
  width: int = 16

  def __post_init__(self):
    if self.width < 1:
      raise ValueError(f"width must be >= 1, got {self.width}.")


def build_tiny(config, env, sizes):
  decay = sizes.predict_calls(sizes.total_env_steps / 2)
  return TinyAgent(networks.mlp_q_network((config.width,)), env, 1e-3,
                   optax.linear_schedule(1.0, 0.05, decay))


@pytest.fixture
def tiny_registered():
  registry.register("tiny", TinyConfig, build_tiny, overwrite=True)
  yield
  registry._REGISTRY.pop("tiny")


def test_a_users_agent_gets_the_whole_run(tiny_registered, tmp_path, capsys):
  path = str(tmp_path / "tiny")
  stopped = experiment.run(SMALL + ["--agent", "tiny", "--width", "8", "--run-dir", path],
                           loggers=[StopAfter(0)])
  assert stopped.interrupted
  saved = experiment.rundir.load_config(path)
  assert saved["experiment"]["agent"] == "tiny" and saved["agent"] == {"width": 8}
  assert saved["agent_class"] == "TinyAgent"
  # Resumed with its saved flags; an agent flag that differs is refused.
  with pytest.raises(SystemExit):
    experiment.run(["--resume", path, "--width", "9"])
  assert "--width: the run has 8, you asked for 9" in capsys.readouterr().err
  resumed = experiment.run(["--resume", path, "--quiet"])
  assert not resumed.interrupted and resumed.result.first_chunk == 1
  assert len(resumed.result.history) == 4
  assert np.isfinite(resumed.result.metrics["loss"][-1]).all()
  out = experiment.evaluate([path, "--episodes", "2"])
  assert out["returns"].shape == (1, 2)
  # A bad agent flag is a usage error like any other.
  with pytest.raises(SystemExit) as exit_info:
    experiment.run(["--agent", "tiny", "--width", "0"])
  assert exit_info.value.code == 2 and "--width 0: width must be >= 1" in capsys.readouterr().err
  # Prioritized replay asks for more than TinyAgent offers: refused, naming it.
  with pytest.raises(SystemExit):
    experiment.run(SMALL + ["--agent", "tiny", "--prioritized", "--run-dir", path + "2"])
  assert "TinyAgent's contract does not declare it" in capsys.readouterr().err
  assert not os.path.exists(path + "2")


def test_the_custom_agent_example_registers_trains_and_evaluates(tmp_path, monkeypatch):
  spec = importlib.util.spec_from_file_location(
      "custom_agent", os.path.join(helpers.REPO, "experiments", "custom_agent.py"))
  example = importlib.util.module_from_spec(spec)
  monkeypatch.setitem(sys.modules, "custom_agent", example)
  spec.loader.exec_module(example)
  try:
    path = str(tmp_path / "esarsa")
    assert example.main(["--total-env-steps", "60000", "--num-seeds", "2", "--quiet",
                         "--run-dir", path, "--compilation-cache", "none"]) == 0
    records = [metrics.record_from_json(json.loads(line))
               for line in open(os.path.join(path, "metrics.jsonl"))]
    # It learns (a uniformly random policy scores about 22 on CartPole-v1).
    assert records[-1].eval_return.max() >= 60
    assert example.main(["evaluate", path, "--episodes", "2"]) == 0
  finally:
    registry._REGISTRY.pop("esarsa", None)


# --- loggers -----------------------------------------------------------------------


@pytest.mark.skipif(importlib.util.find_spec("wandb") is None, reason="wandb not installed")
def test_wandb_offline_writes_a_local_run(tmp_path):
  path = tmp_path / "wb"
  experiment.run(SMALL + ["--total-env-steps", "2000", "--run-dir", str(path),
                          "--wandb-project", "baselax-test", "--wandb-mode", "offline"])
  runs = [d for d in os.listdir(path / "wandb") if d.startswith("offline-run-")]
  assert len(runs) == 1
  files = os.listdir(path / "wandb" / runs[0])
  assert any(f.endswith(".wandb") for f in files)
  assert (path / "wandb_run_id").read_text().strip() in runs[0]
