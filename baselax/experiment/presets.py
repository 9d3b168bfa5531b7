"""Presets: a paper's setting by name (``--preset NAME``).

A preset is a documented group of flag defaults, with its source: the
agent's and the trainer's settings of one paper's experiments. It only
moves defaults; flags given on the command line still win, and
``config.json`` records the preset's name with every value the run used.

    python experiments/anakin_dqn.py --preset young-tian-2019 --env-id minatar:Asterix
    python experiments/anakin_dqn.py --preset revisiting-rainbow --agent rainbow

Each paper comes twice: as published (one env, the paper's replay ratio)
and as ``NAME-fast``, the same frame budget the Anakin way (many envs, fewer
and larger updates), for the wall-clock column of ``scripts/table.py``.
Adding a preset is one :class:`Preset` and one line in :data:`PRESETS`.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping
from typing import Any

from baselax.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Preset:
  """A named group of flag defaults.

  Attributes:
    name: what ``--preset`` takes.
    source: where the values come from (paper, and the file they were read in).
    summary: one line for ``--help``.
    common: ``{field: value}`` for every agent of the preset (experiment,
      agent and trainer fields alike).
    agents: ``{agent name: {field: value}}``: the agents the preset is for,
      each with its own values on top of ``common``.
    changes: ``{field: value}`` on top of both (what a faster form changes).
  """

  name: str
  source: str
  summary: str
  common: Mapping[str, Any]
  agents: Mapping[str, Mapping[str, Any]]
  changes: Mapping[str, Any] = dataclasses.field(default_factory=lambda: types.MappingProxyType({}))

  def values(self, agent: str) -> dict[str, Any]:
    """The flag defaults for ``agent``.

    Raises:
      ConfigError: the preset has no values for ``agent``.
    """
    if agent not in self.agents:
      raise ConfigError(
        f"--preset {self.name} is for --agent {' or '.join(self.agents)}, "
        f"not {agent}: pick one of them, or another preset."
      )
    return {**self.common, **self.agents[agent], **self.changes}

  @property
  def default_agent(self) -> str:
    return next(iter(self.agents))

  def faster(self, name: str, summary: str, **changes: Any) -> Preset:
    """This preset with ``changes`` on top of every agent's values."""
    return dataclasses.replace(
      self, name=name, summary=summary, changes=_frozen({**self.changes, **changes})
    )


def _frozen(values: Mapping[str, Any]) -> Mapping[str, Any]:
  return types.MappingProxyType(dict(values))


def _preset(name, source, summary, common, agents) -> Preset:
  return Preset(
    name, source, summary, _frozen(common), _frozen({a: _frozen(v) for a, v in agents.items()})
  )


YOUNG_TIAN_2019 = _preset(
  "young-tian-2019",
  "Young & Tian 2019, MinAtar (arXiv:1903.03176); kenjyoung/MinAtar examples/dqn.py",
  "DQN as in the MinAtar paper: conv 16 3x3 valid, dense 128, Huber, centered "
  "RMSProp, one update of 32 per frame, 5M frames",
  common={
    "env_id": "minatar:Breakout",
    "total_env_steps": 5_000_000,
    # One env and one update of a batch of 32 per frame, from a 100k buffer
    # after 5,000 frames of uniformly random actions.
    "num_envs": 1,
    "train_every": 1,
    "batch_size": 32,
    "buffer_size": 100_000,
    "learning_starts": 5_000,
    "eval_every": 250_000,
    # Conv(16, 3x3, stride 1, VALID) -> ReLU -> Dense 128 -> ReLU -> Dense(A).
    "network": "conv",
    "conv_padding": "valid",
    "hidden_sizes": (128,),
    # torch RMSprop(lr=2.5e-4, alpha=0.95, centered=True, eps=0.01).
    "optimizer": "rmsprop",
    "optimizer_eps": 0.01,
    "learning_rate": 2.5e-4,
    "lr_decay": False,
    "discount_factor": 0.99,
    # Epsilon 1.0 for the random frames, then 1.0 -> 0.1 over 100k frames.
    "epsilon_start": 1.0,
    "epsilon_end": 0.1,
    "exploration_steps": 100_000,
    "target_update_interval": 1_000,
  },
  agents={"dqn": {"huber_delta": 1.0}},
)

#: The common MinAtar settings of Obando-Ceron & Castro 2021: their gin files
#: (JohanSamir/revisiting_rainbow 7cd2bc6, revisiting_rainbow/Configs) and
#: Dopamine 3.1.8's defaults where those are silent.
_REVISITING_COMMON = {
  "env_id": "minatar:Breakout",
  "total_env_steps": 10_000_000,
  # One env; an update of 32 every 4 frames once 1,000 frames are stored.
  "num_envs": 1,
  "train_every": 4,
  "batch_size": 32,
  "buffer_size": 100_000,
  "learning_starts": 1_000,
  "eval_every": 500_000,
  # Conv(16, 3x3, SAME) -> ReLU -> Dense(A): no hidden layer.
  "network": "conv",
  "conv_padding": "same",
  "hidden_sizes": (),
  "optimizer": "adam",
  "optimizer_eps": 3.125e-4,
  "lr_decay": False,
  "discount_factor": 0.99,
  # Dopamine's linearly decaying epsilon: 1.0 during the 1,000 warm-up
  # frames, then to 0.01 over 250k frames.
  "epsilon_start": 1.0,
  "epsilon_end": 0.01,
  "exploration_steps": 250_000,
  # Dopamine counts target_update_period=1000 in frames: 250 updates.
  "target_update_interval": 250,
  # Dopamine's runner clips the rewards the agent sees to [-1, 1].
  "reward_clip": 1.0,
}

REVISITING_RAINBOW = _preset(
  "revisiting-rainbow",
  "Obando-Ceron & Castro 2021, Revisiting Rainbow (arXiv:2011.14826); "
  "JohanSamir/revisiting_rainbow revisiting_rainbow/Configs/*_minatar.gin",
  "the Revisiting Rainbow MinAtar agents: conv 16 3x3 same, no hidden layer, Adam "
  "eps 3.125e-4, an update of 32 every 4 frames, 10M frames",
  common=_REVISITING_COMMON,
  agents={
    # Huber: the files had mse_inf=False until 2021-05-25, after the
    # paper's figures (the published DQN curves are Huber DQN's).
    "dqn": {"learning_rate": 2.5e-4, "huber_delta": 1.0},
    # No C51 file: Rainbow's distribution (51 atoms on [-100, 100], lr
    # 1e-4) without Rainbow's additions.
    "c51": {"learning_rate": 1e-4, "num_atoms": 51, "v_min": -100.0, "v_max": 100.0},
    "qrdqn": {"learning_rate": 1e-4, "num_quantiles": 51, "kappa": 1.0},
    # M-DQN is the DQN file with target_opt=2.
    "mdqn": {
      "learning_rate": 2.5e-4,
      "huber_delta": 1.0,
      "munchausen_tau": 0.03,
      "munchausen_alpha": 0.9,
      "munchausen_l0": -1.0,
    },
    # Dopamine's prioritized replay: priorities sqrt(loss) (exponent 0.5)
    # and importance weights 1 / sqrt(P) (a constant beta of 0.5).
    "rainbow": {
      "learning_rate": 1e-4,
      "num_atoms": 51,
      "v_min": -100.0,
      "v_max": 100.0,
      "n_step": 3,
      "sampling": "prioritized",
      "priority_exponent": 0.5,
      "importance_exponent": 0.5,
      "importance_exponent_end": 0.5,
      "noisy": True,
      "dueling": True,
      "double_dqn": True,
    },
  },
)

#: The Anakin way to spend the same frames: 4 envs stepped together and one
#: update of 32 per step of all 4, a replay ratio of 8 samples per frame (the
#: Revisiting Rainbow ratio, a quarter of Young & Tian's), the target copied
#: every 1,000 frames as in both papers. Fewer, larger updates (16 envs,
#: batches of 128) cost the same per frame on a CPU and learned less per
#: frame (docs/results/minatar/NOTES.md).
_FAST = {"num_envs": 4, "train_every": 1, "batch_size": 32, "target_update_interval": 250}

#: Adam's epsilon in CleanRL's c51.py, ``0.01 / batch_size`` (Bellemare et
#: al. 2017's 0.01 / 32 at their batch of 32).
_CLEANRL_EPS = 0.01 / 128

CLEANRL_CLASSIC = _preset(
  "cleanrl-classic",
  "CleanRL's cleanrl/dqn.py and cleanrl/c51.py at 714e786 (PR #173), the commit "
  "whose runs made docs/rl-algorithms/dqn.md's and c51.md's classic-control tables",
  "CleanRL's classic-control DQN and C51: one env, an update of 128 every 10 steps "
  "from a 10k buffer, a 120-84 MLP, Adam 2.5e-4, 500k steps",
  common={
    "env_id": "CartPole-v1",
    "total_env_steps": 500_000,
    # One env; after 10,000 steps an update of 128 every 10 steps, from a
    # 10k buffer (SB3's ReplayBuffer, timeouts bootstrap).
    "num_envs": 1,
    "train_every": 10,
    "batch_size": 128,
    "buffer_size": 10_000,
    "learning_starts": 10_000,
    "eval_every": 10_000,
    # Linear(obs, 120) -> ReLU -> Linear(120, 84) -> ReLU -> Linear(84, A).
    "network": "mlp",
    "hidden_sizes": (120, 84),
    # torch Adam(lr=2.5e-4): eps 1e-8, no decay, no gradient clipping (the
    # docs' --max-grad-norm 0.5 was removed from the scripts by 714e786).
    "optimizer": "adam",
    "learning_rate": 2.5e-4,
    "lr_decay": False,
    "max_grad_norm": None,
    "discount_factor": 0.99,
    # linear_schedule(1, 0.05, 0.5 * total_timesteps, global_step): from
    # step 0, over half the run.
    "epsilon_start": 1.0,
    "epsilon_end": 0.05,
    "exploration_fraction": 0.5,
    "exploration_steps": None,
    # The target is copied every 500 steps once learning starts: every 50
    # updates of one per 10 steps.
    "target_update_interval": 50,
  },
  agents={
    # MSE loss: the gradient of 0.5 td^2 times 2, which Adam's update
    # does not see (it divides by the gradient's own scale).
    "dqn": {},
    # 101 atoms on [-100, 100], Adam eps 0.01 / batch_size.
    "c51": {"num_atoms": 101, "v_min": -100.0, "v_max": 100.0, "optimizer_eps": _CLEANRL_EPS},
    # Not in CleanRL: the papers' own settings on top of the preset.
    # QR-DQN (Dabney et al. 2018): Adam eps 0.01 / batch size as C51. Their
    # kappa of 1 was set for Atari's rewards clipped to [-1, 1]; here the
    # values reach 100 and with kappa 1 the quantile Huber loss saturates
    # and diverged (10 seeds on CartPole-v1: 9.6 ± 0.1, q_mean 4e5; DQN
    # with --huber diverges alike). kappa 10 keeps it quadratic at
    # CartPole's TD errors (docs/results/classic/NOTES.md).
    "qrdqn": {"num_quantiles": 51, "kappa": 10.0, "optimizer_eps": _CLEANRL_EPS},
    # M-DQN (Vieillard et al. 2020): tau 0.03, alpha 0.9, l0 -1.
    "mdqn": {"munchausen_tau": 0.03, "munchausen_alpha": 0.9, "munchausen_l0": -1.0},
    # Rainbow (Hessel et al. 2018) on C51's support: 3-step returns,
    # prioritized replay (exponent 0.5, beta 0.4 -> 1), noisy dueling
    # network, Double targets.
    "rainbow": {
      "num_atoms": 101,
      "v_min": -100.0,
      "v_max": 100.0,
      "optimizer_eps": _CLEANRL_EPS,
      "n_step": 3,
      "sampling": "prioritized",
      "priority_exponent": 0.5,
      "importance_exponent": 0.4,
      "importance_exponent_end": 1.0,
    },
  },
)

PRESETS: dict[str, Preset] = {
  p.name: p
  for p in (
    YOUNG_TIAN_2019,
    # A quarter of the updates, at four times the step size.
    YOUNG_TIAN_2019.faster(
      "young-tian-2019-fast",
      "young-tian-2019 the Anakin way: 4 envs, an update of 32 per 4 frames at 4x the step size",
      learning_rate=1e-3,
      **_FAST,
    ),
    REVISITING_RAINBOW,
    REVISITING_RAINBOW.faster(
      "revisiting-rainbow-fast",
      "revisiting-rainbow the Anakin way: 4 envs stepped together, the same updates",
      **_FAST,
    ),
    CLEANRL_CLASSIC,
  )
}


def get(name: str) -> Preset:
  """The preset called ``name``.

  Raises:
    ConfigError: no such preset; the message lists them.
  """
  if name not in PRESETS:
    raise ConfigError(
      f"--preset {name}: unknown preset; the presets are "
      f"{', '.join(PRESETS)} (listed with their sources by --help)."
    )
  return PRESETS[name]


def names() -> tuple[str, ...]:
  return tuple(PRESETS)


def help_text() -> str:
  """The presets, their agents and sources, for ``--help``."""
  return "presets (--preset NAME):\n" + "\n".join(
    f"  {p.name} [{', '.join(p.agents)}]: {p.summary}. Source: {p.source}."
    for p in PRESETS.values()
  )
