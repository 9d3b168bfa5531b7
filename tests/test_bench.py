"""scripts/bench.py and scripts/variant_table.py: their rows on this machine, smoke-sized."""

import json
import os
import subprocess
import sys
import jax
import numpy as np
import pytest
import helpers


def run_bench(tmp_path, *flags):
  """``scripts/bench.py FLAGS --json ...``: ``(process, the JSON it wrote)``."""
  out_json = tmp_path / "bench.json"
  proc = subprocess.run(
      [sys.executable, "scripts/bench.py", *flags, "--json", str(out_json)],
      cwd=helpers.REPO, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc, json.loads(out_json.read_text())


def test_bench_quick_output_shape_and_sanity(tmp_path):
  proc, result = run_bench(tmp_path, "--quick", "--cpu-devices", "2")
  assert f"jax {jax.__version__}" in proc.stdout and "backend cpu" in proc.stdout
  kinds = [r["kind"] for r in result["rows"]]
  assert kinds == ["limit", "limit+policy", "anakin", "hostloop", "seeds", "seeds/dev"]
  assert f"{os.cpu_count()} CPU cores" in proc.stdout
  assert result["header"]["backend"] == jax.default_backend()
  for row in result["rows"]:
    assert np.isfinite(row["env_steps_per_s"]) and row["env_steps_per_s"] > 0
    assert row["peak_rss_mb"] > 0
  rows = {r["kind"]: r for r in result["rows"]}
  assert rows["anakin"]["updates_per_s"] > 0 and rows["hostloop"]["updates_per_s"] > 0
  assert rows["anakin"]["ratio_vs_limit_policy"] == pytest.approx(
      rows["anakin"]["env_steps_per_s"] / rows["limit+policy"]["env_steps_per_s"])
  assert rows["anakin"]["ratio_vs_hostloop"] == pytest.approx(
      rows["anakin"]["env_steps_per_s"] / rows["hostloop"]["env_steps_per_s"])
  assert rows["seeds"]["num_seeds"] == 4 and rows["seeds"]["devices"] == 1
  assert (rows["seeds/dev"]["num_seeds"], rows["seeds/dev"]["devices"]) == (4, 2)
  assert rows["seeds"]["per_seed_env_steps_per_s"] == pytest.approx(
      rows["seeds"]["env_steps_per_s"] / 4)
  # the buffer holds each obs once (4 float32), action, reward, flags: 7 words
  # per step (issue 14; obs and next_obs would be 16 words)
  assert 10_000 * 7 * 4 <= rows["anakin"]["buffer_bytes"] < 10_000 * 9 * 4
  assert [r["buffer"] for r in result["memory"][:4]] == [
      "item", "prioritized item", "n-step", "prioritized n-step"]


def test_bench_scaling_mode_on_forced_cpu_devices(tmp_path):
  proc, result = run_bench(tmp_path, "--scaling", "1", "2", "--cpu-devices", "2",
                           "--num-envs", "8", "--env-steps", "20000")
  rows = result["rows"]
  assert [(r["kind"], r["devices"]) for r in rows] == [("scaling", 1), ("scaling", 2)]
  assert rows[0]["efficiency"] == pytest.approx(1.0)
  assert rows[1]["efficiency"] == pytest.approx(
      rows[1]["env_steps_per_s"] / (2 * rows[0]["env_steps_per_s"]))
  assert "2 device(s):" in proc.stdout
  bad = subprocess.run([sys.executable, "scripts/bench.py", "--scaling", "1", "8"],
                       cwd=helpers.REPO, capture_output=True, text=True, timeout=120)
  assert bad.returncode == 2 and "add --cpu-devices 8" in bad.stderr


def test_bench_agent_rows_time_each_agent_beside_dqn(tmp_path):
  proc, result = run_bench(tmp_path, "--agent", "c51", "--n-step", "2", "--num-envs", "4",
                           "--env-steps", "2000", "--rounds", "2")
  rows = result["rows"]
  assert [r["kind"] for r in rows] == ["dqn", "--agent c51 --n-step 2"]
  assert rows[0]["vs_dqn"] == 1.0 and rows[0]["compile_vs_dqn"] == 1.0
  assert 0 < rows[1]["vs_dqn"] and rows[1]["env_steps_per_s"] > 0
  assert "median of 2 interleaved rounds" in proc.stdout
  bad = subprocess.run([sys.executable, "scripts/bench.py", "--agent", "ppo"],
                       cwd=helpers.REPO, capture_output=True, text=True, timeout=120)
  assert bad.returncode == 2 and "unknown agent 'ppo'" in bad.stderr


def test_variant_table_prints_one_row_per_variant():
  proc = subprocess.run(
      [sys.executable, "scripts/variant_table.py", "--only", "DQN", "Double DQN",
       "--num-seeds", "1", "--total-env-steps", "2000", "--learning-starts", "500",
       "--eval-every", "1000", "--eval-episodes", "2", "--batch-size", "32",
       "--buffer-size", "1000", "--compilation-cache", "none"],
      cwd=helpers.REPO, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  rows = [line for line in proc.stdout.splitlines() if line.startswith("| ")]
  assert rows[0].startswith("| variant |") and len(rows) == 4  # header, rule, 2 rows
  assert rows[2].startswith("| DQN |") and rows[3].startswith("| Double DQN |")
  assert rows[2].endswith("| 1.00× |")


@pytest.mark.parametrize("module, argv, flag", [
    ("baselax.bench.cli", ["--num-envs", "-1"], "--num-envs"),
    ("baselax.bench.cli", ["--seeds", "0"], "--seeds"),
    ("baselax.bench.cli", ["--env-steps", "many"], "--env-steps"),
    ("baselax.bench.cli", ["--learning-rate", "0"], "--learning-rate"),
    ("baselax.bench.check_items", ["--seeds", "0"], "--seeds"),
    ("baselax.bench.check_items", ["--only", "nothing"], "--only"),
    ("baselax.bench.check_items", ["--time-budget", "-5"], "--time-budget"),
])
def test_bench_and_check_refuse_bad_flags_in_one_line(module, argv, flag, capsys):
  import importlib
  parse = importlib.import_module(module)
  parse = getattr(parse, "parse", None) or parse.parse_args
  with pytest.raises(SystemExit) as exited:
    parse(argv)
  err = capsys.readouterr().err.strip()
  assert exited.value.code == 2 and len(err.splitlines()) == 1, err
  assert f"error: {flag}" in err, err
