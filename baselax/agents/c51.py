"""C51 (Bellemare, Dabney & Munos 2017, "A distributional perspective on
reinforcement learning", arXiv:1707.06887) and Rainbow (Hessel et al. 2018,
"Rainbow: combining improvements in deep reinforcement learning",
arXiv:1710.02298) as a composition of C51 with the DQN family's pieces.

C51 learns a categorical distribution of the return over fixed atoms
``linspace(v_min, v_max, num_atoms)`` for every action, trained by the
cross-entropy to the projected target. It is DQN with another loss and
another :meth:`action_values` (the mean of each action's distribution):
acting, the optimizer step, the device average and the target copy are
:class:`~baselax.agents.DQN`'s.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from baselax.agents import base, distributional, dqn, hyperparams, q_config
from baselax.errors import ConfigError


def check_support(num_atoms: Any, v_min: Any, v_max: Any) -> None:
  """Refuses a support C51 cannot use (``ConfigError`` naming the field)."""
  hyperparams.check("num_atoms", num_atoms)
  if not (base.is_traced(v_min) or base.is_traced(v_max)) and not v_min < v_max:
    raise ConfigError(f"v_min must be < v_max, got v_min={v_min!r}, v_max={v_max!r}.")


class C51(dqn.DQN):
  """C51: DQN's API (``Params``, ``PolicyOutput``, ``OptimState``) on categoricals.

  Args:
    *args: as for :class:`~baselax.agents.DQN`; the network returns logits
      ``(B, A, num_atoms)``, e.g. ``baselax.networks.mlp_q_network(atoms=num_atoms)``.
    **kwargs: as for :class:`~baselax.agents.DQN` (``double`` picks the next
      action by the online network's mean values).
    num_atoms: atoms of the support (>= 2). Defaults to 51.
    v_min: the support's lower end (``v_min < v_max``). Defaults to -10.
    v_max: the support's upper end. Defaults to 100.

  The loss is ``mean_b(weight_b * CE_b)`` with ``CE_b`` the cross-entropy of
  the online distribution of ``a_b`` to the projection of ``r_b + discount_b *
  z`` under the next action's target distribution
  (:func:`~baselax.agents.distributional.categorical_q_learning`);
  ``discount`` = ``data["discount"]`` when present (n-step), else
  ``gamma * (1 - terminated)``. ``OptimOutput.td_error`` is ``CE_b``, the
  priority Rainbow uses.
  """

  # DQN's contract: the categorical projection is O(N + K) per sample
  # (distributional.sorted_categorical_projection), so no pairwise loss.

  def __init__(
    self, *args: Any, num_atoms: int = 51, v_min: float = -10.0, v_max: float = 100.0, **kwargs: Any
  ):
    check_support(num_atoms, v_min, v_max)
    self.num_atoms = num_atoms
    self.v_min, self.v_max = base.python_scalar(v_min), base.python_scalar(v_max)
    super().__init__(*args, **kwargs)

  @property
  def atoms(self) -> jax.Array:
    """``(num_atoms,)`` the support ``linspace(v_min, v_max, num_atoms)``."""
    return jnp.linspace(self.v_min, self.v_max, self.num_atoms)

  def logits(self, params: Any, obs: jax.Array, rng: jax.Array | None = None) -> jax.Array:
    """Logits ``(B, A, num_atoms)``; refuses a network of another shape."""
    logits = self.network.apply(params, obs, rng)
    if logits.ndim != 3 or logits.shape[-1] != self.num_atoms:
      raise ValueError(
        f"C51 needs a network returning logits (B, A, {self.num_atoms}), "
        f"got shape {logits.shape}; use e.g. "
        f"mlp_q_network(atoms={self.num_atoms})."
      )
    return logits

  def action_values(self, online: Any, obs: jax.Array, rng: jax.Array | None = None) -> jax.Array:
    """Q-values ``(B, A)``: the mean of each action's categorical."""
    return distributional.categorical_q_values(self.atoms, self.logits(online, obs, rng))

  def loss(
    self, online: Any, target: Any, data: Mapping[str, jax.Array], key: jax.Array | None = None
  ) -> tuple[jax.Array, dqn.DQN.OptimOutput]:
    online_key, target_key, selector_key = self.noise_keys(key, 3)
    atoms = self.atoms
    logits_tm1 = self.logits(online, data["obs"], online_key)
    logits_t = self.logits(target, data["next_obs"], target_key)
    selector_logits = (
      self.logits(online, data["next_obs"], selector_key) if self.double_dqn else logits_t
    )
    q_t_selector = self.mask_next(distributional.categorical_q_values(atoms, selector_logits), data)
    per_sample = jax.vmap(
      distributional.categorical_q_learning, in_axes=(None, 0, 0, 0, 0, None, 0, 0)
    )(
      atoms,
      logits_tm1,
      jnp.asarray(data["action"], jnp.int32),
      jnp.asarray(data["reward"], jnp.float32),
      self.discount(data),
      atoms,
      logits_t,
      q_t_selector,
    )
    weighted = per_sample
    if "weight" in data:
      weighted = jnp.asarray(data["weight"], jnp.float32) * per_sample
    loss = jnp.mean(weighted)
    q_mean = jnp.mean(distributional.categorical_q_values(atoms, logits_tm1))
    return loss, self.OptimOutput(
      loss=loss, q_mean=q_mean, td_error=jax.lax.stop_gradient(per_sample)
    )


@dataclasses.dataclass(frozen=True)
class C51Config(q_config.QLearningConfig):
  """C51's flags. The default support fits CartPole-v1 (values up to
  ``1 / (1 - gamma)`` = 100) and MinAtar; set it to your env's return range.

  Attributes:
    learning_rate: Adam step size (at the start, if decayed).
    num_atoms: atoms of the categorical support (>= 2).
    v_min: lowest atom of the support (< v_max).
    v_max: highest atom of the support.
  """

  learning_rate: float = 5e-4
  num_atoms: int = 51
  v_min: float = -10.0
  v_max: float = 100.0

  def __post_init__(self):
    super().__post_init__()
    check_support(self.num_atoms, self.v_min, self.v_max)


def build(config: C51Config, env: Any, sizes: Any) -> C51:
  """A :class:`C51` for ``env`` from its registry config."""
  return C51(
    q_config.q_network(config, env, atoms=config.num_atoms),
    env,
    num_atoms=config.num_atoms,
    v_min=config.v_min,
    v_max=config.v_max,
    double_dqn=config.double_dqn,
    **q_config.agent_kwargs(config, sizes),
  )


# --- Rainbow: C51 + n-step + prioritized replay + dueling + Double + noisy ---


@dataclasses.dataclass(frozen=True)
class RainbowConfig(C51Config):
  """Rainbow's flags (Hessel et al. 2018): C51 with Double targets, a dueling
  noisy network (so epsilon is 0), and, as trainer defaults of the registry
  entry, 3-step returns and prioritized replay (exponent 0.5, importance
  exponent annealed from 0.4). Every piece can be turned off by its flag.

  Attributes:
    double_dqn: Double DQN targets (van Hasselt et al. 2016): the online net picks the next action.
    dueling: dueling value/advantage head (Wang et al. 2016).
    noisy: noisy linear layers (Fortunato et al. 2018) explore instead of epsilon.
  """

  double_dqn: bool = True
  dueling: bool = True
  noisy: bool = True


#: What ``--agent rainbow`` sets in the trainer's flags unless they are given.
RAINBOW_TRAINER_DEFAULTS = {"n_step": 3, "sampling": "prioritized", "priority_exponent": 0.5}
