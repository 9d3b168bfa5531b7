"""Many hosts: JAX's own multi-controller runtime (``jax.distributed``).

One process runs per host (or per GPU group); every process runs the same
program. ``pmap`` then spans the devices of all processes: each process steps
the envs on its local devices, and the ``pmean`` in ``agent.update`` averages
gradients over every device of every process. Call :func:`initialize` before
anything touches a JAX device.

On CPU the cross-process collectives are gloo's, so the same code runs as
several processes on one machine (that is how the tests run it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import socket
import time
from typing import Any

logger = logging.getLogger("baselax.anakin")


@dataclasses.dataclass(frozen=True)
class DistributedConfig:
  """How this process joins a multi-process run (all ``None``: a single process).

  Attributes:
    coordinator_address: host:port of process 0's coordinator service, e.g.
      10.0.0.1:1234 (every process passes the same one).
    num_processes: processes in the run.
    process_id: this process's index, 0..num_processes-1; process 0 writes the
      run directory, logs and checkpoints.
    distributed: join a cluster that JAX detects by itself (SLURM, Cloud TPU
      pod slices, Open MPI): jax.distributed.initialize() with no arguments.
    initialization_timeout: seconds to wait for all processes to reach the
      coordinator before failing.
    heartbeat_timeout: seconds without a process's heartbeat before the others
      count it lost and stop (JAX's coordination service; its default is 100).
  """

  coordinator_address: str | None = None
  num_processes: int | None = None
  process_id: int | None = None
  distributed: bool = False
  initialization_timeout: int = 300
  heartbeat_timeout: int = 100

  def __post_init__(self):
    explicit = (self.coordinator_address, self.num_processes, self.process_id)
    if any(v is not None for v in explicit) and any(v is None for v in explicit):
      raise ValueError(
        "--coordinator-address, --num-processes and --process-id go together: "
        "pass all three (or --distributed on a cluster JAX detects)."
      )
    if self.num_processes is not None and self.process_id is not None:  # (all or none)
      if self.num_processes < 1:
        raise ValueError(f"--num-processes must be >= 1, got {self.num_processes}.")
      if not 0 <= self.process_id < self.num_processes:
        raise ValueError(
          f"--process-id must be in [0, {self.num_processes - 1}], got {self.process_id}."
        )
    if self.heartbeat_timeout < 1:
      raise ValueError(f"--heartbeat-timeout must be >= 1 s, got {self.heartbeat_timeout}.")
    if self.initialization_timeout < 1:
      raise ValueError(
        f"--initialization-timeout must be >= 1 s, got {self.initialization_timeout}."
      )

  @property
  def enabled(self) -> bool:
    return self.distributed or self.coordinator_address is not None


def initialize(config: DistributedConfig) -> None:
  """Joins the multi-process run described by ``config`` (no-op if disabled).

  Must run before JAX touches any device. Uses gloo collectives on CPU.

  Raises:
    RuntimeError: the coordinator could not be reached within
      ``config.initialization_timeout`` seconds (the message names the address).
  """
  if not config.enabled:
    return
  if config.coordinator_address is not None and config.process_id != 0:
    # jax aborts the whole process (a C++ check failure, no Python error) when
    # the coordinator stays unreachable; find out first, and say so clearly.
    wait_for_coordinator(config.coordinator_address, config.initialization_timeout)
  import jax

  # CPU processes need a cross-process collectives implementation; GPUs and
  # TPUs bring their own (NCCL, ICI), and the setting is ignored there.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  kwargs: dict[str, Any] = dict(
    initialization_timeout=config.initialization_timeout,
    heartbeat_timeout_seconds=config.heartbeat_timeout,
  )
  if config.coordinator_address is not None:
    kwargs.update(
      coordinator_address=config.coordinator_address,
      num_processes=config.num_processes,
      process_id=config.process_id,
    )
  if config.process_id == 0:
    logger.info(
      "process 0: coordinator at %s, waiting up to %ds for %d process(es)",
      config.coordinator_address,
      config.initialization_timeout,
      config.num_processes,
    )
  try:
    jax.distributed.initialize(**kwargs)
  except Exception as error:  # jax raises XlaRuntimeError / RuntimeError / ValueError
    where = config.coordinator_address or "the address detected from the cluster"
    raise RuntimeError(
      f"Could not join the multi-process run through the coordinator at "
      f"{where} within {config.initialization_timeout}s ({type(error).__name__}: "
      f"{str(error).splitlines()[0][:300]}). Check that process 0 is running "
      f"and that the address is reachable from this host; "
      f"--initialization-timeout sets the wait."
    ) from error
  logger.info(
    "process %d of %d: %d local device(s), %d in all",
    jax.process_index(),
    jax.process_count(),
    jax.local_device_count(),
    jax.device_count(),
  )


def wait_for_coordinator(address: str, timeout: float) -> None:
  """Waits until ``host:port`` accepts TCP connections, at most ``timeout`` s.

  Raises:
    RuntimeError: naming the address, if it never does.
  """
  host, _, port = address.rpartition(":")
  if not host or not port.isdigit():
    raise ValueError(f"--coordinator-address must be host:port, got {address!r}.")
  deadline = time.monotonic() + timeout
  last_error: OSError | None = None
  while time.monotonic() < deadline:
    try:
      with socket.create_connection((host.strip("[]"), int(port)), timeout=min(2.0, timeout)):
        return
    except OSError as error:
      last_error = error
      time.sleep(0.25)
  raise RuntimeError(
    f"Could not reach the coordinator at {address} within {timeout}s "
    f"({last_error}). Start process 0 (--process-id 0) with the same "
    f"--coordinator-address first, check the address and port are reachable "
    f"from this host, or raise --initialization-timeout."
  )


def is_main_process() -> bool:
  """True on process 0 (the one that writes files), and in single-process runs."""
  import jax

  return jax.process_index() == 0


def config_hash(obj: Any) -> int:
  """A stable 31-bit hash of a JSON-able object (for cross-process comparison)."""
  text = json.dumps(obj, sort_keys=True, default=str)
  return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") & 0x7FFFFFFF


def check_same_everywhere(what: str, obj: Any) -> None:
  """Refuses to go on unless every process has the same ``obj`` (a no-op alone).

  Compares a hash of ``obj`` over the processes with a collective, so
  mismatched command lines fail before training instead of deadlocking or
  silently averaging gradients of different models.
  """
  import jax

  if jax.process_count() == 1:
    return
  import numpy as np

  mine = config_hash(obj)
  hashes = np.asarray(all_gather(np.array([mine], np.int64))).reshape(-1)
  differ = [i for i, h in enumerate(hashes) if h != hashes[0]]
  if differ:
    raise ValueError(
      f"The processes were started with different {what}: process(es) "
      f"{differ} differ from process 0 (hashes {hashes.tolist()}). Start "
      f"every process with the same flags; only --process-id may differ."
    )


def any_process(flag: bool) -> bool:
  """True if ``flag`` is True on any process (a collective in multi-process runs)."""
  import jax

  if jax.process_count() == 1:
    return bool(flag)
  import numpy as np

  return bool(np.any(all_gather(np.array([flag], np.int32))))


def all_gather(x: Any) -> Any:
  """``x`` of every process, stacked (``multihost_utils.process_allgather``)."""
  from jax.experimental import multihost_utils

  return multihost_utils.process_allgather(x)


def share_from_main(text: str | None, flag: bool) -> tuple[str, bool]:
  """Process 0's ``(text, flag)`` on every process (a collective in
  multi-process runs): the run directory it opened and whether it resumes."""
  import jax

  if jax.process_count() == 1:
    return text or "", bool(flag)
  import numpy as np
  from jax.experimental import multihost_utils

  size = 4096
  data = (text or "").encode()
  if len(data) > size - 1:
    raise ValueError(f"a run directory path of over {size - 1} bytes: {text!r}")
  buffer = np.zeros(size + 1, np.uint8)
  buffer[: len(data)] = np.frombuffer(data, np.uint8)
  buffer[size] = bool(flag)
  shared = np.asarray(multihost_utils.broadcast_one_to_all(buffer))
  return bytes(shared[:size]).rstrip(b"\0").decode(), bool(shared[size])


def refuse_together(error: str | None) -> None:
  """Raises ``ConfigError`` on every process if any process has an ``error``
  (a collective in multi-process runs, so none goes on into the next one alone).

  A process without an error of its own says which processes refused.
  """
  import jax

  from baselax.errors import ConfigError

  if jax.process_count() == 1:
    if error:
      raise ConfigError(error)
    return
  import numpy as np

  flags = np.asarray(all_gather(np.array([error is not None], np.int32)))
  refused = [p for p, f in enumerate(flags.reshape(-1)) if f]
  if error:
    raise ConfigError(error)
  if refused:
    raise ConfigError(
      f"process(es) {refused} refused to resume this run (their error names why); "
      f"fix it and restart every process."
    )
