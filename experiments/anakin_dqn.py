"""Train DQN on a gymnax environment with the Anakin trainer.

    python experiments/anakin_dqn.py                      # CartPole-v1, solves on a laptop CPU
    python experiments/anakin_dqn.py --env-id Breakout-MinAtar --total-env-steps 2000000
    python experiments/anakin_dqn.py --num-seeds 8 --num-envs 64
    python experiments/anakin_dqn.py --help                # every flag, with defaults

Every field of ``AnakinConfig`` (trainer) and ``DQNExperimentConfig`` (agent,
below) is a flag named after it with dashes.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from typing import Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import cli  # noqa: E402  (experiments/cli.py)
from baselax.anakin import AnakinConfig  # noqa: E402


@dataclasses.dataclass(frozen=True)
class DQNExperimentConfig:
  """The agent side of the experiment.

  Attributes:
    env_id: a gymnax id with discrete actions, e.g. CartPole-v1, Breakout-MinAtar.
    learning_rate: Adam step size (at the start, if decayed).
    lr_decay: decay the learning rate linearly to 0 over the run's updates (steadies the final greedy policy: 15/16 CartPole seeds end at >= 490 with it, 7/8 without).
    discount_factor: the discount gamma.
    target_update_interval: updates between target-network copies.
    epsilon_start: exploration epsilon at the start of training.
    epsilon_end: exploration epsilon after the decay.
    exploration_fraction: fraction of total_env_steps over which epsilon decays linearly.
    network: mlp, conv, or auto (conv for image observations, else mlp).
    hidden_sizes: hidden layer widths of the MLP (and of the conv net's head).
    quiet: print only the final summary.
    compilation_cache: directory of JAX's persistent compilation cache (re-runs
      skip most of the compile time); none to disable.
  """
  env_id: str = "CartPole-v1"
  learning_rate: float = 2.5e-4
  lr_decay: bool = True
  discount_factor: float = 0.99
  target_update_interval: int = 50
  epsilon_start: float = 1.0
  epsilon_end: float = 0.05
  exploration_fraction: float = 0.5
  network: str = "auto"
  hidden_sizes: Tuple[int, ...] = (64, 64)
  quiet: bool = False
  compilation_cache: str = "~/.cache/baselax/xla"

  def __post_init__(self):
    if self.network not in ("auto", "mlp", "conv"):
      raise ValueError(f"--network must be auto, mlp or conv, got {self.network!r}.")
    if not 0.0 <= self.epsilon_end <= 1.0 or not 0.0 <= self.epsilon_start <= 1.0:
      raise ValueError("--epsilon-start and --epsilon-end must be in [0, 1].")
    if not 0.0 < self.exploration_fraction <= 1.0:
      raise ValueError(f"--exploration-fraction must be in (0, 1], got "
                       f"{self.exploration_fraction}.")


def build_agent(exp: DQNExperimentConfig, trainer_config, env, num_devices: int):
  """A DQN from the experiment config; epsilon decays over env steps."""
  import optax
  from baselax import networks
  from baselax.agents import DQN

  obs_space = env.single_observation_space
  if exp.network == "mlp":
    network = networks.mlp_q_network(exp.hidden_sizes)
  elif exp.network == "conv":
    network = networks.conv_q_network(hidden_sizes=exp.hidden_sizes)
  else:
    network = (networks.conv_q_network(hidden_sizes=exp.hidden_sizes)
               if len(obs_space.shape) == 3 else
               networks.mlp_q_network(exp.hidden_sizes))
  # The schedule counts predict calls; one call steps num_envs envs on each device.
  steps_per_predict = trainer_config.num_envs * num_devices
  decay_calls = max(1, int(exp.exploration_fraction * trainer_config.total_env_steps
                           / steps_per_predict))
  epsilon = optax.linear_schedule(exp.epsilon_start, exp.epsilon_end, decay_calls)
  learning_rate = exp.learning_rate
  if exp.lr_decay:
    total_updates = max(1, trainer_config.derive(num_devices).total_updates)
    learning_rate = optax.linear_schedule(exp.learning_rate, 0.0, total_updates)
  return DQN(network, env, learning_rate,
             discount_factor=exp.discount_factor, epsilon_schedule=epsilon,
             target_update_interval=exp.target_update_interval)


def main(argv: Optional[list] = None) -> dict:
  exp, config = cli.parse([(DQNExperimentConfig, "agent"), (AnakinConfig, "trainer")],
                          description=__doc__.splitlines()[0], argv=argv)

  import jax
  import numpy as np
  from baselax import anakin, envs

  if exp.compilation_cache.lower() != "none":
    jax.config.update("jax_compilation_cache_dir",
                      os.path.expanduser(exp.compilation_cache))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


  try:
    env = envs.make(exp.env_id)
  except ValueError as error:
    raise SystemExit(f"error: {error}")
  num_devices = anakin.runner.resolve_num_devices(config)
  agent = build_agent(exp, config, env, num_devices)
  print(f"baselax DQN on {exp.env_id} | jax {jax.__version__} "
        f"{jax.default_backend()} ({jax.devices()[0].device_kind}) x{num_devices} | "
        f"{config.num_seeds} seed(s) x {config.num_envs} envs/device | "
        f"{config.total_env_steps:,} env steps per seed", flush=True)

  def mean(x):
    """Mean over seeds of the finite values (NaN: no episode ended / no update yet)."""
    x = np.asarray(x, np.float64)
    return x[np.isfinite(x)].mean() if np.isfinite(x).any() else float("nan")

  def progress(s):
    if not exp.quiet:
      print(f"env steps {s['env_steps']:>9,} | sps {s['sps']:>9,.0f} | "
            f"train return {mean(s['train_return']):7.1f} | "
            f"eval return {mean(s['eval_return']):7.1f} | "
            f"loss {mean(s.get('loss', np.nan)):.4f}", flush=True)

  t0 = time.perf_counter()
  result = anakin.train(agent, env, config, on_chunk=progress)
  wall = time.perf_counter() - t0
  m = result.metrics
  final = m["eval_return"][-1]
  run_time = m["wall_time"][-1]
  sps = result.derived.total_env_steps * config.num_seeds / run_time
  print("---")
  print(f"final greedy eval return per seed ({m['eval_returns'].shape[-1]} episodes "
        f"each): {np.array2string(final, precision=1)}  mean {final.mean():.1f}")
  print(f"env steps per second: {sps:,.0f} (all seeds) | compile "
        f"{m['compile_time']:.1f}s | run {run_time:.1f}s | total wall {wall:.1f}s")
  return {"eval_return": final, "sps": sps, "wall_time": wall, "result": result}


if __name__ == "__main__":
  main()
