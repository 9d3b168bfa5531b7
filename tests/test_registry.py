"""The agents the registry names, from the command line: their flags, bad flags
refused in one line, and one short CartPole learning check per agent beyond DQN."""

import subprocess
import sys

import pytest

import helpers
from baselax import experiment


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


# --- learning -------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("agent", ["c51", "mdqn"])   # rainbow: test_rainbow.py
def test_each_new_agent_learns_cartpole_quickly(agent, tmp_path):
  out = experiment.run([
      "--agent", agent, "--total-env-steps", "50000", "--learning-rate", "1e-3",
      "--learning-starts", "5000", "--quiet", "--no-tensorboard",
      "--run-dir", str(tmp_path / "run")])
  # A constant-action greedy policy scores about 9, random play about 22.
  assert out.eval_return.mean() >= 100
