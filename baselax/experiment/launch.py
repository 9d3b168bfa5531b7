"""One research run for any registered agent: flags -> run directory -> training -> summary.

    python experiments/anakin_dqn.py                          # DQN on CartPole-v1
    python experiments/anakin_dqn.py --agent qrdqn --n-step 3 # any registered agent
    python experiments/anakin_dqn.py --resume runs/CartPole-v1-dqn-20261127-135001

:func:`run` is the whole of it, in order: parse the flags (the agent's own
flags come from its registry config), join a multi-process run, check every
setting before anything is compiled (one-line errors, exit code 2), open the
run directory, checkpointer and loggers on process 0, train with
``baselax.anakin.train``, and print the summary.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

from baselax.agents import registry
from baselax.anakin.config import AnakinConfig
from baselax.errors import ConfigError
from baselax.experiment import cli, supervisor, sweeps
from baselax.experiment import config as config_lib
from baselax.experiment import loggers as loggers_lib
from baselax.experiment import rundir as rundir_lib
from baselax.experiment import summary as summary_lib

# The command line of a run lives in spec.py; launch.parse, launch.Spec and
# launch.Pipeline stay where the docs and other pipelines name them.
from baselax.experiment.spec import ANAKIN, PROG, Pipeline, Spec, parse  # noqa: F401


@contextlib.contextmanager
def usage_errors(spec: Any, prog: str = PROG):
  """Turns a :class:`ConfigError` into one line naming the flag, exit code 2
  (``spec.sections``: the parsed sections whose flags a message may name)."""
  try:
    yield
  except ConfigError as error:
    cli.usage_error(
      cli.name_the_flag(str(error), cli.sections_of(list(spec.sections.values()))), prog
    )


@contextlib.contextmanager
def training_errors(prog: str, run_dir: Any):
  """A non-finite chunk, or a write that failed (a full disk, a lost mount),
  ends the run in one line with exit code 1; the newest checkpoint stands."""
  from baselax.training import guards

  try:
    yield
  except guards.NonFiniteError as error:
    print(f"{prog}: error: {error}", file=sys.stderr, flush=True)
    raise SystemExit(1) from None
  except supervisor.PEER_ERRORS as error:
    if not supervisor.lost_peer(error):
      raise
    # A collective whose peer died (gloo on CPU): the same end as the
    # coordination service's verdict, which the supervisor reports.
    import jax

    path = run_dir.path if run_dir is not None else supervisor.run_dir_of(sys.argv)
    message = supervisor.lost_peer_message([], jax.process_index(), path)
    print(f"{prog}: error: {message}", file=sys.stderr, flush=True)
    sys.stdout.flush()
    # At once: jax.distributed's shutdown at exit would wait for the lost peer.
    os._exit(supervisor.LOST_PEER)
  except OSError as error:
    where = run_dir.path if run_dir is not None else "the run directory"
    print(
      f"{prog}: error: writing to {where} failed ({error}); its newest checkpoint "
      f"is kept: make room and continue with --resume {where}",
      file=sys.stderr,
      flush=True,
    )
    raise SystemExit(1) from None


def use_compilation_cache(run: config_lib.RunConfig) -> None:
  """Points JAX's persistent compilation cache at ``--compilation-cache`` (``none``: off)."""
  import jax

  if run.compilation_cache.lower() != "none":
    jax.config.update("jax_compilation_cache_dir", os.path.expanduser(run.compilation_cache))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def close_run(sinks: Any, checkpointer: Any, run_dir: Any) -> None:
  """Closes what a run opened (loggers, checkpointer, the run directory's lock)."""
  sinks.close()
  if checkpointer is not None:
    checkpointer.close()
  if run_dir is not None:
    run_dir.close()


class Prepared(NamedTuple):
  """What :func:`prepare` built and checked, all before compiling."""

  env: Any
  agent: Any
  num_devices: int
  sizes: Any
  sweep: Any = None  # a baselax.anakin.sweep.Sweep with --sweep, else None
  replay_memory: Any = None  # the checked baselax.replay.MemoryPlan


def prepare(spec: Spec, traced_checks: bool = True) -> Prepared:
  """Builds env and agent and checks the run's settings against them.

  ``traced_checks=False`` leaves out the checks that trace the program (a
  sweep's settings, the replay memory plan): the host-side checks alone,
  in milliseconds (``tests/test_fuzz.py`` runs thousands of command lines).

  Raises:
    ConfigError: an unknown env, an action space the agent cannot serve, too
      many devices, trainer sizes that do not fit, or a contract the agent
      does not offer (``baselax.learner.contract``).
  """
  from baselax import envs
  from baselax.anakin import program
  from baselax.replay import memory

  env = envs.make(spec.experiment.env_id)
  num_devices = program.resolve_num_devices(spec.trainer)
  sizes = spec.trainer.derive(num_devices, sweeps.num_points(spec.experiment.sweep))
  entry = registry.get(spec.experiment.agent)
  agent = build_agent(spec, env, sizes, spec.trainer)
  sweep = None
  if spec.experiment.sweep:
    axes = sweeps.parse_axes(spec.experiment.sweep, entry.config_cls, entry.name)
    sweep = sweeps.make_sweep(axes, spec.agent, lambda c: entry.build(c, env, sizes))
    sweep.check_points()  # every value on the host: the agent's own checks
    agent = sweep.build(sweep.point(0))
    if traced_checks:
      program.check_sweep(agent, env, spec.trainer, sweep, sizes)  # by tracing
  if not traced_checks:
    return Prepared(env, agent, num_devices, sizes, sweep)
  # The replay buffers must fit the devices' memory: refused before any run
  # directory exists (baselax.replay.memory; anakin.train checks and logs it again).
  replay_memory = memory.plan(
    agent, env, spec.trainer, sizes, local_devices=program.local_num_devices(spec.trainer)
  )
  replay_memory.check()
  return Prepared(env, agent, num_devices, sizes, sweep, replay_memory)


def build_agent(spec: Any, env: Any, sizes: Any, trainer: AnakinConfig) -> Any:
  """The registered agent ``spec`` names, for ``env``, its contract checked
  against ``trainer`` (and W&B present if asked for), before anything compiles.

  Raises:
    ConfigError: the agent cannot serve the env or the trainer settings, or
      ``--wandb-project`` without wandb installed.
  """
  from baselax.learner import contract

  entry = registry.get(spec.experiment.agent)
  try:
    agent = entry.build(spec.agent, env, sizes)
  except ConfigError as error:
    raise ConfigError(
      f"agent {entry.name} cannot train on env_id {spec.experiment.env_id}: {error}"
    ) from error
  contract.check_agent(agent, trainer)
  if spec.loggers.wandb_project is not None:
    try:
      import wandb  # noqa: F401
    except ImportError as error:
      raise ConfigError("wandb_project needs wandb: pip install -e '.[wandb]'.") from error
  return agent


def seeds_line(trainer: AnakinConfig, sizes: Any) -> str:
  """How seeds and envs sit on the devices, for the header line."""
  if sizes.num_runs > trainer.num_seeds:
    points = sizes.num_runs // trainer.num_seeds
    where = f", {sizes.runs_per_device} per device" if sizes.layout == "seeds" else ""
    return (
      f"{points} sweep points x {trainer.num_seeds} seed(s) = {sizes.num_runs} "
      f"runs{where}, x {trainer.num_envs} envs"
    )
  if sizes.layout == "seeds":
    return (
      f"{trainer.num_seeds} seed(s), {sizes.runs_per_device} per device, x {trainer.num_envs} envs"
    )
  return f"{trainer.num_seeds} seed(s) x {trainer.num_envs} envs/device"


def use_all_cores(spec: Spec) -> int:
  """Gives JAX one host device per core for a many-seed run; returns the count.

  XLA runs one program on one CPU core; independent seeds on forced host
  devices (``parallel=seeds``) use them all. The count is the largest
  divisor of ``num_seeds`` not above the cores, so the seeds split evenly.
  It must be set before JAX starts its backend: if the backend is up already
  (a caller used JAX before), or the user chose devices or the data layout,
  nothing changes. On a GPU or TPU machine the CPU devices are not used.
  """
  trainer = spec.trainer
  runs = trainer.num_seeds * sweeps.num_points(spec.experiment.sweep)
  if (
    not spec.run.all_cores
    or runs < 2
    or trainer.num_devices is not None
    or trainer.parallel in ("data", "groups")
    or spec.distributed.enabled
    or "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "")
  ):
    return 1
  from jax._src import xla_bridge  # no public way to ask whether JAX has started

  if getattr(xla_bridge, "backends_are_initialized", lambda: True)():
    return 1
  cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  count = max(d for d in range(1, min(cores or 1, runs) + 1) if runs % d == 0)
  if count > 1:
    os.environ["XLA_FLAGS"] = (
      os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={count}"
    ).strip()
  return count


def shard_store(spec: Any, sizes: Any, run_dir: Any, chunks_done: int | None) -> tuple[Any, bool]:
  """``(this process's ShardStore or None, resume)``. A multi-process run's
  every process gets a store under process 0's run directory path
  (``baselax.training.shards``: on each host's own disk when they share
  none) and resumes when it was started with ``--resume``; a single process
  resumes when its run directory holds a checkpoint."""
  import jax

  from baselax.anakin import distributed
  from baselax.training import shards as shards_lib

  if jax.process_count() == 1:
    return None, chunks_done is not None
  path, resume = distributed.share_from_main(
    run_dir.path if run_dir is not None else None, spec.run.resume is not None
  )
  store = shards_lib.ShardStore(
    rundir_lib.checkpoint_dir(path),
    jax.process_index(),
    every_chunks=rundir_lib.checkpoint_every_chunks(spec, sizes),
  )
  return store, resume


def run(
  argv: Sequence[str] | None = None, *, prog: str = PROG, loggers: Sequence[loggers_lib.Logger] = ()
) -> summary_lib.ExperimentResult:
  """Runs the experiment a command line describes (see the module doc).

  In a multi-process run every process calls this with the same flags (and
  its own ``--process-id``); only process 0 writes the run directory,
  checkpoints and progress.

  Args:
    argv: the flags (``None``: ``sys.argv[1:]``).
    loggers: extra :class:`~baselax.experiment.loggers.Logger` sinks.

  Raises:
    SystemExit(2): a bad setting (one line on stderr).
    SystemExit(1): training stopped on a non-finite loss or params.
  """
  t0 = time.perf_counter()
  spec = parse(argv, prog)
  use_all_cores(spec)
  main_process = join(spec, prog)
  from baselax import anakin, hardware

  loggers_lib.setup_logging(spec.run.quiet or not main_process)
  use_compilation_cache(spec.run)

  run_dir = checkpointer = chunks_done = None
  with usage_errors(spec, prog):
    prepared = prepare(spec)
    anakin.runner.check_processes_agree(prepared.agent, prepared.env, spec.trainer, spec.identity())
    if main_process:
      run_dir, checkpointer, chunks_done = rundir_lib.open_run(
        spec, prepared, extra={"replay_memory": prepared.replay_memory.to_json()}
      )
    shards, resume = shard_store(spec, prepared.sizes, run_dir, chunks_done)
  sizes = prepared.sizes
  if run_dir is not None:  # the main process's
    hardware.print_accelerator_hint()
    print(banner(spec, prepared, run_dir.path), flush=True)
  console = (
    loggers_lib.ConsoleLogger.for_run(sizes, chunks_done)
    if main_process and not spec.run.quiet
    else None
  )
  points = prepared.sweep.points() if prepared.sweep is not None else None
  sinks = loggers_lib.make_loggers(
    run_dir,
    spec.loggers,
    console=console,
    extra=loggers,
    points=points,
    title=f"{registry.get(spec.experiment.agent).name} on {spec.experiment.env_id}",
    config={k: dataclasses.asdict(v) for k, v in spec.sections.items()},
  )
  try:
    with training_errors(prog, run_dir), usage_errors(spec, prog):
      result = anakin.train(
        prepared.agent,
        prepared.env,
        spec.trainer,
        on_chunk=sinks.write,
        checkpointer=checkpointer,
        resume=resume,
        identity=spec.identity(),
        sweep=prepared.sweep,
        shards=shards,
      )
  finally:
    close_run(sinks, checkpointer, run_dir)
  wall = time.perf_counter() - t0
  out = summary_lib.summarise(
    result, sizes.env_steps_per_chunk, sizes.num_runs, run_dir, wall, points=points
  )
  if main_process:
    summary_lib.print_summary(out, prog)
  return out


def join(spec: Any, prog: str) -> bool:
  """Joins the multi-process run the flags describe, if any (before anything
  touches a device); whether this is the main process. Exits 2 on a bad setting."""
  from baselax.anakin import distributed

  try:
    distributed.initialize(spec.distributed)
  except (RuntimeError, ValueError) as error:
    cli.usage_error(error, prog)
  return distributed.is_main_process()


def banner(spec: Any, prepared: Any, path: str) -> str:
  """The run's first line: agent, env, JAX and its devices, seeds, budget, directory."""
  import jax

  name = registry.get(spec.experiment.agent).name
  processes = jax.process_count()
  return (
    f"baselax {name} ({type(prepared.agent).__name__}) on {spec.experiment.env_id} "
    f"| jax {jax.__version__} {jax.default_backend()} "
    f"({jax.devices()[0].device_kind}) x{prepared.num_devices}"
    f"{f' over {processes} processes' if processes > 1 else ''} | "
    f"{seeds_line(spec.trainer, prepared.sizes)} | "
    f"{spec.trainer.total_env_steps:,} env steps per seed | {path}"
  )


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
  """The command-line entry point: the exit code (130 if stopped by Ctrl-C or SIGTERM)."""
  # 130 is the shell's code for "stopped by Ctrl-C"; a SIGTERM'd run stops the same
  # way (its checkpoint saved, resumable), so it says the same.
  argv = list(sys.argv[1:] if argv is None else argv)
  supervisor.die_with_supervisor()  # (if this process is a supervised one)
  processes, process_id, cluster = supervisor.multi_process_flags(argv)
  if supervisor.wanted(processes, cluster):  # a lost peer ends it in one line
    return supervisor.supervise(prog, process_id)
  return 130 if run(argv, prog=prog).interrupted else 0
