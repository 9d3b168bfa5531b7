"""A multi-process run's process, watched: a lost peer ends it in one line.

When a process of a multi-process run dies (killed, preempted, its host
lost), JAX's coordination service notices the missing heartbeats after
``--heartbeat-timeout`` seconds and ends every other process from C++: an
abort (exit 134) with a check-failure stack trace, which Python cannot catch.
The command line therefore runs such a process as a child of a small
supervisor (:func:`supervise`): the child's output passes through as it
comes, and when the child dies of the coordination service's verdict the
supervisor drops the stack trace and prints one line that names the lost
process and what to do. Ctrl-C and SIGTERM reach the child once (it runs in
a session of its own) and stop it at a chunk's end as they stop any run.

A process blocked in a compiled chunk's collective cannot notice anything
sooner: the bound is the heartbeat timeout (plus a chunk boundary for the
run's own stop requests).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Sequence

#: Set in the child's environment: it trains instead of supervising again.
CHILD = "BASELAX_SUPERVISED"

#: What the coordination service writes when it gives up on the run.
_VERDICT = re.compile(
  r"JAX distributed service detected fatal errors|coordination_service|CoordinationService"
)
#: "The following tasks are unhealthy (stopped sending heartbeats):" then task ids.
_UNHEALTHY = re.compile(r"unhealthy \(stopped sending heartbeats\)")
_TASK = re.compile(r"(?:task:|^\s*)(\d+)\s*$")
#: The lines of a C++ abort: glog's prefix, the stack trace's frames.
_NOISE = re.compile(r"^([EFWI]\d{4} |\s+@\s+0x|\*\*\* |\s*$)")

#: The child's own line about a lost peer (see :func:`lost_peer_message`).
_SAID = re.compile(r": error: the multi-process run lost a process")

#: The exit code of a process whose run lost a peer (EX_TEMPFAIL: try again).
LOST_PEER = 75

#: What a collective raises in Python when its peer is gone (gloo over TCP on
#: CPU: "Connection closed by peer"), before the coordination service says so.
PEER_ERRORS: tuple[type[BaseException], ...] = (RuntimeError,)  # JaxRuntimeError is one
_PEER_GONE = re.compile(r"Connection (closed|reset) by peer|Socket closed")


def lost_peer(error: BaseException) -> bool:
  """Whether ``error`` is a collective's report of a lost peer in a multi-process run."""
  import jax

  return jax.process_count() > 1 and bool(_PEER_GONE.search(str(error)))


def multi_process_flags(argv: Sequence[str]) -> tuple[int | None, int | None, bool]:
  """``(--num-processes, --process-id, --distributed)`` as ``argv`` gives them
  (read before parsing: the parent never builds a run)."""
  values: dict[str, int | None] = {"--num-processes": None, "--process-id": None}
  for i, arg in enumerate(argv):
    name, _, inline = arg.partition("=")
    if name in values:
      text = inline or (argv[i + 1] if i + 1 < len(argv) else "")
      values[name] = int(text) if text.isdigit() else None  # the parser says what is wrong
  return values["--num-processes"], values["--process-id"], "--distributed" in argv


def wanted(num_processes: int | None, distributed: bool) -> bool:
  """Whether this command line should run its process under a supervisor."""
  return (distributed or (num_processes or 1) > 1) and not os.environ.get(CHILD)


def supervise(prog: str, process_id: int | None, command: Sequence[str] | None = None) -> int:
  """Runs ``command`` (default: this process's own command line) as a child
  and returns its exit code, or :data:`LOST_PEER` with one line on stderr when
  the coordination service ended it."""
  command = list(sys.orig_argv if command is None else command)
  child = subprocess.Popen(
    command,
    env=dict(os.environ, **{CHILD: str(os.getpid())}),
    stderr=subprocess.PIPE,
    text=True,
    errors="replace",
    start_new_session=True,  # a terminal's Ctrl-C reaches it once: forwarded below
  )
  forward = lambda signum, frame: child.send_signal(signum)  # noqa: E731
  previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
  try:
    verdict = _relay(child)
    code = child.wait()
    said = code == LOST_PEER  # the child found it first, and said so
  finally:
    for signum, handler in previous.items():
      signal.signal(signum, handler)
  if verdict is None or code == 0 or said:
    return code
  message = lost_peer_message(verdict, process_id, run_dir_of(command))
  print(f"{prog}: error: {message}", file=sys.stderr, flush=True)
  return LOST_PEER


def die_with_supervisor() -> None:
  """Called first in a supervised child: a SIGKILL'd supervisor takes its
  trainer with it (Linux's PR_SET_PDEATHSIG), as a scheduler that kills a
  job's process means. (Here, not between fork and exec: JAX has threads.)"""
  parent = os.environ.get(CHILD, "")
  if not sys.platform.startswith("linux") or not parent.isdigit():
    return
  import ctypes

  ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
  if os.getppid() != int(parent):  # it died before the line above
    os._exit(LOST_PEER)


def _relay(child: subprocess.Popen) -> list[str] | None:
  """Passes the child's stderr through until the coordination service's
  verdict; returns the task ids it names as lost ([] if none), or None."""
  verdict: list[str] | None = None
  unhealthy = False
  assert child.stderr is not None
  for line in child.stderr:
    if (verdict is None and not _VERDICT.search(line)) or _SAID.search(line):
      sys.stderr.write(line)
      sys.stderr.flush()
      continue
    verdict = [] if verdict is None else verdict
    if _UNHEALTHY.search(line):
      unhealthy = True
      continue
    task = _TASK.search(line) if unhealthy else None
    if task and task.group(1) not in verdict:
      verdict.append(task.group(1))
    elif not _NOISE.match(line) and not _VERDICT.search(line):
      unhealthy = False
  return verdict


def run_dir_of(command: Sequence[str]) -> str | None:
  """The run directory a command line names (``--resume`` or ``--run-dir``), if any."""
  for flag in ("--resume", "--run-dir"):
    for i, arg in enumerate(command):
      if arg == flag and i + 1 < len(command):
        return command[i + 1]
      if arg.startswith(flag + "="):
        return arg.split("=", 1)[1]
  return None


def lost_peer_message(lost: list[str], process_id: int | None, run_dir: str | None = None) -> str:
  """The one line: who was lost (``lost``: process ids, if known), what now
  (``run_dir``: the run's directory, if known, for the resume command)."""
  who = (
    f"process {', '.join(lost)} stopped sending heartbeats"
    if lost
    else "the coordinator (process 0) or a peer stopped answering"
  )
  me = "" if process_id is None else f"process {process_id} stops too: "
  return (
    f"the multi-process run lost a process ({who}: killed, preempted or its host lost); "
    f"{me}every process of the run stops. Continue it from its newest checkpoint with "
    f"--resume {run_dir or 'RUN_DIR (the run directory process 0 printed)'} on every "
    f"process, with the same coordinator flags (--heartbeat-timeout sets how long a "
    f"silent process is waited for)."
  )
