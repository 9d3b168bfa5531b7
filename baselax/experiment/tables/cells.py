"""One cell of a table: run (or resume) it, then reduce its run directory to a JSON file.

A cell is one agent on one env at a preset and a frame budget, all its seeds
in one run of the main job with a run directory of its own::

    RUNS_DIR/PRESET/AGENT-ENV-{frames}f-{seeds}s/     the run (resumable)
    OUT/PRESET/AGENT-ENV-FRAMES.json                   the finished cell

The run directory also keeps ``sessions.jsonl``: for each session that
trained the cell, a line when it starts (host, the commit of the code that
runs and whether its tree had changes) and one when it ends (its wall clock
and exit code too), so a cell filled over several sessions, some of them
killed, says what it was made with.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from baselax.experiment import rundir
from baselax.experiment.tables import specs, stats


class Interrupted(Exception):
  """A cell's run was stopped by Ctrl-C (exit code 130), SIGINT or SIGTERM:
  the table stops too (its checkpoint is kept; the same command resumes it)."""


class Cell(dict):
  """What names a cell: ``table``, ``preset``, ``agent``, ``env_id``, ``frames``, ``seeds``."""

  KEYS = ("table", "preset", "agent", "env_id", "frames", "seeds")

  @property
  def env(self) -> str:
    return specs.label(self["env_id"])


def run_dir_of(runs_dir: str, cell: Mapping[str, Any]) -> str:
  return os.path.join(
    runs_dir,
    cell["preset"],
    f"{cell['agent']}-{specs.label(cell['env_id'])}-{cell['frames']}f-{cell['seeds']}s",
  )


def main_job_flags(cell: Mapping[str, Any], first_seed: int = 0) -> list[str]:
  """The main job's flags for a cell (the same run anyone can type)."""
  return [
    "--preset",
    cell["preset"],
    "--agent",
    cell["agent"],
    "--env-id",
    cell["env_id"],
    "--total-env-steps",
    str(cell["frames"]),
    "--num-seeds",
    str(cell["seeds"]),
    "--seed",
    str(first_seed),
    "--quiet",
    "--no-tensorboard",
  ]


def finished(run_dir: str, frames: int) -> bool:
  rows = rundir.metrics_rows(run_dir)
  return (
    bool(rows)
    and rows[-1]["env_steps"] >= frames
    and os.path.exists(os.path.join(run_dir, "summary.json"))
  )


def code_version() -> dict[str, Any]:
  """The commit of the code that runs the cell, and whether its tree had changes
  (``None`` outside a git checkout, e.g. an installed wheel)."""
  where = os.path.dirname(os.path.abspath(__file__))
  try:
    commit = subprocess.run(
      ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10
    )
    status = subprocess.run(
      ["git", "status", "--porcelain", "--untracked-files=no"],
      cwd=where,
      capture_output=True,
      text=True,
      timeout=10,
    )
  except (OSError, subprocess.SubprocessError):
    return {"commit": None, "dirty": None}
  if commit.returncode != 0:
    return {"commit": None, "dirty": None}
  return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}


def run(
  cell: Mapping[str, Any],
  runs_dir: str,
  extra: Sequence[str] = (),
  first_seed: int = 0,
  dry_run: bool = False,
  side_by_side: bool = False,
  timeout_s: float | None = None,
) -> str | None:
  """Runs (or resumes) one cell in a process of its own; its run directory once finished.

  With ``side_by_side`` (cells run at once, ``table.py --jobs``) the cell's
  output goes to ``RUN_DIR.log`` rather than the terminal, and an
  accelerator's memory is not preallocated (``XLA_PYTHON_CLIENT_PREALLOCATE``
  is false unless set): each process would otherwise take 75% of it.

  Returns ``None`` when the cell stopped before its budget on an error or
  after ``timeout_s`` seconds (it resumes from its last checkpoint on the
  next call), or with ``dry_run``, which only prints the command.

  Raises:
    Interrupted: the run was stopped by Ctrl-C (exit code 130) or a signal.
  """
  run_dir = run_dir_of(runs_dir, cell)
  if finished(run_dir, cell["frames"]):
    return run_dir
  resuming = os.path.exists(rundir.checkpoint_dir(run_dir))
  cmd = [
    sys.executable,
    "-m",
    "baselax.experiment",
    *main_job_flags(cell, first_seed),
    *extra,
    *(["--resume", run_dir] if resuming else ["--run-dir", run_dir]),
  ]
  print(f"[{time.strftime('%H:%M:%S')}] {' '.join(cmd[1:])}", flush=True)
  if dry_run:
    return None
  version = code_version()
  # The session's code is logged before it runs: a table killed with the cell
  # (a paused queue, a session's end) still says what trained it.
  _log_session(run_dir, {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **version})
  t0 = time.perf_counter()
  returncode = _launch(cmd, run_dir + ".log" if side_by_side else None, timeout_s)
  _log_session(run_dir, {"wall_s": time.perf_counter() - t0, "exit_code": returncode, **version})
  name = f"{cell['preset']}/{cell['agent']}/{specs.label(cell['env_id'])}"
  if returncode is None:
    print(
      f"cell {name} stopped at its time limit ({timeout_s:.0f} s); run the same command "
      "again to resume it from its last checkpoint.",
      file=sys.stderr,
      flush=True,
    )
    return None
  if returncode != 0:
    print(
      f"cell {name} stopped with exit code {returncode}; run the same command again to resume it.",
      file=sys.stderr,
      flush=True,
    )
    # Ctrl-C or a stop signal stops the table; a crash (SIGABRT, an OOM kill)
    # is a failed cell like any other, and the next one runs.
    if returncode in (130, -signal.SIGINT, -signal.SIGTERM):
      raise Interrupted(run_dir)
    return None
  return run_dir


def _launch(cmd: Sequence[str], log: str | None, timeout_s: float | None) -> int | None:
  """The exit code of ``cmd``, its output appended to ``log`` if one is named;
  ``None`` when it ran past ``timeout_s`` (it is killed)."""
  with contextlib.ExitStack() as stack:
    to_log: dict[str, Any] = {}
    if log is not None:
      os.makedirs(os.path.dirname(log) or ".", exist_ok=True)
      to_log = dict(
        stdout=stack.enter_context(open(log, "a")),
        stderr=subprocess.STDOUT,
        env={"XLA_PYTHON_CLIENT_PREALLOCATE": "false", **os.environ},
      )
    try:
      return subprocess.run(cmd, timeout=timeout_s, **to_log).returncode
    except subprocess.TimeoutExpired:
      return None


def _log_session(run_dir: str, line: Mapping[str, Any]) -> None:
  os.makedirs(run_dir, exist_ok=True)  # a fresh run accepts it: no checkpoint in it
  with open(os.path.join(run_dir, "sessions.jsonl"), "a") as f:
    f.write(json.dumps({"host": platform.node(), **line}) + "\n")


def read_sessions(run_dir: str) -> list[dict[str, Any]]:
  """The lines of a cell's ``sessions.jsonl``: start lines, and end lines
  (those with ``wall_s``)."""
  path = os.path.join(run_dir, "sessions.jsonl")
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def _floats(values: Any) -> list[float | None]:
  return [None if v is None else float(v) for v in values]


def iteration_returns(rows: Sequence[Mapping[str, Any]], frames: int) -> np.ndarray:
  """``(seeds,)`` mean return of the training episodes that ended in the last
  ``frames`` env steps, from the chunks' episode sums (NaN: none ended)."""
  last = rows[-1]["env_steps"]
  window = [r for r in rows if r["env_steps"] > last - frames]
  sums = sum(
    np.nan_to_num(np.asarray(r["train_return"], float) * np.asarray(r["train_episodes"], float))
    for r in window
  )
  episodes = sum(np.asarray(r["train_episodes"], float) for r in window)
  return np.where(episodes > 0, sums / np.maximum(episodes, 1), np.nan)


def result(run_dir: str, cell: Mapping[str, Any]) -> dict[str, Any]:
  """The JSON of a finished cell: the table's measure, greedy evaluation, the
  curves, the wall clock, the code and machine, and the exact command."""
  table = specs.get(cell["table"])
  rows = rundir.metrics_rows(run_dir)
  with open(os.path.join(run_dir, "config.json")) as f:
    config = json.load(f)
  last = rows[-1]
  per_seed = {
    "recent_return": np.asarray(_floats(last["recent_return"]), float),
    "eval_return": np.asarray(_floats(last["eval_return"]), float),
  }
  if table.iteration_frames:
    per_seed["iteration_return"] = iteration_returns(rows, table.iteration_frames)
  sessions = read_sessions(run_dir)
  commits = sorted({s["commit"] for s in sessions if s.get("commit")})
  env_id = config["experiment"]["env_id"]
  return {
    "table": table.name,
    "preset": cell["preset"],
    "agent": cell["agent"],
    "env": specs.label(env_id),
    "env_id": env_id,
    "frames": int(last["env_steps"]),
    "seeds": len(last["eval_return"]),
    "metric": table.metric,
    **{k: _floats(v) for k, v in per_seed.items()},
    "summary": {k: stats.summary(v) for k, v in per_seed.items()},
    "published": {
      str(f): p.to_json() for f, p in table.published_for(cell["agent"], env_id).items()
    },
    "curve": {
      "env_steps": [r["env_steps"] for r in rows],
      "recent_return": [_floats(r["recent_return"]) for r in rows],
      "train_return": [_floats(r["train_return"]) for r in rows],
      "train_episodes": [_floats(r["train_episodes"]) for r in rows],
      "eval_return": [_floats(r["eval_return"]) for r in rows],
    },
    "train_wall_s": float(last["wall_time"]),
    "session_wall_s": [s["wall_s"] for s in sessions if "wall_s" in s],
    "code": {
      "commits": commits,
      "dirty": any(s.get("dirty") for s in sessions) if commits else None,
    },
    "machine": {
      "backend": config.get("backend"),
      "jax": config.get("jax"),
      "devices": config.get("num_devices"),
      "cpus": os.cpu_count(),
      "device_kind": config.get("device_kind"),
      "host": sessions[-1]["host"] if sessions else platform.node(),
    },
    "command": "python experiments/anakin_dqn.py "
    + " ".join(
      main_job_flags(
        {**cell, "seeds": len(last["eval_return"]), "frames": cell["frames"]},
        config["trainer"]["seed"],
      )
    ),
    "config": {k: config[k] for k in ("experiment", "agent", "trainer")},
  }


def path_of(out: str, cell: Mapping[str, Any]) -> str:
  return os.path.join(
    out, cell["preset"], f"{cell['agent']}-{specs.label(cell['env_id'])}-{cell['frames']}.json"
  )


def write(out: str, cell_json: Mapping[str, Any]) -> str:
  """Writes a finished cell's JSON under ``out``; returns its path."""
  path = path_of(out, cell_json)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  # The cell file marks the cell done: never half written.
  rundir.write_atomically(path, json.dumps(cell_json, indent=1))
  return path


def load(out: str) -> list[dict[str, Any]]:
  """Every cell file under ``out`` (``out/PRESET/*.json``)."""
  import glob

  found = []
  for path in sorted(glob.glob(os.path.join(out, "*", "*.json"))):
    with open(path) as f:
      found.append(json.load(f))
  return found
