"""What stops a run: Ctrl-C and SIGTERM as stop requests, the non-finite guard, and the
refusal to resume what cannot be resumed. Each guard is defined here once."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from baselax.training.config import Derived

logger = logging.getLogger("baselax.anakin")


class NonFiniteError(FloatingPointError):
  """Training produced a NaN/inf loss or NaN/inf params (see ``anakin.train``)."""


#: The signals that ask a run to stop: Ctrl-C, and SIGTERM, what SLURM, Kubernetes
#: and TPU preemption send first (before a SIGKILL after their grace period).
STOP_SIGNALS = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}


class StopRequests:
  """Turns Ctrl-C (SIGINT) and SIGTERM into a stop request the runner sees
  after a chunk: it writes a checkpoint there and the run ends resumable.

  A compiled chunk cannot be interrupted half-way without losing its donated
  state, so the first signal only asks to stop; a second one interrupts at once.
  """

  def __init__(self, enabled: bool):
    self.requested = False
    self._enabled = enabled and threading.current_thread() is threading.main_thread()
    self._previous: dict[int, Any] = {}  # the handlers to put back

  def __enter__(self):
    if self._enabled:
      for signum in STOP_SIGNALS:
        self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def _handle(self, signum, frame):
    del frame
    if self.requested:
      raise KeyboardInterrupt
    self.requested = True
    name = STOP_SIGNALS.get(signum, f"signal {signum}")
    logger.warning(
      "%s: stopping after this chunk and writing a checkpoint (%s again to abort without one).",
      name,
      name,
    )

  def __exit__(self, *exc):
    for signum, previous in self._previous.items():
      signal.signal(signum, previous)
    self._previous = {}
    return False


def check_finite(
  bad: list[str],
  chunk: int,
  derived: Derived,
  last_checkpoint: int | None,
  checkpoint_dir: str | None,
) -> None:
  """The non-finite guard: raises :class:`NonFiniteError` naming ``chunk``.

  Args:
    bad: the non-finite quantities of the chunk (empty: all is well).
    last_checkpoint: chunks done at the newest checkpoint, if any.
  """
  if not bad:
    return
  kept = (
    f"The last good checkpoint ({last_checkpoint} chunks, "
    f"{last_checkpoint * derived.env_steps_per_chunk:,} env steps) is kept in "
    f"{checkpoint_dir}."
    if last_checkpoint is not None
    else "No checkpoint was written before it."
  )
  raise NonFiniteError(
    f"Non-finite {', '.join(bad)} in chunk {chunk} (env steps "
    f"{chunk * derived.env_steps_per_chunk:,} to "
    f"{(chunk + 1) * derived.env_steps_per_chunk:,}); training stopped. {kept} "
    f"Lower the learning rate, clip gradients or check the rewards."
  )
