"""Stepping gymnasium vector envs from the host: checks, acting, evaluation.

Training steps every env once per vector step, an episode's end and the
next episode's start in the same step (what the replay store's rows need:
one step of every env per add). gymnasium's three autoreset modes give that:

* ``SAME_STEP``: the final observation comes in ``info["final_obs"]``.
* ``NEXT_STEP`` (gymnasium's default) and ``DISABLED`` in gymnasium's
  ``SyncVectorEnv`` and ``AsyncVectorEnv``: finished envs are reset at once
  with ``reset(options={"reset_mask": ...})``, so ``NEXT_STEP``'s reset-only
  step never comes.
* ``NEXT_STEP`` in any other vector env (gymnasium's ``vector_entry_point``
  CartPole, whose reset resets them all): the reset-only step is stored as a
  pad step (``pad`` in the record), which the replay never samples
  (``baselax.replay.store``; uniform sampling only).

Evaluation (:func:`evaluate`) plays whole episodes in any of the three modes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv

from baselax.agents import base as agent_base
from baselax.training.config import DEFAULT_EVAL_MAX_STEPS, TrainingConfig
from baselax.training.jsonarrays import array_from_json, array_to_json


def autoreset_mode(env: gymnasium.vector.VectorEnv) -> AutoresetMode:
  mode = env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
  return AutoresetMode(mode) if not isinstance(mode, AutoresetMode) else mode


def check(env: Any, config: TrainingConfig) -> None:
  if not isinstance(env, gymnasium.vector.VectorEnv):
    raise TypeError(
      f"hostloop.train needs a gymnasium.vector.VectorEnv, got "
      f"{type(env).__name__}; wrap a single env with "
      f"gymnasium.vector.SyncVectorEnv([lambda: env]) or use "
      f"gymnasium.make_vec(env_id, num_envs=N)."
    )
  if env.num_envs != config.num_envs:
    raise ValueError(
      f"config.num_envs ({config.num_envs}) must equal the vector env's num_envs ({env.num_envs})."
    )
  # A TrainingConfig is one run; an AnakinConfig may ask for more.
  if getattr(config, "num_seeds", 1) != 1 or getattr(config, "num_devices", None) not in (None, 1):
    raise ValueError(
      "The host loop runs one seed on one device: set num_seeds=1 and num_devices=None or 1."
    )


def greedy_actions(agent: agent_base.BaseAgent) -> Callable:
  """A jitted ``(params, policy_state, obs, key) -> actions`` with ``evaluation=True``."""
  return jax.jit(lambda p, s, o, k: agent.predict(p, s, o, k, evaluation=True)[0].actions)


def evaluate(
  agent: agent_base.BaseAgent,
  params: Any,
  policy_state: Any,
  env: gymnasium.vector.VectorEnv,
  episodes: int,
  seed: int,
  predict: Callable | None = None,
  max_steps: int | None = None,
) -> np.ndarray:
  """Greedy returns of ``episodes`` episodes on the vector env ``env``.

  ``predict``: a :func:`greedy_actions` to reuse (saves a compile per call).
  ``max_steps``: cap on an episode's length (default 27,000, the Anakin
  trainer's ``DEFAULT_EVAL_MAX_STEPS``). An episode still running at the cap
  counts with its return so far; its env is reset at once with ``DISABLED``
  autoreset, else it idles until that episode ends (all envs at once are
  reset when every one idles). So an evaluation takes at most about
  ``episodes * max_steps`` vector steps, even on an env that never ends.
  """
  max_steps = max_steps or DEFAULT_EVAL_MAX_STEPS
  predict = predict or greedy_actions(agent)
  returns: list[float] = []
  obs, _ = env.reset(seed=seed)
  running = np.zeros(env.num_envs)
  length = np.zeros(env.num_envs, int)
  skip = np.zeros(env.num_envs, bool)  # NEXT_STEP: this step only resets
  idle = np.zeros(env.num_envs, bool)  # cut at max_steps, its episode goes on
  key = jax.random.PRNGKey(seed)
  mode = autoreset_mode(env)
  while len(returns) < episodes:
    if idle.all():
      obs, _ = env.reset()
      skip[:], idle[:] = False, False
    actions = np.asarray(predict(params, policy_state, obs, key))
    obs, reward, terminated, truncated, info = env.step(actions)
    counted = ~(skip | idle)
    running += np.where(counted, reward, 0.0)
    length += counted
    ended = np.logical_or(terminated, truncated)
    cut = counted & ~ended & (length >= max_steps)
    done = counted & ended | cut
    for i in np.flatnonzero(done):
      returns.append(float(running[i]))
      running[i], length[i] = 0.0, 0
    if mode == AutoresetMode.NEXT_STEP:
      skip = ended & ~skip
    if mode == AutoresetMode.DISABLED:
      if done.any():
        obs, _ = env.reset(options={"reset_mask": done})
    else:
      idle = (idle | cut) & ~ended
  return np.asarray(returns[:episodes])


def uses_pads(env: Any) -> bool:
  """Whether ``env``'s reset-only steps are stored as pads (see the module doc)."""
  masked = isinstance(getattr(env, "unwrapped", env), (SyncVectorEnv, AsyncVectorEnv))
  return autoreset_mode(env) == AutoresetMode.NEXT_STEP and not masked


def example_record(env: gymnasium.vector.VectorEnv, agent: Any, key: jax.Array) -> dict[str, Any]:
  """The abstract step record of one env step (``jax.ShapeDtypeStruct`` each,
  no env axis): obs from the env's space, actions as the agent gives them."""
  space = env.single_observation_space
  obs = jax.ShapeDtypeStruct(tuple(space.shape or ()), np.dtype(space.dtype))

  def actions_of(key):
    params = agent.init_params(key)
    batched = jnp.zeros((env.num_envs, *obs.shape), obs.dtype)
    out, _ = agent.predict(params, agent.init_policy(key), batched, key, evaluation=False)
    return out.actions

  actions = jax.eval_shape(actions_of, key)
  flag = jax.ShapeDtypeStruct((), np.dtype(bool))
  record = {
    "obs": obs,
    "action": jax.ShapeDtypeStruct(actions.shape[1:], actions.dtype),
    "reward": jax.ShapeDtypeStruct((), np.dtype(np.float32)),
    "terminated": flag,
    "truncated": flag,
    "next_obs": obs,
    "first": flag,
  }
  if uses_pads(env):
    record["pad"] = flag
  return record


def check_frame_stacks(
  obs: np.ndarray, final_obs: np.ndarray, first: np.ndarray, pad: np.ndarray
) -> None:
  """Refuses observations the frame-stack store would rebuild wrongly.

  ``obs`` ``(n, k, ...)`` acted on, ``final_obs`` what each env showed next
  (the true final observation at an episode's end), ``first``: the step
  starts an episode, ``pad``: the step is no transition (not checked). A
  stack must be the previous one shifted by one frame, and an episode's
  first stack its first frame repeated (gymnasium's
  ``FrameStackObservation``, ``padding_type="reset"``).

  Raises:
    ValueError: naming the env and the fix.
  """
  shifted = np.all(final_obs[:, :-1] == obs[:, 1:], axis=tuple(range(1, obs.ndim)))
  padded = np.all(obs == obs[:, -1:], axis=tuple(range(1, obs.ndim)))
  for env in np.flatnonzero(~pad & (~shifted | (first & ~padded))):
    what = (
      "next observation is not its observation shifted by one frame along axis 0"
      if not shifted[env]
      else "first observation of an episode does not repeat its first frame"
    )
    raise ValueError(
      f"compact_frames: env {env}'s {what}; its observations are not frame stacks "
      f"(gymnasium FrameStackObservation, padding_type='reset'). Store whole "
      f"observations (compact_frames=False) for this env."
    )


class EnvSnapshot(Protocol):
  """Saves and loads a vector env's own state (its emulators, RNGs, wrappers)
  for ``hostloop.train(env_snapshot=)``: as JSON, beside each checkpoint."""

  def save(self, env: Any) -> Any:
    """The env's state, JSON-able."""
    ...

  def load(self, env: Any, saved: Any) -> None:
    """Puts ``env`` (reset once) into the state :meth:`save` gave."""
    ...


class Collector:
  """Steps a vector env with the agent's actions; gives each step's record.

  The transition semantics are the Anakin trainer's: ``next_obs`` is the true
  final observation where an episode ended, ``terminated`` and ``truncated``
  are kept apart, and every env steps once per call (see the module doc).

  Args:
    env: the vector env; ``obs`` its current observations.
    reward_fn: applied to the rewards stored for learning (returns are
      counted on the env's own rewards).
    terminal_fn: ``terminal_fn(terminated, truncated, info) -> terminated``
      stored for learning (the episodes themselves go on).
    frame_stacks: check every step's observations are frame stacks
      (:func:`check_frame_stacks`), for the frame-stack store.
  """

  def __init__(
    self,
    env: gymnasium.vector.VectorEnv,
    obs: Any,
    reward_fn: Callable | None = None,
    terminal_fn: Callable | None = None,
    frame_stacks: bool = False,
  ):
    self.env, self.obs = env, obs
    self.reward_fn, self.terminal_fn = reward_fn, terminal_fn
    self.frame_stacks = frame_stacks
    self.mode = autoreset_mode(env)
    self.pads = uses_pads(env)
    self.first = np.ones(env.num_envs, bool)  # the next step starts an episode
    self.pad = np.zeros(env.num_envs, bool)  # the next step only resets (NEXT_STEP pads)
    self.running = np.zeros(env.num_envs)  # returns of the running episodes
    self.episodes, self.return_sum = 0, 0.0  # episodes ended since the last count()

  def state_dict(self) -> dict[str, Any]:
    """What the collector carries between steps, as JSON (the observations to
    act on, which envs start an episode, the running returns, and
    ``terminal_fn``'s state if it has a ``state_dict``)."""
    out = {
      "obs": array_to_json(np.asarray(self.obs)),
      "first": self.first.tolist(),
      "pad": self.pad.tolist(),
      "running": self.running.tolist(),
    }
    terminal_state = getattr(self.terminal_fn, "state_dict", None)
    if terminal_state is not None:
      out["terminal_fn"] = terminal_state()
    return out

  def load_state_dict(self, state: dict[str, Any]) -> None:
    """Continues from :meth:`state_dict` (the env's own state restored apart)."""
    self.obs = array_from_json(state["obs"])
    self.first = np.asarray(state["first"], bool)
    self.pad = np.asarray(state["pad"], bool)
    self.running = np.asarray(state["running"], np.float64)
    if "terminal_fn" in state:
      getattr(self.terminal_fn, "load_state_dict")(state["terminal_fn"])  # noqa: B009

  def count(self):
    """``(episodes, sum of their returns)`` since the last call."""
    out = (self.episodes, self.return_sum)
    self.episodes, self.return_sum = 0, 0.0
    return out

  def step(self, actions: np.ndarray) -> dict[str, np.ndarray]:
    """One vector step with ``actions``; returns its step record ``(n, ...)``
    (``baselax.replay.records.step_record``'s keys and ``first``)."""
    env = self.env
    # A vector env may write the next observation into the array it
    # returned last (SyncVectorEnv(copy=False), envpool): keep our own
    # copy of the one this transition starts from.
    obs = np.array(self.obs, copy=True)
    next_obs, reward, terminated, truncated, info = env.step(actions)
    done = np.logical_or(terminated, truncated)
    final_obs = np.array(next_obs, copy=True)
    if self.mode == AutoresetMode.SAME_STEP:
      if "final_obs" in info:
        for i in np.flatnonzero(info["_final_obs"]):
          final_obs[i] = info["final_obs"][i]
    elif done.any() and not self.pads:
      next_obs = self.reset_ended(next_obs, done)
    if self.frame_stacks:
      check_frame_stacks(obs, final_obs, self.first, self.pad)
    record = {
      "obs": obs,
      "action": np.asarray(actions),
      "reward": np.asarray(
        reward if self.reward_fn is None else self.reward_fn(np.asarray(reward)), np.float32
      ),
      "terminated": np.asarray(
        terminated if self.terminal_fn is None else self.terminal_fn(terminated, truncated, info),
        bool,
      ),
      "truncated": np.asarray(truncated, bool),
      "next_obs": final_obs,
      "first": self.first & ~self.pad,
    }
    started = done
    if self.pads:
      record["pad"] = self.pad
      # A pad step is a reset, never an episode's end; the step after it
      # starts the episode it began, and the step after an end is a pad.
      done = done & ~self.pad
      started, self.pad = self.pad, done
    self.running += np.where(record.get("pad", False), 0.0, reward)
    self.episodes += int(done.sum())
    self.return_sum += float(self.running[done].sum())
    self.running[done] = 0.0
    self.first, self.obs = started, next_obs
    return record

  def reset_ended(self, next_obs: np.ndarray, done: np.ndarray) -> np.ndarray:
    """Resets the envs that ended (``reset_mask``); the others' observations
    must come back as they were.

    Raises:
      ValueError: the env reset envs outside the mask.
    """
    kept = np.array(next_obs[~done], copy=True)
    obs, _ = self.env.reset(options={"reset_mask": done})
    if not np.array_equal(obs[~done], kept):
      raise ValueError(
        f"{type(self.env).__name__}.reset(options={{'reset_mask': mask}}) changed envs "
        f"outside the mask; the host loop resets ended envs at once and needs masked "
        f"resets: use gymnasium.make_vec(env_id, num_envs, vectorization_mode='sync') "
        f"(SyncVectorEnv and AsyncVectorEnv have them), or an env with "
        f"autoreset_mode=SAME_STEP."
      )
    return obs
