"""One command that measures what this project claims, on the machine at hand.

    baselax check                 # on a GPU or TPU: at most ~8 minutes
    baselax check --smoke         # a reduced check: under a minute on a CPU
    baselax check --out DIR       # where the JSON, the table and the logs go

(``python scripts/accelerator_check.py`` is the same command.)

Items, each run in its own child process (so each reports its own compile
time and peak device memory, and a slow one is stopped at its timeout):

  default      the main job with its defaults (CartPole-v1, 300k env steps,
               10 envs, 1 seed): compile time, run time, env steps/s, final
               greedy return
  seeds-S      the same with --num-seeds S for S in --seeds (8, 64, 256)
  breakout     DQN on Breakout-MinAtar for 1M env steps (the DQN family's
               settings, docs/results/index.md: 32 envs, buffer 50k, lr 1e-3,
               target every 200 updates, epsilon over the first 20%)
  bench        baselax bench: the sweep N = 1 .. 4096 (with the host-loop
               rows) and the seeds rows, and N = 65,536 in a second process
               (bench-large; no host loop there)

Peak memory is JAX's allocator peak on device 0 (``memory_stats()``) on GPUs
and TPUs, the process's peak resident memory on a CPU (``source`` says which).
Writes ``accelerator_check.json`` (everything, the bench rows included) and
``accelerator_check.md`` (the tables) into ``--out``, and each item's output
into ``--out``/logs/. The whole check keeps to ``--time-budget`` seconds: an
item is given what is left of it (at most its own timeout) and recorded as
``timeout`` or ``skipped`` when that runs out, and the rest still run.

With more than one device, the main job pmaps each run over every device (N
envs each); the seeds items are one seed-vmapped program on those devices.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from typing import Any

from baselax.bench.check_items import BENCH, MAIN_JOB, PROG, item_list, parse_args

__all__ = ["BENCH", "MAIN_JOB", "PROG", "item_list", "main", "parse_args"]


def run_child(item: dict[str, Any], out_dir: str, timeout: float) -> dict[str, Any]:
  """Runs one item under ``python -m baselax.hardware`` (it reports peak memory)."""
  name = item["name"]
  report = os.path.join(out_dir, "logs", f"{name}.report.json")
  log_path = os.path.join(out_dir, "logs", f"{name}.log")
  flags = list(item["flags"])
  run_dir = None
  if item["script"] == MAIN_JOB:
    run_dir = os.path.join(out_dir, "runs", name)
    shutil.rmtree(run_dir, ignore_errors=True)
    flags += ["--run-dir", run_dir]
  else:
    flags += ["--json", os.path.join(out_dir, "logs", f"{name}.bench.json")]
  cmd = [
    sys.executable,
    "-m",
    "baselax.hardware",
    "--report",
    report,
    "--module",
    "--",
    "baselax",
    item["script"],
    *flags,
  ]
  result: dict[str, Any] = dict(
    name=name, what=item["what"], command=" ".join(["baselax", item["script"], *flags])
  )
  t = time.perf_counter()
  with open(log_path, "w") as log:
    log.write("$ " + " ".join(cmd) + "\n")
    log.flush()
    # Its own process group, so a timeout stops everything it started.
    proc = subprocess.Popen(
      cmd, cwd=out_dir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
      code = proc.wait(timeout=timeout)
      status = "ok" if code == 0 else f"exit {code}"
    except subprocess.TimeoutExpired:
      os.killpg(proc.pid, signal.SIGKILL)
      proc.wait()
      status = f"timeout ({timeout:.0f}s)"
  result["status"] = status
  result["wall_s"] = time.perf_counter() - t
  if os.path.exists(report):
    with open(report) as f:
      result["report"] = json.load(f)
    result["peak_memory"] = result["report"].get("peak_memory")
  with open(log_path) as f:
    output = f.read()
  if status != "ok":
    result["log_tail"] = output[-2000:]
  if run_dir is not None:  # the main job's items
    result.update(read_run(run_dir, output))
  elif os.path.exists(flags[-1]):
    with open(flags[-1]) as f:
      result["bench"] = json.load(f)
  else:  # stopped early: keep the rows it printed
    result["bench"] = dict(rows=bench_rows_from_output(output), partial=True)
  return result


def bench_rows_from_output(output: str) -> list[dict[str, Any]]:
  """The rows bench.py printed before it was stopped (its fixed-width table)."""
  names = (
    "kind",
    "num_envs",
    "num_seeds",
    "env_steps_per_s",
    "per_seed_env_steps_per_s",
    "updates_per_s",
    "ratio_vs_limit_policy",
    "ratio_vs_hostloop",
    "compile_s",
  )
  bounds = [
    (0, 13),
    (13, 20),
    (20, 27),
    (27, 40),
    (40, 53),
    (53, 66),
    (66, 79),
    (79, 92),
    (92, 104),
  ]
  rows = []
  for line in output.splitlines():
    if line[:13].strip() not in ("limit", "limit+policy", "anakin", "hostloop", "seeds", "scaling"):
      continue
    row: dict[str, Any] = {}
    try:
      for name, (lo, hi) in zip(names, bounds, strict=True):
        cell = line[lo:hi].strip().rstrip("x").replace(",", "")
        if name == "kind":
          row[name] = cell
        elif cell and cell != "nan":
          row[name] = int(cell) if name in ("num_envs", "num_seeds") else float(cell)
    except ValueError:
      continue
    rows.append(row)
  return rows


def _finite_mean(values) -> float | None:
  xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
  return sum(xs) / len(xs) if xs else None


def read_run(run_dir: str, output: str) -> dict[str, Any]:
  """Figures of a main-job run from its run directory (and its summary line)."""
  out: dict[str, Any] = {}
  match = re.search(r"compile\s+([0-9.]+)\s*s", output)
  out["compile_s"] = float(match.group(1)) if match else None
  metrics_path = os.path.join(run_dir, "metrics.jsonl")
  if not os.path.exists(metrics_path):
    return out
  with open(metrics_path) as f:
    lines = [json.loads(line) for line in f if line.strip()]
  if not lines:
    return out
  last = lines[-1]
  seeds = len(last.get("eval_return") or [1])
  out.update(
    env_steps_per_seed=last["env_steps"],
    num_seeds=seeds,
    run_s=last["wall_time"],
    chunks=len(lines),
    env_steps_per_s=last["env_steps"] * seeds / last["wall_time"],
    final_return=_finite_mean(last.get("eval_return", [])),
    final_return_min=min(last["eval_return"]) if last.get("eval_return") else None,
    final_train_return=_finite_mean(last.get("train_return", [])),
  )
  return out


def nvidia_smi() -> str | None:
  """GPU name, memory and driver as nvidia-smi reports them, if it is there."""
  if shutil.which("nvidia-smi") is None:
    return None
  try:
    return (
      subprocess.run(
        ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
        capture_output=True,
        text=True,
        timeout=30,
      ).stdout.strip()
      or None
    )
  except (OSError, subprocess.SubprocessError):
    return None


def _fmt(x, spec: str = ",.0f", none: str = "") -> str:
  if x is None or (isinstance(x, float) and not math.isfinite(x)):
    return none
  return format(x, spec)


def _mem(result: dict[str, Any]) -> str:
  mem = result.get("peak_memory")
  if not mem:
    return ""
  return f"{mem['bytes'] / 2**20:,.0f} ({'device' if mem['source'] == 'device' else 'RSS'})"


def markdown(summary: dict[str, Any]) -> str:
  """The tables: the runs, then the bench rows."""
  h = summary["header"]
  lines = [
    f"# accelerator check{' (smoke)' if summary['smoke'] else ''}",
    "",
    f"{h.get('device_kind', '?')} x{h.get('device_count', '?')} | backend "
    f"{h.get('backend', '?')} | jax {h.get('jax', '?')} | "
    f"{h.get('nvidia_smi') or 'no nvidia-smi'} | {h['date']} | "
    f"total {summary['wall_s']:.0f} s",
    "",
  ]
  if summary.get("hint"):
    lines += [summary["hint"], ""]
  lines += [
    "| item | what | status | compile s | run s | env steps/s (all seeds) | "
    "final return, mean (min) | peak memory MiB |",
    "| --- | --- | --- | --- | --- | --- | --- | --- |",
  ]
  for r in summary["items"]:
    if r["name"].startswith("bench"):
      lines.append(
        f"| {r['name']} | {r['what']} | {r['status']} | | "
        f"{_fmt(r.get('wall_s'), '.1f')} (wall) | see below | | {_mem(r)} |"
      )
      continue
    ret = _fmt(r.get("final_return"), ".1f")
    if ret and r.get("num_seeds", 1) > 1:
      ret += f" ({_fmt(r.get('final_return_min'), '.1f')})"
    lines.append(
      f"| {r['name']} | {r['what']} | {r['status']} | "
      f"{_fmt(r.get('compile_s'), '.1f')} | {_fmt(r.get('run_s'), '.1f')} | "
      f"{_fmt(r.get('env_steps_per_s'))} | {ret} | {_mem(r)} |"
    )
  bench_rows = [
    (r["name"], row) for r in summary["items"] for row in r.get("bench", {}).get("rows", [])
  ]
  if bench_rows:
    lines += [
      "",
      "bench.py rows (`anakin` is the whole loop; ratios from the same process):",
      "",
      "| kind | N | seeds | env steps/s | per seed | updates/s | vs limit+policy | "
      "vs hostloop | compile s | buffer MiB |",
      "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, row in bench_rows:
      if name == "bench-large" and row["kind"] == "seeds":
        continue  # the one-seed row that bench.py always adds: the anakin row again
      lines.append(
        f"| {row['kind']} | {row['num_envs']:,} | {row['num_seeds']} | "
        f"{_fmt(row.get('env_steps_per_s'))} | "
        f"{_fmt(row.get('per_seed_env_steps_per_s', row.get('env_steps_per_s')))} | "
        f"{_fmt(row.get('updates_per_s'))} | "
        f"{_fmt(row.get('ratio_vs_limit_policy'), '.2f')} | "
        f"{_fmt(row.get('ratio_vs_hostloop'), '.1f')} | {_fmt(row.get('compile_s'), '.1f')} | "
        f"{_fmt(row.get('buffer_bytes', 0) / 2**20, '.1f')} |"
      )
  return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
  args = parse_args(argv, prog)
  stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
  out_dir = os.path.abspath(args.out or os.path.join("runs", f"accelerator-check-{stamp}"))
  os.makedirs(os.path.join(out_dir, "logs"), exist_ok=True)
  items = item_list(args)
  t0 = time.perf_counter()
  deadline = t0 + args.time_budget
  smi = nvidia_smi()
  print(
    f"accelerator check{' (smoke)' if args.smoke else ''}: {len(items)} items, "
    f"budget {args.time_budget:.0f} s -> {out_dir}" + (f" | {smi}" if smi else ""),
    flush=True,
  )
  results = []
  for item in items:
    left = deadline - time.perf_counter()
    if left < 15:
      results.append(dict(name=item["name"], what=item["what"], status="skipped (time budget)"))
      print(f"  {item['name']:<12} skipped: the time budget is spent", flush=True)
      continue
    result = run_child(item, out_dir, min(item["timeout"], left))
    results.append(result)
    if item["script"] == BENCH:
      figures = f"{len(result.get('bench', {}).get('rows', []))} bench rows"
    else:
      figures = (
        f"env steps/s {_fmt(result.get('env_steps_per_s'), none='-')}, "
        f"final return {_fmt(result.get('final_return'), '.1f', none='-')}, "
        f"compile {_fmt(result.get('compile_s'), '.1f', none='-')} s"
      )
    print(
      f"  {item['name']:<12} {result['status']:<10} {result['wall_s']:6.1f} s | "
      f"{figures} | peak memory {_mem(result)} MiB",
      flush=True,
    )
  reports = [r["report"] for r in results if r.get("report", {}).get("backend")]
  header = (
    {k: reports[0].get(k) for k in ("jax", "backend", "device_kind", "device_count")}
    if reports
    else {}
  )
  header.update(nvidia_smi=smi, date=stamp, python=sys.version.split()[0], cpu_count=os.cpu_count())
  hint = None
  if header.get("backend"):
    from baselax import hardware  # no JAX import: the children hold the device

    hint = hardware.accelerator_hint(header["backend"])
  summary = dict(
    header=header,
    smoke=args.smoke,
    hint=hint,
    items=results,
    wall_s=time.perf_counter() - t0,
    time_budget_s=args.time_budget,
  )
  with open(os.path.join(out_dir, "accelerator_check.json"), "w") as f:
    json.dump(summary, f, indent=1)
  table = markdown(summary)
  with open(os.path.join(out_dir, "accelerator_check.md"), "w") as f:
    f.write(table)
  print(table)
  print(f"wrote {out_dir}/accelerator_check.json and accelerator_check.md")
  failed = [r["name"] for r in results if r["status"] != "ok"]
  if failed:
    print(f"not ok: {', '.join(failed)} (logs in {out_dir}/logs)", file=sys.stderr)
  return 1 if failed else 0
