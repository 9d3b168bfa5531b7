"""Your own agent, trained by the Anakin trainer unchanged: QR-DQN in one file.

    python experiments/custom_agent.py                       # CartPole-v1
    python experiments/custom_agent.py --num-quantiles 51 --total-env-steps 500000

QR-DQN (Dabney et al. 2018, "Distributional RL with quantile regression")
learns ``N`` quantiles of the return of every action instead of its mean, with
the quantile Huber loss. It is written here against ``BaseAgent`` alone, the
way you would write yours:

1. named pytrees for what changes (``Params``, ``PolicyState``, ``OptimState``,
   ``OptimOutput``): the trainer treats them as opaque;
2. ``init_params`` / ``init_optimizer`` / ``init_policy``;
3. ``predict(params, policy_state, obs, key, evaluation)`` on a batch
   ``(B, *obs_shape)``, returning an output with ``actions`` ``(B,)``;
4. ``update(params, optimizer_state, data, axis_name=None)`` on the batch
   ``{obs, action, reward, terminated, next_obs}``, averaging gradients over
   ``axis_name`` when given; every scalar field of its ``OptimOutput`` is
   logged by the trainer.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Any, NamedTuple, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import cli  # noqa: E402  (experiments/cli.py)
import gymnasium  # noqa: E402
import haiku as hk  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

from baselax import anakin, envs  # noqa: E402
from baselax.agents import BaseAgent, value_learning  # noqa: E402


def quantile_network(hidden_sizes=(64, 64), num_quantiles: int = 21):
  """Network creator: observations ``(B, ...)`` -> quantiles ``(B, A, N)``."""

  def creator(action_space: gymnasium.Space) -> hk.Transformed:
    num_actions = int(action_space.n)

    def forward(obs):
      x = hk.Flatten()(jnp.asarray(obs, jnp.float32))
      x = hk.nets.MLP((*hidden_sizes, num_actions * num_quantiles))(x)
      return x.reshape(x.shape[0], num_actions, num_quantiles)

    return hk.without_apply_rng(hk.transform(forward))

  return creator


def quantile_huber_loss(dist_tm1: jax.Array, dist_target: jax.Array,
                        kappa: float = 1.0) -> jax.Array:
  """Quantile-regression Huber loss of one transition (Dabney et al. 2018, eq. 10).

  Args:
    dist_tm1: ``[N]`` predicted quantiles of the taken action.
    dist_target: ``[N]`` target samples ``r + gamma * z'`` (held fixed).

  Returns:
    ``[]`` the loss, summed over predicted quantiles, averaged over targets.
  """
  n = dist_tm1.shape[0]
  taus = (jnp.arange(n, dtype=jnp.float32) + 0.5) / n     # quantile midpoints
  u = jax.lax.stop_gradient(dist_target)[None, :] - dist_tm1[:, None]   # [N, N']
  huber = optax.huber_loss(u, delta=kappa)
  weight = jnp.abs(taus[:, None] - (u < 0).astype(jnp.float32))
  return jnp.sum(jnp.mean(weight * huber / kappa, axis=1))


class QRDQN(BaseAgent):
  """QR-DQN: epsilon-greedy on the mean of the quantiles; target network.

  Args:
    network: a creator returning quantiles ``(B, A, N)`` (see
      :func:`quantile_network`).
    env: a gym-like env (for the spaces).
    learning_rate: Adam step size or schedule.
    discount_factor: gamma.
    epsilon_schedule: epsilon as a function of exploring ``predict`` calls.
    target_update_interval: updates between target copies.
  """

  class Params(NamedTuple):
    online: Any
    target: Any

  class PolicyOutput(NamedTuple):
    actions: jax.Array     # (B,)
    q_values: jax.Array    # (B, A) mean over quantiles

  class OptimOutput(NamedTuple):
    loss: jax.Array
    q_mean: jax.Array

  def __init__(self, network, env, learning_rate, discount_factor: float = 0.99,
               epsilon_schedule: optax.Schedule = optax.linear_schedule(1.0, 0.05, 10_000),
               target_update_interval: int = 50):
    super().__init__(network, env, learning_rate)
    self.discount_factor = discount_factor   # the trainer reads it for n-step
    self.epsilon_schedule = epsilon_schedule
    self.target_update_interval = target_update_interval

  def init_params(self, rng) -> "QRDQN.Params":
    online = super().init_params(rng)
    return self.Params(online=online, target=online)

  def init_optimizer(self, params, rng=None) -> BaseAgent.OptimState:
    return self.OptimState(count=jnp.zeros((), jnp.int32),
                           opt_state=self.optimizer.init(params.online))

  def predict(self, params, policy_state, obs, key, evaluation: bool = False, **kwargs):
    q_values = jnp.mean(self.network.apply(params.online, obs), axis=-1)
    if evaluation:
      return self.PolicyOutput(jnp.argmax(q_values, -1), q_values), policy_state
    epsilon = self.epsilon_schedule(policy_state.count)
    actions = value_learning.epsilon_greedy(key, q_values, epsilon)
    return (self.PolicyOutput(actions, q_values),
            self.PolicyState(count=policy_state.count + 1))

  def loss(self, online, target, data):
    dist_tm1 = self.network.apply(online, data["obs"])          # (B, A, N)
    dist_t = self.network.apply(target, data["next_obs"])       # (B, A, N)
    a_t = jnp.argmax(jnp.mean(dist_t, -1), -1)                  # greedy next action
    batch = jnp.arange(dist_tm1.shape[0])
    discount = self.discount_factor * (1.0 - data["terminated"].astype(jnp.float32))
    target_dist = (data["reward"][:, None] +
                   discount[:, None] * dist_t[batch, a_t])      # (B, N)
    losses = jax.vmap(quantile_huber_loss)(dist_tm1[batch, data["action"]], target_dist)
    loss = jnp.mean(losses)
    return loss, self.OptimOutput(loss=loss, q_mean=jnp.mean(dist_tm1))

  def update(self, params, optimizer_state, data, axis_name=None, **kwargs):
    grads, out = jax.grad(self.loss, has_aux=True)(params.online, params.target, data)
    if axis_name is not None:
      grads, out = jax.lax.pmean((grads, out), axis_name)
    updates, opt_state = self.optimizer.update(grads, optimizer_state.opt_state)
    online = optax.apply_updates(params.online, updates)
    count = optimizer_state.count + 1
    target = optax.periodic_update(online, params.target, count,
                                   self.target_update_interval)
    return (out, self.Params(online=online, target=target),
            self.OptimState(count=count, opt_state=opt_state))


@dataclasses.dataclass(frozen=True)
class QRDQNConfig:
  """The agent side of this example.

  Attributes:
    env_id: a gymnax id with discrete actions.
    num_quantiles: quantiles per action, N.
    learning_rate: Adam step size.
    target_update_interval: updates between target-network copies.
  """
  env_id: str = "CartPole-v1"
  num_quantiles: int = 21
  learning_rate: float = 5e-4
  target_update_interval: int = 50


def main(argv: Optional[list] = None) -> anakin.TrainResult:
  exp, config = cli.parse([(QRDQNConfig, "agent"), (anakin.AnakinConfig, "trainer")],
                          description=__doc__.splitlines()[0], argv=argv)
  env = envs.make(exp.env_id)
  num_devices = anakin.runner.resolve_num_devices(config)
  explore_calls = config.total_env_steps // (2 * config.num_envs * num_devices)
  agent = QRDQN(quantile_network(num_quantiles=exp.num_quantiles), env,
                exp.learning_rate,
                epsilon_schedule=optax.linear_schedule(1.0, 0.05, max(1, explore_calls)),
                target_update_interval=exp.target_update_interval)
  result = anakin.train(agent, env, config)   # the same trainer as DQN's
  final = result.metrics["eval_return"][-1]
  print(f"QR-DQN on {exp.env_id}: final greedy eval return per seed {final}, "
        f"loss {result.metrics['loss'][-1]}")
  return result


if __name__ == "__main__":
  import logging
  logging.basicConfig(level=logging.INFO, format="%(message)s")
  main()
