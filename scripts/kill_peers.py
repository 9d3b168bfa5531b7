"""Kill a process of a multi-process run anywhere, resume all, check nothing changed.

    python scripts/kill_peers.py                       # 5 kills, figures in docs/results/faults/
    python scripts/kill_peers.py --kills 3 --out /tmp/k --chunks 6

The multi-process counterpart of ``scripts/kill_anywhere.py``, on loopback:
2 processes x 2 forced CPU devices (``--coordinator-address 127.0.0.1:PORT``).
Runs the main job once straight through, then again while SIGKILLing one of
its processes (drawn at random; its supervisor, as a scheduler kills a job
step) at ``--kills`` random moments, uniform over a session's expected
length. Each time it records how long the surviving process took to exit,
its exit code and the last line it printed, then starts every process again
with ``--resume RUN_DIR`` (or the original command, if the kill came before
the run directory held a checkpoint). At the end it compares the two runs:
every ``metrics.jsonl`` line but wall clock and speed, and the final
checkpoint's params and every process's shards of the whole training state,
array by array. Writes ``peer_kills.json`` and ``peer_kills.png`` to
``--out``; exits 1 if anything differs or a survivor did not end in one line
within ``--survivor-limit`` seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

from baselax.experiment.rundir import metrics_rows

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROCESSES = 2
#: Fields of a metrics line that may differ between the runs (wall clock and speed).
TIMING = ("sps", "wall_time")


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def start(args: argparse.Namespace, run_dir: str, resume: bool, logs: str) -> list[Any]:
  """Starts every process of one session (each under its supervisor)."""
  where = ["--resume", run_dir] if resume else [
      "--run-dir", run_dir, "--total-env-steps", str(3200 * args.chunks), "--eval-every",
      "3200", "--num-envs", "4", "--learning-starts", "640", "--buffer-size", "2000",
      "--batch-size", "32", "--eval-episodes", "4", "--checkpoint-every", "3200"]
  port = free_port()
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=REPO,
             XLA_FLAGS="--xla_force_host_platform_device_count=2")
  procs = []
  for p in range(PROCESSES):
    cmd = [sys.executable, os.path.join(REPO, "experiments", "anakin_dqn.py"), *where,
           "--quiet", "--no-tensorboard", "--compilation-cache", args.cache,
           "--heartbeat-timeout", str(args.heartbeat_timeout),
           "--coordinator-address", f"127.0.0.1:{port}", "--num-processes", str(PROCESSES),
           "--process-id", str(p)]
    with open(f"{logs}-{p}.err", "w") as err:  # the child keeps its own copy of the file
      procs.append(subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                                    stderr=err, start_new_session=True))
  return procs


def wait_all(procs: list[Any], limit: float) -> list[float | None]:
  """Seconds until each process exited (``None``: still running at ``limit``; killed)."""
  t0, ended = time.perf_counter(), [None] * len(procs)
  while time.perf_counter() - t0 < limit and any(e is None for e in ended):
    for i, proc in enumerate(procs):
      if ended[i] is None and proc.poll() is not None:
        ended[i] = time.perf_counter() - t0
    time.sleep(0.05)
  for proc in procs:
    if proc.poll() is None:
      os.killpg(proc.pid, signal.SIGKILL)
      proc.wait()
  return ended


def straight_run(args: argparse.Namespace, run_dir: str, logs: str) -> float:
  t0 = time.perf_counter()
  procs = start(args, run_dir, False, logs)
  ended = wait_all(procs, 900)
  if any(e is None for e in ended) or any(p.returncode != 0 for p in procs):
    raise SystemExit(f"the straight run failed: {[p.returncode for p in procs]}")
  return time.perf_counter() - t0


def last_line(path: str) -> str:
  with open(path) as f:
    text = [line for line in f.read().splitlines() if line.strip()]
  return text[-1] if text else ""


def killed_run(args: argparse.Namespace, run_dir: str, session_s: float, logs: str
               ) -> list[dict[str, Any]]:
  rng = random.Random(args.seed)
  kills = []
  for k in range(args.kills):
    resume = os.path.exists(os.path.join(run_dir, "config.json"))
    logged = len(metrics_rows(run_dir))
    procs = start(args, run_dir, resume, f"{logs}-{k}")
    delay = rng.uniform(0.15, 0.5) * session_s
    time.sleep(delay)
    if any(p.poll() is not None for p in procs):
      wait_all(procs, 60)
      kills.append(dict(kill=k, after_s=delay, doing="had finished"))
      continue
    victim = rng.randrange(PROCESSES)
    os.killpg(procs[victim].pid, signal.SIGKILL)
    ended = wait_all(procs, args.survivor_limit)
    survivor = 1 - victim
    said = last_line(f"{logs}-{k}-{survivor}.err")
    with open(f"{logs}-{k}-{survivor}.err") as f:
      err = f.read()
    trace = "Check failure" in err or "Traceback" in err
    kills.append(dict(
        kill=k, after_s=round(delay, 1), victim=victim, resumed=resume,
        chunks_logged_before=logged, chunks_logged=len(metrics_rows(run_dir)),
        survivor_exit=procs[survivor].returncode,
        survivor_s=None if ended[survivor] is None else round(ended[survivor], 1),
        survivor_said=said, survivor_trace=trace))
    print(f"kill {k + 1}: process {victim} after {delay:.1f}s; process {survivor} exited "
          f"{procs[survivor].returncode} after {ended[survivor]}s: {said}", flush=True)
  resume = os.path.exists(os.path.join(run_dir, "config.json"))
  procs = start(args, run_dir, resume, f"{logs}-last")
  if any(e is None for e in wait_all(procs, 900)) or any(p.returncode for p in procs):
    raise SystemExit(f"the last session failed: {[p.returncode for p in procs]}")
  return kills


def final_arrays(run_dir: str) -> dict[str, np.ndarray]:
  """Every process's shards at the newest step, array by array."""
  out = {}
  root = os.path.join(run_dir, "checkpoints", "shards")
  for process in sorted(os.listdir(root)):
    steps = [int(n[:-4]) for n in os.listdir(os.path.join(root, process)) if n.endswith(".npz")]
    with np.load(os.path.join(root, process, f"{max(steps)}.npz")) as data:
      out.update({f"{process}/{k}": data[k] for k in data.files})
  return out


def compare(straight: str, killed: str) -> dict[str, Any]:
  rows = [[{k: v for k, v in row.items() if k not in TIMING} for row in metrics_rows(d)]
          for d in (straight, killed)]
  chunks = [row["chunk"] for row in metrics_rows(killed)]
  a, b = final_arrays(straight), final_arrays(killed)
  unequal = [k for k in a if k not in b or not np.array_equal(a[k], b[k])]
  return dict(metrics_equal=rows[0] == rows[1], lines=len(rows[1]),
              no_line_twice=len(set(chunks)) == len(chunks), arrays=len(a),
              arrays_unequal=unequal)


def plot(out: str, kills: list[dict[str, Any]], result: dict[str, Any]) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  shown = [k for k in kills if "survivor_s" in k]
  fig, ax = plt.subplots(figsize=(7, 3.2))
  for victim, color in ((0, "tab:red"), (1, "tab:blue")):
    pts = [k for k in shown if k["victim"] == victim]
    ax.scatter([k["after_s"] for k in pts], [k["survivor_s"] or 0 for k in pts], c=color,
               label=f"process {victim} killed ({len(pts)})", s=30)
  ax.set_xlabel("seconds into the session at the kill")
  ax.set_ylabel("seconds until the survivor exited")
  verdict = ("metrics and final state equal to the straight run" if result["ok"]
             else "DIFFERS from the straight run")
  ax.set_title(f"{len(shown)} SIGKILLs of one of 2 processes, all resumed: {verdict}",
               fontsize=9)
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(os.path.join(out, "peer_kills.png"), dpi=110)
  plt.close(fig)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--kills", type=int, default=5)
  parser.add_argument("--chunks", type=int, default=12, help="chunks of 3,200 env steps")
  parser.add_argument("--seed", type=int, default=0, help="seeds the kill moments")
  parser.add_argument("--heartbeat-timeout", type=int, default=20)
  parser.add_argument("--survivor-limit", type=float, default=120.0)
  parser.add_argument("--out", default=os.path.join(REPO, "docs", "results", "faults"))
  args = parser.parse_args(argv)
  if args.kills < 1 or args.chunks < 2:
    parser.error("--kills must be >= 1 and --chunks >= 2.")
  os.makedirs(args.out, exist_ok=True)
  with tempfile.TemporaryDirectory() as tmp:
    args.cache = os.path.join(tmp, "xla")
    logs = os.path.join(tmp, "log")
    straight_run(args, os.path.join(tmp, "warm-up"), logs + "-warm")  # fills the cache
    straight, killed = os.path.join(tmp, "straight"), os.path.join(tmp, "killed")
    session_s = straight_run(args, straight, logs + "-straight")
    kills = killed_run(args, killed, session_s, logs)
    result = compare(straight, killed)
  one_line = all(k.get("survivor_exit") not in (None, 0) and k["survivor_s"] is not None
                 and k["survivor_s"] <= args.survivor_limit
                 and "lost a process" in k["survivor_said"] and not k["survivor_trace"]
                 for k in kills if "victim" in k)
  result["survivors_ended_in_one_line"] = one_line
  result["ok"] = bool(result["metrics_equal"] and result["no_line_twice"]
                      and not result["arrays_unequal"] and one_line)
  with open(os.path.join(args.out, "peer_kills.json"), "w") as f:
    json.dump(dict(kills=kills, result=result, straight_session_s=session_s,
                   chunks=args.chunks, seed=args.seed), f, indent=1)
  plot(args.out, kills, result)
  print(json.dumps(result))
  return 0 if result["ok"] else 1


if __name__ == "__main__":
  sys.exit(main())
