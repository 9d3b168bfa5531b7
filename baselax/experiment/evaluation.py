"""Evaluate a trained run: greedy episodes from its newest checkpoint, and a GIF.

    python experiments/evaluate.py runs/CartPole-v1-dqn-20261127-120000
    python experiments/evaluate.py RUN_DIR --episodes 100 --gif cartpole.gif

Rebuilds the agent from the run's ``config.json`` through the agent registry
(any registered agent), loads the params of every seed from the newest
checkpoint, and prints the mean and standard deviation of the greedy return
per seed and over all seeds. ``--gif`` renders one greedy episode of the
first seed with gymnax's visualiser.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
from collections.abc import Sequence
from typing import Any

from baselax.agents import registry
from baselax.errors import ConfigError
from baselax.experiment import cli, sweeps
from baselax.experiment import rundir as rundir_lib

PROG = "evaluate.py"

#: Envs that gymnax's Visualizer can draw (gymnax 1.0.1); the classic-control
#: ones are drawn by gymnasium, with pygame.
CLASSIC_CONTROL = (
  "Acrobot-v1",
  "CartPole-v1",
  "Pendulum-v1",
  "MountainCar-v0",
  "MountainCarContinuous-v0",
)
GIF_ENVS = CLASSIC_CONTROL + (
  "Catch-bsuite",
  "Asterix-MinAtar",
  "Breakout-MinAtar",
  "Freeway-MinAtar",
  "Seaquest-MinAtar",
  "SpaceInvaders-MinAtar",
  "Pong-misc",
  "PointRobot-misc",
  "MetaMaze-misc",
  "FourRooms-misc",
)


def parse_args(argv: Sequence[str] | None = None, prog: str = PROG) -> argparse.Namespace:
  parser = cli.OneLineParser(description=__doc__.splitlines()[0], prog=prog)
  parser.add_argument("run_dir", help="a run directory written by anakin_dqn.py")
  parser.add_argument(
    "--episodes", type=int, default=32, help="greedy episodes per seed (default: 32)"
  )
  parser.add_argument(
    "--seed", type=int, default=0, help="seed of the evaluation episodes (default: 0)"
  )
  parser.add_argument(
    "--max-steps",
    type=int,
    default=None,
    help="cap on an episode's length (default: the env's limit)",
  )
  parser.add_argument(
    "--step", type=int, default=None, help="checkpoint to load, in chunks done (default: newest)"
  )
  parser.add_argument(
    "--gif", default=None, metavar="PATH", help="render one greedy episode of seed 0 to this GIF"
  )
  args = parser.parse_args(argv)
  if args.episodes < 1:
    parser.error(f"--episodes must be >= 1, got {args.episodes}")
  if args.max_steps is not None and args.max_steps < 1:
    parser.error(f"--max-steps must be >= 1, got {args.max_steps}")
  return args


def registered_entry(saved: dict[str, Any]) -> registry.AgentEntry:
  """The registry entry of a saved run, importing the module that registered it.

  Raises:
    ConfigError: the agent is not registered in this process and its module
      cannot be imported (e.g. it was registered by a script).
  """
  name = saved["experiment"]["agent"]
  module = saved.get("agent_module")
  if name not in registry.names() and module and module != "__main__":
    with contextlib.suppress(ImportError):
      importlib.import_module(module)
  if name not in registry.names():
    raise ConfigError(
      f"the run was trained with agent {name!r}, which is not registered in this "
      f"process (it was registered by {module or 'an unknown module'}). Evaluate it "
      f"from the program that registers it, e.g. python experiments/custom_agent.py "
      f"evaluate RUN_DIR, or import that module before calling evaluation.main."
    )
  return registry.get(name)


def load_agent(run_dir: str, step: int | None = None):
  """``(agent, env, params, saved_config)`` of a run; params have a seed axis.

  Raises:
    ConfigError: not a run directory, an agent not registered here, or no
      checkpoint (the message says which).
  """
  import jax

  from baselax import envs
  from baselax.anakin import AnakinConfig, Checkpointer

  saved = rundir_lib.load_config(run_dir)
  entry = registered_entry(saved)
  agent_config = cli.build_from_dict(entry.config_cls, saved["agent"])
  config = cli.build_from_dict(AnakinConfig, saved["trainer"])
  env = envs.make(saved["experiment"]["env_id"])
  sizes = config.derive(saved.get("num_devices", 1))
  agent = entry.build(agent_config, env, sizes)
  like = jax.eval_shape(agent.init_params, jax.ShapeDtypeStruct((2,), jax.numpy.uint32))
  runs = config.num_seeds * sweeps.num_points(saved["experiment"].get("sweep", ()))
  like = jax.tree.map(lambda x: jax.ShapeDtypeStruct((runs, *x.shape), x.dtype), like)
  if not os.path.isdir(rundir_lib.checkpoint_dir(run_dir)):
    raise ConfigError(
      f"{run_dir} has no checkpoints/ (the run stopped before its first checkpoint)."
    )
  checkpointer = Checkpointer(rundir_lib.checkpoint_dir(run_dir))
  try:
    params = checkpointer.restore_params(like, step)
  except FileNotFoundError as error:
    raise ConfigError(str(error)) from error
  finally:
    checkpointer.close()
  return agent, env, params, saved


def evaluate_hostloop_run(args: argparse.Namespace, saved: dict[str, Any], prog: str) -> dict:
  """Greedy episodes of an Atari (host-loop) run, on the game as it was
  preprocessed in training: the run's ``atari`` section."""
  import jax
  import numpy as np

  from baselax import atari, hostloop
  from baselax.training import Checkpointer

  if args.gif:
    cli.usage_error("--gif draws JAX envs only; an Atari run has none to draw.", prog)
  try:
    entry = registered_entry(saved)
    env_id = saved["experiment"]["env_id"]
    atari.check_env_id(env_id)
    env = atari.make_vector_env(
      env_id, min(args.episodes, 8), cli.build_from_dict(atari.AtariConfig, saved["atari"])
    )
    trainer = cli.build_from_dict(atari.HostLoopConfig, saved["trainer"]).anakin()
    agent = entry.build(
      cli.build_from_dict(entry.config_cls, saved["agent"]), env, trainer.derive(1)
    )
    like = jax.eval_shape(agent.init_params, jax.ShapeDtypeStruct((2,), jax.numpy.uint32))
    like = jax.tree.map(lambda x: jax.ShapeDtypeStruct((1, *x.shape), x.dtype), like)
    checkpointer = Checkpointer(rundir_lib.checkpoint_dir(args.run_dir))
    try:
      params = checkpointer.restore_params(like, args.step)
    except FileNotFoundError as error:
      raise ConfigError(f"{args.run_dir} has no checkpoint to evaluate ({error}).") from error
    finally:
      checkpointer.close()
  except ConfigError as error:
    cli.usage_error(error, prog)
  first = jax.tree.map(lambda x: x[0], params)
  try:
    returns = hostloop.evaluate(
      agent,
      first,
      agent.init_policy(jax.random.PRNGKey(args.seed)),
      env,
      args.episodes,
      args.seed,
      max_steps=args.max_steps,
    )
  finally:
    env.close()
  returns = np.asarray(returns)[None]
  print(f"{env_id}: greedy return over {args.episodes} episodes (host loop)")
  print(f"  seed {saved['trainer']['seed']}: {returns.mean():.1f} ± {returns.std():.1f}")
  return {"returns": returns, "mean": float(returns.mean()), "std": float(returns.std())}


def render_gif(agent, env, params, path: str, key, max_steps: int) -> float:
  """Renders one greedy episode of ``params`` (one seed) to ``path``; returns its return."""
  import jax
  import numpy as np
  from gymnax.visualize import Visualizer

  policy_state = agent.init_policy(key)
  act = jax.jit(lambda p, o, k: agent.predict(p, policy_state, o, k, evaluation=True)[0].actions)
  step = jax.jit(env.functional_step)
  reset_key, key = jax.random.split(key)
  obs, env_state = env.functional_reset(reset_key, 1)
  states, returns, total = [], [], 0.0
  for _ in range(max_steps):
    states.append(jax.tree.map(lambda x: x[0], env_state))
    key, act_key, env_key = jax.random.split(key, 3)
    env_state, out = step(env_key, env_state, act(params, obs, act_key))
    total += float(out.reward[0])
    returns.append(total)
    obs = out.obs
    if bool(out.terminated[0] | out.truncated[0]):
      break
  Visualizer(env.env, env.env_params, states, np.array(returns)).animate(path)
  return total


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> dict:
  """Evaluates a run directory (see the module doc); bad input exits with 2."""
  args = parse_args(argv, prog)
  try:
    saved = rundir_lib.load_config(args.run_dir)
  except ConfigError as error:
    cli.usage_error(error, prog)
  if "atari" in saved:  # a host-loop run (hostloop_atari.py)
    return evaluate_hostloop_run(args, saved, prog)
  env_id = saved["experiment"]["env_id"]
  if args.gif and env_id not in GIF_ENVS:
    cli.usage_error(
      f"--gif: gymnax has no visualiser for {env_id}; --gif works for {', '.join(GIF_ENVS)}.", prog
    )

  if args.gif and env_id in CLASSIC_CONTROL:
    # Off-screen drawing: no window, no sound device, no display warnings.
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    try:
      import pygame  # noqa: F401  (gymnasium draws the classic-control envs)
    except ImportError:
      cli.usage_error(f"--gif for {env_id} needs pygame: pip install -e '.[render]'.", prog)

  import jax
  import numpy as np

  from baselax.anakin import loop

  try:
    agent, env, params, saved = load_agent(args.run_dir, args.step)
  except ConfigError as error:
    cli.usage_error(error, prog)
  max_steps = loop.episode_step_limit(env, args.max_steps)
  key = jax.random.PRNGKey(args.seed)
  policy_state = agent.init_policy(key)
  evaluate = jax.jit(
    jax.vmap(
      lambda p, k: loop.greedy_returns(agent, env, p, policy_state, k, args.episodes, max_steps),
      in_axes=(0, None),
    )
  )
  returns = np.asarray(evaluate(params, key))  # (runs, episodes)
  num_seeds, first_seed = saved["trainer"]["num_seeds"], saved["trainer"]["seed"]
  entry = registered_entry(saved)
  points = sweeps.grid_points(
    sweeps.parse_axes(saved["experiment"].get("sweep", ()), entry.config_cls, entry.name)
  )
  print(f"{env_id}: greedy return over {args.episodes} episodes per seed")
  for i, r in enumerate(returns):
    point = (
      f"point {i // num_seeds} ({sweeps.label(points[i // num_seeds])}) "
      if (points and points[0])
      else ""
    )
    print(f"  {point}seed {first_seed + i % num_seeds}: {r.mean():.1f} ± {r.std():.1f}")
  print(
    f"  all {'runs' if len(points) > 1 else 'seeds'}: {returns.mean():.1f} ± {returns.std():.1f}"
  )
  out = {"returns": returns, "mean": float(returns.mean()), "std": float(returns.std())}
  if args.gif:
    first = jax.tree.map(lambda x: x[0], params)
    out["gif_return"] = render_gif(agent, env, first, args.gif, key, max_steps)
    print(f"wrote {args.gif} (one greedy episode, return {out['gif_return']:.1f})")
  return out
