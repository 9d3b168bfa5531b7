"""Deep Q-Networks (Mnih et al. 2015, "Human-level control through deep RL")."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from baselax.agents import base, hyperparams, q_config, value_learning
from baselax.agents.q_config import DQNConfig
from baselax.envs import protocol as env_protocol

#: The keys every DQN ``update`` batch must have; shapes for a batch of ``B``.
REQUIRED_DATA_KEYS = (
  "obs",  # (B, *obs_shape) observation the action was taken in
  "action",  # (B,) int action taken
  "reward",  # (B,) float reward received (n-step: the discounted sum)
  "terminated",  # (B,) bool/float, 1 only for true terminal transitions
  "next_obs",  # (B, *obs_shape) the true next observation (final obs at episode end)
)

#: Keys a batch may add (the Anakin trainer adds them for n-step and PER);
#: see ``base.OPTIONAL_BATCH_KEYS``. DQN honours both.
OPTIONAL_DATA_KEYS = tuple(base.OPTIONAL_BATCH_KEYS)


def default_epsilon_schedule() -> optax.Schedule:
  return optax.polynomial_schedule(
    init_value=0.9, end_value=0.05, power=1.0, transition_steps=50000
  )


class DQN(base.BaseAgent):
  """The implementation of a DQN agent.

  Args:
    network: a network creator ``Callable[[gym.Space], haiku.Transformed]``
      returning Q-values ``(B, num_actions)`` for observations
      ``(B, *obs_shape)``; see ``baselax.networks``.
    env: a gym environment for the observation and action spaces (the action
      space must be ``Discrete``).
    learning_rate: a float or an ``optax.Schedule`` for Adam.
    discount_factor: the discount ``gamma`` in (0, 1]. Defaults to 0.99.
    epsilon_schedule: epsilon as a function of the number of exploring
      ``predict`` calls. Defaults to ``optax.polynomial_schedule(init_value=0.9,
      end_value=0.05, power=1., transition_steps=50000)``.
    target_update_interval: the target network copies the online one every
      this many updates. Defaults to 50.
    double_dqn: Double DQN (van Hasselt et al. 2016): the online network picks
      the next action, the target network values it. Defaults to False.
      (``double=`` is its deprecated old name.)
    huber_delta: if set, the Huber loss with this delta replaces
      ``0.5 * td**2`` (they agree for ``|td| <= delta``). Defaults to None.
    max_grad_norm: if set, gradients are clipped to this global norm before
      Adam (after averaging over devices). Defaults to None.
    optimizer: the optimizer as a function of the learning rate (a float or
      an ``optax.Schedule``), e.g. ``lambda lr: optax.rmsprop(lr, decay=0.95)``.
      Defaults to None: ``optax.adam``.
    noisy: the network draws noise (Fortunato et al. 2018; e.g.
      ``networks.mlp_q_network(noisy=True)``): exploring ``predict`` calls
      act on a fresh noise draw per row (plus epsilon, if the schedule is not
      0), ``evaluation=True`` acts on the mean weights, and ``update`` takes
      ``key=`` for the noise of the online, target and selector networks, one
      independent draw each per update (the contract declares
      ``update_key=True``; without a key, update uses the mean weights).
      Defaults to False.

  The loss is ``mean(weight * 0.5 * td**2)`` with
  ``td = r + gamma * (1 - terminated) * max_a Q_target(s', a) - Q(s, a)``,
  ``weight`` = ``data["weight"]`` or 1, and ``data["discount"]`` replacing
  ``gamma * (1 - terminated)`` when present (n-step batches).

  On an env with ``has_action_mask`` (its observations end with the
  valid-action mask, ``baselax.envs.protocol``) greedy and exploring actions
  are valid ones, and the max (Double DQN: the argmax) over ``a`` in the
  target runs over the actions valid in ``s'`` only.

  Variants of the DQN family that differ only in what they learn (QR-DQN)
  subclass it and replace :meth:`action_values` and :meth:`loss`; acting,
  the optimizer step, the device average and the target copy are shared.
  """

  contract = base.AgentContract(
    reads=frozenset({"discount", "weight"}), td_error=True, action_mask=True, device_groups=True
  )
  discount_factor: float  # (set by the constructor: DQN always has one)

  class Params(NamedTuple):
    """``policy``: online network params; ``target``: target network params."""

    policy: Any
    target: Any

  class PolicyOutput(NamedTuple):
    """``actions`` ``(B,)``, ``q_values`` ``(B, A)``, ``epsilon`` ``[]`` used."""

    actions: jax.Array
    q_values: jax.Array
    epsilon: jax.Array

  class PolicyState(NamedTuple):
    """``count``: exploring ``predict`` calls so far (drives the epsilon schedule)."""

    count: jax.Array  # type: ignore[assignment]  # the documented name shadows tuple.count

  class OptimState(NamedTuple):
    """``count``: updates done (drives target copies); ``opt_state``: Adam's."""

    count: jax.Array  # type: ignore[assignment]  # the documented name shadows tuple.count
    opt_state: optax.OptState

  class OptimOutput(NamedTuple):
    """One update's ``loss`` and mean online ``q_mean`` (scalars, logged), and
    the per-sample ``td_error`` ``(B,)`` (not logged; prioritized replay uses it)."""

    loss: jax.Array
    q_mean: jax.Array
    td_error: jax.Array

  def __init__(
    self,
    network: base.NetworkFn,
    env: Any,
    learning_rate: float | optax.Schedule,
    discount_factor: float = 0.99,
    # The seed API's documented default: one schedule made at import.
    epsilon_schedule: optax.Schedule = default_epsilon_schedule(),  # noqa: B008
    target_update_interval: int = 50,
    *,
    double_dqn: bool = False,
    huber_delta: float | None = None,
    max_grad_norm: float | None = None,
    optimizer: Callable[[Any], optax.GradientTransformation] | None = None,
    noisy: bool = False,
    double: bool | None = None,
  ):
    if double is not None:  # the old name of double_dqn
      double_dqn = hyperparams.renamed_keywords(
        type(self).__name__, {"double": double}, {"double": "double_dqn"}
      )["double_dqn"]
    # One rule per setting, shared with the registry's config (hyperparams.py).
    hyperparams.check_all(
      dict(
        discount_factor=discount_factor,
        target_update_interval=target_update_interval,
        huber_delta=huber_delta,
        max_grad_norm=max_grad_norm,
        epsilon_schedule=epsilon_schedule,
      )
    )
    if optimizer is not None and not callable(optimizer):  # (no rule: the flag is a name)
      raise TypeError(
        f"optimizer must be a function of the learning rate (e.g. optax.adam), got {optimizer!r}."
      )
    num_actions = base.discrete_actions(env, type(self).__name__)
    self.discount_factor = base.python_scalar(discount_factor)
    self.epsilon_schedule = epsilon_schedule
    self.target_update_interval = target_update_interval
    self.double_dqn = bool(double_dqn)
    self.huber_delta = huber_delta
    self.max_grad_norm = max_grad_norm
    self.optimizer_fn = optimizer or optax.adam
    self.noisy = bool(noisy)
    if self.noisy:  # update draws noise: ask trainers for a key
      self.contract = dataclasses.replace(type(self).contract, update_key=True)
    super().__init__(network, env, learning_rate)
    self.num_actions = num_actions
    # The env's observations end with its valid-action mask (baselax.envs.protocol).
    self.has_action_mask = bool(getattr(env, "has_action_mask", False))

  @property
  def double(self) -> bool:
    """The old name of :attr:`double_dqn`."""
    return self.double_dqn

  def make_optimizer(self) -> optax.GradientTransformation:
    """``optimizer(learning_rate)`` (Adam by default), after global-norm
    clipping when ``max_grad_norm`` is set."""
    step = self.optimizer_fn(self.learning_rate)
    if self.max_grad_norm is None:
      return step
    return optax.chain(optax.clip_by_global_norm(self.max_grad_norm), step)

  # --- initialisation --------------------------------------------------------

  def init_params(self, rng: base.KeyLike) -> DQN.Params:
    """Initialize online params; the target starts as a copy of them.

    Args:
      rng: a ``haiku.PRNGSequence`` (drawn from) or a JAX key.

    Returns:
      ``Params(policy, target)``, with ``target`` equal to ``policy``.
    """
    policy = super().init_params(rng)
    return self.Params(policy=policy, target=policy)

  # The ignores: an agent's states are its own NamedTuples (their fields are the contract).
  def init_optimizer(  # type: ignore[override]
    self, params: DQN.Params, rng: base.KeyLike | None = None
  ) -> DQN.OptimState:
    """Initialize Adam's state for the online params.

    Args:
      params: the agent's ``Params``, from :meth:`init_params`.
      rng: unused (Adam draws no randomness).

    Returns:
      ``OptimState(count=0, opt_state)``.
    """
    del rng
    return self.OptimState(
      count=jnp.zeros((), jnp.int32), opt_state=self.optimizer.init(params.policy)
    )

  # --- acting ----------------------------------------------------------------

  def predict(  # type: ignore[override]
    self,
    params: DQN.Params,
    policy_state: DQN.PolicyState,
    obs: jax.Array,
    key: base.KeyLike,
    evaluation: bool = False,
    action_mask: jax.Array | None = None,
    **kwargs,
  ) -> tuple[DQN.PolicyOutput, DQN.PolicyState]:
    """Epsilon-greedy (or, with ``evaluation=True``, greedy) actions.

    Args:
      params: the agent's ``Params`` (the policy acts on ``params.policy``).
      policy_state: the ``PolicyState``; its ``count`` drives the epsilon schedule.
      obs: ``(B, *obs_shape)``; a single unbatched observation is accepted too.
      key: a JAX key or ``haiku.PRNGSequence``; every row explores with its own
        randomness.
      evaluation: Python bool; greedy actions, and the policy count is not
        advanced (evaluation does not consume the exploration schedule).
      action_mask: ``(B, A)`` valid actions (True/1), greedy and exploring
        actions are drawn among them only. Default: on an env with
        ``has_action_mask``, the observations' last ``A`` entries; else none.

    Returns:
      ``(PolicyOutput(actions (B,), q_values (B, A), epsilon []), PolicyState)``;
      ``q_values`` are the network's, invalid actions included.
    """
    del kwargs
    obs = jnp.asarray(obs)
    single = obs.ndim == len(self.observation_space.shape or ())
    if single:
      obs = obs[None]
    if action_mask is not None:
      action_mask = jnp.asarray(action_mask).reshape(obs.shape[0], self.num_actions)
    elif self.has_action_mask:
      action_mask = env_protocol.action_mask(obs, self.num_actions)
    if self.noisy and not evaluation:
      # A noise draw per row (one network call draws one for its batch).
      noise_key, key = jax.random.split(base.as_key(key))
      row_keys = jax.random.split(noise_key, obs.shape[0])
      q_values = jax.vmap(lambda k, o: self.action_values(params.policy, o[None], k)[0])(
        row_keys, obs
      )
    else:
      q_values = self.action_values(params.policy, obs)
    if evaluation:
      epsilon = jnp.zeros((), jnp.float32)
      actions = jnp.argmax(value_learning.mask_invalid(q_values, action_mask), axis=-1)
    else:
      epsilon = jnp.asarray(self.epsilon_schedule(policy_state.count), jnp.float32)
      actions = value_learning.epsilon_greedy(base.as_key(key), q_values, epsilon, action_mask)
      policy_state = self.PolicyState(count=policy_state.count + 1)
    actions = actions.astype(jnp.int32)
    if single:
      actions, q_values = actions[0], q_values[0]
    return self.PolicyOutput(actions, q_values, epsilon), policy_state

  def action_values(self, online: Any, obs: jax.Array, rng: jax.Array | None = None) -> jax.Array:
    """Q-values ``(B, A)`` the policy acts on, from the online params
    (``rng``: the noise of a noisy network; ``None``: its mean weights)."""
    return self.network.apply(online, obs, rng)

  def noise_keys(self, key: jax.Array | None, num: int) -> tuple[Any, ...]:
    """``num`` independent noise keys for the networks of one update, or
    ``num`` ``None`` (mean weights) when the agent is not noisy or got no key."""
    if not self.noisy or key is None:
      return (None,) * num
    return tuple(jax.random.split(base.as_key(key), num))

  def discount(self, data: Mapping[str, jax.Array]) -> jax.Array:
    """``(B,)`` bootstrap discounts: ``data["discount"]`` (n-step) or
    ``gamma * (1 - terminated)``."""
    if "discount" in data:
      return jnp.asarray(data["discount"], jnp.float32)
    return self.discount_factor * (1.0 - jnp.asarray(data["terminated"], jnp.float32))

  def mask_next(self, values: jax.Array, data: Mapping[str, jax.Array]) -> jax.Array:
    """Next-state action values ``(B, A, ...)`` with the actions invalid in
    ``data["next_obs"]`` at ``-inf``, so the bootstrap's max/argmax skips them
    (on an env with ``has_action_mask``; otherwise ``values`` unchanged)."""
    if not self.has_action_mask:
      return values
    next_mask = env_protocol.action_mask(data["next_obs"], self.num_actions)
    return value_learning.mask_invalid(values, next_mask)

  # --- learning --------------------------------------------------------------

  def td_errors(
    self, online: Any, target: Any, data: Mapping[str, jax.Array], key: jax.Array | None = None
  ) -> tuple[jax.Array, jax.Array]:
    """Per-sample TD errors ``(B,)`` and the online values ``q_tm1`` ``(B, A)``."""
    online_key, target_key, selector_key = self.noise_keys(key, 3)
    q_tm1 = self.network.apply(online, data["obs"], online_key)
    q_t = self.network.apply(target, data["next_obs"], target_key)
    discount_t = self.discount(data)
    a_tm1 = jnp.asarray(data["action"], jnp.int32)
    r_t = jnp.asarray(data["reward"], jnp.float32)
    fn: Callable[..., jax.Array]
    next_values: tuple[jax.Array, ...]
    if self.double_dqn:  # the online network picks the next action, the target values it
      selector = self.network.apply(online, data["next_obs"], selector_key)
      fn, next_values = value_learning.double_q_learning, (q_t, self.mask_next(selector, data))
    else:
      fn, next_values = value_learning.q_learning, (self.mask_next(q_t, data),)
    return jax.vmap(fn)(q_tm1, a_tm1, r_t, discount_t, *next_values), q_tm1

  def loss(
    self, online: Any, target: Any, data: Mapping[str, jax.Array], key: jax.Array | None = None
  ) -> tuple[jax.Array, DQN.OptimOutput]:
    """``mean(weight * 0.5 * td^2)`` (or Huber) over the batch, and what to report.

    ``key``: noise for a noisy network (see :meth:`noise_keys`)."""
    td, q_tm1 = self.td_errors(online, target, data, key)
    if self.huber_delta is None:
      per_sample = 0.5 * jnp.square(td)
    else:
      per_sample = optax.huber_loss(td, delta=self.huber_delta)
    if "weight" in data:
      per_sample = jnp.asarray(data["weight"], jnp.float32) * per_sample
    loss = jnp.mean(per_sample)
    return loss, self.OptimOutput(loss=loss, q_mean=jnp.mean(q_tm1), td_error=td)

  def update(  # type: ignore[override]
    self,
    params: DQN.Params,
    optimizer_state: DQN.OptimState,
    data: Mapping[str, jax.Array],
    axis_name: Any = None,
    key: jax.Array | None = None,
    **kwargs,
  ) -> tuple[DQN.OptimOutput, DQN.Params, DQN.OptimState]:
    """One Adam step on the TD loss; copies the target every ``target_update_interval``.

    Args:
      params: the agent's ``Params``.
      optimizer_state: the current ``OptimState``.
      data: dict batch with ``REQUIRED_DATA_KEYS``; leading axis ``B``.
      axis_name: if given, gradients and reported scalars are averaged over
        this mapped (device) axis with ``jax.lax.pmean``; a
        ``base.DeviceGroups`` averages within each group of devices.
      key: a JAX key for a noisy network's noise (ignored otherwise; without
        it a noisy network learns on its mean weights).

    Returns:
      ``(OptimOutput, new Params, new OptimState)``.
    """
    del kwargs
    missing = [k for k in REQUIRED_DATA_KEYS if k not in data]
    if missing:
      raise ValueError(
        f"DQN.update batch is missing key(s) {missing}; it needs "
        f"{list(REQUIRED_DATA_KEYS)} (next_obs is the true next observation)."
      )
    loss_args = (key,) if self.noisy and key is not None else ()
    grads, out = jax.grad(self.loss, has_aux=True)(params.policy, params.target, data, *loss_args)
    if axis_name is not None:
      # TD errors stay per device: they belong to this device's batch.
      grads, loss, q_mean = base.device_mean((grads, out.loss, out.q_mean), axis_name)
      out = out._replace(loss=loss, q_mean=q_mean)
    updates, opt_state = self.optimizer.update(grads, optimizer_state.opt_state, params.policy)
    policy = optax.apply_updates(params.policy, updates)
    count = optimizer_state.count + 1
    target = optax.periodic_update(policy, params.target, count, self.target_update_interval)
    optimizer_state = self.OptimState(count=count, opt_state=opt_state)
    return out, self.Params(policy=policy, target=target), optimizer_state


def build(config: DQNConfig, env: Any, sizes: Any) -> DQN:
  """The experiment's view: a :class:`DQN` for ``env`` from its registry config
  (:class:`~baselax.agents.q_config.DQNConfig`, whose fields are the flags)."""
  return DQN(
    q_config.q_network(config, env),
    env,
    double_dqn=config.double_dqn,
    huber_delta=config.huber_delta,
    **q_config.agent_kwargs(config, sizes),
  )
