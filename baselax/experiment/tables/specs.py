"""The papers' tables: which runs fill them and what was published.

A :class:`Table` is a paper's grid of results: a preset (the paper's
setting, ``baselax.experiment.presets``), its agents and env ids, a frame
budget, a number of seeds, the paper's way of measuring a run, and the
published values each cell stands beside. Adding a table is one
:class:`Table` and one line in :data:`TABLES`.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping

from baselax.errors import ConfigError

#: ``Table.metric`` values: a chunk-record field (``recent_return``: the mean
#: of the last 100 training episodes per seed) or ``iteration_return`` (the
#: mean of the training episodes that ended in the last iteration of
#: ``Table.iteration_frames`` frames, Dopamine's ``TrainRunner``).
METRICS = ("recent_return", "iteration_return")


@dataclasses.dataclass(frozen=True)
class Published:
  """A published value: ``mean`` (with ``std`` over seeds where the paper gives it)."""

  mean: float
  std: float | None = None

  def to_json(self) -> dict[str, float | None]:
    return {"mean": self.mean, "std": self.std}


@dataclasses.dataclass(frozen=True)
class Table:
  """A paper's table, filled cell by cell (one agent on one env).

  Attributes:
    name: what ``--table`` takes.
    title: the paper (authors, year, title, arXiv id).
    out: the results directory under ``docs/results/`` its cells are written to.
    preset: the paper's own setting (``--preset``).
    fast_preset: the same frame budget the Anakin way (``--fast``), or none.
    agents: the registered agents of its rows.
    envs: the env ids of its columns.
    frames: the paper's frame budget per seed.
    seeds: seeds per cell by default.
    metric: how a run is measured (one of :data:`METRICS`).
    metric_text: that measure in words, for the report.
    iteration_frames: frames of an iteration (``iteration_return``).
    published: ``{agent: {frames: {env_id: Published}}}``.
    published_source: where the published values come from, and how read.
    reference_agent: the agent whose published values stand beside agents the
      paper has none for (CleanRL publishes DQN and C51 only).
    orderings: the paper's headline claims as ``(better, worse)`` agent pairs:
      the report says, per env filled for both, whether ours keep the order.
  """

  name: str
  title: str
  out: str
  preset: str
  fast_preset: str | None
  agents: tuple[str, ...]
  envs: tuple[str, ...]
  frames: int
  seeds: int
  metric: str
  metric_text: str
  published: Mapping[str, Mapping[int, Mapping[str, Published]]]
  published_source: str
  iteration_frames: int | None = None
  reference_agent: str | None = None
  orderings: tuple[tuple[str, str], ...] = ()

  def __post_init__(self):
    if self.metric not in METRICS:
      raise ValueError(f"Table.metric must be one of {METRICS}, got {self.metric!r}.")
    if self.metric == "iteration_return" and not self.iteration_frames:
      raise ValueError("Table.metric iteration_return needs iteration_frames.")
    for better, worse in self.orderings:
      if better == worse or not {better, worse} <= set(self.agents):
        raise ValueError(
          f"Table.orderings ({better!r}, {worse!r}): two different agents of the table."
        )

  def env_id(self, name: str) -> str:
    """The env id a column name stands for (``Breakout`` -> ``minatar:Breakout``).

    Raises:
      ConfigError: no column of this table is called ``name``.
    """
    for env_id in self.envs:
      if name in (env_id, label(env_id)):
        return env_id
    raise ConfigError(
      f"--envs {name}: not a column of the {self.name} table "
      f"({', '.join(label(e) for e in self.envs)})."
    )

  def published_for(self, agent: str, env_id: str) -> dict[int, Published]:
    """``{frames: Published}`` the paper gives for ``agent`` on ``env_id``."""
    points = self.published.get(agent, {})
    return {f: v[env_id] for f, v in sorted(points.items()) if env_id in v}


def label(env_id: str) -> str:
  """A column's short name: the env id without its suite (``minatar:Breakout`` -> ``Breakout``)."""
  return env_id.split(":", 1)[-1]


def _frozen(tree):
  if isinstance(tree, Mapping):
    return types.MappingProxyType({k: _frozen(v) for k, v in tree.items()})
  return tree


def _row(envs: tuple[str, ...], values: tuple[float, ...]) -> dict[str, Published]:
  return {e: Published(v) for e, v in zip(envs, values, strict=True)}


MINATAR = tuple(
  f"minatar:{g}" for g in ("Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders")
)
CLASSIC = ("CartPole-v1", "Acrobot-v1", "MountainCar-v0")

YOUNG_TIAN_2019 = Table(
  name="young-tian-2019",
  title="Young & Tian 2019, MinAtar (arXiv:1903.03176)",
  out="minatar",
  preset="young-tian-2019",
  fast_preset="young-tian-2019-fast",
  agents=("dqn",),
  envs=MINATAR,
  frames=5_000_000,
  seeds=4,
  metric="recent_return",
  metric_text="mean return of the last 100 training episodes",
  published=_frozen(
    {
      "dqn": {
        1_000_000: _row(MINATAR, (7.3, 9.2, 47.8, 1.0, 32.5)),
        2_000_000: _row(MINATAR, (14.3, 9.6, 50.7, 4.9, 41.5)),
        5_000_000: _row(MINATAR, (17.0, 10.1, 50.2, 20.3, 43.8)),
      }
    }
  ),
  published_source=(
    "read off the learning curves of kenjyoung/MinAtar img/ (DQN, each game at its "
    "best step size; 100-episode moving average), to a few percent"
  ),
)

#: Revisiting Rainbow's MinAtar curves, read off the paper's figures (the
#: authors' blog copies, psc-g/psc-g.github.io b8074b4: revisitingMinatar.png,
#: qrDQN.png, munchausen.png) by pixel: the mean training return of
#: iterations 1 to 10 (the 1M frames ending at 1M, 2M, ..., 10M), 10 seeds in
#: the paper. ``None``: hidden under other curves. How they were read, and
#: the reading error, is in docs/results/minatar/NOTES.md and
#: revisiting-rainbow-published.csv beside it.
_RR_CURVES = {
  "dqn": {
    "Asterix": (5.83, 19.42, 22.64, 24.24, 25.19, 26.35, 26.9, 27.58, 27.9, 28.16),
    "Breakout": (2.92, 5.58, 5.93, 6.1, 6.33, 6.41, 6.65, 7.0, 7.17, 7.44),
    "Freeway": (46.16, 59.28, 59.41, 59.57, 59.73, 59.89, 59.77, 59.98, 59.99, 59.86),
    "Seaquest": (None, 4.04, 5.07, 5.16, 5.3, 5.43, 5.41, 5.36, 5.39, 5.4),
    "SpaceInvaders": (15.62, 25.58, 29.17, 31.16, 31.5, 31.68, 32.37, 33.16, 33.9, 33.91),
  },
  "c51": {  # the paper's "DQN + Distributional"
    "Asterix": (0.88, 4.19, 13.6, 20.68, 25.5, 29.1, 31.53, 33.97, 36.16, 37.33),
    "Breakout": (2.74, 4.84, 5.25, 5.6, 5.89, 6.23, 6.49, 6.83, 7.02, 7.24),
    "Freeway": (9.78, 33.59, 43.23, 48.47, 52.06, 53.44, 54.43, 55.06, 55.56, 56.11),
    "Seaquest": (0.23, 0.4, 0.64, 0.95, 1.58, 2.43, 3.04, 4.04, 4.62, 4.9),
    "SpaceInvaders": (14.71, 27.41, 30.05, 36.27, 41.99, 45.09, 47.03, 48.3, 50.14, 50.95),
  },
  "qrdqn": {  # "Quantile": mostly under other curves; the least certain row
    "Asterix": (None, 27.4, 34.36, 38.37, 41.23, 42.1, 43.52, 43.87, 43.98, 44.08),
    "Breakout": (None, 6.6, None, 7.2, 7.48, 7.73, 7.88, 7.97, 8.27, 8.2),
    "Freeway": (43.12, None, 60.95, 60.99, 61.06, None, None, None, 61.2, 61.0),
    "Seaquest": (None, 1.86, 3.03, None, None, None, 4.78, 4.86, 5.03, 5.2),
    "SpaceInvaders": (None, 29.03, None, 31.34, 35.34, None, 41.81, 45.89, 46.88, 48.0),
  },
  "mdqn": {
    "Asterix": (6.75, 21.2, 24.63, 27.28, 29.83, 31.56, 32.76, 33.9, 33.61, 33.91),
    "Breakout": (3.21, 6.32, 6.7, 7.2, 7.53, 8.24, 8.56, 8.89, 9.06, 9.35),
    "Freeway": (None, 60.0, 60.24, 60.74, 60.74, 60.74, 60.9, 60.9, 61.07, 61.07),
    "Seaquest": (None, None, 5.32, 5.51, 5.62, 5.58, 5.7, 5.83, 5.83, 5.83),
    "SpaceInvaders": (17.49, 34.43, 39.46, 45.08, 46.82, 47.4, 50.0, 52.44, 54.68, 57.36),
  },
  "rainbow": {
    "Asterix": (2.11, 16.26, 27.2, 35.66, 38.8, 40.16, 40.63, 41.12, 41.52, 41.8),
    "Breakout": (4.56, 6.83, 7.74, 8.37, 9.02, 9.56, 10.11, 10.61, 11.01, 11.25),
    "Freeway": (25.99, 54.27, 56.7, 56.76, 57.02, 57.14, 57.11, 57.23, 57.22, 57.11),
    "Seaquest": (1.18, 3.99, 4.92, 6.29, 7.08, 7.5, 8.09, 8.49, 9.16, 9.98),
    "SpaceInvaders": (25.36, 46.77, 63.46, 75.96, 81.04, 84.42, 88.24, 90.91, 92.04, 92.41),
  },
}


def _curves(curves, step: int):
  """``{agent: {frames: {env_id: Published}}}`` from ``{agent: {game: values}}``
  with ``values[i]`` at ``(i + 1) * step`` frames."""
  out: dict[str, dict[int, dict[str, Published]]] = {}
  for agent, games in curves.items():
    for game, values in games.items():
      for i, value in enumerate(values):
        if value is not None:
          out.setdefault(agent, {}).setdefault((i + 1) * step, {})[f"minatar:{game}"] = Published(
            value
          )
  return out


REVISITING_RAINBOW = Table(
  name="revisiting-rainbow",
  title=("Obando-Ceron & Castro 2021, Revisiting Rainbow (arXiv:2011.14826)"),
  out="minatar",
  preset="revisiting-rainbow",
  fast_preset="revisiting-rainbow-fast",
  agents=("dqn", "c51", "qrdqn", "mdqn", "rainbow"),
  envs=MINATAR,
  frames=10_000_000,
  seeds=3,
  metric="iteration_return",
  iteration_frames=1_000_000,
  metric_text="mean return of the training episodes of the last 1M frames",
  published=_frozen(_curves(_RR_CURVES, 1_000_000)),
  published_source=(
    "the paper's MinAtar figures, read by pixel (revisiting-rainbow-published.csv, "
    "NOTES.md): mean training return of the 1M frames ending at that count, 10 seeds; "
    "reading error about 0.1 (Breakout, Seaquest) to 0.3 (the rest), QR-DQN's 2M "
    "Breakout 0.3"
  ),
  # Its headline: Rainbow's combination beats DQN on every game at 10M frames.
  orderings=(("rainbow", "dqn"),),
)


#: CleanRL's published classic-control rows (docs/rl-algorithms/dqn.md and
#: c51.md, produced by vwxyzjn/cleanrl 714e786, PR #173: 3 seeds, mean ± std).
_CLEANRL = {
  "dqn": {
    500_000: {
      "CartPole-v1": Published(488.69, 16.11),
      "Acrobot-v1": Published(-91.54, 7.20),
      "MountainCar-v0": Published(-194.95, 8.48),
    }
  },
  "c51": {
    500_000: {
      "CartPole-v1": Published(481.20, 20.53),
      "Acrobot-v1": Published(-87.70, 5.52),
      "MountainCar-v0": Published(-166.38, 27.94),
    }
  },
}

CLEANRL_CLASSIC = Table(
  name="cleanrl-classic",
  title="CleanRL's classic-control DQN and C51 (Huang et al. 2022, JMLR 23(274))",
  out="classic",
  preset="cleanrl-classic",
  fast_preset=None,
  agents=("dqn", "c51", "qrdqn", "mdqn", "rainbow"),
  envs=CLASSIC,
  frames=500_000,
  seeds=10,
  metric="recent_return",
  metric_text="mean return of the last 100 training episodes",
  published=_frozen(_CLEANRL),
  published_source=(
    "vwxyzjn/cleanrl docs/rl-algorithms/dqn.md and c51.md, the tables made by "
    "714e786 (PR #173) over 3 seeds: mean ± std over seeds"
  ),
  reference_agent="dqn",
)

TABLES: dict[str, Table] = {
  t.name: t for t in (YOUNG_TIAN_2019, REVISITING_RAINBOW, CLEANRL_CLASSIC)
}


def get(name: str) -> Table:
  """The table called ``name``.

  Raises:
    ConfigError: no such table; the message lists them.
  """
  if name not in TABLES:
    raise ConfigError(f"--table {name}: unknown table; the tables are {', '.join(TABLES)}.")
  return TABLES[name]


def of_preset(preset: str) -> Table:
  """The table a cell run with ``--preset preset`` belongs to."""
  for table in TABLES.values():
    if preset in (table.preset, table.fast_preset):
      return table
  raise ConfigError(f"no table uses --preset {preset}.")
