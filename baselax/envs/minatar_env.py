"""The MinAtar of the papers: ids ``"minatar:Breakout"`` and the other four games.

gymnax's own MinAtar ids (``"Breakout-MinAtar"``) keep gymnax's defaults:
the minimal action set, no sticky actions, and a 1,000-step episode cap on
Asterix, Breakout, Seaquest and Space Invaders. The MinAtar papers (Young &
Tian 2019, arXiv:1903.03176; Obando-Ceron & Castro 2021, arXiv:2011.14826)
ran the original package's defaults instead, and ``minatar:GAME`` gives
those on gymnax's implementations of the games:

* all 6 actions (``use_minimal_action_set=False``), in the original's order
  no-op, left, up, right, down, fire;
* sticky actions with probability 0.1
  (``gymnax.wrappers.StickyActionWrapper``): with that probability the
  previously executed action repeats. It starts as 0 and carries over from
  one episode to the next, as the original's ``Environment.act`` does;
* difficulty ramping (Asterix, Seaquest and Space Invaders ramp; gymnax's
  Space Invaders always does, as the original does by default);
* no time limit: gymnax's cap is lifted to ``2**31 - 1`` steps, which no
  episode reaches. Freeway keeps its fixed length, which is the game's end:
  the original reports ``terminal`` on its 2,501st frame, and the papers'
  agents do not bootstrap from it, so here too it is a termination on frame
  2,501 (gymnax's own Freeway truncates on frame 2,500).

MinAtar has no frame skip: an env step is a frame. What still differs from
the original package is listed in ``docs/results/minatar/README.md``.
"""

from __future__ import annotations

from typing import Any

import gymnax
import jax
import jax.numpy as jnp
from gymnax.wrappers import StickyActionWrapper

from baselax.envs import suite_env
from baselax.envs.gymnax_env import GymnaxEnv
from baselax.envs.protocol import EnvStep
from baselax.errors import ConfigError

#: ``minatar:GAME`` -> the gymnax id it is built on.
GAMES = {
  "Asterix": "Asterix-MinAtar",
  "Breakout": "Breakout-MinAtar",
  "Freeway": "Freeway-MinAtar",
  "Seaquest": "Seaquest-MinAtar",
  "SpaceInvaders": "SpaceInvaders-MinAtar",
}

#: The original package's default, which both papers used.
STICKY_ACTION_PROB = 0.1

#: The episode cap that stands for "no time limit": int32's largest value.
NO_TIME_LIMIT = 2**31 - 1

#: Games whose fixed length is their end (a termination), in frames: the
#: original's Freeway counts a 2,500-frame timer down to -1.
GAME_LENGTH = {"Freeway": 2501}


def registered_ids() -> tuple[str, ...]:
  """The five games (without the ``minatar:`` prefix)."""
  return tuple(GAMES)


class MinAtarEnv(GymnaxEnv):
  """One MinAtar game with the original package's settings (see the module doc).

  Args:
    game: one of :data:`GAMES` (``"Breakout"``, ...).
    num_envs: copies stepped by the gym API.
    sticky_action_prob: probability in [0, 1] that the previous action
      repeats. Defaults to 0.1.
    difficulty_ramping: the games that ramp up do (Asterix, Seaquest;
      Space Invaders always does: False is refused for it). Defaults to True.
  """

  def __init__(
    self,
    game: str,
    num_envs: int = 1,
    *,
    sticky_action_prob: float = STICKY_ACTION_PROB,
    difficulty_ramping: bool = True,
  ):
    if game not in GAMES:
      raise ConfigError(
        f"Unknown MinAtar game {game!r}; the games are {', '.join(GAMES)} (e.g. minatar:Breakout)."
      )
    if not 0.0 <= sticky_action_prob <= 1.0:
      raise ConfigError(f"sticky_action_prob must be in [0, 1], got {sticky_action_prob!r}.")
    if game == "SpaceInvaders" and not difficulty_ramping:
      raise ConfigError(
        "minatar:SpaceInvaders always ramps up (gymnax's Space Invaders "
        "has no switch for it): leave difficulty_ramping at True."
      )
    env, params = gymnax.make(GAMES[game], use_minimal_action_set=False)
    params = params.replace(max_steps_in_episode=GAME_LENGTH.get(game, NO_TIME_LIMIT))
    if hasattr(params, "ramping"):
      params = params.replace(ramping=bool(difficulty_ramping))
    super().__init__(StickyActionWrapper(env, sticky_action_prob), params, num_envs)
    self.game = game
    shown = {}
    if sticky_action_prob != STICKY_ACTION_PROB:
      shown["sticky_action_prob"] = sticky_action_prob
    if not difficulty_ramping:
      shown["difficulty_ramping"] = False
    self.env_id = suite_env.identity("minatar", game, shown)
    # Episodes end by the game only: no step is ever a truncation.
    self.max_episode_steps = GAME_LENGTH.get(game)
    self.min_truncation_interval = NO_TIME_LIMIT

  def functional_step(self, key: jax.Array, state: Any, actions: jax.Array) -> tuple[Any, EnvStep]:
    """gymnax's step (see :class:`GymnaxEnv`), Freeway's end a termination."""
    state, step = super().functional_step(key, state, actions)
    if self.game in GAME_LENGTH:
      step = step._replace(
        terminated=step.terminated | step.truncated, truncated=jnp.zeros_like(step.truncated)
      )
    return state, step


def make(name: str, num_envs: int = 1, **kwargs: Any) -> MinAtarEnv:
  return MinAtarEnv(name, num_envs, **kwargs)
