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

Two replay buffers: :class:`ReplayBuffer` keeps ``obs`` and ``next_obs`` of
every transition (any observation), :class:`FrameStackReplay` keeps every
frame of frame-stacked observations once (Atari: 8x less memory, in the
observations' own dtype, uint8). With a ``Checkpointer`` a run writes its
params, optimizer and policy states, replay buffer, key and metrics, and
continues from them (see :func:`train`).

It is also the baseline that ``scripts/bench.py`` compares Anakin with: every
step crosses between Python and the accelerator, which Anakin never does.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Dict, List, Mapping, Optional

import gymnasium
import jax
import numpy as np
from gymnasium.vector import AutoresetMode

from baselax.agents import base as agent_base
from baselax.anakin import guards
from baselax.anakin.config import DEFAULT_EVAL_MAX_STEPS, AnakinConfig
from baselax.metrics import (ChunkRecord, TrainResult, format_record, scalar_fields,
                             stack_history, zero_scalars)

logger = logging.getLogger("baselax.hostloop")

Batch = Dict[str, np.ndarray]


class ReplayBuffer:
  """A uniform ring buffer of transitions in host (numpy) memory.

  Every transition keeps its ``obs`` and ``next_obs``, in the dtype they come
  in (uint8 frames stay uint8).

  Args:
    capacity: number of transitions kept.
    example: one transition ``{key: array}`` (no batch axis) giving shapes and
      dtypes.
  """

  def __init__(self, capacity: int, example: Mapping[str, Any]):
    self.capacity = capacity
    self.storage = {k: np.zeros((capacity, *np.shape(v)), np.asarray(v).dtype)
                    for k, v in example.items()}
    self.index = 0
    self.size = 0

  @property
  def nbytes(self) -> int:
    return sum(v.nbytes for v in self.storage.values())

  def add(self, batch: Batch, env_ids: Optional[np.ndarray] = None,
          ended: Optional[np.ndarray] = None) -> None:
    """Adds a batch ``{key: (n, ...)}`` of transitions (``env_ids`` and
    ``ended`` are for :class:`FrameStackReplay`; unused here)."""
    del env_ids, ended
    n = len(next(iter(batch.values())))
    idx = (self.index + np.arange(n)) % self.capacity
    for k, v in batch.items():
      self.storage[k][idx] = v
    self.index = (self.index + n) % self.capacity
    self.size = min(self.size + n, self.capacity)

  def sample(self, rng: np.random.Generator, batch_size: int) -> Batch:
    idx = rng.integers(0, self.size, batch_size)
    return {k: v[idx] for k, v in self.storage.items()}

  def state_dict(self) -> Dict[str, np.ndarray]:
    """Everything the buffer holds, as arrays (for a checkpoint)."""
    return {"storage": self.storage, "index": np.asarray(self.index, np.int64),
            "size": np.asarray(self.size, np.int64)}

  def load_state_dict(self, state: Mapping[str, Any]) -> None:
    self.storage = {k: np.asarray(v) for k, v in state["storage"].items()}
    self.index, self.size = int(state["index"]), int(state["size"])


class FrameStackReplay:
  """A uniform replay buffer that keeps every frame of stacked observations once.

  For observations that are stacks ``(k, *frame)`` of the last ``k`` frames
  along axis 0, shifted by one frame per step (gymnasium's
  ``FrameStackObservation``, ale-py's ``AtariVectorEnv``), storing ``obs`` and
  ``next_obs`` repeats every frame ``2k`` times. As in DQN's own replay
  memory (Mnih et al. 2015), each env here keeps a ring of single frames
  instead: an episode takes ``k - 1`` slots for the older frames of its first
  stack, then one slot per step holding the newest frame of that step's
  observation and its transition (action, reward, terminated), then one slot
  for the final frame. The transition in slot ``a`` has the frames of slots
  ``a-k+1 .. a`` as ``obs`` and ``a-k+2 .. a+1`` as ``next_obs``, so at an
  episode's end ``next_obs`` is the true final observation, and nothing of
  the next episode leaks into it. Atari (k = 4, 84x84 uint8): 7,056 bytes a
  transition instead of 56,448.

  Every :meth:`add` checks the observations it gets against the frames it
  holds, and refuses (ValueError) observations that are not such stacks:
  nothing is ever stored wrong.

  Args:
    capacity: frames kept over all envs (split evenly between them); with
      episodes of ``T`` steps that is about ``capacity * T / (T + k)``
      transitions.
    num_envs: envs that add to the buffer (``env_ids`` of :meth:`add`).
    example: one transition ``{key: array}`` (no batch axis); ``obs`` is a
      stack ``(k, *frame)`` with ``k >= 2``.
  """

  def __init__(self, capacity: int, num_envs: int, example: Mapping[str, Any]):
    obs = np.asarray(example["obs"])
    if obs.ndim < 2 or obs.shape[0] < 2:
      raise ValueError(f"FrameStackReplay needs stacked observations (k >= 2, "
                       f"*frame) along axis 0, got shape {obs.shape}.")
    self.stack = int(obs.shape[0])
    self.num_envs = int(num_envs)
    # Each env's ring must hold a whole stack and its next frame with room to spare.
    self.slots = max(-(-int(capacity) // self.num_envs), 2 * self.stack + 2)
    self.capacity = self.slots * self.num_envs
    self.frames = np.zeros((self.num_envs, self.slots, *obs.shape[1:]), obs.dtype)
    self.fields = {k: np.zeros((self.num_envs, self.slots, *np.shape(v)),
                               np.asarray(v).dtype)
                   for k, v in example.items() if k not in ("obs", "next_obs")}
    self.valid = np.zeros((self.num_envs, self.slots), bool)  # slot starts a transition
    self.end = np.zeros(self.num_envs, np.int64)  # slots written so far, per env
    self.starting = np.ones(self.num_envs, bool)  # the next add begins an episode
    self.size = 0  # valid slots (transitions held)

  @property
  def nbytes(self) -> int:
    return (self.frames.nbytes + self.valid.nbytes +
            sum(v.nbytes for v in self.fields.values()))

  def _write(self, env: int, slot: int, frame: np.ndarray,
             fields: Optional[Mapping[str, Any]] = None) -> None:
    """Writes ``frame`` (and a transition, if ``fields``) at absolute ``slot``."""
    p = slot % self.slots
    self.size -= int(self.valid[env, p])
    self.frames[env, p] = frame
    self.valid[env, p] = fields is not None
    if fields is not None:
      self.size += 1
      for k, v in fields.items():
        self.fields[k][env, p] = v

  def _stacks(self, env: np.ndarray, slot: np.ndarray, length: int) -> np.ndarray:
    """Frames of absolute slots ``slot-k+1 .. slot-k+length`` of each ``env``:
    ``(n, length, *frame)``."""
    idx = (np.asarray(slot)[:, None] + np.arange(1 - self.stack, 1 - self.stack + length)
           ) % self.slots
    return self.frames[np.asarray(env)[:, None], idx]

  def add(self, batch: Batch, env_ids: np.ndarray, ended: np.ndarray) -> None:
    """Adds one step's transitions.

    Args:
      batch: ``{obs, next_obs, action, ...}``, each ``(n, ...)``: one
        transition of each env in ``env_ids``; ``next_obs`` is the true
        next observation (the final one at an episode's end).
      env_ids: ``(n,)`` which env each row is from (each at most once).
      ended: ``(n,)`` the episode ended at this step (terminated or
        truncated): the env's next add starts a new episode.

    Raises:
      ValueError: ``obs`` is not the continuation of the env's previous
        ``next_obs``, or ``next_obs`` is not ``obs`` shifted by one frame.
    """
    obs, next_obs = np.asarray(batch["obs"]), np.asarray(batch["next_obs"])
    k = self.stack
    for row, env in enumerate(np.asarray(env_ids)):
      if self.starting[env]:
        for j in range(k - 1):  # the first stack's older frames
          self._write(env, self.end[env] + j, obs[row, j])
        slot = self.end[env] + k - 1
      else:
        slot = self.end[env] - 1  # holds the previous next_obs' newest frame
        if not np.array_equal(self._stacks(np.array([env]), np.array([slot]), k)[0],
                              obs[row]):
          raise ValueError(
              f"FrameStackReplay: env {env}'s observation is not its previous "
              f"next observation (an episode ended without ended=True?). Use "
              f"ReplayBuffer for envs whose observations are not frame stacks.")
      if not np.array_equal(next_obs[row, :-1], obs[row, 1:]):
        raise ValueError(
            f"FrameStackReplay: env {env}'s next observation is not its "
            f"observation shifted by one frame along axis 0; its observations "
            f"are not frame stacks (gymnasium FrameStackObservation). Use "
            f"ReplayBuffer (compact_frames=False) for this env.")
      self._write(env, slot, obs[row, -1],
                  {k_: batch[k_][row] for k_ in self.fields})
      self._write(env, slot + 1, next_obs[row, -1])  # next obs' newest frame
      self.end[env] = slot + 2
      self.starting[env] = bool(ended[row])

  def sample(self, rng: np.random.Generator, batch_size: int) -> Batch:
    """``batch_size`` transitions drawn uniformly (with replacement) from
    those held whose frames are all still in the ring."""
    held = np.minimum(self.end, self.slots)
    first = self.end - held  # oldest absolute slot held, per env
    bounds = np.cumsum(held)
    envs, slots = [], []
    count = 0
    for _ in range(1_000):
      u = rng.integers(0, bounds[-1], 2 * (batch_size - count) + 8)
      env = np.searchsorted(bounds, u, side="right")
      slot = first[env] + u - (bounds - held)[env]
      ok = (self.valid[env, slot % self.slots] &
            (slot - (self.stack - 1) >= self.end[env] - self.slots))
      envs.append(env[ok])
      slots.append(slot[ok])
      count += int(ok.sum())
      if count >= batch_size:
        break
    else:
      raise RuntimeError("FrameStackReplay.sample: no complete transition held; "
                         "add more steps before sampling.")
    env = np.concatenate(envs)[:batch_size]
    slot = np.concatenate(slots)[:batch_size]
    frames = self._stacks(env, slot, self.stack + 1)  # obs and next_obs' new frame
    out = {"obs": frames[:, :-1], "next_obs": frames[:, 1:]}
    out.update({k: v[env, slot % self.slots] for k, v in self.fields.items()})
    return out

  def state_dict(self) -> Dict[str, Any]:
    """Everything the buffer holds, as arrays (for a checkpoint)."""
    return {"frames": self.frames, "fields": self.fields, "valid": self.valid,
            "end": self.end, "size": np.asarray(self.size, np.int64)}

  def load_state_dict(self, state: Mapping[str, Any]) -> None:
    """Restores :meth:`state_dict`; every env's next add starts an episode
    (a resumed run resets its envs)."""
    self.frames = np.asarray(state["frames"])
    self.fields = {k: np.asarray(v) for k, v in state["fields"].items()}
    self.valid = np.asarray(state["valid"])
    self.end = np.asarray(state["end"], np.int64)
    self.size = int(state["size"])
    self.starting[:] = True


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


def _example_transition(env: gymnasium.vector.VectorEnv, act: Callable, params: Any,
                        policy_state: Any, key: jax.Array) -> Dict[str, np.ndarray]:
  """One zero transition with the run's shapes and dtypes (obs from the
  env's space, actions as the agent gives them), to size the buffer."""
  space = env.single_observation_space
  obs = np.zeros((env.num_envs, *space.shape), space.dtype)
  actions = jax.eval_shape(act, params, policy_state, obs, key)[0]
  zero = lambda shape, dtype: np.zeros(shape, dtype)  # noqa: E731
  return {"obs": obs[0], "action": zero(actions.shape[1:], actions.dtype),
          "reward": zero((), np.float32), "terminated": zero((), bool),
          "next_obs": obs[0]}


def train(agent: agent_base.BaseAgent, env: gymnasium.vector.VectorEnv,
          config: AnakinConfig, *, eval_env: Optional[gymnasium.vector.VectorEnv] = None,
          on_chunk: Optional[Callable[[ChunkRecord], Any]] = None,
          compact_frames: bool = False,
          reward_fn: Optional[Callable[[np.ndarray], np.ndarray]] = None,
          terminal_fn: Optional[Callable[..., np.ndarray]] = None,
          checkpointer: Any = None, resume: bool = False,
          identity: Optional[Mapping[str, Any]] = None) -> TrainResult:
  """Trains ``agent`` on a gymnasium vector env with a Python loop.

  ``config`` fields mean what they mean for the Anakin trainer (env steps
  counted over all envs; one update after every ``train_every`` env
  iterations once learning has started, at the same env step as in the
  Anakin trainer: see ``AnakinConfig.learning_starts``); ``num_seeds``
  must be 1 and ``num_devices`` None or 1. Evaluation (greedy, every
  ``eval_every`` env steps) runs on ``eval_env`` when given, else is skipped
  (``eval_return`` is NaN).

  Args:
    compact_frames: keep the replay in a :class:`FrameStackReplay` (each
      frame once; observations must be frame stacks along axis 0, which it
      checks), else a :class:`ReplayBuffer`. ``buffer_size`` counts
      transitions for the one, frames for the other.
    reward_fn: applied to the rewards that are stored for learning (DQN's
      reward clipping, ``np.sign``); returns are counted on the env's own
      rewards.
    terminal_fn: ``terminal_fn(terminated, truncated, info) -> terminated``,
      called after every vector step: the ``terminated`` flags stored for
      learning (no bootstrap past them), while the episodes themselves go on
      (DQN's terminal on life loss, ``baselax.atari.LifeLossTerminal``).
    checkpointer: a ``baselax.anakin.Checkpointer``: the params, optimizer
      and policy states, key, replay buffer and metrics are written every
      ``checkpointer.every_chunks`` chunks, at the end, when ``on_chunk``
      returns True and on Ctrl-C (which then stops after the current chunk).
    resume: continue from the checkpointer's newest checkpoint (refused if it
      is from another run: ``identity``, config, agent). Params, optimizer,
      replay, exploration schedule and key go on exactly; the envs start new
      episodes (an emulator's state is not in the checkpoint), so the
      continuation is not bit-identical to an uninterrupted run.
    identity: JSON-able settings that also define the run (the env id and
      its preprocessing, the agent's hyper-parameters), in the fingerprint.

  Returns:
    A ``TrainResult`` with the Anakin runner's metric names (leading seed axis
    of size 1); ``state`` holds the final host-side objects.

  Raises:
    NonFiniteError: a chunk produced a NaN/inf loss or params (the last good
      checkpoint is kept).
    ConfigError: ``resume`` from a checkpoint of another run.
  """
  from baselax.anakin import checkpoint as checkpoint_lib
  _check(env, config)
  if resume and checkpointer is None:
    raise ValueError("resume=True needs a checkpointer to resume from.")
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

  example = _example_transition(env, act, params, policy_state, key)
  buffer: Any = (FrameStackReplay(config.buffer_size, env.num_envs, example)
                 if compact_frames else ReplayBuffer(config.buffer_size, example))
  fingerprint = {**checkpoint_lib.run_identity(config, agent, env, identity),
                 "trainer": "hostloop", "compact_frames": bool(compact_frames)}

  def host_state():
    return {"params": params, "optimizer_state": optimizer_state,
            "policy_state": policy_state, "key": key, "buffer": buffer.state_dict()}

  history: List[ChunkRecord] = []
  first_chunk = 0
  if resume:
    restored = checkpointer.restore(host_state(), fingerprint)
    params, optimizer_state = restored.state["params"], restored.state["optimizer_state"]
    policy_state, key = restored.state["policy_state"], restored.state["key"]
    buffer.load_state_dict(restored.state["buffer"])
    first_chunk, history = restored.chunks_done, list(restored.history)
    logger.info("resumed from %s at chunk %d of %d", checkpointer.directory,
                first_chunk, derived.num_chunks)

  def save(chunks_done):
    if checkpointer is not None:
      checkpointer.save(chunks_done, host_state(), history, fingerprint,
                        params=jax.tree.map(lambda x: np.asarray(x)[None], params))

  greedy = greedy_actions(agent)
  # A resumed run's envs start new episodes, from seeds of their own.
  obs, _ = env.reset(seed=config.seed + 100_003 * first_chunk)
  skip = np.zeros(env.num_envs, bool)  # NEXT_STEP: this step only resets
  running = np.zeros(env.num_envs)
  iterations_per_chunk = derived.steps_per_chunk * config.train_every
  learning_starts_iteration = derived.learning_starts_step * config.train_every
  t_start = time.perf_counter()
  wall_offset = history[-1].wall_time if history else 0.0
  stopped_early = False
  with guards.StopRequests(enabled=checkpointer is not None) as stop:
    for c in range(first_chunk, derived.num_chunks):
      t0 = time.perf_counter()
      # Replay sampling draws from a stream per chunk, so a resumed run
      # samples as an uninterrupted one would.
      rng = np.random.default_rng([config.seed, c])
      iteration = c * iterations_per_chunk
      sums: Dict[str, Any] = {}  # per-chunk sums of the logged scalars, on device
      updates = 0
      episodes, return_sum = 0, 0.0
      for _ in range(iterations_per_chunk):
        actions, policy_state, key = act(params, policy_state, obs, key)
        actions = np.asarray(actions)
        # A vector env may write the next observation into the array it
        # returned last (SyncVectorEnv(copy=False), envpool): keep our own
        # copy of the one this transition starts from.
        obs = np.array(obs, copy=True)
        next_obs, reward, terminated, truncated, info = env.step(actions)
        done = np.logical_or(terminated, truncated)
        final_obs = next_obs  # the buffer copies on add; copy here only to patch
        if mode == AutoresetMode.SAME_STEP and "final_obs" in info:
          final_obs = np.array(next_obs, copy=True)
          for i in np.flatnonzero(info["_final_obs"]):
            final_obs[i] = info["final_obs"][i]
        keep = ~skip
        stored = reward if reward_fn is None else reward_fn(np.asarray(reward))
        stored_terminated = (terminated if terminal_fn is None else
                             terminal_fn(terminated, truncated, info))
        transition = {"obs": obs, "action": actions, "reward": stored,
                      "terminated": stored_terminated, "next_obs": final_obs}
        if keep.all():
          buffer.add(transition, np.arange(env.num_envs), done)
        elif keep.any():
          buffer.add({k: np.asarray(v)[keep] for k, v in transition.items()},
                     np.flatnonzero(keep), done[keep])
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
          batch = buffer.sample(rng, config.batch_size)
          if not sums:
            sums = zero_scalars(agent, params, optimizer_state, batch)
          sums, params, optimizer_state = learn(params, optimizer_state, batch, sums,
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
          wall_time=wall_offset + time.perf_counter() - t_start,
          sps=derived.env_steps_per_chunk / elapsed,
          episode_return_sum=[return_sum], episodes=[episodes], updates=[updates],
          scalar_sums={k: [v] for k, v in sums.items()}, eval_returns=returns[None])
      history.append(record)
      if on_chunk is not None:
        stop.requested |= bool(on_chunk(record))
      else:
        logger.info(format_record(record))
      bad = [k for k, v in sums.items() if not np.isfinite(v)]
      # On the host: once a chunk, and no program to compile.
      if not all(np.isfinite(x).all() for x in jax.device_get(jax.tree.leaves(params))):
        bad.append("params")
      guards.check_finite(bad, c, derived,
                          checkpointer.latest_step() if checkpointer else None,
                          checkpointer.directory if checkpointer else None)
      done_chunks = c + 1
      if done_chunks == derived.num_chunks or stop.requested:
        save(done_chunks)
        stopped_early = done_chunks < derived.num_chunks
        break
      if checkpointer is not None and done_chunks % checkpointer.every_chunks == 0:
        save(done_chunks)
  metrics = stack_history(history)
  metrics["compile_time"] = 0.0  # jit compiles on the first call, inside chunk 0
  metrics["total_time"] = time.perf_counter() - t_start
  metrics["buffer_bytes"] = buffer.nbytes
  return TrainResult(
      params=jax.tree.map(lambda x: np.asarray(x)[None], params),
      state=dict(params=params, optimizer_state=optimizer_state,
                 policy_state=policy_state, buffer=buffer),
      metrics=metrics, history=history, config=config, derived=derived,
      stopped_early=stopped_early, first_chunk=first_chunk)
