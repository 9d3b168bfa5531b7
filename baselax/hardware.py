"""What the machine has, and what a run used of it.

* :func:`accelerator_hint`: the one-line hint the main job prints when the
  system has an NVIDIA GPU (``nvidia-smi`` on ``PATH``, or ``/dev/nvidia0``)
  but JAX runs on the CPU, because ``pip install -e .`` installs CPU-only
  JAX; it names the install command.
* :func:`peak_memory_bytes`: the peak memory of this process's device 0
  (``memory_stats()["peak_bytes_in_use"]`` on GPUs and TPUs), or the peak
  resident memory of the process on a CPU backend, which has no device
  allocator statistics.
* ``python -m baselax.hardware --report FILE -- SCRIPT [ARGS...]`` runs a
  Python script as ``__main__`` in this process and then writes its exit code,
  wall time, backend, device and peak memory to ``FILE`` (JSON): the peak
  device memory of any entry point, measured from outside it
  (``scripts/accelerator_check.py`` runs each of its items this way).

This module does not import JAX at import time: ``accelerator_hint`` must not
start a backend before ``jax.distributed.initialize``, and only looks at JAX
if the caller already imported it (or asks it to).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import runpy
import shutil
import sys
import time
from typing import Any

#: What to run on a GPU machine to get the CUDA build of JAX.
GPU_INSTALL = 'pip install -e ".[cuda12]"'

#: The device node of the first NVIDIA GPU (present even without nvidia-smi).
NVIDIA_DEVICE = "/dev/nvidia0"


def nvidia_gpu_present() -> bool:
  """Whether the system shows an NVIDIA GPU: ``nvidia-smi`` on PATH or ``/dev/nvidia0``."""
  return shutil.which("nvidia-smi") is not None or os.path.exists(NVIDIA_DEVICE)


def accelerator_hint(backend: str | None = None) -> str | None:
  """The one-line hint for a GPU that JAX does not use, or None.

  Args:
    backend: JAX's backend name; None asks ``jax.default_backend()`` (which
      starts JAX's backend: call it after ``jax.distributed.initialize``).

  Returns:
    A line naming the install command when the system shows an NVIDIA GPU but
    the backend is ``"cpu"``; None otherwise (a GPU in use, a TPU, no GPU).
  """
  if not nvidia_gpu_present():
    return None
  if backend is None:
    import jax

    backend = jax.default_backend()
  if backend != "cpu":
    return None
  return (
    f"hint: this machine has an NVIDIA GPU but JAX runs on the CPU; "
    f"install the CUDA build of JAX with: {GPU_INSTALL}"
  )


def print_accelerator_hint() -> None:
  """Prints :func:`accelerator_hint`'s line, if there is one (a run's first line)."""
  hint = accelerator_hint()
  if hint:
    print(hint, flush=True)


def peak_rss_bytes() -> int:
  """Peak resident memory of this process so far (Linux reports KiB)."""
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  return int(peak if sys.platform == "darwin" else peak * 1024)


def peak_memory_bytes() -> dict[str, Any]:
  """The peak memory of this process: device 0's allocator, else resident memory.

  Returns:
    ``{"bytes": int, "source": "device" | "rss", "device": str}``: with
    ``source="device"`` the peak bytes JAX's allocator had in use on local
    device 0 (GPU, TPU); with ``"rss"`` (CPU backend, or a device without
    statistics) the process's peak resident memory, JAX and XLA included.
  """
  import jax

  device = jax.local_devices()[0]
  stats = None
  try:
    stats = device.memory_stats()
  except Exception:  # some backends raise instead of returning None
    stats = None
  if stats and "peak_bytes_in_use" in stats:
    return {
      "bytes": int(stats["peak_bytes_in_use"]),
      "source": "device",
      "device": device.device_kind,
      "bytes_limit": int(stats.get("bytes_limit", 0)) or None,
    }
  return {"bytes": peak_rss_bytes(), "source": "rss", "device": device.device_kind}


def device_summary() -> dict[str, Any]:
  """JAX version, backend, device kind and count (starts JAX's backend)."""
  import jax

  devices = jax.devices()
  return {
    "jax": jax.__version__,
    "backend": jax.default_backend(),
    "device_kind": devices[0].device_kind,
    "device_count": len(devices),
    "process_count": jax.process_count(),
  }


def _exit_code(error: SystemExit) -> int:
  if error.code is None:
    return 0
  if isinstance(error.code, int):
    return error.code
  print(error.code, file=sys.stderr)
  return 1


def run_and_report(script: str, args: list[str], report: str, module: bool = False) -> int:
  """Runs ``script`` (a path, or with ``module`` a module's name, as ``python
  -m`` does) as ``__main__`` with ``args``; writes the JSON report; returns
  the exit code."""
  sys.argv = [script, *args]
  t = time.perf_counter()
  code, error = 0, None
  try:
    if module:
      runpy.run_module(script, run_name="__main__", alter_sys=True)
    else:
      runpy.run_path(script, run_name="__main__")
  except SystemExit as exit_:
    code = _exit_code(exit_)
  except BaseException as exc:  # report it, then fail like Python would
    code, error = 1, f"{type(exc).__name__}: {exc}"
    import traceback

    traceback.print_exc()
  wall = time.perf_counter() - t
  out: dict[str, Any] = {
    "script": script,
    "args": args,
    "exit_code": code,
    "wall_s": wall,
    "error": error,
  }
  if "jax" in sys.modules:  # a script that never started JAX has no device to ask
    try:
      out.update(device_summary())
      out["peak_memory"] = peak_memory_bytes()
    except Exception as exc:  # the report must not hide the script's own result
      out["peak_memory_error"] = f"{type(exc).__name__}: {exc}"
  if "peak_memory" not in out:
    out["peak_memory"] = {"bytes": peak_rss_bytes(), "source": "rss", "device": None}
  with open(report, "w") as f:
    json.dump(out, f, indent=1)
  return code


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
    prog="python -m baselax.hardware",
    description="Run a Python script, then report its peak device memory.",
  )
  parser.add_argument("--report", required=True, help="write the JSON report here")
  parser.add_argument(
    "--module", action="store_true", help="SCRIPT names a module, run as python -m runs it"
  )
  parser.add_argument("script", help="the script (or module) to run as __main__")
  parser.add_argument("args", nargs=argparse.REMAINDER, help="its arguments")
  ns = parser.parse_args(argv)
  args = ns.args[1:] if ns.args[:1] == ["--"] else ns.args
  return run_and_report(ns.script, args, ns.report, ns.module)


if __name__ == "__main__":
  sys.exit(main())
