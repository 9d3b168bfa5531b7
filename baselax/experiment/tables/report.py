"""A results directory's report, rebuilt from every cell file found there.

``OUT/README.md`` gets one section per table whose cells are in ``OUT``:
the table's measure per cell beside the published value, greedy evaluation
and wall clock, an IQM per agent across the envs filled, and one figure
per env (``OUT/TABLE-ENV.png``). Whichever session or machine wrote a cell,
the report is the same function of the files.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from baselax.experiment.tables import cells as cells_lib
from baselax.experiment.tables import specs, stats

#: How a cell stands against the published value.
AT_OR_ABOVE, WITHIN, BELOW = "≥", "≈", "<"


def published_point(
  table: specs.Table, cell: Mapping[str, Any]
) -> tuple[dict[str, Any] | None, str]:
  """The published value a cell stands beside, and how it is marked: at the
  same frame count (no mark), at the paper's end (``end``), or the
  reference agent's (``dqn``) for an agent the paper has no value for."""
  points = {int(k): v for k, v in cell["published"].items()}
  if cell["frames"] in points:
    return points[cell["frames"]], ""
  if points:
    return points[max(points)], "end"
  if table.reference_agent and table.reference_agent != cell["agent"]:
    ref = table.published_for(table.reference_agent, cell["env_id"])
    if cell["frames"] in ref:
      return ref[cell["frames"]].to_json(), table.reference_agent
  return None, ""


def standing(ours: Mapping[str, Any], published: Mapping[str, Any] | None) -> str:
  """:data:`AT_OR_ABOVE` the published mean, :data:`WITHIN` its ± std or our
  95% CI, else :data:`BELOW` (empty when either is missing)."""
  if published is None or ours.get("mean") is None:
    return ""
  mean, pub = ours["mean"], published["mean"]
  if mean >= pub:
    return AT_OR_ABOVE
  in_std = published.get("std") is not None and pub - published["std"] <= mean
  in_ci = bool(ours.get("ci95")) and ours["ci95"][0] <= pub <= ours["ci95"][1]
  return WITHIN if in_std or in_ci else BELOW


def _keys(table: specs.Table, mine: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, int]]:
  order = {a: i for i, a in enumerate(table.agents)}
  return sorted(
    {(c["agent"], c["preset"], c["frames"]) for c in mine},
    key=lambda k: (order.get(k[0], 99), k[1], k[2]),
  )


def _row(mine: Sequence[Mapping[str, Any]], key: tuple[str, str, int]) -> dict[str, Any]:
  return {c["env_id"]: c for c in mine if (c["agent"], c["preset"], c["frames"]) == key}


def measure_table(table: specs.Table, mine: Sequence[Mapping[str, Any]]) -> list[str]:
  """Rows ``agent | preset | frames | seeds | env...`` of ours / published."""
  spread = (
    "std"
    if any(
      p.std is not None
      for per in table.published.values()
      for row in per.values()
      for p in row.values()
    )
    else "ci95"
  )
  envs = [specs.label(e) for e in table.envs]
  lines = [
    "| agent | preset | frames | seeds | " + " | ".join(envs) + " |",
    "| --- | --- | --- | --- |" + " --- |" * len(envs),
  ]
  for key in _keys(table, mine):
    row = _row(mine, key)
    cols = []
    for env_id in table.envs:
      c = row.get(env_id)
      if c is None:
        cols.append("-")
        continue
      ours = c["summary"][table.metric]
      pub, mark = published_point(table, c)
      ref = "n/a" if pub is None else stats.fmt(pub, "std", 2 if spread == "std" else 1)
      cols.append(
        f"{stats.fmt(ours, spread, 1)} / {ref}{f' ({mark})' if mark else ''} "
        f"{standing(ours, pub)}".rstrip()
      )
    seeds = ", ".join(map(str, sorted({c["seeds"] for c in row.values()})))
    lines.append(f"| {key[0]} | {key[1]} | {key[2]:,} | {seeds} | " + " | ".join(cols) + " |")
  return lines


def detail_table(table: specs.Table, mine: Sequence[Mapping[str, Any]]) -> list[str]:
  """Rows of the 95% CI of the measure, greedy evaluation and wall clock per cell."""
  envs = [specs.label(e) for e in table.envs]
  lines = [
    "| agent | preset | frames | "
    + " | ".join(f"{e}: measure [95% CI]; greedy eval [95% CI]; wall" for e in envs)
    + " |",
    "| --- | --- | --- |" + " --- |" * len(envs),
  ]
  for key in _keys(table, mine):
    row = _row(mine, key)
    cols = [
      f"{stats.fmt(row[e]['summary'][table.metric])}; "
      f"{stats.fmt(row[e]['summary']['eval_return'])}; {wall(row[e])}"
      if e in row
      else "-"
      for e in table.envs
    ]
    lines.append(f"| {key[0]} | {key[1]} | {key[2]:,} | " + " | ".join(cols) + " |")
  return lines


def wall(cell: Mapping[str, Any]) -> str:
  """Training wall clock (compilation excluded), all seeds at once, and where."""
  machine = cell["machine"]
  where = machine.get("device_kind") or machine["backend"]
  where += f" x{machine['devices']}" if machine.get("devices") else ""
  return f"{cell['train_wall_s'] / 60:.0f} min ({where})"


def iqm_table(table: specs.Table, mine: Sequence[Mapping[str, Any]]) -> list[str]:
  """Per agent and frame budget: IQM over (seed, env) of the score divided by
  the published value at that budget, its own and the paper's DQN's."""
  rows = []
  for agent, preset, frames in _keys(table, mine):
    row = _row(mine, (agent, preset, frames))
    own, vs_dqn = [], []
    for env_id, c in row.items():
      scores = np.asarray([np.nan if v is None else v for v in c[table.metric]], float)
      pub = {int(k): v["mean"] for k, v in c["published"].items()}.get(frames)
      dqn = {
        f: p[env_id].mean for f, p in table.published.get("dqn", {}).items() if env_id in p
      }.get(frames)
      if pub and pub > 0:
        own.append(scores / pub)
      if dqn and dqn > 0:
        vs_dqn.append(scores / dqn)
    cols = []
    for normalised in (own, vs_dqn):
      if not normalised or len({len(s) for s in normalised}) != 1:
        cols.append("-")
        continue
      out = stats.iqm(np.stack(normalised, axis=1))
      cols.append(
        "needs rliable: pip install -e '.[stats]'"
        if out is None
        else f"{out['iqm']:.2f} [{out['ci95'][0]:.2f}, {out['ci95'][1]:.2f}] "
        f"({out['tasks']} env(s))"
      )
    if cols != ["-", "-"]:
      rows.append(f"| {agent} | {preset} | {frames:,} | " + " | ".join(cols) + " |")
  if not rows:
    return []
  return [
    "| agent | preset | frames | IQM of score / its published value [95% CI] | "
    "IQM of score / the published DQN's [95% CI] |",
    "| --- | --- | --- | --- | --- |",
    *rows,
  ]


def ordering_table(table: specs.Table, mine: Sequence[Mapping[str, Any]]) -> list[str]:
  """Per headline claim of the paper (``Table.orderings``), preset, budget and
  env filled for both agents: whether our better agent's mean is above the
  worse one's, and whether their 95% CIs separate (the better one's lower
  bound above the worse one's upper bound)."""
  rows = []
  for better, worse in table.orderings:
    for preset, frames in sorted({(p, f) for _, p, f in _keys(table, mine)}):
      pair = [_row(mine, (a, preset, frames)) for a in (better, worse)]
      for env_id in table.envs:
        if env_id not in pair[0] or env_id not in pair[1]:
          continue
        hi, lo = (pair[i][env_id]["summary"][table.metric] for i in (0, 1))
        if hi["mean"] is None or lo["mean"] is None:
          continue
        above = "yes" if hi["mean"] > lo["mean"] else "no"
        apart = bool(hi["ci95"] and lo["ci95"] and hi["ci95"][0] > lo["ci95"][1])
        rows.append(
          f"| {better} > {worse} | {preset} | {frames:,} | {specs.label(env_id)} | "
          f"{stats.fmt(hi)} | {stats.fmt(lo)} | {above} | {'yes' if apart else 'no'} |"
        )
  if not rows:
    return []
  return [
    "| the paper's claim | preset | frames | env | better agent [95% CI] | "
    "worse agent [95% CI] | mean above | CIs separate |",
    "| --- | --- | --- | --- | --- | --- | --- | --- |",
    *rows,
  ]


def metric_curve(table: specs.Table, cell: Mapping[str, Any]) -> np.ndarray:
  """``(chunks, seeds)`` the table's measure after each chunk: the recent
  return as logged, or the iteration return over the trailing iteration."""
  curve = cell["curve"]
  frames = table.iteration_frames  # (set with iteration_return: Table checks)
  if table.metric == "iteration_return" and frames and "train_return" in curve:
    rows = [
      {"env_steps": s, "train_return": r, "train_episodes": n}
      for s, r, n in zip(
        curve["env_steps"], curve["train_return"], curve["train_episodes"], strict=True
      )
    ]
    return np.asarray(
      [cells_lib.iteration_returns(rows[: i + 1], frames) for i in range(len(rows))], float
    )
  return np.asarray(
    [[np.nan if v is None else v for v in row] for row in curve["recent_return"]], float
  )


def plot(
  out: str, table: specs.Table, env_id: str, mine: Sequence[Mapping[str, Any]]
) -> str | None:
  """Learning curves (mean over seeds, shaded 95% CI) with the published points."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  ours = [c for c in mine if c["env_id"] == env_id]
  if not ours:
    return None
  fig, ax = plt.subplots(figsize=(5.5, 3.6))
  for c in sorted(
    ours,
    key=lambda c: (
      table.agents.index(c["agent"]) if c["agent"] in table.agents else 99,
      c["preset"],
      c["frames"],
    ),
  ):
    steps = np.asarray(c["curve"]["env_steps"], float) / 1e6
    values = metric_curve(table, c)
    summaries = [stats.summary(v) for v in values]
    mean = np.asarray([np.nan if s["mean"] is None else s["mean"] for s in summaries])
    (line,) = ax.plot(steps, mean, label=f"{c['agent']} ({c['preset']}, {c['seeds']} seeds)")
    lo = [s["ci95"][0] if s["ci95"] else np.nan for s in summaries]
    hi = [s["ci95"][1] if s["ci95"] else np.nan for s in summaries]
    ax.fill_between(steps, lo, hi, alpha=0.2, color=line.get_color())
    points = {int(k): v for k, v in c["published"].items()}
    if points:
      ax.errorbar(
        np.asarray(list(points), float) / 1e6,
        [p["mean"] for p in points.values()],
        yerr=[p["std"] or 0.0 for p in points.values()],
        fmt="x",
        ms=8,
        capsize=3,
        color=line.get_color(),
      )
  ax.set_xlabel("env steps (millions)")
  ax.set_ylabel(table.metric.replace("_", " "))
  ax.set_title(f"{specs.label(env_id)} ({table.name}); x: published")
  ax.legend(fontsize=7)
  fig.tight_layout()
  path = os.path.join(out, f"{table.name}-{specs.label(env_id)}.png")
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def section(out: str, table: specs.Table, mine: Sequence[Mapping[str, Any]]) -> list[str]:
  lines = [
    f"## {table.name}",
    "",
    f"{table.title}. Published values: {table.published_source}.",
    "",
    f"Each cell: ours, the {table.metric_text} (`{table.metric}`), mean "
    + ("± std over seeds (the paper's form)" if table.reference_agent else "[95% CI] over seeds")
    + ", then the published value at the same frame count (`end`: at the paper's "
    "end; `dqn`: the paper's DQN, for an agent it did not run), and how ours "
    f"stands: {AT_OR_ABOVE} at or above, {WITHIN} within the published ± std or our "
    f"95% CI, {BELOW} below.",
    "",
  ]
  lines += measure_table(table, mine) + [""]
  lines += [
    "The measure with its 95% CI, the greedy evaluation return (epsilon 0) at the "
    "budget with its 95% CI, and the training wall clock of all seeds at once "
    "(compilation excluded):",
    "",
  ]
  lines += detail_table(table, mine) + [""]
  iqm = iqm_table(table, mine)
  if iqm:
    lines += (
      [
        "Across the envs filled (rliable's IQM, 95% stratified bootstrap CI; "
        "1.0 = the published value; only envs whose published value is positive, "
        "as a ratio of negative returns has no meaning):",
        "",
      ]
      + iqm
      + [""]
    )
  order = ordering_table(table, mine)
  if order:
    lines += ["The paper's headline ordering, ours (the measure, mean [95% CI]):", ""]
    lines += order + [""]
  for env_id in table.envs:
    figure = plot(out, table, env_id, mine)
    if figure:
      lines.append(f"![{table.name} {specs.label(env_id)}]({os.path.basename(figure)})")
  return lines + [""]


def write(out: str, title: str) -> str:
  """Rebuilds ``out/README.md`` (and the figures) from the cell files; returns the text."""
  found = cells_lib.load(out)
  lines = [
    f"# {title}",
    "",
    "Generated by `python scripts/table.py --report-only --out "
    f"{os.path.relpath(out)}` from the cell files in this directory"
    + (
      "; how the runs are set up and what differs from the papers is in [NOTES.md](NOTES.md)."
      if os.path.exists(os.path.join(out, "NOTES.md"))
      else "."
    ),
    "",
  ]
  for table in specs.TABLES.values():
    mine = [c for c in found if c.get("table") == table.name]
    if mine:
      lines += section(out, table, mine)
  text = "\n".join(lines).rstrip() + "\n"
  with open(os.path.join(out, "README.md"), "w") as f:
    f.write(text)
  return text
