"""Settings the Q-learning agents of the registry share, and how they become
an agent's network and schedules (``dqn.build``, ``qrdqn.build``)."""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import jax.numpy as jnp
import numpy as np
import optax

from baselax import networks
from baselax.agents import base, hyperparams
from baselax.errors import ConfigError

#: ``QLearningConfig.optimizer`` values.
OPTIMIZERS = ("adam", "rmsprop")


@dataclasses.dataclass(frozen=True)
class QLearningConfig:
  """Settings every Q-learning agent of the registry shares (its flags).

  Attributes:
    learning_rate: the optimizer's step size (at the start, if decayed).
    lr_decay: decay the learning rate linearly to 0 over the run's updates (steadies the final
      greedy policy).
    optimizer: adam, or rmsprop (centered, decay 0.95, eps added outside the square root: PyTorch's
      RMSprop as Young & Tian 2019 used it).
    optimizer_eps: the optimizer's epsilon; none = its default (adam 1e-8, rmsprop 0.01).
    discount_factor: the discount gamma, in (0, 1].
    target_update_interval: updates between target-network copies.
    epsilon_start: exploration epsilon at the start of training, in [0, 1].
    epsilon_end: exploration epsilon after the decay, in [0, 1].
    exploration_fraction: fraction of total_env_steps over which epsilon decays linearly from the
      start, in (0, 1] (unused with exploration_steps).
    exploration_steps: env steps (per seed) over which epsilon decays linearly once learning starts,
      epsilon_start until then (Young & Tian 2019, Dopamine); none = exploration_fraction of the
      run.
    network: mlp, conv (MinAtar), nature (Mnih et al. 2015, for Atari frame stacks (4, 84, 84); its
      head is hidden_sizes), or auto (nature for 84x84 frame stacks, conv for other images, else
      mlp).
    hidden_sizes: hidden layer widths of the MLP (and of the conv net's head); none = no hidden
      layer.
    conv_padding: padding of the conv net's 3x3 convolution: valid (10x10 -> 8x8, Young & Tian 2019)
      or same (10x10, Obando-Ceron & Castro 2021).
    double_dqn: Double DQN targets (van Hasselt et al. 2016): the online net picks the next action.
    dueling: dueling value/advantage head (Wang et al. 2016).
    dueling_hidden: where a dueling head's hidden layers go: shared (both streams read one hidden
      stack, each stream is one linear layer: the usual MLP form, about one network's cost),
      per-stream (each stream has its own copy of hidden_sizes: Wang et al.'s form over a shared
      conv torso; on an MLP it doubles the network), or auto (shared for an MLP, per-stream for
      the conv and Nature nets).
    max_grad_norm: clip gradients to this global norm (> 0); none = no clipping.
    noisy: noisy linear layers (Fortunato et al. 2018) explore instead of epsilon (the epsilon flags
      are then unused; greedy evaluation uses the mean weights).
  """

  learning_rate: float = 2.5e-4
  lr_decay: bool = True
  optimizer: str = "adam"
  optimizer_eps: float | None = None
  discount_factor: float = 0.99
  target_update_interval: int = 50
  epsilon_start: float = 1.0
  epsilon_end: float = 0.05
  exploration_fraction: float = 0.5
  exploration_steps: int | None = None
  network: str = "auto"
  hidden_sizes: tuple[int, ...] = (64, 64)
  conv_padding: str = "valid"
  double_dqn: bool = False
  dueling: bool = False
  dueling_hidden: str = "auto"
  max_grad_norm: float | None = None
  noisy: bool = False

  #: Flags that set a field: ``{flag: (field, value on, value off)}``.
  FLAG_ALIASES: ClassVar[Mapping[str, tuple[str, Any, Any]]] = types.MappingProxyType({})
  #: Settings renamed since runs were first written: ``{old: (new, convert)}``
  #: (a saved ``config.json`` and checkpoint are read under the new names).
  RENAMED: ClassVar[Mapping[str, tuple[str, Callable[[Any], Any]]]] = types.MappingProxyType({})
  #: Settings added since runs were first written: ``{name: the value runs
  #: had before it existed}`` (a dueling MLP had a hidden stack per stream).
  INTRODUCED: ClassVar[Mapping[str, Any]] = types.MappingProxyType({"dueling_hidden": "per-stream"})

  def __post_init__(self):
    # The settings the agents' constructors take too: one rule each (hyperparams.py).
    hyperparams.check_all({f.name: getattr(self, f.name) for f in dataclasses.fields(self)})

    def check(ok, name, rule):
      if not ok:
        raise ConfigError(f"{name} must be {rule}, got {getattr(self, name)!r}.")

    check(self.network in ("auto", "mlp", "conv", "nature"), "network", "auto, mlp, conv or nature")
    check(
      all(isinstance(h, int) and h >= 1 for h in self.hidden_sizes),
      "hidden_sizes",
      "integers >= 1 (or none: no hidden layer)",
    )
    check(self.optimizer in OPTIMIZERS, "optimizer", " or ".join(OPTIMIZERS))
    check(self.conv_padding in ("valid", "same"), "conv_padding", "valid or same")
    check(
      self.dueling_hidden in ("auto", *networks.DUELING_HIDDEN),
      "dueling_hidden",
      "auto, " + " or ".join(networks.DUELING_HIDDEN),
    )


@dataclasses.dataclass(frozen=True)
class DQNConfig(QLearningConfig):
  """DQN's flags (Mnih et al. 2015), with the DQN family's options (M-DQN's extend them).

  Attributes:
    huber_delta: the Huber loss with this delta instead of 0.5 td^2 (--huber: delta 1, the loss
      of Mnih et al. 2015's clipped error); none = 0.5 td^2.
  """

  huber_delta: float | None = None

  FLAG_ALIASES = types.MappingProxyType({"huber": ("huber_delta", 1.0, None)})
  RENAMED = types.MappingProxyType({"huber": ("huber_delta", lambda on: 1.0 if on else None)})


def q_network(config: QLearningConfig, env: Any, atoms: int | None = None) -> networks.NetworkFn:
  """The network ``config.network`` names for ``env``'s observations (``auto``:
  :func:`baselax.networks.auto_kind`), dueling and noisy as the config says."""
  observation_space, _ = base.spaces_lib.env_spaces(env)
  kind = networks.auto_kind(observation_space) if config.network == "auto" else config.network
  options = dict(
    hidden_sizes=config.hidden_sizes, dueling=config.dueling, atoms=atoms, noisy=config.noisy
  )
  if config.dueling_hidden != "auto":
    options["dueling_hidden"] = config.dueling_hidden
  if kind == "conv":
    options["padding"] = config.conv_padding.upper()
  return networks.CREATORS[kind](**options)


def agent_kwargs(config: QLearningConfig, sizes: Any) -> dict[str, Any]:
  """The :class:`~baselax.agents.DQN` keyword arguments every Q-learning
  entry shares, with the run's sizes: ``learning_rate``, ``discount_factor``,
  ``epsilon_schedule``, ``target_update_interval``, ``max_grad_norm``,
  ``optimizer``, ``noisy``. An entry's build adds its own (``double``,
  ``kappa``, ...).

  ``sizes`` is the trainer's :class:`~baselax.training.Derived`: epsilon
  decays over ``exploration_fraction`` of the run's env steps, or over
  ``exploration_steps`` from the first update (counted in ``predict``
  calls), the learning rate to 0 over the run's updates. With
  ``config.noisy`` epsilon is 0: the noise explores.
  """
  if config.noisy:
    epsilon = optax.constant_schedule(0.0)
  elif config.exploration_steps is not None:
    epsilon = delayed_epsilon(
      config.epsilon_start, config.epsilon_end, config.exploration_steps, sizes
    )
  else:
    epsilon = linear_epsilon(
      config.epsilon_start, config.epsilon_end, config.exploration_fraction, sizes
    )
  learning_rate = config.learning_rate
  if config.lr_decay:
    learning_rate = optax.linear_schedule(config.learning_rate, 0.0, max(1, sizes.total_updates))
  return dict(
    learning_rate=learning_rate,
    discount_factor=config.discount_factor,
    epsilon_schedule=epsilon,
    target_update_interval=config.target_update_interval,
    max_grad_norm=config.max_grad_norm,
    optimizer=optimizer(config),
    noisy=config.noisy,
  )


def optimizer(config: QLearningConfig) -> Callable[[Any], optax.GradientTransformation]:
  """The optimizer ``config`` names, as a function of the learning rate.

  ``rmsprop`` is PyTorch's centered RMSprop (``alpha=0.95``, ``eps`` added to
  the square root), the optimizer of Young & Tian 2019's ``examples/dqn.py``:
  ``optax.rmsprop(lr, decay=0.95, eps=eps, centered=True, eps_in_sqrt=False)``.
  """
  eps = config.optimizer_eps
  if config.optimizer == "rmsprop":
    eps = 0.01 if eps is None else eps
    return lambda lr: optax.rmsprop(lr, decay=0.95, eps=eps, centered=True, eps_in_sqrt=False)
  eps = 1e-8 if eps is None else eps
  return lambda lr: optax.adam(lr, eps=eps)


def delayed_epsilon(start: Any, end: Any, steps: Any, sizes: Any) -> optax.Schedule:
  """Epsilon ``start`` until the first update, then linear to ``end`` over
  ``steps`` env steps, counted in exploring ``predict`` calls (Dopamine's
  ``linearly_decaying_epsilon`` with the replay warm-up as its delay; Young
  & Tian 2019's uniformly random first frames then a decay).

  A swept (traced) ``steps`` works too: the schedule is ``jnp`` arithmetic.
  """
  per_call = np.float32(sizes.env_steps_per_iteration)
  # Predict calls before the first update: train_every of them per scan step.
  delay = sizes.learning_starts_step * (sizes.env_steps_per_step // sizes.env_steps_per_iteration)
  calls: Any  # a traced array in a sweep over the setting, else a Python int
  if base.is_traced(steps):
    calls = jnp.maximum(1, jnp.floor(jnp.float32(steps) / per_call))
  else:
    calls = max(1, int(np.floor(np.float32(steps) / per_call)))

  def schedule(count):
    done = jnp.clip(count - delay, 0, calls) / calls
    return start + (end - start) * done

  return schedule


def linear_epsilon(start: Any, end: Any, fraction: Any, sizes: Any) -> optax.Schedule:
  """``optax.linear_schedule(start, end, calls)``: epsilon decays over
  ``fraction`` of the run's env steps, counted in exploring ``predict`` calls
  (``calls = max(1, floor(fraction * total_env_steps / env_steps_per_iteration))``).

  ``calls`` is worked out in float32 whether ``fraction`` is a number or a
  swept, traced one (``base.is_traced``; optax checks the length in Python,
  so a traced length gets optax's formula here): a point of a sweep over
  ``exploration_fraction`` decays over exactly the calls it would alone.
  """
  total = np.float32(sizes.total_env_steps)
  per_call = np.float32(sizes.env_steps_per_iteration)
  if not base.is_traced(fraction):
    # numpy, not jnp: an agent built inside a trace (a sweep over another
    # setting) would get a staged jnp value, and optax needs a Python int.
    calls = max(1, int(np.floor(np.float32(fraction) * total / per_call)))
    return optax.linear_schedule(start, end, calls)
  traced = jnp.maximum(1, jnp.floor(jnp.float32(fraction) * total / per_call)).astype(jnp.int32)

  def schedule(count):
    frac = 1 - jnp.clip(count, 0, traced) / traced
    return (start - end) * frac + end

  return schedule
