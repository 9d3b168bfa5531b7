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


def fake_cells(monkeypatch, code_of, hold_s=0.3, together=0):
  """``cells.subprocess.run`` replaced: each main job is recorded (its agent,
  where its output went), counted while it "runs" ``hold_s`` seconds, and
  exits with ``code_of(agent)``. The first ``together`` jobs wait for each
  other before they end (so they surely ran at once)."""
  import threading
  lock, seen = threading.Lock(), {"launched": [], "logs": [], "started": [], "active": 0,
                                 "most": 0}
  meet = threading.Barrier(together) if together else None

  def fake_run(cmd, **kwargs):
    if cmd[0] == "git":
      return subprocess.CompletedProcess(cmd, 0, stdout="0" * 40 + "\n", stderr="")
    agent = cmd[cmd.index("--agent") + 1]
    run_dir = cmd[cmd.index("--run-dir") + 1]
    with open(os.path.join(run_dir, "sessions.jsonl")) as f:  # logged before it runs
      started = [json.loads(line) for line in f]
    with lock:
      seen["launched"].append(agent)
      seen["started"].append(started)
      seen["logs"].append(getattr(kwargs.get("stdout"), "name", None))
      seen["active"] += 1
      seen["most"] = max(seen["most"], seen["active"])
    import time
    if meet is not None and len(seen["launched"]) <= together:
      meet.wait(timeout=10)
    time.sleep(0 if code_of(agent) == 130 else hold_s)
    with lock:
      seen["active"] -= 1
    return subprocess.CompletedProcess(cmd, code_of(agent))

  monkeypatch.setattr(cells.subprocess, "run", fake_run)
  return seen


def test_jobs_run_cells_side_by_side_each_logging_to_a_file(tmp_path, monkeypatch):
  seen = fake_cells(monkeypatch, lambda agent: 1)
  argv = ["--table", "cleanrl-classic", "--agents", "dqn", "c51", "qrdqn", "--envs",
          "CartPole-v1", "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "out"),
          "--jobs", "2"]
  assert cli.main(argv) == 1  # every (fake) cell failed: the table says so
  assert sorted(seen["launched"]) == ["c51", "dqn", "qrdqn"] and seen["most"] == 2
  assert all(log and log.endswith("-CartPole-v1-500000f-10s.log") for log in seen["logs"])
  # Each session's code is on record before it runs (a killed table keeps it).
  assert all(len(lines) == 1 and lines[0]["commit"] == "0" * 40 and "started" in lines[0]
             for lines in seen["started"])


def test_with_jobs_a_ctrl_c_lets_running_cells_end_and_starts_no_more(tmp_path, monkeypatch):
  # dqn is stopped by Ctrl-C while c51 runs beside it: c51 ends, nothing starts.
  seen = fake_cells(monkeypatch, lambda agent: 130 if agent == "dqn" else 1, together=2)
  argv = ["--table", "cleanrl-classic", "--agents", "dqn", "c51", "qrdqn", "mdqn", "--envs",
          "CartPole-v1", "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "out"),
          "--jobs", "2"]
  assert cli.main(argv) == 130
  assert seen["launched"] == ["dqn", "c51"] or seen["launched"] == ["c51", "dqn"]


@pytest.mark.parametrize("argv, message", [
    (["--out", "o", "--table", "atari-100k"], "--table atari-100k: unknown table"),
    (["--out", "o", "--jobs", "0"], "--jobs must be >= 1"),
    (["--out", "o", "--agents", "ppo"], "--agents ppo: not in the"),
    (["--table", "revisiting-rainbow"], "the following arguments are required: --out"),
])
def test_bad_device_table_flags_are_refused_in_one_line(argv, message, capsys):
  from baselax.experiment.tables import budget
  with pytest.raises(SystemExit) as exit_info:
    budget.parse(argv)
  err = capsys.readouterr().err
  assert exit_info.value.code == 2 and message in err, err
  assert len(err.strip().splitlines()) == 1


def test_pack_puts_the_longest_first_on_the_slot_free_first_and_leaves_out_what_ends_late():
  from baselax.experiment.tables import budget
  # Two slots of 8 s: 5 and 4 open them, 3 follows the 4 (7), the next 3 the 5 (8);
  # the 2 would end at 9 on either; the 9 fits on none.
  assert budget.pack([3.0, 5.0, 9.0, 2.0, 4.0, 3.0], slots=2, capacity=8.0) == [1, 4, 0, 5]
  assert budget.pack([9.0], slots=4, capacity=8.0) == []


def test_a_probe_is_measured_from_its_run_directory(tmp_path):
  from baselax.experiment.tables import budget
  rows = [{"chunk": 0, "env_steps": 1000, "wall_time": 3.0, "sps": 2000.0},
          {"chunk": 1, "env_steps": 2000, "wall_time": 5.5, "sps": 1000.0}]
  (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
  (tmp_path / "sessions.jsonl").write_text(
      json.dumps({"started": "2026-12-07T18:00:00"}) + "\n" + json.dumps({"wall_s": 12.0}) + "\n")
  got = budget.measure(str(tmp_path), seeds=2)
  # 1000 frames a seed at 500 frames/s per seed: 2 s of the chunk's 2.5 s trained.
  assert got == {"rate": 500.0, "chunk_overhead_s": 0.5, "startup_s": 6.5}
  # 10,000 frames in chunks of 4,000: 3 chunks, each with its overhead.
  assert budget.estimate_s(got, 10_000, 4_000) == pytest.approx(
      budget.SAFETY * (6.5 + 20.0 + 3 * 0.5))


def test_the_plan_skips_cells_already_had_and_falls_back_to_a_budget_that_fits(tmp_path):
  from baselax.experiment.tables import budget
  args = budget.parse(["--out", str(tmp_path / "out"), "--have", str(tmp_path / "have"),
                       "--agents", "dqn", "c51", "--envs", "Breakout", "SpaceInvaders",
                       "--frames", "10000000", "2000000", "--jobs", "2"])
  had = cells.path_of(str(tmp_path / "have"), {"preset": "revisiting-rainbow-fast",
                                               "agent": "dqn", "env_id": "minatar:Breakout",
                                               "frames": 2_000_000})
  os.makedirs(os.path.dirname(had))
  open(had, "w").close()
  rates = {a: {"rate": 10_000.0, "chunk_overhead_s": 1.0, "startup_s": 20.0}
           for a in ("dqn", "c51")}
  # 10M frames: 1,000 s a cell; 2M: about 200 s. 450 s on 2 slots holds 2 of the 3.
  got = budget.plan(args, rates, left_s=450.0)
  assert got["frames"] == 2_000_000
  assert got["tried"] == [{"frames": 10_000_000, "cells": 4, "fit": 0},
                          {"frames": 2_000_000, "cells": 3, "fit": 2}]
  assert all((c["agent"], c["env_id"]) != ("dqn", "minatar:Breakout") for c in got["cells"])


def test_gain_compares_the_copies_side_by_side_with_the_agent_alone():
  from baselax.experiment.tables import budget
  probed = {"alone": {"c51": {"rate": 100.0}},
            "side_by_side": [["dqn", {"rate": 500.0}], ["c51", {"rate": 60.0}],
                             ["c51", {"rate": 80.0}], ["dqn", None]]}
  # 3 processes finished (one failed), c51's copies at 70 frames/s each: 3 * 70 / 100.
  assert budget.gain(probed) == pytest.approx(2.1)
  assert budget.gain({"alone": {"c51": {"rate": 100.0}}, "side_by_side": []}) is None


def test_the_report_says_whether_the_papers_ordering_holds_and_whether_cis_separate():
  table = specs.get("revisiting-rainbow")
  assert ("rainbow", "dqn") in table.orderings

  def rr(agent, env, values):
    c = cell(agent, f"minatar:{env}", values, {}, table="revisiting-rainbow", frames=2_000_000)
    c["preset"] = "revisiting-rainbow-fast"
    c["summary"] = {"iteration_return": stats.summary(values)}
    return c

  mine = [rr("dqn", "Breakout", [5.0, 5.5, 6.0]), rr("rainbow", "Breakout", [9.0, 9.5, 10.0]),
          rr("dqn", "SpaceInvaders", [25.0, 30.0, 35.0]),
          rr("rainbow", "SpaceInvaders", [20.0, 40.0, 36.0]),
          rr("c51", "Asterix", [1.0, 2.0, 3.0])]  # no pair: no row
  lines = report.ordering_table(table, mine)
  rows = {line.split(" | ")[3]: line for line in lines[2:]}
  assert set(rows) == {"Breakout", "SpaceInvaders"} and len(lines) == 2 + 2  # each env once
  # Breakout: 9.5 above 5.5 and the CIs ([8.3, 10.7] and [4.3, 6.7]) apart.
  assert rows["Breakout"].endswith("| yes | yes |")
  # Space Invaders: 32.0 above 30.0, but the CIs overlap.
  assert rows["SpaceInvaders"].endswith("| yes | no |")
  assert report.ordering_table(table, mine[:1]) == []


def test_device_table_brings_back_each_landed_cell_or_says_why_none_fit(
    tmp_path, monkeypatch, capsys):
  """budget.main's wiring, its probes and cells faked: the plan comes from the
  probe's speed, and each landed cell is in cells.tar.gz at once."""
  import tarfile
  from baselax.experiment.tables import budget
  fast = {"rate": 1e6, "chunk_overhead_s": 0.0, "startup_s": 1.0}
  monkeypatch.setattr(budget, "probe", lambda args, deadline: {
      "env_id": "minatar:Breakout", "frames": 0, "alone": {"c51": fast},
      "side_by_side": [["c51", fast], ["c51", fast]]})  # 2 at once, each as fast as alone
  argv = ["--out", str(tmp_path / "out"), "--work", str(tmp_path / "work"), "--have",
          str(tmp_path / "have"), "--agents", "c51", "--envs", "Breakout", "--jobs", "2"]

  def fill(todo, runs_dir, out, *args):
    on_done = args[-1]
    for cell in todo:  # what cli.fill does once a cell is finished
      path = cells.path_of(out, cell)
      os.makedirs(os.path.dirname(path), exist_ok=True)
      open(path, "w").write("{}")
      on_done(cell, path)
      names = tarfile.open(tmp_path / "out" / "cells.tar.gz").getnames()
      assert names == ["revisiting-rainbow-fast/c51-Breakout-10000000.json"]
    assert args[0][-2:] == ["--checkpoint-every", "10000000"]  # one checkpoint, at the end
    return 0

  monkeypatch.setattr(budget.cli, "fill", fill)
  assert budget.main(argv) == 0
  record = json.loads((tmp_path / "out" / "probe.json").read_text())
  assert record["plan"]["frames"] == 10_000_000 and record["gain"] == pytest.approx(2.0)
  assert [d["agent"] for d in record["done"]] == ["c51"]
  # At 1 frame/s per seed nothing fits in 420 s: one line says so.
  slow = {"rate": 1.0, "chunk_overhead_s": 0.0, "startup_s": 1.0}
  monkeypatch.setattr(budget, "probe", lambda args, deadline: {
      "env_id": "minatar:Breakout", "frames": 0, "alone": {"c51": slow}, "side_by_side": []})
  assert budget.main(argv) == 1
  err = capsys.readouterr().err.strip()
  assert err.startswith("no cell fits in the 420 s budget (0 of 1 at 10,000,000") and (
      len(err.splitlines()) == 1)


def test_failed_probes_leave_their_agents_out_and_a_line_when_all_failed(
    tmp_path, monkeypatch, capsys):
  from baselax.experiment.tables import budget

  def run(cell, where, extra=(), *args, timeout_s=None, **kwargs):
    assert timeout_s is not None and 0 < timeout_s <= 420  # probes end inside the budget
    os.makedirs(where, exist_ok=True)
    with open(os.path.join(where, "probe.log"), "w") as f:
      f.write("it broke\n")
    if cell["agent"] == "c51":
      raise cells.Interrupted(where)  # a probe stopped by a signal is a failed probe
    return None  # one that exited with an error

  monkeypatch.setattr(budget.cells, "run", run)
  argv = ["--out", str(tmp_path / "out"), "--work", str(tmp_path / "work"), "--agents",
          "dqn", "c51", "--envs", "Breakout", "--jobs", "2"]
  assert budget.main(argv) == 1
  err = capsys.readouterr().err.strip()
  assert err.startswith("every probe failed") and len(err.splitlines()) == 1
  record = json.loads((tmp_path / "out" / "probe.json").read_text())
  assert record["probe"]["alone"] == {"c51": None} and record["gain"] is None
  import tarfile
  logs = tarfile.open(tmp_path / "out" / "logs.tar.gz").getnames()
  assert "probe/alone/probe.log" in logs and "probe/side-1/probe.log" in logs


@pytest.mark.parametrize("code, stops", [(130, True), (-2, True), (-15, True), (-9, False),
                                         (-6, False), (1, False)])
def test_only_ctrl_c_or_a_stop_signal_stops_the_table(tmp_path, monkeypatch, code, stops):
  seen = fake_cells(monkeypatch, lambda agent: code if agent == "dqn" else 1, hold_s=0)
  argv = ["--table", "cleanrl-classic", "--agents", "dqn", "c51", "--envs", "CartPole-v1",
          "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "out")]
  assert cli.main(argv) == (130 if stops else 1)
  assert seen["launched"] == (["dqn"] if stops else ["dqn", "c51"])


def test_a_deadline_stops_the_running_cell_and_starts_no_more(tmp_path, monkeypatch, capsys):
  import time
  launched = []

  def fake_run(cmd, timeout=None, **kwargs):
    if cmd[0] == "git":
      return subprocess.CompletedProcess(cmd, 0, stdout="0" * 40 + "\n", stderr="")
    launched.append((cmd[cmd.index("--agent") + 1], timeout))
    time.sleep(0.2)
    raise subprocess.TimeoutExpired(cmd, timeout)  # as subprocess.run does, having killed it

  monkeypatch.setattr(cells.subprocess, "run", fake_run)
  todo = cli.planned(cli.parse(["--table", "cleanrl-classic", "--agents", "dqn", "c51",
                                "--envs", "CartPole-v1", "--runs-dir", str(tmp_path)]))
  code = cli.fill(todo, str(tmp_path), str(tmp_path / "out"), deadline=time.monotonic() + 0.1)
  assert code == 1 and [a for a, _ in launched] == ["dqn"] and 0 < launched[0][1] <= 0.1
  assert "stopped at its time limit" in capsys.readouterr().err
  assert not (tmp_path / "out").exists()  # no cell file for a cell that did not finish
