"""Train DQN on a gymnax environment with the Anakin trainer.

    python experiments/anakin_dqn.py                      # CartPole-v1, solves on a laptop CPU
    python experiments/anakin_dqn.py --env-id Breakout-MinAtar --total-env-steps 2000000
    python experiments/anakin_dqn.py --num-seeds 8 --num-envs 64
    python experiments/anakin_dqn.py --help                # every flag, with defaults

Every field of ``AnakinConfig`` (trainer) and ``DQNExperimentConfig`` (agent,
below) is a flag named after it with dashes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from typing import Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import cli  # noqa: E402  (experiments/cli.py)
from baselax.anakin import AnakinConfig  # noqa: E402
from baselax.anakin import checkpoint  # noqa: E402
from baselax.anakin.distributed import DistributedConfig  # noqa: E402

#: Sections of config.json that define the experiment; a resumed run must match them.
EXPERIMENT_SECTIONS = ("agent", "trainer")


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
    double_dqn: Double DQN targets (van Hasselt et al. 2016).
    dueling: dueling value/advantage head (Wang et al. 2016).
    huber: Huber loss (delta 1) instead of 0.5 td^2.
    max_grad_norm: clip gradients to this global norm; none = no clipping.
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
  double_dqn: bool = False
  dueling: bool = False
  huber: bool = False
  max_grad_norm: Optional[float] = None

  def __post_init__(self):
    if self.network not in ("auto", "mlp", "conv"):
      raise ValueError(f"--network must be auto, mlp or conv, got {self.network!r}.")
    if not 0.0 <= self.epsilon_end <= 1.0 or not 0.0 <= self.epsilon_start <= 1.0:
      raise ValueError("--epsilon-start and --epsilon-end must be in [0, 1].")
    if not 0.0 < self.exploration_fraction <= 1.0:
      raise ValueError(f"--exploration-fraction must be in (0, 1], got "
                       f"{self.exploration_fraction}.")
    if self.max_grad_norm is not None and not self.max_grad_norm > 0:
      raise ValueError(f"--max-grad-norm must be > 0 (or none), got {self.max_grad_norm}.")


@dataclasses.dataclass(frozen=True)
class RunConfig:
  """Where the run's output goes, and how it is shown (not part of the experiment).

  Attributes:
    run_dir: the run directory (config.json, metrics.jsonl, TensorBoard events,
      learning_curve.png, checkpoints/); none = runs/<env>-dqn-<timestamp>.
    resume: a run directory to continue from its newest checkpoint; its saved
      configuration is the default for every flag, and flags that change the
      experiment are refused.
    checkpoint_every: env steps (per seed) between checkpoints, rounded to
      whole chunks; a checkpoint is also written at the end and on Ctrl-C.
    tensorboard: write TensorBoard event files (needs tensorboardX; without it
      the run goes on without them).
    quiet: print only the final summary (no progress).
    compilation_cache: directory of JAX's persistent compilation cache (re-runs
      skip most of the compile time); none to disable.
  """
  run_dir: Optional[str] = None
  resume: Optional[str] = None
  checkpoint_every: int = 100_000
  tensorboard: bool = True
  quiet: bool = False
  compilation_cache: str = "~/.cache/baselax/xla"

  def __post_init__(self):
    if self.checkpoint_every < 1:
      raise ValueError(f"--checkpoint-every must be >= 1, got {self.checkpoint_every}.")
    if self.resume is not None and self.run_dir is not None and (
        os.path.abspath(self.run_dir) != os.path.abspath(self.resume)):
      raise ValueError("--resume RUN_DIR continues in RUN_DIR; leave out --run-dir.")


def build_agent(exp: DQNExperimentConfig, trainer_config, env, num_devices: int):
  """A DQN from the experiment config; epsilon decays over env steps."""
  import optax
  from baselax import networks
  from baselax.agents import DQN

  obs_space = env.single_observation_space
  conv = exp.network == "conv" or (exp.network == "auto" and len(obs_space.shape) == 3)
  network = (networks.conv_q_network(hidden_sizes=exp.hidden_sizes, dueling=exp.dueling)
             if conv else
             networks.mlp_q_network(exp.hidden_sizes, dueling=exp.dueling))
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
             target_update_interval=exp.target_update_interval,
             double=exp.double_dqn, huber_delta=1.0 if exp.huber else None,
             max_grad_norm=exp.max_grad_norm)


def load_run_config(run_dir: str) -> dict:
  """The ``config.json`` of a run directory, or a clear error."""
  path = os.path.join(run_dir, "config.json")
  if not os.path.exists(path):
    raise SystemExit(f"error: {run_dir} is not a run directory (no config.json). "
                     f"Pass the directory a run printed at its end.")
  with open(path) as f:
    return json.load(f)


def parse_args(argv: Optional[list] = None):
  """``(DQNExperimentConfig, AnakinConfig, RunConfig, DistributedConfig)`` from the command line.

  With ``--resume RUN_DIR`` the saved configuration supplies the defaults, and
  a flag that changes the experiment is refused, naming what differs.
  """
  pre = argparse.ArgumentParser(add_help=False)
  pre.add_argument("--resume")
  resume = pre.parse_known_args(argv)[0].resume
  defaults, check = None, None
  if resume is not None:
    saved = load_run_config(resume)
    defaults = {k: v for section in EXPERIMENT_SECTIONS for k, v in saved[section].items()}

    def check(parsed):
      diffs = [f"--{k.replace('_', '-')}: the run has {saved[section][k]!r}, "
               f"you asked for {v!r}"
               for section, config in zip(EXPERIMENT_SECTIONS, parsed)
               for k, v in checkpoint.to_json(dataclasses.asdict(config)).items()
               if saved[section].get(k) != v]
      if diffs:
        return (f"cannot resume {resume} with a different experiment:\n  " +
                "\n  ".join(diffs) + "\nLeave these flags out to continue the "
                "run as it was, or start a new run.")
      return None

  return cli.parse([(DQNExperimentConfig, "agent"), (AnakinConfig, "trainer"),
                    (RunConfig, "run"), (DistributedConfig, "multi-process")],
                   description=__doc__.splitlines()[0], argv=argv,
                   defaults=defaults, check=check)


def open_run(exp, config, run, num_devices: int, derived):
  """The run directory and checkpointer (process 0 only); refuses a clash.

  Returns ``(run_dir, checkpointer, chunks_done)``, ``chunks_done`` being the
  newest checkpoint's when resuming, else None.
  """
  import jax
  from baselax import runs

  resuming = run.resume is not None
  run_path = run.resume or run.run_dir or runs.default_run_dir(exp.env_id, "dqn")
  checkpointer = checkpoint.Checkpointer(
      runs.checkpoint_dir(run_path),
      every_chunks=max(1, round(run.checkpoint_every / derived.env_steps_per_chunk)),
      metadata={f"agent.{k}": v for k, v in dataclasses.asdict(exp).items()})
  chunks_done = checkpointer.latest_step()
  if resuming and chunks_done is None:
    raise SystemExit(f"error: {run_path} has no checkpoint to resume from.")
  if not resuming and chunks_done is not None:
    raise SystemExit(f"error: {run_path} already holds a run. Continue it with "
                     f"--resume {run_path}, or pick another --run-dir.")
  run_dir = runs.RunDirectory(
      run_path,
      {"agent": dataclasses.asdict(exp), "trainer": dataclasses.asdict(config),
       "run": dataclasses.asdict(run), "agent_class": "DQN",
       "num_devices": num_devices, "num_processes": jax.process_count(),
       "jax": jax.__version__, "backend": jax.default_backend()},
      tensorboard=None if run.tensorboard else False,
      resume_from_chunk=chunks_done if resuming else None)
  return run_dir, checkpointer, chunks_done if resuming else None


def setup_logging(quiet: bool) -> None:
  """The library logs through the "baselax" loggers; show them on stdout."""
  if quiet:
    return
  handler = logging.StreamHandler(sys.stdout)
  handler.setFormatter(logging.Formatter("%(message)s"))
  logger = logging.getLogger("baselax")
  logger.addHandler(handler)
  logger.setLevel(logging.INFO)
  logger.propagate = False  # orbax installs a root handler


def main(argv: Optional[list] = None) -> dict:
  """Runs the experiment; returns ``eval_return``, ``sps``, ``run_dir``, ... .

  In a multi-process run every process calls this with the same flags (and
  its own ``--process-id``); only process 0 writes the run directory,
  checkpoints and progress.
  """
  exp, config, run, dist = parse_args(argv)
  from baselax.anakin import distributed
  try:
    distributed.initialize(dist)  # before anything touches a device
  except RuntimeError as error:
    raise SystemExit(f"error: {error}")

  import jax
  import numpy as np
  from baselax import anakin, envs, runs

  main_process = distributed.is_main_process()
  setup_logging(run.quiet or not main_process)
  if run.compilation_cache.lower() != "none":
    jax.config.update("jax_compilation_cache_dir",
                      os.path.expanduser(run.compilation_cache))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
  if run.resume is not None and jax.process_count() > 1:
    raise SystemExit("error: resuming a multi-process run is not supported yet "
                     "(checkpoints of multi-process runs hold the params only).")
  try:
    distributed.check_same_everywhere(
        "command lines", [dataclasses.asdict(exp), dataclasses.asdict(config)])
  except ValueError as error:
    raise SystemExit(f"error: {error}")

  try:
    env = envs.make(exp.env_id)
  except ValueError as error:
    raise SystemExit(f"error: {error}")
  num_devices = anakin.runner.resolve_num_devices(config)
  derived = config.derive(num_devices)
  agent = build_agent(exp, config, env, num_devices)

  run_dir = checkpointer = None
  chunks_done = None
  if main_process:
    run_dir, checkpointer, chunks_done = open_run(exp, config, run, num_devices, derived)
    print(f"baselax DQN on {exp.env_id} | jax {jax.__version__} "
          f"{jax.default_backend()} ({jax.devices()[0].device_kind}) x{num_devices}"
          f"{f' over {jax.process_count()} processes' if jax.process_count() > 1 else ''} | "
          f"{config.num_seeds} seed(s) x {config.num_envs} envs/device | "
          f"{config.total_env_steps:,} env steps per seed | {run_dir.path}", flush=True)
  progress = runs.Progress(
      derived.total_env_steps, enabled=main_process and not run.quiet,
      initial=(chunks_done or 0) * derived.env_steps_per_chunk)

  def on_chunk(summary):
    if run_dir is not None:
      run_dir.log_chunk(summary)
    progress.update(summary)

  t0 = time.perf_counter()
  try:
    result = anakin.train(agent, env, config, on_chunk=on_chunk,
                          checkpointer=checkpointer, resume=chunks_done is not None)
  except anakin.NonFiniteError as error:
    raise SystemExit(f"error: {error}")
  finally:
    progress.close()
    if run_dir is not None:
      if os.path.exists(run_dir.metrics_path):
        run_dir.write_learning_curve(f"DQN on {exp.env_id}")
      run_dir.close()
      checkpointer.close()
  wall = time.perf_counter() - t0
  m = result.metrics
  final = m["eval_return"][-1]
  run_time = m["wall_time"][-1]
  steps_done = len(m["eval_return"]) * derived.env_steps_per_chunk
  sps = steps_done * config.num_seeds / run_time
  out = {"eval_return": final, "sps": sps, "wall_time": wall, "result": result,
         "run_dir": run_dir.path if run_dir else None,
         "interrupted": result.stopped_early, "env_steps": steps_done}
  if not main_process:
    return out
  print("---")
  if result.stopped_early:
    print(f"stopped after {steps_done:,} env steps; checkpoint saved. Continue with:\n"
          f"  python experiments/anakin_dqn.py --resume {run_dir.path}")
  print(f"final greedy eval return per seed ({m['eval_returns'].shape[-1]} episodes "
        f"each): {np.array2string(final, precision=1)}  mean {final.mean():.1f}")
  print(f"env steps per second: {sps:,.0f} (all seeds) | compile "
        f"{m['compile_time']:.1f}s | run {run_time:.1f}s | total wall {wall:.1f}s")
  print(f"run directory: {run_dir.path}")
  return out


if __name__ == "__main__":
  # 130 is the shell's code for "stopped by Ctrl-C" (the checkpoint is saved).
  sys.exit(130 if main()["interrupted"] else 0)
