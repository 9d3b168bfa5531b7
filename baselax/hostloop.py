"""A classic host-loop trainer for environments that are not written in JAX.

The same ``BaseAgent`` objects and the same ``AnakinConfig`` fields, trained by
a Python loop over any ``gymnasium.vector.VectorEnv`` (Atari through ale-py,
envpool, a user's simulator, or a ``baselax.envs.GymnaxEnv``): jitted
``predict`` and ``update``, a numpy replay buffer in host memory, and the same
transition semantics as the Anakin trainer (``next_obs`` is the true final
observation at an episode's end; terminated and truncated kept apart).
gymnasium's three autoreset modes are handled:

* ``NEXT_STEP`` (gymnasium's default): the step after an episode ends only
  resets that env; that non-transition is not stored.
* ``SAME_STEP``: the final observation comes in ``info["final_obs"]``.
* ``DISABLED``: finished envs are reset with ``reset(options={"reset_mask": ...})``.

It is also the baseline that ``scripts/bench.py`` compares Anakin with: every
step crosses between Python and the accelerator, which Anakin never does.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Dict, List, Optional

import gymnasium
import jax
import numpy as np
from gymnasium.vector import AutoresetMode

from baselax.agents import base as agent_base
from baselax.anakin.config import DEFAULT_EVAL_MAX_STEPS, AnakinConfig
from baselax.metrics import (ChunkRecord, TrainResult, format_record, scalar_fields,
                             stack_history, zero_scalars)

logger = logging.getLogger("baselax.hostloop")


class ReplayBuffer:
  """A uniform ring buffer of transitions in host (numpy) memory.

  Args:
    capacity: number of transitions kept.
    example: one transition ``{key: array}`` (no batch axis) giving shapes and
      dtypes.
  """

  def __init__(self, capacity: int, example: Dict[str, np.ndarray]):
    self.capacity = capacity
    self.storage = {k: np.zeros((capacity, *np.shape(v)), np.asarray(v).dtype)
                    for k, v in example.items()}
    self.index = 0
    self.size = 0

  @property
  def nbytes(self) -> int:
    return sum(v.nbytes for v in self.storage.values())

  def add(self, batch: Dict[str, np.ndarray]) -> None:
    """Adds a batch ``{key: (n, ...)}`` of transitions."""
    n = len(next(iter(batch.values())))
    idx = (self.index + np.arange(n)) % self.capacity
    for k, v in batch.items():
      self.storage[k][idx] = v
    self.index = (self.index + n) % self.capacity
    self.size = min(self.size + n, self.capacity)

  def sample(self, rng: np.random.Generator, batch_size: int) -> Dict[str, np.ndarray]:
    idx = rng.integers(0, self.size, batch_size)
    return {k: v[idx] for k, v in self.storage.items()}


def _autoreset_mode(env: gymnasium.vector.VectorEnv) -> AutoresetMode:
  mode = env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
  return AutoresetMode(mode) if not isinstance(mode, AutoresetMode) else mode


def _check(env: Any, config: AnakinConfig) -> None:
  if not isinstance(env, gymnasium.vector.VectorEnv):
    raise TypeError(
        f"hostloop.train needs a gymnasium.vector.VectorEnv, got "
        f"{type(env).__name__}; wrap a single env with "
        f"gymnasium.vector.SyncVectorEnv([lambda: env]) or use "
        f"gymnasium.make_vec(env_id, num_envs=N).")
  if env.num_envs != config.num_envs:
    raise ValueError(f"config.num_envs ({config.num_envs}) must equal the vector "
                     f"env's num_envs ({env.num_envs}).")
  if config.num_seeds != 1 or config.num_devices not in (None, 1):
    raise ValueError("The host loop runs one seed on one device: set "
                     "num_seeds=1 and num_devices=None or 1.")
  if config.n_step != 1 or config.prioritized:
    raise ValueError("The host loop's replay buffer is uniform and one-step: "
                     "n_step>1 and prioritized=True are Anakin-trainer features "
                     "(baselax.anakin.train). Set n_step=1, prioritized=False.")


def greedy_actions(agent: agent_base.BaseAgent) -> Callable:
  """A jitted ``(params, policy_state, obs, key) -> actions`` with ``evaluation=True``."""
  return jax.jit(
      lambda p, s, o, k: agent.predict(p, s, o, k, evaluation=True)[0].actions)


def evaluate(agent: agent_base.BaseAgent, params: Any, policy_state: Any,
             env: gymnasium.vector.VectorEnv, episodes: int, seed: int,
             predict: Optional[Callable] = None,
             max_steps: Optional[int] = None) -> np.ndarray:
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
  returns: List[float] = []
  obs, _ = env.reset(seed=seed)
  running = np.zeros(env.num_envs)
  length = np.zeros(env.num_envs, int)
  skip = np.zeros(env.num_envs, bool)  # NEXT_STEP: this step only resets
  idle = np.zeros(env.num_envs, bool)  # cut at max_steps, its episode goes on
  key = jax.random.PRNGKey(seed)
  mode = _autoreset_mode(env)
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


def train(agent: agent_base.BaseAgent, env: gymnasium.vector.VectorEnv,
          config: AnakinConfig, *, eval_env: Optional[gymnasium.vector.VectorEnv] = None,
          on_chunk: Optional[Callable[[ChunkRecord], Any]] = None) -> TrainResult:
  """Trains ``agent`` on a gymnasium vector env with a Python loop.

  ``config`` fields mean what they mean for the Anakin trainer (env steps
  counted over all envs; one update after every ``train_every`` env
  iterations once learning has started, at the same env step as in the
  Anakin trainer: see ``AnakinConfig.learning_starts``); ``num_seeds``
  must be 1 and ``num_devices`` None or 1. Evaluation (greedy, every
  ``eval_every`` env steps) runs on ``eval_env`` when given, else is skipped
  (``eval_return`` is NaN).

  Returns:
    A ``TrainResult`` with the Anakin runner's metric names (leading seed axis
    of size 1); ``state`` holds the final host-side objects.
  """
  _check(env, config)
  derived = config.derive(1)
  mode = _autoreset_mode(env)
  key = jax.random.PRNGKey(config.seed)
  params_key, policy_key, key = jax.random.split(key, 3)
  params = agent.init_params(params_key)
  optimizer_state = agent.init_optimizer(params, params_key)
  policy_state = agent.init_policy(policy_key)

  @jax.jit
  def act(params, policy_state, obs, key):
    key, act_key = jax.random.split(key)
    out, policy_state = agent.predict(params, policy_state, obs, act_key,
                                      evaluation=False)
    return out.actions, policy_state, key

  # Only an agent whose update draws randomness gets a key (AgentContract.update_key).
  update_key = agent_base.contract_of(agent).update_key

  @jax.jit
  def learn(params, optimizer_state, batch, sums, key):
    """One update; the logged scalars are summed on device (no eager host ops)."""
    kwargs = {"key": jax.random.fold_in(key, 1)} if update_key else {}
    out, params, optimizer_state = agent.update(params, optimizer_state, batch,
                                                **kwargs)
    scalars = scalar_fields(out)
    sums = {k: sums[k] + v for k, v in scalars.items()}
    return sums, params, optimizer_state

  greedy = greedy_actions(agent)
  rng = np.random.default_rng(config.seed)
  obs, _ = env.reset(seed=config.seed)
  buffer: Optional[ReplayBuffer] = None
  skip = np.zeros(env.num_envs, bool)  # NEXT_STEP: this step only resets
  running = np.zeros(env.num_envs)
  iterations_per_chunk = derived.steps_per_chunk * config.train_every
  learning_starts_iteration = derived.learning_starts_step * config.train_every
  history: List[ChunkRecord] = []
  t_start = time.perf_counter()
  iteration = 0
  for c in range(derived.num_chunks):
    t0 = time.perf_counter()
    sums: Dict[str, Any] = {}  # per-chunk sums of the logged scalars, on device
    updates = 0
    episodes, return_sum = 0, 0.0
    for _ in range(iterations_per_chunk):
      actions, policy_state, key = act(params, policy_state, obs, key)
      actions = np.asarray(actions)
      # A vector env may write the next observation into the array it
      # returned last (SyncVectorEnv(copy=False), envpool): keep our own copy
      # of the one this transition starts from.
      obs = np.array(obs, copy=True)
      next_obs, reward, terminated, truncated, info = env.step(actions)
      done = np.logical_or(terminated, truncated)
      final_obs = next_obs  # the buffer copies on add; copy here only to patch
      if mode == AutoresetMode.SAME_STEP and "final_obs" in info:
        final_obs = np.array(next_obs, copy=True)
        for i in np.flatnonzero(info["_final_obs"]):
          final_obs[i] = info["final_obs"][i]
      keep = ~skip
      transition = {"obs": obs, "action": actions, "reward": reward,
                    "terminated": terminated, "next_obs": final_obs}
      if buffer is None:
        buffer = ReplayBuffer(config.buffer_size,
                              {k: np.asarray(v)[0] for k, v in transition.items()})
      buffer.add(transition if keep.all() else
                 {k: np.asarray(v)[keep] for k, v in transition.items()})
      running += np.where(keep, reward, 0.0)
      finished = np.logical_and(done, keep)
      episodes += int(finished.sum())
      return_sum += float(running[finished].sum())
      running[finished] = 0.0
      if mode == AutoresetMode.NEXT_STEP:
        skip = finished
      elif mode == AutoresetMode.DISABLED and done.any():
        next_obs, _ = env.reset(options={"reset_mask": done})
      obs = next_obs
      iteration += 1
      if (iteration % config.train_every == 0 and
          iteration > learning_starts_iteration and buffer.size >= config.batch_size):
        if not sums:
          sums = zero_scalars(agent, params, optimizer_state,
                              {k: v[:config.batch_size]
                               for k, v in buffer.storage.items()})
        sums, params, optimizer_state = learn(
            params, optimizer_state, buffer.sample(rng, config.batch_size), sums,
            key)
        updates += 1
    sums = {k: float(v) for k, v in jax.device_get(sums).items()}
    elapsed = time.perf_counter() - t0
    if eval_env is not None:
      returns = evaluate(agent, params, policy_state, eval_env,
                         config.eval_episodes, config.seed + c, greedy,
                         max_steps=config.eval_max_steps)
    else:
      returns = np.full(config.eval_episodes, np.nan)
    record = ChunkRecord.from_sums(
        chunk=c, env_steps=(c + 1) * derived.env_steps_per_chunk,
        wall_time=time.perf_counter() - t_start,
        sps=derived.env_steps_per_chunk / elapsed,
        episode_return_sum=[return_sum], episodes=[episodes], updates=[updates],
        scalar_sums={k: [v] for k, v in sums.items()}, eval_returns=returns[None])
    history.append(record)
    if on_chunk is not None:
      on_chunk(record)
    else:
      logger.info(format_record(record))
  metrics = stack_history(history)
  metrics["compile_time"] = 0.0  # jit compiles on the first call, inside chunk 0
  metrics["total_time"] = time.perf_counter() - t_start
  metrics["buffer_bytes"] = buffer.nbytes if buffer is not None else 0
  return TrainResult(
      params=jax.tree.map(lambda x: np.asarray(x)[None], params),
      state=dict(params=params, optimizer_state=optimizer_state,
                 policy_state=policy_state, buffer=buffer),
      metrics=metrics, history=history, config=config, derived=derived)
