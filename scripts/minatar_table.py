"""The MinAtar tables of two papers, reproduced cell by cell.

    python scripts/minatar_table.py --paper young-tian-2019 --fast --frames 2000000 --seeds 4
    python scripts/minatar_table.py --paper revisiting-rainbow --agents dqn rainbow --games Breakout
    python scripts/minatar_table.py --report-only          # rebuild the tables and figures

A cell is one agent on one game at a preset and a frame budget, all its seeds
in one run of the main job (``experiments/anakin_dqn.py --preset ...``) with
a run directory of its own under ``--runs-dir``. A stopped table resumes cell
by cell: a finished cell is skipped, a started one continues from its last
checkpoint (``--resume``), so a table can be filled over several sessions or
machines. Each finished cell writes one JSON to ``--out``
(``docs/results/minatar/``); the markdown table (``README.md`` there) and one
figure per paper and game are rebuilt from every JSON found, whichever
session or machine wrote it.

Two columns per paper: the paper's own setting (``--preset PAPER``: one env,
the paper's replay ratio) and, with ``--fast``, the same frame budget the
Anakin way (``--preset PAPER-fast``: many envs, fewer and larger updates).
Each cell is reported the paper's way, beside the published value at the
same frame count where the paper's figures give one:

* Young & Tian 2019: the mean return of the last 100 training episodes;
* Revisiting Rainbow: the mean return of the training episodes of the last
  1M-frame iteration (Dopamine's ``TrainRunner``);

and as the mean greedy evaluation return at the budget, with a 95%
confidence interval over seeds (Student's t) and the wall clock.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from baselax.experiment import rundir

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GAMES = ("Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders")
PAPERS = {"young-tian-2019": ("dqn",), "revisiting-rainbow": ("dqn", "c51", "qrdqn", "mdqn",
                                                               "rainbow")}

#: Published values, read off the papers' figures (approximate): ``{paper:
#: {agent: {frames: (Asterix, Breakout, Freeway, Seaquest, SpaceInvaders)}}}``.
#: Young & Tian 2019 (learning curves of kenjyoung/MinAtar img/, DQN, each
#: game at its best step size; 100-episode moving average). Revisiting Rainbow
#: (arXiv:2011.14826 fig. and the authors' blog figures; mean training return
#: of the iteration ending at that frame). Both papers' Seaquest predates the
#: fix of the original package's oxygen bug (MinAtar 1.0.11).
PUBLISHED = {
    "young-tian-2019": {"dqn": {
        1_000_000: (7.3, 9.2, 47.8, 1.0, 32.5),
        2_000_000: (14.3, 9.6, 50.7, 4.9, 41.5),
        5_000_000: (17.0, 10.1, 50.2, 20.3, 43.8)}},
    "revisiting-rainbow": {
        "dqn": {5_000_000: (25.2, 6.3, 59.8, 5.4, 31.4),
                10_000_000: (28.0, 7.4, 59.8, 5.5, 34.0)},
        "c51": {10_000_000: (37.5, 7.3, 56.0, 4.9, 51.0)},
        "qrdqn": {10_000_000: (44.0, 8.2, 61.0, 5.0, 48.0)},
        "mdqn": {5_000_000: (29.8, 7.6, 60.7, 5.6, 46.8),
                 10_000_000: (34.0, 9.3, 60.0, 5.7, 57.0)},
        "rainbow": {5_000_000: (38.9, 9.1, 57.1, 7.2, 81.0),
                    10_000_000: (42.0, 11.3, 57.0, 10.0, 92.5)}},
}

#: The frames one Revisiting Rainbow iteration averages over.
ITERATION_FRAMES = 1_000_000


def published(paper: str, agent: str, game: str) -> Dict[int, float]:
  """``{frames: value}`` the paper gives for ``agent`` on ``game``."""
  points = PUBLISHED.get(paper, {}).get(agent, {})
  return {f: v[GAMES.index(game)] for f, v in sorted(points.items())}


def mean_ci(values: Sequence[float]) -> Dict[str, Any]:
  """Mean and 95% Student-t confidence interval over seeds."""
  from scipy import stats
  x = np.asarray(values, np.float64)
  x = x[np.isfinite(x)]
  if len(x) == 0:
    return {"mean": None, "ci95": None, "n": 0}
  half = (float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))
          if len(x) > 1 else float("nan"))
  return {"mean": float(x.mean()), "ci95": [float(x.mean() - half), float(x.mean() + half)],
          "n": int(len(x))}


# --- running cells ---------------------------------------------------------------


def run_dir_of(args: argparse.Namespace, preset: str, agent: str, game: str) -> str:
  return os.path.join(args.runs_dir, preset, f"{agent}-{game}-{args.frames}f-{args.seeds}s")


def command(preset: str, agent: str, game: str, args: argparse.Namespace) -> List[str]:
  """The main-job command line of one cell (the same run anyone can type)."""
  return [sys.executable, os.path.join(REPO, "experiments", "anakin_dqn.py"),
          "--preset", preset, "--agent", agent, "--env-id", f"minatar:{game}",
          "--total-env-steps", str(args.frames), "--num-seeds", str(args.seeds),
          "--seed", str(args.first_seed), "--quiet", "--no-tensorboard", *args.extra]


def finished(run_dir: str, frames: int) -> bool:
  rows = read_metrics(run_dir)
  return bool(rows) and rows[-1]["env_steps"] >= frames and os.path.exists(
      os.path.join(run_dir, "summary.json"))


def read_metrics(run_dir: str) -> List[Dict[str, Any]]:
  """The rows of a cell's ``metrics.jsonl`` (a line cut by a killed run left out)."""
  return [row for _, row in rundir.complete_lines(os.path.join(run_dir, "metrics.jsonl"))]


def run_cell(args: argparse.Namespace, preset: str, agent: str, game: str) -> Optional[str]:
  """Runs (or resumes) one cell; returns its run directory once finished."""
  run_dir = run_dir_of(args, preset, agent, game)
  cmd = command(preset, agent, game, args)
  if finished(run_dir, args.frames):
    return run_dir
  cmd += (["--resume", run_dir] if os.path.exists(os.path.join(run_dir, "checkpoints"))
          else ["--run-dir", run_dir])
  print(f"[{time.strftime('%H:%M:%S')}] {' '.join(cmd[1:])}", flush=True)
  if args.dry_run:
    return None
  t0 = time.perf_counter()
  proc = subprocess.run(cmd, cwd=REPO)
  if proc.returncode != 0:
    print(f"cell {preset}/{agent}/{game} stopped with exit code {proc.returncode}; "
          f"run the same command again to resume it.", file=sys.stderr)
    return None
  with open(os.path.join(run_dir, "sessions.jsonl"), "a") as f:
    f.write(json.dumps({"wall_s": time.perf_counter() - t0, "host": platform.node()}) + "\n")
  return run_dir


# --- one cell's result ----------------------------------------------------------------


def cell_result(run_dir: str, preset: str, agent: str, game: str,
                frames: int) -> Dict[str, Any]:
  """The JSON of a finished cell: both measures, the curves, the wall clock."""
  rows = read_metrics(run_dir)
  with open(os.path.join(run_dir, "config.json")) as f:
    config = json.load(f)
  last = rows[-1]
  # Mean training return over the last iteration: the chunks' episode sums.
  window = [r for r in rows if r["env_steps"] > last["env_steps"] - ITERATION_FRAMES]
  sums = sum(np.nan_to_num(np.asarray(r["train_return"], float) *
                           np.asarray(r["train_episodes"], float)) for r in window)
  episodes = sum(np.asarray(r["train_episodes"], float) for r in window)
  sessions = []
  if os.path.exists(os.path.join(run_dir, "sessions.jsonl")):
    with open(os.path.join(run_dir, "sessions.jsonl")) as f:
      sessions = [json.loads(line) for line in f if line.strip()]
  paper = preset[:-len("-fast")] if preset.endswith("-fast") else preset
  as_list = lambda v: [None if x is None else float(x) for x in v]  # noqa: E731
  return {
      "paper": paper, "preset": preset, "agent": agent, "game": game,
      "env_id": config["experiment"]["env_id"], "frames": int(last["env_steps"]),
      "seeds": len(last["eval_return"]),
      "recent_return": as_list(last["recent_return"]),
      "iteration_return": as_list(sums / np.maximum(episodes, 1)),
      "eval_return": as_list(last["eval_return"]),
      "summary": {"recent_return": mean_ci(np.asarray(last["recent_return"], float)),
                  "iteration_return": mean_ci(sums / np.maximum(episodes, 1)),
                  "eval_return": mean_ci(np.asarray(last["eval_return"], float))},
      "published": {str(k): v for k, v in published(paper, agent, game).items()},
      "curve": {"env_steps": [r["env_steps"] for r in rows],
                "recent_return": [as_list(r["recent_return"]) for r in rows],
                "eval_return": [as_list(r["eval_return"]) for r in rows]},
      "train_wall_s": float(last["wall_time"]),
      "session_wall_s": [s["wall_s"] for s in sessions],
      "machine": {"backend": config.get("backend"), "jax": config.get("jax"),
                  "devices": config.get("num_devices"), "cpus": os.cpu_count(),
                  "host": sessions[-1]["host"] if sessions else platform.node()},
      "command": "python experiments/anakin_dqn.py " + " ".join(
          command(preset, agent, game, argparse.Namespace(
              frames=frames, seeds=len(last["eval_return"]), extra=[],
              first_seed=config["trainer"]["seed"]))[2:]),
      "config": {k: config[k] for k in ("experiment", "agent", "trainer")},
  }


def write_cell(out: str, result: Dict[str, Any]) -> str:
  path = os.path.join(out, result["preset"],
                      f"{result['agent']}-{result['game']}-{result['frames']}.json")
  os.makedirs(os.path.dirname(path), exist_ok=True)
  # The cell file marks the cell done: never half written.
  rundir.write_atomically(path, json.dumps(result, indent=1))
  return path


# --- the report: tables and figures from every cell's JSON ------------------------------


def load_cells(out: str) -> List[Dict[str, Any]]:
  cells = []
  for path in sorted(glob.glob(os.path.join(out, "*", "*.json"))):
    with open(path) as f:
      cells.append(json.load(f))
  return cells


def measure(paper: str) -> str:
  return "recent_return" if paper == "young-tian-2019" else "iteration_return"


def fmt(stat: Optional[Dict[str, Any]]) -> str:
  if not stat or stat.get("mean") is None:
    return "-"
  lo, hi = stat["ci95"] or (float("nan"), float("nan"))
  return f"{stat['mean']:.1f} [{lo:.1f}, {hi:.1f}]" if np.isfinite(lo) else f"{stat['mean']:.1f}"


def report(out: str) -> str:
  """Rebuilds ``out/README.md``'s tables and the figures; returns the markdown."""
  cells = load_cells(out)
  lines = ["# MinAtar: two papers' tables, reproduced", "",
           "Generated by `python scripts/minatar_table.py` from the cell files in this "
           "directory; how the runs are set up and what still differs from the papers is "
           "in [NOTES.md](NOTES.md).", ""]
  for paper in PAPERS:
    mine = [c for c in cells if c["paper"] == paper]
    if not mine:
      continue
    lines += [f"## {paper}", "",
              f"Each cell: ours, mean [95% CI] over seeds of the {measure_text(paper)}, "
              f"then the published value at the same frame count (or at the paper's end, "
              f"marked `end`); greedy evaluation and wall clock in the second table.", ""]
    lines += ["| agent | preset | frames | seeds | " + " | ".join(GAMES) + " |",
              "| --- | --- | --- | --- |" + " --- |" * len(GAMES)]
    keys = sorted({(c["agent"], c["preset"], c["frames"]) for c in mine},
                  key=lambda k: (PAPERS[paper].index(k[0]) if k[0] in PAPERS[paper] else 99,
                                 k[1], k[2]))
    for agent, preset, frames in keys:
      row = {c["game"]: c for c in mine if (c["agent"], c["preset"], c["frames"]) ==
             (agent, preset, frames)}
      seeds = sorted({c["seeds"] for c in row.values()})
      cols = []
      for game in GAMES:
        c = row.get(game)
        if c is None:
          cols.append("-")
          continue
        points = {int(k): v for k, v in c["published"].items()}
        ref = (f"{points[frames]:g}" if frames in points else
               f"{points[max(points)]:g} end" if points else "n/a")
        cols.append(f"{fmt(c['summary'][measure(paper)])} / {ref}")
      lines.append(f"| {agent} | {preset} | {frames:,} | {', '.join(map(str, seeds))} | "
                   + " | ".join(cols) + " |")
    lines += ["", "| agent | preset | frames | " + " | ".join(
        f"{g} eval / wall" for g in GAMES) + " |",
              "| --- | --- | --- |" + " --- |" * len(GAMES)]
    for agent, preset, frames in keys:
      row = {c["game"]: c for c in mine if (c["agent"], c["preset"], c["frames"]) ==
             (agent, preset, frames)}
      cols = [f"{fmt(row[g]['summary']['eval_return'])} / {wall(row[g])}" if g in row
              else "-" for g in GAMES]
      lines.append(f"| {agent} | {preset} | {frames:,} | " + " | ".join(cols) + " |")
    lines.append("")
    for game in GAMES:
      figure = plot(out, paper, game, [c for c in mine if c["game"] == game])
      if figure:
        lines.append(f"![{paper} {game}]({os.path.basename(figure)})")
    lines.append("")
  text = "\n".join(lines) + "\n"
  with open(os.path.join(out, "README.md"), "w") as f:
    f.write(text)
  return text


def measure_text(paper: str) -> str:
  return ("mean return of the last 100 training episodes" if paper == "young-tian-2019"
          else "mean return of the training episodes of the last 1M frames")


def wall(cell: Dict[str, Any]) -> str:
  """Training wall clock (compilation excluded), all seeds at once, and where."""
  minutes = cell["train_wall_s"] / 60
  machine = cell["machine"]
  where = f"{machine['backend']}" + (f" x{machine['devices']}" if machine["devices"] else "")
  return f"{minutes:.0f} min ({where})"


def plot(out: str, paper: str, game: str, cells: List[Dict[str, Any]]) -> Optional[str]:
  """Learning curves (mean over seeds, shaded 95% CI) with the published points."""
  if not cells:
    return None
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(5.5, 3.6))
  key = "recent_return"
  for c in sorted(cells, key=lambda c: (c["agent"], c["preset"], c["frames"])):
    steps = np.asarray(c["curve"]["env_steps"], float)
    values = np.asarray([[np.nan if v is None else v for v in row]
                         for row in c["curve"][key]], float)
    mean = np.nanmean(values, axis=1)
    line, = ax.plot(steps / 1e6, mean, label=f"{c['agent']} ({c['preset']}, {c['seeds']} seeds)")
    if values.shape[1] > 1:
      stats = [mean_ci(row) for row in values]
      lo = [s["ci95"][0] if s["ci95"] else np.nan for s in stats]
      hi = [s["ci95"][1] if s["ci95"] else np.nan for s in stats]
      ax.fill_between(steps / 1e6, lo, hi, alpha=0.2, color=line.get_color())
    points = {int(k): v for k, v in c["published"].items()}
    if points:
      ax.plot(np.asarray(list(points)) / 1e6, list(points.values()), "x", ms=8,
              color=line.get_color())
  ax.set_xlabel("frames (millions)")
  ax.set_ylabel("return, last 100 training episodes")
  ax.set_title(f"{game} ({paper}); x: published")
  ax.legend(fontsize=7)
  fig.tight_layout()
  path = os.path.join(out, f"{paper}-{game}.png")
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


# --- the command line ------------------------------------------------------------


def parse(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
      description=__doc__.split("\n\n")[0],
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--paper", choices=list(PAPERS), default="young-tian-2019")
  parser.add_argument("--agents", nargs="+", default=None,
                      help="agents of the paper's table (default: all of them)")
  parser.add_argument("--games", nargs="+", default=list(GAMES), choices=GAMES)
  parser.add_argument("--seeds", type=int, default=4, help="seeds per cell (one program)")
  parser.add_argument("--first-seed", type=int, default=0)
  parser.add_argument("--frames", type=int, default=None,
                      help="frame budget per seed (default: the paper's)")
  parser.add_argument("--fast", action="store_true",
                      help="the Anakin column (--preset PAPER-fast) instead of the paper's")
  parser.add_argument("--runs-dir", default=os.path.join(REPO, "runs", "minatar"))
  parser.add_argument("--out", default=os.path.join(REPO, "docs", "results", "minatar"))
  parser.add_argument("--report-only", action="store_true",
                      help="only rebuild the tables and figures from the cell files")
  parser.add_argument("--dry-run", action="store_true", help="print the commands only")
  parser.add_argument("extra", nargs="*", help="more main-job flags, after --")
  args = parser.parse_args(argv)
  agents = args.agents or list(PAPERS[args.paper])
  unknown = [a for a in agents if a not in PAPERS[args.paper]]
  if unknown:
    parser.error(f"--agents {' '.join(unknown)}: not in {args.paper}'s table "
                 f"({', '.join(PAPERS[args.paper])}).")
  if args.seeds < 1:
    parser.error(f"--seeds must be >= 1, got {args.seeds}.")
  args.agents = agents
  if args.frames is None:
    args.frames = 5_000_000 if args.paper == "young-tian-2019" else 10_000_000
  if args.frames < 1:
    parser.error(f"--frames must be >= 1, got {args.frames}.")
  return args


def main(argv: Optional[Sequence[str]] = None) -> int:
  args = parse(argv)
  if not args.report_only:
    preset = args.paper + ("-fast" if args.fast else "")
    for agent in args.agents:
      for game in args.games:
        run_dir = run_cell(args, preset, agent, game)
        if run_dir is not None:
          path = write_cell(args.out, cell_result(run_dir, preset, agent, game, args.frames))
          print(f"  -> {os.path.relpath(path, REPO)}", flush=True)
  if os.path.isdir(args.out):
    report(args.out)
    print(f"tables: {os.path.relpath(os.path.join(args.out, 'README.md'), REPO)}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
