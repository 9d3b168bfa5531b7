"""Your own agent, with the whole research run: Expected SARSA in one file.

    python experiments/custom_agent.py                         # CartPole-v1, run directory and all
    python experiments/custom_agent.py --target-epsilon 0.1 --n-step 3
    python experiments/custom_agent.py --resume runs/CartPole-v1-esarsa-...
    python experiments/custom_agent.py evaluate runs/CartPole-v1-esarsa-...

Expected SARSA (van Seijen et al. 2009) bootstraps from the expected value of
the next state under an epsilon-greedy target policy instead of the max:
``r + discount * sum_a pi(a|s') Q_target(s', a)``. It is written here against
``BaseAgent`` alone, outside the library, the way you would write yours:

1. named pytrees for what changes (``Params``, ``OptimOutput``; ``PolicyState``
   and ``OptimState`` come from ``BaseAgent``): the trainer treats them as opaque;
2. ``init_params`` / ``init_optimizer`` / ``init_policy``;
3. ``predict(params, policy_state, obs, key, evaluation)`` on a batch
   ``(B, *obs_shape)``, returning an output with ``actions`` ``(B,)``;
4. ``update(params, optimizer_state, data, axis_name=None)`` on the batch
   ``{obs, action, reward, terminated, next_obs}``, averaging gradients over
   ``axis_name`` when given; every scalar field of its ``OptimOutput`` is logged;
5. ``contract``: the optional batch keys it honours (``discount`` for n-step
   returns, ``weight`` for prioritized replay) and whether it returns
   per-sample ``td_error``: the trainer refuses a run that needs more;
6. a frozen config dataclass (its fields become flags) and a build function,
   registered in one line; ``baselax.experiment.main`` does the rest.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any, NamedTuple, Tuple

import jax
import jax.numpy as jnp
import optax

from baselax import experiment, networks
from baselax.agents import AgentContract, BaseAgent, registry, value_learning


class ExpectedSarsa(BaseAgent):
  """Expected SARSA with a target network copied every ``target_update_interval`` updates.

  Args:
    network: a Q-network creator (``baselax.networks.mlp_q_network()``).
    env: a gym-like env (for the spaces).
    learning_rate: Adam step size or schedule.
    discount_factor: gamma.
    epsilon_schedule: exploration epsilon per exploring ``predict`` call.
    target_epsilon: epsilon of the target policy whose expectation is the target.
    target_update_interval: updates between target copies.
  """

  contract = AgentContract(reads=frozenset({"discount", "weight"}), td_error=True)

  class Params(NamedTuple):
    online: Any
    target: Any

  class PolicyOutput(NamedTuple):
    actions: jax.Array     # (B,)
    q_values: jax.Array    # (B, A)

  class OptimOutput(NamedTuple):
    loss: jax.Array        # [] logged
    q_mean: jax.Array      # [] logged
    td_error: jax.Array    # (B,) prioritized replay's priorities (not logged)

  def __init__(self, network, env, learning_rate, discount_factor: float = 0.99,
               epsilon_schedule: optax.Schedule = optax.linear_schedule(1.0, 0.05, 10_000),
               target_epsilon: float = 0.05, target_update_interval: int = 50):
    super().__init__(network, env, learning_rate)
    self.discount_factor = discount_factor   # n-step returns use it
    self.epsilon_schedule = epsilon_schedule
    self.target_epsilon = target_epsilon
    self.target_update_interval = target_update_interval

  def init_params(self, rng) -> "ExpectedSarsa.Params":
    online = super().init_params(rng)
    return self.Params(online=online, target=online)

  def init_optimizer(self, params, rng=None) -> BaseAgent.OptimState:
    return self.OptimState(count=jnp.zeros((), jnp.int32),
                           opt_state=self.optimizer.init(params.online))

  def predict(self, params, policy_state, obs, key, evaluation: bool = False, **kwargs):
    q_values = self.network.apply(params.online, obs)
    if evaluation:
      return self.PolicyOutput(jnp.argmax(q_values, -1), q_values), policy_state
    epsilon = self.epsilon_schedule(policy_state.count)
    actions = value_learning.epsilon_greedy(key, q_values, epsilon)
    return (self.PolicyOutput(actions, q_values),
            self.PolicyState(count=policy_state.count + 1))

  def loss(self, online, target, data) -> Tuple[jax.Array, "ExpectedSarsa.OptimOutput"]:
    q_tm1 = self.network.apply(online, data["obs"])               # (B, A)
    q_t = self.network.apply(target, data["next_obs"])            # (B, A)
    num_actions = q_t.shape[-1]
    greedy = jax.nn.one_hot(jnp.argmax(q_t, -1), num_actions)
    pi = (1.0 - self.target_epsilon) * greedy + self.target_epsilon / num_actions
    discount = data.get("discount", self.discount_factor *
                        (1.0 - data["terminated"].astype(jnp.float32)))
    target_value = data["reward"] + discount * jnp.sum(pi * q_t, axis=-1)
    q_taken = jnp.take_along_axis(q_tm1, data["action"][:, None], axis=-1)[:, 0]
    td = jax.lax.stop_gradient(target_value) - q_taken
    loss = jnp.mean(data.get("weight", 1.0) * 0.5 * jnp.square(td))
    return loss, self.OptimOutput(loss=loss, q_mean=jnp.mean(q_tm1), td_error=td)

  def update(self, params, optimizer_state, data, axis_name=None, **kwargs):
    grads, out = jax.grad(self.loss, has_aux=True)(params.online, params.target, data)
    if axis_name is not None:   # the trainer's device axis: average over devices
      grads, loss, q_mean = jax.lax.pmean((grads, out.loss, out.q_mean), axis_name)
      out = out._replace(loss=loss, q_mean=q_mean)
    updates, opt_state = self.optimizer.update(grads, optimizer_state.opt_state)
    online = optax.apply_updates(params.online, updates)
    count = optimizer_state.count + 1
    target = optax.periodic_update(online, params.target, count,
                                   self.target_update_interval)
    return (out, self.Params(online=online, target=target),
            self.OptimState(count=count, opt_state=opt_state))


@dataclasses.dataclass(frozen=True)
class ExpectedSarsaConfig:
  """Expected SARSA's flags.

  Attributes:
    learning_rate: Adam step size (> 0).
    target_epsilon: epsilon of the target policy, in [0, 1] (0 is Q-learning).
    exploration_fraction: fraction of the run over which exploration decays from 1 to 0.05.
    target_update_interval: updates between target-network copies (>= 1).
    hidden_sizes: hidden layer widths of the MLP.
  """
  learning_rate: float = 5e-4
  target_epsilon: float = 0.05
  exploration_fraction: float = 0.5
  target_update_interval: int = 50
  hidden_sizes: Tuple[int, ...] = (64, 64)

  def __post_init__(self):
    # A ValueError here is a usage error on the command line, naming the flag.
    if not self.learning_rate > 0:
      raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}.")
    if not 0.0 <= self.target_epsilon <= 1.0:
      raise ValueError(f"target_epsilon must be in [0, 1], got {self.target_epsilon}.")
    if not 0.0 < self.exploration_fraction <= 1.0:
      raise ValueError(f"exploration_fraction must be in (0, 1], got "
                       f"{self.exploration_fraction}.")
    if self.target_update_interval < 1:
      raise ValueError(f"target_update_interval must be >= 1, got "
                       f"{self.target_update_interval}.")


def build(config: ExpectedSarsaConfig, env, sizes) -> ExpectedSarsa:
  """``sizes`` converts env steps to the agent's own counters (predict calls)."""
  explore = sizes.predict_calls(config.exploration_fraction * sizes.total_env_steps)
  return ExpectedSarsa(networks.mlp_q_network(config.hidden_sizes), env,
                       config.learning_rate,
                       epsilon_schedule=optax.linear_schedule(1.0, 0.05, explore),
                       target_epsilon=config.target_epsilon,
                       target_update_interval=config.target_update_interval)


registry.register("esarsa", ExpectedSarsaConfig, build)


def main(argv=None) -> int:
  """``evaluate RUN_DIR ...`` evaluates; anything else trains (``--help`` for flags)."""
  argv = sys.argv[1:] if argv is None else list(argv)
  if argv[:1] == ["evaluate"]:
    experiment.evaluate(argv[1:], prog="custom_agent.py evaluate")
    return 0
  if "--agent" not in argv:
    argv = ["--agent", "esarsa", *argv]
  return experiment.main(argv, prog="custom_agent.py")


if __name__ == "__main__":
  sys.exit(main())
