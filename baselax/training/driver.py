"""The chunk loop both trainers share: run a chunk, record it, check it, stop or save.

A trainer (``runner.py``'s Anakin program, the host loop) hands
:func:`drive` a function that trains one chunk and returns its
:class:`~baselax.metrics.ChunkRecord` and the names of any non-finite values;
everything after that is the same for both: the record goes to ``history``
and to ``on_chunk`` (whose ``True`` asks the run to stop), a non-finite chunk
ends the run naming it (the newest checkpoint, from before it, is kept), and
checkpoints are written every ``checkpointer.every_chunks`` chunks, at the
end, and on a stop request, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from baselax.metrics import ChunkRecord, format_record
from baselax.training import guards

#: ``run_chunk(c) -> (record, names of non-finite values)``.
ChunkFn = Callable[[int], tuple[ChunkRecord, Sequence[str]]]


def drive(
  chunks: range,
  run_chunk: ChunkFn,
  derived: Any,
  *,
  history: list[ChunkRecord],
  save: Callable[[int], Any],
  checkpointer: Any = None,
  on_chunk: Callable[[ChunkRecord], Any] | None = None,
  log: Callable[[str], Any] = print,
  stop_enabled: bool = False,
  agree: Callable[[bool], bool] = bool,
) -> bool:
  """Runs ``chunks`` (``range(first_chunk, derived.num_chunks)``); returns
  whether the run stopped before its last chunk.

  Args:
    run_chunk: trains chunk ``c``; returns its record and the names of the
      values that are not finite (empty when all are).
    derived: the run's ``Derived`` sizes (``num_chunks``, for the messages).
    history: the records so far; each chunk's is appended.
    save: ``save(chunks_done)`` writes a checkpoint (a no-op without one).
    checkpointer: its ``every_chunks``, ``latest_step()`` and ``directory``.
    on_chunk: called with each record (``True`` asks to stop); without it
      each record is logged with ``log``.
    stop_enabled: turn Ctrl-C and SIGTERM into a stop request (:class:`guards.StopRequests`).
    agree: ``agree(requested) -> stop``; a multi-process run makes every
      process take the same decision (``distributed.any_process``).

  Raises:
    NonFiniteError: a chunk's loss or params were not finite.
  """
  with guards.StopRequests(enabled=stop_enabled) as stop:
    for c in chunks:
      record, nonfinite = run_chunk(c)
      history.append(record)
      if on_chunk is not None:
        # Not ``requested |= on_chunk(...)``: a Ctrl-C handled during the call
        # would be overwritten by the value read before it.
        if on_chunk(record):
          stop.requested = True
      else:
        log(format_record(record))
      guards.check_finite(
        list(nonfinite),
        c,
        derived,
        checkpointer.latest_step() if checkpointer else None,
        checkpointer.directory if checkpointer else None,
      )
      done = c + 1
      stopping = agree(stop.requested)  # every chunk: it may be a collective
      if done == derived.num_chunks or stopping:
        save(done)
        return done < derived.num_chunks
      if checkpointer is not None and done % checkpointer.every_chunks == 0:
        save(done)
  return False
