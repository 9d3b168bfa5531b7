"""The agent contract: ``BaseAgent``.

An agent is pure maths over named pytrees. It holds only what is fixed after
construction (the network, the optimizer, hyper-parameters, the spaces); all
that changes during training (params, optimizer state, policy state) goes in
and out of its methods explicitly, so that trainers can ``jit``, ``vmap``,
``scan`` and ``pmap`` them freely. The Anakin trainer talks to an agent only
through the methods below.
"""

from __future__ import annotations

import abc
import dataclasses
import inspect
import numbers
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import gymnasium
import haiku as hk
import jax
import jax.numpy as jnp
import optax

from baselax.agents import hyperparams
from baselax.envs import spaces as spaces_lib
from baselax.errors import ConfigError

Params = Any
PolicyState = Any
PolicyOutput = Any
OptimOutput = Any
KeyLike = jax.Array | hk.PRNGSequence
NetworkFn = Callable[[gymnasium.Space], hk.Transformed | Any]


def as_key(rng: KeyLike) -> jax.Array:
  """Returns a JAX key from a ``haiku.PRNGSequence`` (drawing from it) or a key.

  Inside ``jit`` only key arrays exist; a ``PRNGSequence`` is a host-side
  convenience, as in the documented API.
  """
  if isinstance(rng, hk.PRNGSequence):
    return next(rng)
  if isinstance(rng, jax.Array) or hasattr(rng, "dtype"):
    return rng
  raise TypeError(
    f"Expected a haiku.PRNGSequence or a JAX PRNG key, got "
    f"{type(rng).__name__}. Use hk.PRNGSequence(seed) or "
    f"jax.random.PRNGKey(seed)."
  )


class ApplyFn(NamedTuple):
  """A haiku network with the apply-rng question settled: ``apply(params, obs, rng=None)``."""

  init: Callable[[jax.Array, jax.Array], hk.Params]
  apply: Callable[..., jax.Array]


def as_network(transformed: Any) -> ApplyFn:
  """Normalises what a network creator returns to ``apply(params, x, rng=None)``.

  Accepts ``hk.transform(f)`` (``apply(params, rng, x)``: ``rng`` is passed
  through, ``None`` by default, so a deterministic network needs none and a
  noisy one, e.g. ``networks.mlp_q_network(noisy=True)``, draws its noise
  from it) and ``hk.without_apply_rng(hk.transform(f))`` (``apply(params,
  x)``; ``rng`` is ignored).
  """
  if not isinstance(transformed, hk.Transformed):
    raise TypeError(
      f"network(action_space) must return a haiku.Transformed (from "
      f"hk.transform or hk.without_apply_rng(hk.transform(...))), got "
      f"{type(transformed).__name__}. Stateful networks "
      f"(hk.transform_with_state) are not supported."
    )
  try:
    names = list(inspect.signature(transformed.apply).parameters)
  except (TypeError, ValueError):  # pragma: no cover - exotic callables
    names = ["params", "rng"]
  if len(names) > 1 and names[1] == "rng":
    return ApplyFn(transformed.init, lambda params, x, rng=None: transformed.apply(params, rng, x))
  return ApplyFn(transformed.init, lambda params, x, rng=None: transformed.apply(params, x))


def is_traced(value: Any) -> bool:
  """Whether ``value`` is an array being traced: a swept hyperparameter
  (``baselax.anakin.sweep``) reaches an agent's constructor this way. Checks
  that need a Python value skip it (its values were checked on the host), and
  the agent keeps it as an array (:func:`python_scalar`)."""
  return isinstance(value, jax.core.Tracer)


def python_scalar(value: Any, cast: Callable[[Any], Any] = float) -> Any:
  """``cast(value)``, or ``value`` itself while it is traced (a swept setting)."""
  return value if is_traced(value) else cast(value)


def check_learning_rate(learning_rate: Any) -> None:
  if callable(learning_rate) or is_traced(learning_rate):
    return
  if isinstance(learning_rate, bool) or not isinstance(learning_rate, numbers.Real):
    raise TypeError(
      f"learning_rate must be a float or an optax.Schedule, got {type(learning_rate).__name__}."
    )
  hyperparams.check("learning_rate", learning_rate)


#: Optional ``update`` batch keys a trainer may add, and what they mean.
OPTIONAL_BATCH_KEYS = {
  # (B,) bootstrap discount replacing gamma * (1 - terminated); n-step
  # batches carry gamma^k * (1 - terminated) for a window of k steps.
  "discount": "n-step returns (n_step > 1)",
  # (B,) per-sample loss weights: prioritized replay's importance weights.
  "weight": "prioritized replay (prioritized=True)",
}


def discrete_actions(env: Any, owner: str) -> int:
  """The number of actions of ``env``'s ``Discrete`` action space.

  Raises:
    ConfigError: another kind of action space (``owner``: the agent, named).
  """
  _, action_space = spaces_lib.env_spaces(env)
  if not isinstance(action_space, gymnasium.spaces.Discrete):
    raise ConfigError(
      f"{owner} needs a Discrete action space, got {action_space}. "
      f"Use a discrete-action env (e.g. CartPole-v1, Breakout-MinAtar)."
    )
  return int(action_space.n)


@dataclasses.dataclass(frozen=True)
class AgentContract:
  """What an agent's ``update`` consumes and provides beyond the required batch.

  Every ``update`` batch has ``obs``, ``action``, ``reward``, ``terminated``
  and ``next_obs`` (the true next observation: the final one where a
  truncated episode bootstraps; after a termination, which never bootstraps,
  the Anakin replay gives the next episode's first). Replay variants add optional
  keys; an agent that silently ignored one would train on a wrong target, so
  an agent declares here what it honours, and trainers refuse, before
  compiling, a run that needs more (``baselax.learner.contract``).

  Attributes:
    reads: optional batch keys that ``update`` honours (see
      :data:`OPTIONAL_BATCH_KEYS`): ``"discount"`` (needed by n-step returns)
      and ``"weight"`` (needed by prioritized replay).
    td_error: ``update``'s ``OptimOutput`` has ``td_error`` ``(B,)``, one
      non-negative-able priority signal per sample (prioritized replay sets
      priorities from its absolute value).
    update_key: ``update`` draws randomness (e.g. noisy nets): trainers call
      ``update(params, optimizer_state, data, key=KEY, ...)`` with a fresh JAX
      key every update. Agents that do not declare it get no ``key``; a
      declaring agent must still accept a call without one (the documented
      signature), doing something deterministic then.
    action_mask: on an env with ``has_action_mask`` (the last ``num_actions``
      observation entries are the valid actions, ``baselax.envs.protocol``),
      ``predict`` picks only valid actions, greedy or exploring, and
      ``update`` bootstraps from valid next actions only. Trainers refuse such
      an env to an agent that does not declare it.
    device_groups: ``update`` averages over its ``axis_name`` with
      :func:`device_mean`, so it may be a :class:`DeviceGroups` (the Anakin
      trainer's ``parallel="groups"`` layout: gradients averaged within groups
      of devices). An agent that calls ``jax.lax.pmean(x, axis_name)`` itself
      can take a plain axis name only, and the groups layout is refused to it.
    pairwise_loss: ``update``'s loss builds per-sample pairwise terms,
      ``(B, N, N)`` arrays of elementwise arithmetic and reductions (QR-DQN's
      quantile Huber loss). Nothing changes in what is computed; trainers may
      compile such a loss differently (``baselax.training.lowering``).
  """

  reads: frozenset[str] = frozenset()
  td_error: bool = False
  update_key: bool = False
  action_mask: bool = False
  device_groups: bool = False
  pairwise_loss: bool = False

  def __post_init__(self):
    object.__setattr__(self, "reads", frozenset(self.reads))
    unknown = self.reads - set(OPTIONAL_BATCH_KEYS)
    if unknown:
      raise ValueError(
        f"AgentContract.reads: unknown batch key(s) {sorted(unknown)}; "
        f"the optional keys are {sorted(OPTIONAL_BATCH_KEYS)}."
      )


class DeviceGroups(NamedTuple):
  """A mapped device axis averaged in groups: what ``update`` gets as
  ``axis_name`` when devices are shared by groups of runs.

  Attributes:
    name: the mapped axis's name.
    groups: disjoint tuples of device indices covering the axis, all of one
      size; each is averaged on its own (``jax.lax.pmean``'s
      ``axis_index_groups``).
  """

  name: str
  groups: tuple[tuple[int, ...], ...]


def device_mean(tree: Any, axis_name: Any) -> Any:
  """``jax.lax.pmean`` of ``tree`` over ``axis_name``: a mapped axis's name,
  or a :class:`DeviceGroups` (averaged within each group); ``None``: ``tree``."""
  if axis_name is None:
    return tree
  if isinstance(axis_name, DeviceGroups):
    return jax.lax.pmean(
      tree, axis_name.name, axis_index_groups=[list(g) for g in axis_name.groups]
    )
  return jax.lax.pmean(tree, axis_name=axis_name)


def contract_of(agent: Any) -> AgentContract:
  """The agent's :class:`AgentContract` (the default one if it declares none);
  what every trainer asks before calling ``update``."""
  return getattr(agent, "contract", AgentContract())


class BaseAgent(abc.ABC):
  """An abstract agent.

  Args:
    network: a network creator ``Callable[[gym.Space], haiku.Transformed]``,
      called with the single env's action space. The transformed function maps
      a batch of observations ``(B, *obs_shape)`` to outputs ``(B, ...)``.
    env: a gym environment (``baselax.envs.GymnaxEnv``, ``gymnasium.Env`` or
      ``gymnasium.vector.VectorEnv``), read for its observation and action
      spaces only.
    learning_rate: a float or an ``optax.Schedule`` for the Adam optimizer.

  Class attributes a subclass sets to declare its contract with trainers:

  * ``contract``: an :class:`AgentContract` (default: reads no optional batch
    key, returns no per-sample TD errors).
  * ``discount_factor``: the per-step discount ``gamma`` n-step returns are
    computed with (``None``: the agent has none).
  """

  contract: AgentContract = AgentContract()
  discount_factor: float | None = None

  class OptimState(NamedTuple):
    """Optimizer state: ``count`` of updates done and optax's ``opt_state``."""

    count: jax.Array  # type: ignore[assignment]  # the documented name shadows tuple.count
    opt_state: optax.OptState

  class PolicyState(NamedTuple):
    """Policy state: ``count`` of exploring ``predict`` calls done."""

    count: jax.Array  # type: ignore[assignment]  # the documented name shadows tuple.count

  def __init__(self, network: NetworkFn, env: Any, learning_rate: float | optax.Schedule):
    check_learning_rate(learning_rate)
    if not callable(network):
      raise TypeError(
        "network must be a callable taking the action space and "
        "returning a haiku.Transformed, e.g. "
        "baselax.networks.mlp_q_network()."
      )
    self.env = env
    self.observation_space, self.action_space = spaces_lib.env_spaces(env)
    self.network_fn = network
    self.network = as_network(network(self.action_space))
    self.learning_rate = learning_rate
    self.optimizer = self.make_optimizer()

  def make_optimizer(self) -> optax.GradientTransformation:
    """The optimizer: optax Adam on ``learning_rate``. Override to change it.

    Returns:
      An ``optax.GradientTransformation``, stored as ``self.optimizer``.
    """
    return optax.adam(self.learning_rate)

  def init_params(self, rng: KeyLike) -> Params:
    """Initialize the parameters for the agent from a dummy observation batch.

    Args:
      rng: a ``haiku.PRNGSequence`` (drawn from) or a JAX key.

    Returns:
      The initialized parameters (a pytree; a subclass's ``Params``).
    """
    dummy = spaces_lib.dummy_observation(self.observation_space)
    return self.network.init(as_key(rng), jnp.asarray(dummy))

  def init_optimizer(self, params: Params, rng: KeyLike | None = None) -> BaseAgent.OptimState:
    """Initialize the optimizer state.

    Args:
      params: the agent parameters, from :meth:`init_params`.
      rng: a ``haiku.PRNGSequence`` or a JAX key (unused by Adam).

    Returns:
      The initialized ``OptimState(count=0, opt_state)``.
    """
    del rng
    return self.OptimState(count=jnp.zeros((), jnp.int32), opt_state=self.optimizer.init(params))

  def init_policy(self, rng: KeyLike | None = None) -> PolicyState:
    """Initialize the policy state.

    Args:
      rng: a ``haiku.PRNGSequence`` or a JAX key (unused here).

    Returns:
      The initialized ``PolicyState(count=0)``.
    """
    del rng
    return self.PolicyState(count=jnp.zeros((), jnp.int32))

  @abc.abstractmethod
  def predict(
    self,
    params: Params,
    policy_state: PolicyState,
    obs: jax.Array,
    key: KeyLike,
    evaluation: bool = False,
    **kwargs: Any,
  ) -> tuple[PolicyOutput, PolicyState]:
    """Select actions for a batch of observations ``(B, *obs_shape)``.

    Args:
      params: the agent parameters.
      policy_state: the policy state (e.g. the count of exploring calls).
      obs: observations from the environment, ``(B, *obs_shape)``.
      key: a ``haiku.PRNGSequence`` or a JAX key for exploration; every row
        of the batch draws its own randomness.
      evaluation: whether to act for evaluation (greedy) rather than
        exploration; a Python bool (static under jit).
      **kwargs: options a subclass may honour (``DQN``: ``action_mask``).

    Returns:
      ``(PolicyOutput, PolicyState)``: the policy output, whose ``actions``
      have shape ``(B, *action_shape)``, and the updated policy state.
    """

  @abc.abstractmethod
  def update(
    self,
    params: Params,
    optimizer_state: BaseAgent.OptimState,
    data: Mapping[str, jax.Array],
    **kwargs: Any,
  ) -> tuple[OptimOutput, Params, BaseAgent.OptimState]:
    """One learning step on a batch ``data``.

    Args:
      params: the agent parameters.
      optimizer_state: the current optimizer state.
      data: the training batch, a dict of arrays with leading axis ``B``:
        ``obs``, ``action``, ``reward``, ``terminated``, ``next_obs`` (the
        true next observation), plus the optional keys the agent's
        :class:`AgentContract` reads (``discount``, ``weight``).
      **kwargs: ``axis_name``: the name of a mapped device axis over which
        gradients must be averaged (``jax.lax.pmean``; no collective without
        it), and ``key``: a JAX key for the update's own randomness, passed by
        trainers only to agents whose contract declares ``update_key=True``.

    Returns:
      ``(OptimOutput, params, optimizer_state)``: the optimization output
      (every scalar field is logged), the updated parameters and the updated
      optimizer state.
    """

  def jit(self) -> BaseAgent:
    """Jits ``predict`` and ``update`` in place (and returns the agent).

    ``evaluation`` and ``axis_name`` are static arguments; a
    ``haiku.PRNGSequence`` key is drawn from on the host before the call.

    Returns:
      The agent itself.

    Example:
      ``agent = DQN(network, env, learning_rate=1e-3).jit()``
    """
    predict = jax.jit(type(self).predict.__get__(self), static_argnames=("evaluation", "axis_name"))
    update = jax.jit(type(self).update.__get__(self), static_argnames=("axis_name",))

    def jitted_predict(params, policy_state, obs, key, evaluation=False, **kwargs):
      return predict(params, policy_state, obs, as_key(key), evaluation=bool(evaluation), **kwargs)

    jitted_predict.__doc__ = type(self).predict.__doc__
    update.__doc__ = type(self).update.__doc__
    # Instances carry their compiled methods (the class keeps the plain ones).
    self.predict = jitted_predict  # type: ignore[method-assign]
    self.update = update  # type: ignore[method-assign]
    return self
