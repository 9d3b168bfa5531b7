"""The table runner (``baselax.experiment.tables``, ``scripts/table.py``): the
tables' specs against the presets and the registry, the report's arithmetic
on hand-made cells, bad flags, and one real cell filled, skipped once done and
reported."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from baselax.agents import registry
from baselax.experiment import launch, presets
from baselax.experiment.tables import cells, cli, report, specs, stats
import helpers


@pytest.mark.parametrize("name", list(specs.TABLES))
def test_every_table_names_presets_agents_and_envs_that_exist(name):
  table = specs.get(name)
  for preset in filter(None, (table.preset, table.fast_preset)):
    for agent in table.agents:
      registry.get(agent)
      spec = launch.parse(["--preset", preset, "--agent", agent, "--env-id", table.envs[0]])
      assert spec.experiment.preset == preset
  assert set(table.published) <= set(table.agents)
  for per_frames in table.published.values():
    assert set().union(*per_frames.values()) <= set(table.envs)


def test_cleanrl_classic_preset_has_cleanrls_settings():
  dqn = launch.parse(["--preset", "cleanrl-classic"])
  assert (dqn.trainer.num_envs, dqn.trainer.train_every, dqn.trainer.batch_size,
          dqn.trainer.buffer_size, dqn.trainer.learning_starts,
          dqn.trainer.total_env_steps) == (1, 10, 128, 10_000, 10_000, 500_000)
  assert (dqn.agent.hidden_sizes, dqn.agent.learning_rate, dqn.agent.lr_decay,
          dqn.agent.max_grad_norm, dqn.agent.target_update_interval,
          dqn.agent.exploration_fraction, dqn.agent.epsilon_end) == (
              (120, 84), 2.5e-4, False, None, 50, 0.5, 0.05)
  c51 = launch.parse(["--preset", "cleanrl-classic", "--agent", "c51",
                      "--env-id", "Acrobot-v1", "--v-min", "-50"])
  assert (c51.agent.num_atoms, c51.agent.v_max, c51.agent.optimizer_eps) == (
      101, 100.0, 0.01 / 128)
  assert (c51.agent.v_min, c51.experiment.env_id) == (-50.0, "Acrobot-v1")  # flags win
  rainbow = launch.parse(["--preset", "cleanrl-classic", "--agent", "rainbow"])
  assert (rainbow.trainer.n_step, rainbow.trainer.prioritized, rainbow.agent.noisy,
          rainbow.agent.hidden_sizes) == (3, True, True, (120, 84))
  assert "cleanrl-classic" in presets.help_text()


def test_published_values_are_the_papers_and_found_by_agent_and_env():
  classic = specs.get("cleanrl-classic")
  assert classic.published_for("dqn", "CartPole-v1") == {
      500_000: specs.Published(488.69, 16.11)}
  assert classic.published_for("qrdqn", "CartPole-v1") == {}
  rainbow = specs.get("revisiting-rainbow").published_for("rainbow", "minatar:Breakout")
  assert rainbow[2_000_000].mean == 6.83 and rainbow[10_000_000].mean == 11.25
  assert len(rainbow) == 10  # one point per 1M-frame iteration


def cell(agent, env_id, values, published, table="cleanrl-classic", frames=500_000):
  return {"table": table, "agent": agent, "env_id": env_id, "frames": frames,
          "recent_return": values, "summary": {"recent_return": stats.summary(values)},
          "published": {str(f): p for f, p in published.items()}}


def test_a_cell_stands_at_or_above_within_or_below_the_published_value():
  pub = {"mean": 100.0, "std": 10.0}
  assert report.standing(stats.summary([100.0, 104.0]), pub) == report.AT_OR_ABOVE
  assert report.standing(stats.summary([91.0, 93.0]), pub) == report.WITHIN  # in ± std
  assert report.standing(stats.summary([80.0, 82.0]), pub) == report.BELOW
  wide = stats.summary([60.0, 130.0])  # its 95% CI holds 100: within
  assert report.standing(wide, {"mean": 100.0, "std": None}) == report.WITHIN
  assert report.standing(stats.summary([60.0, 61.0]), {"mean": 100.0}) == report.BELOW
  table = specs.get("cleanrl-classic")
  mdqn = cell("mdqn", "Acrobot-v1", [-90.0], {})
  ref, mark = report.published_point(table, mdqn)
  assert (ref["mean"], mark) == (-91.54, "dqn")  # DQN stands beside agents without a value


def test_summary_is_mean_population_std_and_student_t_interval():
  out = stats.summary([1.0, 2.0, 3.0, None, float("nan")])
  assert out["n"] == 3 and out["mean"] == 2.0
  assert out["std"] == pytest.approx(np.std([1, 2, 3]))  # ddof=0, as CleanRL's ±
  assert out["ci95"] == pytest.approx([2 - 4.302653 / np.sqrt(3), 2 + 4.302653 / np.sqrt(3)])
  assert stats.summary([]) == {"mean": None, "std": None, "ci95": None, "n": 0}


def test_iteration_return_averages_the_episodes_of_the_last_frames():
  rows = [{"env_steps": 500, "train_return": [1.0, 10.0], "train_episodes": [2, 1]},
          {"env_steps": 1000, "train_return": [4.0, None], "train_episodes": [2, 0]},
          {"env_steps": 1500, "train_return": [7.0, 3.0], "train_episodes": [1, 1]}]
  # The last 1,000 steps: chunks ending at 1000 and 1500. Seed 0: (4*2 + 7) / 3.
  np.testing.assert_allclose(cells.iteration_returns(rows, 1000), [5.0, 3.0])
  np.testing.assert_allclose(cells.iteration_returns(rows[:2], 400), [4.0, np.nan])


@pytest.mark.parametrize("argv,message", [
    ([], "--table: name a table"),
    (["--table", "atari-100k"], "--table atari-100k: unknown table"),
    (["--table", "cleanrl-classic", "--envs", "Pong"], "--envs Pong: not a column"),
    (["--table", "cleanrl-classic", "--agents", "ppo"], "--agents ppo: not in the"),
    (["--table", "cleanrl-classic", "--fast"], "--fast: the cleanrl-classic table has no"),
    (["--table", "revisiting-rainbow", "--seeds", "0"], "--seeds must be >= 1"),
    (["--table", "revisiting-rainbow", "--frames", "2.5"], "--frames: invalid int value"),
])
def test_bad_table_flags_are_refused_in_one_line(argv, message, capsys):
  with pytest.raises(SystemExit) as exit_info:
    cli.parse(argv)
  err = capsys.readouterr().err
  assert exit_info.value.code == 2 and message in err, err
  assert len(err.strip().splitlines()) == 1


def test_table_fills_a_cell_skips_it_once_done_and_rebuilds_the_report(tmp_path):
  script = [sys.executable, "scripts/table.py", "--table", "cleanrl-classic", "--agents",
            "dqn", "--envs", "CartPole-v1", "--seeds", "2", "--frames", "4000",
            "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "out"), "--",
            "--eval-every", "2000", "--learning-starts", "500", "--buffer-size", "1000",
            "--eval-episodes", "2", "--compilation-cache", "none"]
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  first = subprocess.run(script, cwd=helpers.REPO, capture_output=True, text=True,
                         timeout=300, env=env)
  assert first.returncode == 0, first.stderr
  result = json.loads((tmp_path / "out" / "cleanrl-classic" /
                       "dqn-CartPole-v1-4000.json").read_text())
  assert (result["frames"], result["seeds"], result["env"], result["table"]) == (
      4000, 2, "CartPole-v1", "cleanrl-classic")
  assert len(result["recent_return"]) == 2 and len(result["curve"]["env_steps"]) == 2
  assert result["published"] == {"500000": {"mean": 488.69, "std": 16.11}}
  assert result["config"]["agent"]["hidden_sizes"] == [120, 84]  # the preset's
  assert result["config"]["trainer"]["learning_starts"] == 500  # the flag after --
  assert result["code"]["commits"] and result["machine"]["device_kind"]
  assert result["command"].startswith(
      "python experiments/anakin_dqn.py --preset cleanrl-classic --agent dqn --env-id "
      "CartPole-v1 --total-env-steps 4000 --num-seeds 2")
  text = (tmp_path / "out" / "README.md").read_text()
  assert "| dqn | cleanrl-classic | 4,000 | 2 | " in text
  assert "/ 488.69 ± 16.11 (end)" in text
  assert (tmp_path / "out" / "cleanrl-classic-CartPole-v1.png").exists()
  # A finished cell is not run again: no main-job command is printed.
  again = subprocess.run(script, cwd=helpers.REPO, capture_output=True, text=True,
                         timeout=120, env=env)
  assert again.returncode == 0 and "baselax.experiment" not in again.stdout, again.stdout


def test_a_table_stops_at_a_cell_stopped_by_ctrl_c_and_goes_on_past_a_failed_one(
    tmp_path, monkeypatch):
  launched, codes = [], []

  def fake_run(cmd, **kwargs):
    if cmd[0] == "git":  # the cell's code version
      return subprocess.CompletedProcess(cmd, 0, stdout="0" * 40 + "\n", stderr="")
    launched.append(cmd[cmd.index("--agent") + 1])
    return subprocess.CompletedProcess(cmd, codes.pop(0))

  monkeypatch.setattr(cells.subprocess, "run", fake_run)
  argv = ["--table", "cleanrl-classic", "--agents", "dqn", "c51", "--envs", "CartPole-v1",
          "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "out")]
  codes[:] = [130]
  assert cli.main(argv) == 130 and launched == ["dqn"]  # Ctrl-C: the table stops
  codes[:] = [1, 1]
  assert cli.main(argv) == 1 and launched[1:] == ["dqn", "c51"]  # an error: the next runs
