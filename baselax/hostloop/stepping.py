"""Stepping gymnasium vector envs from the host: checks, acting, evaluation.

gymnasium's three autoreset modes are handled:

* ``NEXT_STEP`` (gymnasium's default): the step after an episode ends only
  resets that env; that non-transition is not stored.
* ``SAME_STEP``: the final observation comes in ``info["final_obs"]``.
* ``DISABLED``: finished envs are reset with ``reset(options={"reset_mask": ...})``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium
import jax
import numpy as np
from gymnasium.vector import AutoresetMode

from baselax.agents import base as agent_base
from baselax.training.config import DEFAULT_EVAL_MAX_STEPS, TrainingConfig


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
  if config.n_step != 1 or config.sampling != "uniform":
    raise ValueError(
      "The host loop's replay buffer is uniform and one-step: "
      "n_step>1 and other sampling are Anakin-trainer features "
      "(baselax.anakin.train). Set n_step=1, sampling=uniform."
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


def example_transition(
  env: gymnasium.vector.VectorEnv, act: Callable, params: Any, policy_state: Any, key: jax.Array
) -> dict[str, np.ndarray]:
  """One zero transition with the run's shapes and dtypes (obs from the
  env's space, actions as the agent gives them), to size the buffer."""
  space = env.single_observation_space
  obs = np.zeros((env.num_envs, *(space.shape or ())), space.dtype)
  actions = jax.eval_shape(act, params, policy_state, obs, key)[0]
  zero = lambda shape, dtype: np.zeros(shape, dtype)  # noqa: E731
  return {
    "obs": obs[0],
    "action": zero(actions.shape[1:], actions.dtype),
    "reward": zero((), np.float32),
    "terminated": zero((), bool),
    "next_obs": obs[0],
  }


class Collector:
  """Steps a vector env with the agent's actions and stores each transition.

  The transition semantics are the Anakin trainer's: ``next_obs`` is the true
  final observation where an episode ended, ``terminated`` and ``truncated``
  are kept apart, and a ``NEXT_STEP`` reset step is not a transition.

  Args:
    env: the vector env; ``obs`` its current observations.
    buffer: a host replay buffer (``add(transition, env_ids, ended)``).
    reward_fn: applied to the rewards stored for learning (returns are
      counted on the env's own rewards).
    terminal_fn: ``terminal_fn(terminated, truncated, info) -> terminated``
      stored for learning (the episodes themselves go on).
  """

  def __init__(
    self,
    env: gymnasium.vector.VectorEnv,
    buffer: Any,
    obs: np.ndarray,
    reward_fn: Callable | None = None,
    terminal_fn: Callable | None = None,
  ):
    self.env, self.buffer, self.obs = env, buffer, obs
    self.reward_fn, self.terminal_fn = reward_fn, terminal_fn
    self.mode = autoreset_mode(env)
    self.skip = np.zeros(env.num_envs, bool)  # NEXT_STEP: this step only resets
    self.running = np.zeros(env.num_envs)  # returns of the running episodes
    self.episodes, self.return_sum = 0, 0.0  # episodes ended since the last count()

  def count(self):
    """``(episodes, sum of their returns)`` since the last call."""
    out = (self.episodes, self.return_sum)
    self.episodes, self.return_sum = 0, 0.0
    return out

  def step(self, actions: np.ndarray) -> None:
    """One vector step with ``actions``; its transitions go to the buffer."""
    env = self.env
    # A vector env may write the next observation into the array it
    # returned last (SyncVectorEnv(copy=False), envpool): keep our own
    # copy of the one this transition starts from.
    obs = np.array(self.obs, copy=True)
    next_obs, reward, terminated, truncated, info = env.step(actions)
    done = np.logical_or(terminated, truncated)
    final_obs = next_obs  # the buffer copies on add; copy here only to patch
    if self.mode == AutoresetMode.SAME_STEP and "final_obs" in info:
      final_obs = np.array(next_obs, copy=True)
      for i in np.flatnonzero(info["_final_obs"]):
        final_obs[i] = info["final_obs"][i]
    keep = ~self.skip
    stored = reward if self.reward_fn is None else self.reward_fn(np.asarray(reward))
    stored_terminated = (
      terminated if self.terminal_fn is None else self.terminal_fn(terminated, truncated, info)
    )
    transition = {
      "obs": obs,
      "action": actions,
      "reward": stored,
      "terminated": stored_terminated,
      "next_obs": final_obs,
    }
    if keep.all():
      self.buffer.add(transition, np.arange(env.num_envs), done)
    elif keep.any():
      self.buffer.add(
        {k: np.asarray(v)[keep] for k, v in transition.items()}, np.flatnonzero(keep), done[keep]
      )
    self.running += np.where(keep, reward, 0.0)
    finished = np.logical_and(done, keep)
    self.episodes += int(finished.sum())
    self.return_sum += float(self.running[finished].sum())
    self.running[finished] = 0.0
    if self.mode == AutoresetMode.NEXT_STEP:
      self.skip = finished
    elif self.mode == AutoresetMode.DISABLED and done.any():
      next_obs, _ = env.reset(options={"reset_mask": done})
    self.obs = next_obs
