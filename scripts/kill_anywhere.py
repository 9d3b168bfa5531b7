"""Kill a run anywhere, resume it, and check it ends as if nothing happened.

    python scripts/kill_anywhere.py                      # 20 kills, figures in docs/results/faults/
    python scripts/kill_anywhere.py --kills 5 --out /tmp/k --chunks 8

Runs the main job once straight through, then again while SIGKILLing it at
``--kills`` random moments (start-up, compiling, training, writing a
checkpoint: the moment is drawn uniformly over a session's expected length),
each time starting it again with ``--resume RUN_DIR`` (or the original
command, if the kill came before the run directory held its configuration).
At the end it compares the two runs: every ``metrics.jsonl`` line but wall
clock and speed, no line twice or cut short, and the final checkpoint's
params and whole training state, array by array. Writes ``kills.json``
(every kill: when, what the run was doing, where it resumed) and
``kills.png`` to ``--out``; exits 1 if anything differs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: Fields of a metrics line that must match (wall clock and speed may not).
SAME = ("chunk", "env_steps", "updates", "train_return", "train_episodes",
        "recent_return", "loss", "q_mean", "eval_returns")


def job(args: argparse.Namespace, run_dir: str, resume: bool) -> List[str]:
  where = ["--resume", run_dir] if resume else [
      "--run-dir", run_dir, "--total-env-steps", str(1000 * args.chunks), "--eval-every",
      "1000", "--num-envs", "4", "--learning-starts", "500", "--buffer-size", "2000",
      "--batch-size", "32", "--eval-episodes", "4", "--checkpoint-every", "1000",
      "--num-seeds", "2", "--compilation-cache", args.cache]
  return [sys.executable, os.path.join(REPO, "experiments", "anakin_dqn.py"), *where,
          "--quiet", "--no-tensorboard"]


def lines(run_dir: str) -> List[str]:
  path = os.path.join(run_dir, "metrics.jsonl")
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return f.read().splitlines(keepends=True)


def final_state(run_dir: str) -> Dict[str, Any]:
  """The newest checkpoint's arrays (params and whole state), as numpy."""
  import jax
  import orbax.checkpoint as ocp
  ckpt = os.path.join(run_dir, "checkpoints")
  step = max(int(d) for d in os.listdir(ckpt) if d.isdigit())
  out = {}
  for item in ("params", "state"):
    path = os.path.join(ckpt, str(step), item)
    checkpointer = ocp.PyTreeCheckpointer()
    meta = checkpointer.metadata(path)
    shapes = getattr(getattr(meta, "item_metadata", None), "tree", None) or meta
    as_numpy = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), shapes)
    tree = checkpointer.restore(path, restore_args=as_numpy)
    for key, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
      out[f"{item}{jax.tree_util.keystr(key)}"] = np.asarray(leaf)
  return out


def what_it_was_doing(run_dir: str, since: float, logged_at_start: int) -> str:
  """What a session started at ``since`` (``time.time()``) was doing. A chunk
  is logged, then checkpointed (every chunk here): a logged chunk without a
  finished checkpoint (one with its manifest), or an unfinished checkpoint of
  its own (orbax writes into ``*tmp*`` directories and renames them when
  done), means it was writing one."""
  if not os.path.exists(os.path.join(run_dir, "config.json")):
    return "starting up"
  ckpt = os.path.join(run_dir, "checkpoints")
  names = os.listdir(ckpt) if os.path.isdir(ckpt) else []
  if any("tmp" in n and os.path.getmtime(os.path.join(ckpt, n)) >= since for n in names):
    return "writing a checkpoint"
  logged = len(lines(run_dir))
  if logged <= logged_at_start:
    return "starting up or compiling"
  finished = os.path.exists(os.path.join(ckpt, str(logged), "manifest.json"))
  return "training" if finished else "writing a checkpoint"


def timed_straight_run(args: argparse.Namespace, run_dir: str) -> Dict[str, float]:
  """Runs the job once, timing its start-up (to the first metrics line) and
  a chunk (first to last metrics line, per chunk)."""
  t0 = time.perf_counter()
  proc = subprocess.Popen(job(args, run_dir, False), cwd=REPO, stdout=subprocess.DEVNULL)
  first = last = None
  while proc.poll() is None:
    logged = len(lines(run_dir))
    if logged and first is None:
      first = time.perf_counter() - t0
    if logged == args.chunks and last is None:
      last = time.perf_counter() - t0
    time.sleep(0.005)
  if proc.returncode != 0 or first is None:
    raise SystemExit(f"the straight run failed ({proc.returncode})")
  last = time.perf_counter() - t0 if last is None else last
  return dict(startup_s=first, chunk_s=(last - first) / max(1, args.chunks - 1))


def kill_moment(args: argparse.Namespace, rng: random.Random, proc: Any, run_dir: str,
                logged: int, timing: Dict[str, float], kills_left: int):
  """Waits for the moment to kill ``proc``: ``(seconds waited, finished)``.

  A quarter of the kills come during start-up (uniform over the straight
  run's time to its first metrics line). The rest come while the session
  trains: once its log reaches a line drawn from what is left of the run (so
  that the kills left spread over it), then up to one chunk's time later, a
  moment that may fall in the chunk's training or in its checkpoint write.
  """
  t0 = time.perf_counter()

  def wait(seconds: float) -> bool:
    try:
      proc.wait(timeout=max(seconds, 0.0))
      return True
    except subprocess.TimeoutExpired:
      return False

  if rng.random() < 0.25:
    delay = rng.uniform(0.0, timing["startup_s"])
    return delay, wait(delay)
  last = max(logged + 1, args.chunks - 2)  # the run is still going when it gets there
  share = max(1, (last - logged) * 2 // (kills_left + 1))
  target = min(last, logged + rng.randint(1, share))
  # Up to a line's time after the target: this session's own pace once seen
  # (a resumed session runs faster than the straight run), 20 ms before.
  seen, line_s, since = len(lines(run_dir)), 0.02, None
  while seen < target:
    if proc.poll() is not None:
      return time.perf_counter() - t0, True
    time.sleep(0.002)
    now, count = time.perf_counter(), len(lines(run_dir))
    if count > seen:  # this session's own pace (a resumed one runs faster)
      line_s, since, seen = (line_s if since is None else (now - since) / (count - seen),
                             now, count)
  finished = wait(rng.uniform(0.0, line_s))
  return time.perf_counter() - t0, finished


def killed_run(args: argparse.Namespace, run_dir: str, timing: Dict[str, float]
               ) -> List[Dict[str, Any]]:
  """Kills each session at a moment drawn by :func:`kill_moment`, resuming
  after each."""
  rng = random.Random(args.seed)
  kills = []
  t0 = time.perf_counter()
  for k in range(args.kills):
    resume = os.path.exists(os.path.join(run_dir, "config.json"))
    since, logged = time.time(), len(lines(run_dir))
    proc = subprocess.Popen(job(args, run_dir, resume), cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait, finished = kill_moment(args, rng, proc, run_dir, logged, timing, args.kills - k)
    if finished:  # it ended before the kill: start a fresh copy to kill next time
      if proc.returncode != 0:
        raise SystemExit(f"session {k} failed:\n{proc.stderr.read()[-3000:]}")
      kills.append(dict(kill=k, at_s=time.perf_counter() - t0, doing="had finished"))
      break
    doing = what_it_was_doing(run_dir, since, logged)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    ckpt = os.path.join(run_dir, "checkpoints")
    kills.append(dict(kill=k, at_s=time.perf_counter() - t0, after_s=wait, doing=doing,
                      chunks_logged=len(lines(run_dir)), resumed=resume,
                      checkpoints=sorted(os.listdir(ckpt)) if os.path.isdir(ckpt) else []))
    print(f"kill {k + 1}: after {wait:.1f}s, {doing}, {len(lines(run_dir))} chunks logged",
          flush=True)
  last = subprocess.run(job(args, run_dir, os.path.exists(
      os.path.join(run_dir, "config.json"))), cwd=REPO, capture_output=True, text=True)
  if last.returncode != 0:
    raise SystemExit(f"the last session failed:\n{last.stderr[-3000:]}")
  return kills


def compare(straight: str, killed: str) -> Dict[str, Any]:
  a, b = lines(straight), lines(killed)
  rows_a = [{k: json.loads(x).get(k) for k in SAME} for x in a]
  rows_b = [{k: json.loads(x).get(k) for k in SAME} for x in b]
  chunks = [json.loads(x)["chunk"] for x in b]
  state_a, state_b = final_state(straight), final_state(killed)
  unequal = [k for k in state_a if k not in state_b or
             not np.array_equal(state_a[k], state_b[k])]
  return dict(metrics_equal=rows_a == rows_b, lines=len(b),
              no_line_twice=len(set(chunks)) == len(chunks),
              every_line_whole=all(x.endswith("\n") for x in b),
              arrays=len(state_a), arrays_unequal=unequal,
              # unfinished saves of killed sessions left behind (each writer removes them)
              stale_tmp=[n for n in os.listdir(os.path.join(killed, "checkpoints"))
                         if "tmp" in n])


def plot(out: str, kills: List[Dict[str, Any]], result: Dict[str, Any]) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(7, 3.2))
  shown = [k for k in kills if "chunks_logged" in k]
  colors = {"starting up": "tab:gray", "starting up or compiling": "tab:blue",
            "training": "tab:green", "writing a checkpoint": "tab:red"}
  for doing, color in colors.items():
    pts = [k for k in shown if k["doing"] == doing]
    ax.scatter([k["at_s"] for k in pts], [k["chunks_logged"] for k in pts], c=color,
               label=f"{doing} ({len(pts)})", s=25)
  ax.set_xlabel("seconds since the first session started")
  ax.set_ylabel("chunks in metrics.jsonl at the kill")
  verdict = ("metrics and final state equal to the straight run" if result["ok"]
             else "DIFFERS from the straight run")
  ax.set_title(f"{len(shown)} SIGKILLs, each resumed: {verdict}", fontsize=9)
  ax.legend(fontsize=7, loc="upper left")
  fig.tight_layout()
  fig.savefig(os.path.join(out, "kills.png"), dpi=110)
  plt.close(fig)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--kills", type=int, default=20)
  parser.add_argument("--chunks", type=int, default=60, help="chunks of 1,000 env steps")
  parser.add_argument("--seed", type=int, default=0, help="seeds the kill moments")
  parser.add_argument("--out", default=os.path.join(REPO, "docs", "results", "faults"))
  args = parser.parse_args(argv)
  if args.kills < 1 or args.chunks < 2:
    parser.error("--kills must be >= 1 and --chunks >= 2.")
  os.makedirs(args.out, exist_ok=True)
  with tempfile.TemporaryDirectory() as tmp:
    args.cache = os.path.join(tmp, "xla")
    straight, killed = os.path.join(tmp, "straight"), os.path.join(tmp, "killed")
    timed_straight_run(args, os.path.join(tmp, "warm-up"))  # fills the compile cache
    timing = timed_straight_run(args, straight)
    kills = killed_run(args, killed, timing)
    result = compare(straight, killed)
  result["ok"] = bool(result["metrics_equal"] and result["no_line_twice"]
                      and result["every_line_whole"] and not result["arrays_unequal"])
  with open(os.path.join(args.out, "kills.json"), "w") as f:
    json.dump(dict(kills=kills, result=result, straight_run=timing,
                   chunks=args.chunks, seed=args.seed), f, indent=1)
  plot(args.out, kills, result)
  print(json.dumps(result))
  return 0 if result["ok"] else 1


if __name__ == "__main__":
  sys.exit(main())
