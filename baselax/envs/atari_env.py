"""Atari (the Arcade Learning Environment) with DQN's preprocessing, as a gymnasium env.

ale-py's ``AtariEnv`` with ``frameskip=1``, then gymnasium's
``AtariPreprocessing`` (noop reset, frame skip with a max-pool of the last two
frames, 84x84 grayscale) and ``FrameStackObservation``: observations are uint8
``(4, 84, 84)``, channels first, the input of
:func:`baselax.networks.nature_q_network`. An episode is a whole game, cut at
108,000 frames (27,000 agent steps) as a truncation, not a termination.
Reward clipping and terminal on life loss are learning signals applied by
the host loop (``reward_fn``, ``terminal_fn``; :class:`LifeLossTerminal`), so
returns are game scores. :func:`make_env` builds one, :func:`make_vector_env`
a ``SyncVectorEnv`` of them. The experiment that trains on them is
``baselax.atari``.

Needs ale-py (``pip install -e ".[atari]"``; its ROMs ship with it).
"""

from __future__ import annotations

import base64
import dataclasses
import difflib
from collections.abc import Sequence
from typing import Any

import numpy as np

from baselax.errors import ConfigError

INSTALL = "pip install -e '.[atari]'"


@dataclasses.dataclass(frozen=True)
class AtariConfig:
  """DQN's Atari preprocessing (Mnih et al. 2015; Machado et al. 2018 for the
  episode cap and sticky actions).

  Attributes:
    noop_max: at a reset, take a random number of no-op actions in [1, noop_max] (0: none), so
      episodes start in different states.
    frame_skip: emulator frames per agent step (the action is repeated); the observation is the max
      of the last two frames (Atari sprites flicker).
    screen_size: frames are resized to screen_size x screen_size grayscale.
    frame_stack: observations stack the last frame_stack frames, channels first: (frame_stack,
      screen_size, screen_size) uint8.
    terminal_on_life_loss: a lost life is a terminal transition for learning (no bootstrap past it)
      while the game goes on, as the Nature paper's (and CleanRL's EpisodicLifeEnv); Machado et al.
      2018 advise against it. Returns are always whole games.
    repeat_action_probability: sticky actions: each emulator frame repeats the previous action with
      this probability; none = the id's own (v5: 0.25, v4 and NoFrameskip-v4: 0).
    max_episode_frames: emulator frames after which an episode is truncated (not terminated):
      108,000 = 30 minutes of play = 27,000 agent steps at frame_skip 4.
    clip_rewards: learn from the sign of each reward (DQN's reward clipping); returns are always
      reported in game score.
  """

  noop_max: int = 30
  frame_skip: int = 4
  screen_size: int = 84
  frame_stack: int = 4
  terminal_on_life_loss: bool = False
  repeat_action_probability: float | None = None
  max_episode_frames: int = 108_000
  clip_rewards: bool = True

  def __post_init__(self):
    for name, low in (
      ("noop_max", 0),
      ("frame_skip", 1),
      ("screen_size", 8),
      ("frame_stack", 1),
      ("max_episode_frames", 1),
    ):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}.")
    p = self.repeat_action_probability
    if p is not None and not 0.0 <= p <= 1.0:
      raise ConfigError(f"repeat_action_probability must be in [0, 1] (or none), got {p!r}.")


def _ale():
  """Imports ale-py (registering its envs with gymnasium), or says how to install it."""
  try:
    import ale_py
    import cv2  # noqa: F401  (gymnasium's AtariPreprocessing resizes with it)
  except ImportError as error:
    raise ConfigError(
      f"Atari needs ale-py (its ROMs ship with it) and OpenCV: {INSTALL} ({error})."
    ) from error
  import gymnasium

  gymnasium.register_envs(ale_py)
  return ale_py


def atari_ids() -> Sequence[str]:
  """Every gymnasium id registered by ale-py (``ALE/Pong-v5``, ``PongNoFrameskip-v4``, ...)."""
  _ale()
  import gymnasium

  return sorted(
    k for k, spec in gymnasium.registry.items() if str(spec.entry_point).startswith("ale_py")
  )


def check_env_id(env_id: str) -> None:
  """Refuses an id ale-py does not register (one line, with close matches).

  Raises:
    ConfigError: ale-py is missing, or ``env_id`` is not an Atari id.
  """
  ids = atari_ids()
  if env_id in ids:
    return
  close = difflib.get_close_matches(env_id, ids, n=3)
  hint = f"did you mean {', '.join(close)}? " if close else ""
  raise ConfigError(
    f"env_id {env_id!r} is not an Atari id of ale-py: {hint}ids are "
    f"ALE/<Game>-v5 (e.g. ALE/Pong-v5, ALE/Breakout-v5), "
    f"<Game>NoFrameskip-v4, ...; {len(ids)} in all."
  )


def make_env(env_id: str, config: AtariConfig = AtariConfig()) -> Any:
  """One Atari env with DQN's preprocessing (see the module doc).

  Observations ``(frame_stack, screen_size, screen_size)`` uint8; rewards in
  game score; an episode is a whole game, ``truncated`` at
  ``max_episode_frames`` (reward clipping and terminal on life loss are
  learning signals: ``hostloop.train(reward_fn=, terminal_fn=)``).
  """
  _ale()
  import gymnasium
  from gymnasium import wrappers

  kwargs: dict[str, Any] = dict(
    frameskip=1,  # AtariPreprocessing skips and max-pools
    max_num_frames_per_episode=config.max_episode_frames,
  )
  if config.repeat_action_probability is not None:
    kwargs["repeat_action_probability"] = config.repeat_action_probability
  env = gymnasium.make(env_id, disable_env_checker=True, **kwargs)
  env = wrappers.AtariPreprocessing(
    env,
    noop_max=config.noop_max,
    frame_skip=config.frame_skip,
    screen_size=config.screen_size,
    # A life loss is a learning signal (LifeLossTerminal), not an episode
    # end: with the wrapper's own flag every lost life would reset the game.
    terminal_on_life_loss=False,
    grayscale_obs=True,
    scale_obs=False,
  )
  return wrappers.FrameStackObservation(env, config.frame_stack)


class LifeLossTerminal:
  """DQN's terminal on life loss, for ``hostloop.train(terminal_fn=...)``.

  Marks a transition terminated when the env's ``info["lives"]`` dropped in
  it, so learning does not bootstrap past a lost life, while the game itself
  goes on (no reset). A step that ended the episode is left as the env says
  (with ``SAME_STEP`` autoreset its info is the next game's).
  """

  def __init__(self):
    self.lives: np.ndarray | None = None

  def state_dict(self) -> dict[str, Any]:
    """The lives it last saw (a checkpoint's part of a resumable run)."""
    return {"lives": None if self.lives is None else np.asarray(self.lives).tolist()}

  def load_state_dict(self, state: dict[str, Any]) -> None:
    self.lives = None if state["lives"] is None else np.asarray(state["lives"])

  def __call__(
    self, terminated: np.ndarray, truncated: np.ndarray, info: dict[str, Any]
  ) -> np.ndarray:
    lives = np.asarray(info["lives"])
    lost = np.zeros_like(terminated, bool) if self.lives is None else lives < self.lives
    self.lives = lives
    return np.logical_or(terminated, lost & ~np.logical_or(terminated, truncated))


def make_vector_env(env_id: str, num_envs: int, config: AtariConfig = AtariConfig()) -> Any:
  """``num_envs`` of :func:`make_env` in a gymnasium ``SyncVectorEnv``.

  Autoreset is ``SAME_STEP``: an env whose episode ends returns the next
  episode's first observation, the true final one in ``info["final_obs"]``
  (which the host loop stores as ``next_obs``), and no step is lost to resets.
  """
  import gymnasium
  from gymnasium.vector import AutoresetMode

  return gymnasium.vector.SyncVectorEnv(
    [lambda: make_env(env_id, config)] * num_envs, autoreset_mode=AutoresetMode.SAME_STEP
  )


class AtariSnapshot:
  """The state of a :func:`make_vector_env`'s games, for ``hostloop.train(env_snapshot=)``.

  Per game: the emulator (``cloneState(include_rng=True)``: RAM, CPU and the
  sticky-action RNG), the numpy RNG of its no-op resets, the frame-skip
  wrapper's max-pool buffer and lives, and the frame stack; as JSON, so a
  resumed run continues the same games, step for step.
  """

  def save(self, env: Any) -> list[dict[str, Any]]:
    """The games' state, JSON-able."""
    from baselax.training.jsonarrays import array_to_json

    out = []
    for game in env.envs:
      stack, pre, atari = _layers(game)
      state = atari.ale.cloneState(include_rng=True).serialize()
      out.append(
        {
          "ale": base64.b64encode(state).decode(),
          "np_random": atari.np_random.bit_generator.state,
          "lives": int(pre.lives),
          "game_over": bool(pre.game_over),
          "obs_buffer": [array_to_json(x) for x in pre.obs_buffer],
          "frames": [array_to_json(x) for x in stack.obs_queue],
        }
      )
    return out

  def load(self, env: Any, saved: list[dict[str, Any]]) -> None:
    """Puts the games of ``env`` (reset once) into the state :meth:`save` gave.

    Raises:
      ValueError: ``saved`` is of another number of games.
    """
    import ale_py

    from baselax.training.jsonarrays import array_from_json

    if len(saved) != len(env.envs):
      raise ValueError(f"the snapshot holds {len(saved)} games, the env has {len(env.envs)}.")
    for game, state in zip(env.envs, saved, strict=True):
      stack, pre, atari = _layers(game)
      atari.ale.restoreState(ale_py.ALEState(base64.b64decode(state["ale"])))
      atari.np_random.bit_generator.state = state["np_random"]
      pre.lives, pre.game_over = state["lives"], state["game_over"]
      for i, x in enumerate(state["obs_buffer"]):
        pre.obs_buffer[i][...] = array_from_json(x)
      stack.obs_queue.clear()
      stack.obs_queue.extend(array_from_json(x) for x in state["frames"])


def _layers(game: Any) -> tuple[Any, Any, Any]:
  """``(frame stack, preprocessing, ale-py env)`` of one :func:`make_env` game."""
  from gymnasium import wrappers

  layers: dict[type, Any] = {}
  layer = game
  while hasattr(layer, "env"):
    layers[type(layer)] = layer
    layer = layer.env
  return (
    layers[wrappers.FrameStackObservation],
    layers[wrappers.AtariPreprocessing],
    game.unwrapped,
  )
