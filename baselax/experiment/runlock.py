"""One writer per run directory: ``run.lock``, with a heartbeat for other hosts.

The lock file holds the writer's pid and host. Another process on the same
host is checked by its pid. A process on another host (a requeued job that
landed on another node, over a shared filesystem) cannot be looked at, so the
writer refreshes the file's modification time every :data:`HEARTBEAT_S`
seconds, and a lock from another host not refreshed for :data:`STALE_AFTER_S`
seconds is stale: its writer is gone (killed, preempted, its node lost). The
margin covers clocks that differ between hosts (on NFS the server stamps the
time) and a filesystem's attribute caching.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Mapping
from typing import Any

from baselax.errors import ConfigError

logger = logging.getLogger("baselax.experiment")

#: Seconds between two refreshes of a held lock's modification time.
HEARTBEAT_S = 30.0
#: A lock from another host not refreshed for this long is a dead writer's.
STALE_AFTER_S = 300.0


class RunLock:
  """One writer per run directory: ``run.lock`` holds the writer's pid and host.

  Taken with an exclusive create. A lock whose writer is gone (same host: its
  pid is dead; another host: not refreshed for :data:`STALE_AFTER_S` seconds)
  is taken over with a warning; a live one refuses.
  """

  def __init__(self, run_path: str):
    self.path = os.path.join(run_path, "run.lock")
    self.held = False
    self._stop = threading.Event()
    self._heartbeat: threading.Thread | None = None

  def acquire(self) -> None:
    """Raises ConfigError if another live process holds the directory."""
    me = {"pid": os.getpid(), "host": socket.gethostname()}
    for _ in range(2):
      try:
        fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
      except FileExistsError:
        self._refuse_or_take_over()
        continue
      with os.fdopen(fd, "w") as f:
        json.dump(me, f)
      self.held = True
      self._start_heartbeat()
      return
    raise ConfigError(f"could not take {self.path}: another process keeps creating it.")

  def release(self) -> None:
    if self.held:
      self.held = False
      self._stop.set()
      if self._heartbeat is not None:
        self._heartbeat.join()
      with contextlib.suppress(FileNotFoundError):
        os.remove(self.path)

  def _refuse_or_take_over(self) -> None:
    holder = self._holder()
    age = self._age()
    if holder is not None and self._alive(holder, age):
      raise ConfigError(
        f"{os.path.dirname(self.path)} is in use by pid {holder.get('pid')} on "
        f"{holder.get('host')} (its run.lock): wait for that run to end or stop it; "
        f"a second writer would mix two runs' checkpoints and metrics."
      )
    logger.warning(
      "taking over %s from pid %s on %s, which is no longer running%s",
      self.path,
      (holder or {}).get("pid"),
      (holder or {}).get("host"),
      "" if age is None else f" (its lock was last refreshed {age:.0f}s ago)",
    )
    with contextlib.suppress(FileNotFoundError):
      os.remove(self.path)

  def _start_heartbeat(self) -> None:
    self._stop.clear()

    def beat():
      while not self._stop.wait(HEARTBEAT_S):
        with contextlib.suppress(OSError):  # removed or unreachable: try again later
          os.utime(self.path)

    self._heartbeat = threading.Thread(target=beat, name="baselax-run-lock", daemon=True)
    self._heartbeat.start()

  def _holder(self) -> dict[str, Any] | None:
    try:
      with open(self.path) as f:
        return json.load(f)
    except (OSError, ValueError):
      return None  # unreadable: written by a process killed while writing it

  def _age(self) -> float | None:
    """Seconds since the lock was last written or refreshed (None: gone)."""
    try:
      return max(0.0, time.time() - os.stat(self.path).st_mtime)
    except OSError:
      return None

  @staticmethod
  def _alive(holder: Mapping[str, Any], age: float | None) -> bool:
    if holder.get("host") != socket.gethostname():
      # No way to look at another host's processes: its heartbeat says.
      return age is not None and age < STALE_AFTER_S
    try:
      os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
      return False
    except (PermissionError, KeyError, ValueError, TypeError):
      return True
    return True
