"""Fill as many cells of a table as fit in a wall-clock budget, several at once.

Made for a lent accelerator: one call of a few minutes, whose output comes
back as a few files. One command (``scripts/device_table.py``)::

    python scripts/device_table.py --out "$OUT" --budget-s 420 --jobs 8

1. **Probe.** One agent (``--gain-agent``) trains two short chunks alone,
   then ``jobs`` probes train side by side, the agents in turn. Each probe
   gives an agent's frames/s per seed (the last chunk's, compilation
   excluded), a chunk's time outside its compiled program and its start-up
   (compilation included). Side by side against alone is what running cells at once gains
   (:func:`gain`): at batch 32 a cell is bound by launch latency, not by the
   accelerator's arithmetic.
2. **Plan.** The table's cells not yet in ``--have`` (the committed results),
   at the first of ``--frames`` for which any fits. Each cell's time is
   estimated from its agent's side-by-side probe (:func:`estimate_s`, times
   :data:`SAFETY`), and the cells are packed longest first onto ``jobs``
   slots that end inside what is left of the budget (:func:`pack`). The
   table runner's pool takes them in that order, which is the same packing.
3. **Fill.** The planned cells run ``jobs`` at a time (``table.py --jobs``).
   A cell still running at the budget's end is stopped and said to be so.
4. **Out.** ``OUT/probe.json`` (the probes, the gain, the plan, what each cell
   took), ``OUT/cells.tar.gz`` (the finished cells' files, as
   ``PRESET/AGENT-ENV-FRAMES.json``) and ``OUT/logs.tar.gz`` (every probe's
   and cell's output), all rewritten as each cell lands, so a call cut short
   still brings back every finished cell. The cells run with one checkpoint,
   at their end.
   Unpack into the results directory and rebuild its report::

       tar xzf cells.tar.gz -C docs/results/minatar
       python scripts/table.py --report-only --out docs/results/minatar
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import math
import os
import sys
import tarfile
import time
from collections.abc import Mapping, Sequence
from concurrent import futures
from typing import Any

from baselax.errors import ConfigError
from baselax.experiment import cli as cli_lib
from baselax.experiment import launch, rundir
from baselax.experiment.tables import cells, cli, specs

PROG = "device_table.py"

#: Estimated cell times are multiplied by this: evaluation returns grow as
#: agents learn, and the probes' start-up is paid by every cell.
SAFETY = 1.25


def parser(prog: str = PROG) -> argparse.ArgumentParser:
  p = cli_lib.OneLineParser(prog=prog, description=__doc__.split("\n\n")[0])
  p.add_argument(
    "--out", required=True, help="where probe.json, cells.tar.gz and logs.tar.gz go ($OUT)"
  )
  p.add_argument("--table", default="revisiting-rainbow", help="a table of scripts/table.py")
  p.add_argument("--agents", nargs="+", default=None, help="rows (default: the table's)")
  p.add_argument("--envs", nargs="+", default=None, help="columns (default: the table's)")
  p.add_argument("--seeds", type=cli_lib.integer, default=None, help="default: the table's")
  p.add_argument(
    "--frames",
    type=cli_lib.integer,
    nargs="+",
    default=[10_000_000, 2_000_000],
    help="budgets to try in turn: the first at which any cell fits is used (default: 1e7 2e6)",
  )
  p.add_argument("--budget-s", type=float, default=420.0, help="seconds for everything")
  p.add_argument("--jobs", type=cli_lib.integer, default=8, help="cells run at once")
  p.add_argument(
    "--gain-agent",
    default="c51",
    help="the agent probed alone too, to measure what cells side by side gain",
  )
  p.add_argument(
    "--probe-chunk",
    type=cli_lib.integer,
    default=25_000,
    help="frames per seed in each of a probe's two chunks (at least the learning start)",
  )
  p.add_argument(
    "--have",
    default=None,
    help="a results directory: its cells are not run again (default: docs/results/OUT of "
    "the table)",
  )
  p.add_argument("--work", default="/tmp/device-table", help="run directories and cell files")
  p.add_argument("--no-fast", action="store_true", help="the paper's preset, not PRESET-fast")
  p.add_argument("extra", nargs="*", help="more main-job flags, after --")
  return p


def parse(argv: Sequence[str] | None = None, prog: str = PROG) -> argparse.Namespace:
  """The parsed flags, checked as ``table.py`` checks its own (one line, exit code 2)."""
  p = parser(prog)
  args = p.parse_args(argv)
  table_argv = ["--table", args.table, "--runs-dir", args.work, "--out", args.work]
  for flag in ("agents", "envs"):
    if getattr(args, flag):
      table_argv += [f"--{flag}", *getattr(args, flag)]
  if args.seeds is not None:
    table_argv += ["--seeds", str(args.seeds)]
  try:
    table = specs.get(args.table)
  except ConfigError as error:
    p.error(str(error))
  if table.fast_preset is not None and not args.no_fast:
    table_argv.append("--fast")
  table_args = cli.parse(table_argv + ["--", *args.extra], prog)
  for name in ("jobs", "probe_chunk"):
    if getattr(args, name) < 1:
      p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}.")
  if min(args.frames) < 1 or args.budget_s <= 0:
    p.error("--frames and --budget-s must be positive.")
  args.table_args = table_args
  args.have = args.have or os.path.join("docs", "results", table.out)
  return args


def _config(cell: Mapping[str, Any], extra: Sequence[str]) -> Any:
  return launch.parse([*cells.main_job_flags(cell), *extra]).trainer


# -- 1. Probe -----------------------------------------------------------------


def probe_flags(chunk: int) -> list[str]:
  """A probe's main-job flags: two chunks of ``chunk`` frames (at least the
  learning start, so the second trains at full rate), no checkpoint before
  the end."""
  return ["--eval-every", str(chunk), "--checkpoint-every", str(2 * chunk)]


def measure(run_dir: str, seeds: int) -> dict[str, float]:
  """What a finished probe's run directory says: ``rate`` (frames/s per
  seed, the last chunk), ``chunk_overhead_s`` (a chunk's time outside its
  compiled program: metrics, logging, checkpoints) and ``startup_s`` (the
  process's time outside its chunks)."""
  rows = rundir.metrics_rows(run_dir)
  wall = float([s for s in cells.read_sessions(run_dir) if "wall_s" in s][-1]["wall_s"])
  last, first = rows[-1], rows[0]
  rate = float(last["sps"]) / seeds
  chunk_frames = last["env_steps"] - first["env_steps"]
  train_s = chunk_frames / rate
  return {
    "rate": rate,
    "chunk_overhead_s": max(0.0, last["wall_time"] - first["wall_time"] - train_s),
    "startup_s": max(0.0, wall - last["wall_time"]),
  }


def probe(args: argparse.Namespace, deadline: float) -> dict[str, Any]:
  """One agent's probe alone (``--gain-agent``), then ``jobs`` probes side by
  side, the agents in turn, all ended by ``deadline`` (``time.monotonic()``)."""
  t = args.table_args
  agents, env_id = t.agents, t.envs[0]
  first = cli.planned(t)[0]
  chunk = max(args.probe_chunk, _config(first, t.extra).learning_starts)
  flags = [*t.extra, *probe_flags(chunk)]
  frames = 2 * chunk

  def one(agent: str, where: str, side_by_side: bool) -> dict[str, float] | None:
    """A probe's measures; ``None`` when it failed, was stopped or ran past
    the budget (its log is in the logs tarball)."""
    cell = cells.Cell(
      table=t.table,
      preset=first["preset"],
      agent=agent,
      env_id=env_id,
      frames=frames,
      seeds=t.seeds,
    )
    left = deadline - time.monotonic()
    try:
      run_dir = cells.run(cell, where, flags, side_by_side=side_by_side, timeout_s=left)
    except cells.Interrupted:
      return None
    return None if run_dir is None else measure(run_dir, t.seeds)

  lone = args.gain_agent if args.gain_agent in agents else agents[0]
  alone = {lone: one(lone, os.path.join(args.work, "probe", "alone"), False)}
  turn = [agents[i % len(agents)] for i in range(args.jobs)] if args.jobs > 1 else []
  with futures.ThreadPoolExecutor(max(1, len(turn))) as pool:
    jobs = [
      pool.submit(one, a, os.path.join(args.work, "probe", f"side-{i}"), True)
      for i, a in enumerate(turn)
    ]
    side = [[a, j.result()] for a, j in zip(turn, jobs, strict=True)]
  return {"env_id": env_id, "frames": frames, "alone": alone, "side_by_side": side}


def planning_measures(probed: Mapping[str, Any]) -> dict[str, dict[str, float]]:
  """Per agent, for the plan: the slowest rate and chunk overhead of its side-
  by-side probes (its probe alone where it had none) and the longest start-up
  of all its probes (the first to compile pays for the others, which find its
  programs in the compilation cache)."""
  out: dict[str, dict[str, float]] = {}
  probes = [[a, m, "side"] for a, m in probed["side_by_side"]]
  for agent, m, how in probes + [[a, m, "alone"] for a, m in probed["alone"].items()]:
    if m is None:
      continue
    if agent not in out:
      out[agent] = dict(m)
    elif how == "side":
      out[agent]["rate"] = min(out[agent]["rate"], m["rate"])
      out[agent]["chunk_overhead_s"] = max(out[agent]["chunk_overhead_s"], m["chunk_overhead_s"])
    out[agent]["startup_s"] = max(out[agent]["startup_s"], m["startup_s"])
  return out


def gain(probed: Mapping[str, Any]) -> float | None:
  """What running cells at once gains, measured on the agent probed alone:
  the mean side-by-side rate of its copies times the number of side-by-side
  probes that finished, over its rate alone. That is, frames/s of that many
  copies at once over the same copies one at a time, taking each other
  agent's probe as a copy. ``None`` without a side-by-side copy of it."""
  [(agent, alone)] = probed["alone"].items()
  side = [m["rate"] for a, m in probed["side_by_side"] if a == agent and m is not None]
  if alone is None or not side:
    return None
  ran = sum(m is not None for _, m in probed["side_by_side"])  # a failed probe competed less
  return ran * (sum(side) / len(side)) / alone["rate"]


# -- 2. Plan ------------------------------------------------------------------


def estimate_s(measures: Mapping[str, float], frames: int, eval_every: int) -> float:
  """Seconds a cell of ``frames`` frames per seed takes: its start-up, its
  training at the probe's rate and a chunk's overhead per chunk of
  ``eval_every`` frames. The probe's chunks are shorter than a cell's, so its
  evaluations weigh more in its rate: the estimate errs long."""
  chunks = math.ceil(frames / eval_every)
  return SAFETY * (
    measures["startup_s"] + frames / measures["rate"] + chunks * measures["chunk_overhead_s"]
  )


def pack(durations: Sequence[float], slots: int, capacity: float) -> list[int]:
  """Indices of the items that fit: longest first, each onto the slot that
  frees first, left out if it would end past ``capacity``. The indices come
  longest first: the order a pool of ``slots`` workers should take them in
  to finish as packed."""
  free = [0.0] * slots
  chosen = []
  for i in sorted(range(len(durations)), key=lambda i: -durations[i]):
    slot = min(range(slots), key=free.__getitem__)
    if free[slot] + durations[i] <= capacity:
      free[slot] += durations[i]
      chosen.append(i)
  return chosen


def plan(
  args: argparse.Namespace, rates: Mapping[str, Mapping[str, float]], left_s: float
) -> dict[str, Any]:
  """The cells to run: at the first of ``--frames`` at which any not yet in
  ``--have`` fits in ``left_s`` on ``jobs`` slots, longest first."""
  t = args.table_args
  tried = []
  for frames in args.frames:
    todo = [
      c
      for c in cli.planned(argparse.Namespace(**{**vars(t), "frames": frames}))
      if c["agent"] in rates and not os.path.exists(cells.path_of(args.have, c))
    ]
    est = [estimate_s(rates[c["agent"]], frames, _config(c, t.extra).eval_every) for c in todo]
    chosen = pack(est, args.jobs, left_s)
    tried.append({"frames": frames, "cells": len(todo), "fit": len(chosen)})
    if chosen:
      return {
        "frames": frames,
        "left_s": left_s,
        "tried": tried,
        "cells": [{**todo[i], "estimate_s": round(est[i], 1)} for i in chosen],
      }
  return {"frames": None, "left_s": left_s, "tried": tried, "cells": []}


# -- 3 and 4. Fill, and what comes back ---------------------------------------


def _tarball(path: str, members: Sequence[tuple[str, str]]) -> None:
  """``path``, a gzipped tar of ``(file, name in the archive)``, written whole or not at all."""
  buf = io.BytesIO()
  with tarfile.open(fileobj=buf, mode="w:gz") as tar:
    for file, name in members:
      tar.add(file, arcname=name)
  rundir.write_atomically(path, buf.getvalue())


def write_out(args: argparse.Namespace, record: Mapping[str, Any]) -> None:
  """``OUT/probe.json``, ``OUT/cells.tar.gz`` (the finished cells' files, as
  the results directory holds them) and ``OUT/logs.tar.gz`` (every cell's
  and probe's output), as they are so far."""
  os.makedirs(args.out, exist_ok=True)
  rundir.write_atomically(os.path.join(args.out, "probe.json"), json.dumps(record, indent=1))
  found = sorted(glob.glob(os.path.join(args.work, "*", "*.json")))
  _tarball(
    os.path.join(args.out, "cells.tar.gz"), [(p, os.path.relpath(p, args.work)) for p in found]
  )
  logs = sorted(glob.glob(os.path.join(args.work, "**", "*.log"), recursive=True))
  _tarball(
    os.path.join(args.out, "logs.tar.gz"), [(p, os.path.relpath(p, args.work)) for p in logs]
  )


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
  """Probe, plan, fill; returns 0 when every planned cell finished."""
  started = time.monotonic()
  args = parse(argv, prog)
  deadline = started + args.budget_s
  probed = probe(args, deadline)
  rates = planning_measures(probed)
  record: dict[str, Any] = {
    "probe": probed,
    "gain": gain(probed),
    "probe_s": round(time.monotonic() - started, 1),
  }
  record["plan"] = plan(args, rates, deadline - time.monotonic())
  record["done"] = []
  write_out(args, record)
  print(json.dumps({k: record[k] for k in ("gain", "probe_s")} | {"plan": record["plan"]}))
  t = args.table_args

  def landed(cell: cells.Cell, path: str) -> None:
    record["done"].append(
      {
        "agent": cell["agent"],
        "env": cell.env,
        "frames": cell["frames"],
        "at_s": round(time.monotonic() - started, 1),
      }
    )
    write_out(args, record)

  todo = [cells.Cell({k: c[k] for k in cells.Cell.KEYS}) for c in record["plan"]["cells"]]
  if not rates:
    print(
      "every probe failed or ran past the budget: their output is in "
      f"{os.path.join(args.out, 'logs.tar.gz')}",
      file=sys.stderr,
    )
    return 1
  if not todo:
    tried = ", ".join(
      f"{x['fit']} of {x['cells']} at {x['frames']:,}" for x in record["plan"]["tried"]
    )
    print(
      f"no cell fits in the {args.budget_s:.0f} s budget ({tried} frames); see "
      f"{os.path.join(args.out, 'probe.json')}",
      file=sys.stderr,
    )
    return 1
  # One checkpoint, at the end: the machine is handed back with whatever is on it.
  extra = [*t.extra, "--checkpoint-every", str(record["plan"]["frames"])]
  code = cli.fill(
    todo, args.work, args.work, extra, t.first_seed, args.jobs, False, deadline, landed
  )
  record["wall_s"] = round(time.monotonic() - started, 1)
  write_out(args, record)
  print(f"{len(record['done'])} of {len(todo)} cells in {record['wall_s']} s: {args.out}")
  return code
