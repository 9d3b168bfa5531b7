"""``--sweep``: a hyperparameter grid as one experiment (one compiled program).

    python experiments/anakin_dqn.py --num-seeds 4 \\
        --sweep learning_rate=1e-4,3e-4,1e-3 --sweep target_update_interval=50,200

trains the 3 x 2 grid x 4 seeds = 24 runs as one program (``baselax.anakin.sweep``).
This module is the experiment's side of it: parsing and checking the flag
(pure Python, before JAX starts), the :class:`~baselax.anakin.sweep.Sweep` of
a registered agent, per-point records for the loggers, and the per-point
summary (IQM with its 95% CI, best point).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from baselax import metrics as metrics_lib
from baselax.errors import ConfigError
from baselax.experiment import aggregate as aggregate_lib

Axes = list[tuple[str, tuple[Any, ...]]]


def _number_type(tp: Any) -> type | None:
  """``int`` or ``float`` for a numeric field type (``Optional`` too), else ``None``."""
  if typing.get_origin(tp) in (typing.Union, types.UnionType):  # X | None
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    tp = args[0] if len(args) == 1 else None
  return tp if tp in (int, float) else None


def numeric_settings(agent_cls: type) -> list[str]:
  """The agent settings a sweep may name: its int and float fields (whether
  the agent can take each as an array is checked by tracing)."""
  hints = typing.get_type_hints(agent_cls)
  return [f.name for f in dataclasses.fields(agent_cls) if _number_type(hints[f.name])]


def num_points(texts: Sequence[str]) -> int:
  """Grid points of ``--sweep`` texts, counted without checking them (1 if none)."""
  return math.prod(len(t.partition("=")[2].split(",")) for t in texts) if texts else 1


def parse_axes(
  texts: Sequence[str], agent_cls: type, agent_name: str, trainer_fields: Sequence[str] = ()
) -> Axes:
  """``["learning_rate=1e-4,3e-4", ...]`` -> ``[("learning_rate", (1e-4, 3e-4)), ...]``.

  Raises:
    ConfigError: a text that is not ``setting=v1,v2,...``, a setting the agent
      does not have (or a trainer setting, or one that is not a number), a
      value of the wrong type, or a value given twice.
  """
  hints = typing.get_type_hints(agent_cls)
  fields = {f.name for f in dataclasses.fields(agent_cls)}
  sweepable = ", ".join(numeric_settings(agent_cls))
  axes: Axes = []
  for text in texts:
    name, sep, listed = text.partition("=")
    name = name.strip().replace("-", "_")
    if not sep or not name or not listed.strip():
      raise ConfigError(
        f"sweep {text!r} is not SETTING=V1,V2,...: write e.g. --sweep learning_rate=1e-4,3e-4,1e-3."
      )
    if name in trainer_fields:
      raise ConfigError(
        f"sweep: {name} is a trainer setting: it sets the program's shapes or loop, "
        f"which one program cannot vary. Sweep {agent_name}'s numeric settings "
        f"({sweepable}), or run one experiment per {name}."
      )
    if name not in fields:
      raise ConfigError(
        f"sweep: agent {agent_name} has no setting {name!r}; its numeric settings are {sweepable}."
      )
    kind = _number_type(hints[name])
    if kind is None:
      raise ConfigError(
        f"sweep: {name} is not a number (it chooses code or shapes), so it cannot "
        f"vary within one program. Sweep {agent_name}'s numeric settings "
        f"({sweepable}), or run one experiment per value."
      )
    values = []
    for item in listed.split(","):
      try:
        value = kind(item.strip()) if kind is float else int(item.strip())
      except ValueError:
        raise ConfigError(
          f"sweep: {name} takes {kind.__name__} values, got {item.strip()!r} in {text!r}."
        ) from None
      if value in values:
        raise ConfigError(f"sweep: {name} lists {item.strip()} twice in {text!r}.")
      values.append(value)
    axes.append((name, tuple(values)))
  return axes


def grid_points(axes: Axes) -> list[dict[str, Any]]:
  """The grid points of ``axes`` in run order (row-major, first axis slowest)."""
  return [
    dict(zip([name for name, _ in axes], values, strict=True))
    for values in itertools.product(*[values for _, values in axes])
  ]


def make_sweep(axes: Axes, agent_config: Any, build_agent: Any):
  """The library's :class:`~baselax.anakin.sweep.Sweep` of a registered agent.

  ``build_agent(config) -> BaseAgent`` builds the agent of one config (the
  registry entry's ``build`` with the run's env and sizes bound).
  """
  from baselax.anakin import sweep as sweep_lib

  def build(values):
    return build_agent(sweep_lib.replace_values(agent_config, values))

  return sweep_lib.Sweep(values=sweep_lib.grid(axes), build=build)


def label(hyperparams: Mapping[str, Any]) -> str:
  """A short, file-name-safe name of a point: ``learning_rate=0.0001,target_update_interval=50``."""
  return ",".join(
    f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in hyperparams.items()
  )


def point_records(
  record: metrics_lib.ChunkRecord, points: Sequence[Mapping[str, Any]]
) -> list[metrics_lib.ChunkRecord]:
  """A whole-run record (runs point-major) split into one record per point."""
  seeds = record.num_seeds // len(points)
  return [
    record.select(slice(p * seeds, (p + 1) * seeds), point=p, hyperparams=dict(h))
    for p, h in enumerate(points)
  ]


def summarise_points(final_returns: Any, points: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
  """Per point: the final returns' IQM with its 95% stratified bootstrap CI
  (rliable), mean, std, range; and the best point (highest IQM, else mean).

  Returns:
    ``{"points": [{"point", "hyperparams", **aggregate}], "best_point": int}``.
  """
  returns = np.asarray(final_returns, np.float64).reshape(len(points), -1)
  rows = [
    {"point": p, "hyperparams": dict(h), **aggregate_lib.summarise_final_returns(returns[p])}
    for p, h in enumerate(points)
  ]
  score = lambda row: row["iqm"] if row["iqm"] is not None else row["mean"]  # noqa: E731
  best = max(range(len(rows)), key=lambda p: score(rows[p]))
  return {"points": rows, "best_point": best}


def table(summary: Mapping[str, Any]) -> str:
  """The per-point summary as a Markdown table (printed, and ``summary.md``)."""
  rows = summary["points"]
  names = list(rows[0]["hyperparams"])
  head = ["point", *names, "IQM", "95% CI", "mean ± std", "min"]
  lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
  for row in rows:
    ci = "-" if row["iqm_ci95"] is None else f"{row['iqm_ci95'][0]:.1f} to {row['iqm_ci95'][1]:.1f}"
    iqm = "-" if row["iqm"] is None else f"{row['iqm']:.1f}"
    best = " (best)" if row["point"] == summary["best_point"] else ""
    cells = [
      f"{row['point']}{best}",
      *(f"{row['hyperparams'][n]:g}" for n in names),
      iqm,
      ci,
      f"{row['mean']:.1f} ± {row['std']:.1f}",
      f"{row['min']:.1f}",
    ]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def describe_best(summary: Mapping[str, Any]) -> str:
  row = summary["points"][summary["best_point"]]
  return f"best point {row['point']} ({label(row['hyperparams'])}): {aggregate_lib.describe(row)}"


def write(run_path: str, summary: Mapping[str, Any]) -> None:
  """``summary.json`` (per point and the best) and ``summary.md`` (the table)."""
  with open(os.path.join(run_path, "summary.json"), "w") as f:
    json.dump(summary, f, indent=2)
  with open(os.path.join(run_path, "summary.md"), "w") as f:
    f.write(table(summary) + "\n\n" + describe_best(summary) + "\n")
