"""Multi-process training on JAX's own runtime: 2 processes x 2 CPU devices on 127.0.0.1."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest


import helpers

# Each process trains through the main job and reports what the test checks.
PROCESS = textwrap.dedent("""
    import hashlib, json, os, sys
    import numpy as np
    from baselax import experiment

    class StopAfter:  # STOP_AFTER_CHUNK=c: process 0's logger asks to stop after chunk c
      def write(self, record):
        return record.chunk == int(os.environ.get("STOP_AFTER_CHUNK", "-1"))
      def close(self):
        pass

    out = experiment.run(sys.argv[2:], loggers=[StopAfter()])
    import jax
    params = jax.tree.leaves(out.result.params)
    digest = hashlib.sha256(b"".join(np.asarray(p).tobytes() for p in params)).hexdigest()
    local_steps = np.asarray(out.result.state.env_steps)   # (local devices, seeds)
    json.dump({{"hash": digest, "local_env_steps": local_steps.tolist(),
               "interrupted": out.interrupted, "first_chunk": out.result.first_chunk,
               "env_steps": out.env_steps, "eval_return": out.eval_return.tolist(),
               "process_count": jax.process_count(), "devices": jax.device_count()}},
              open(sys.argv[1], "w"))
""").format()

# One persistent compilation cache for this module's launches (this pytest
# process's own): a program compiles once, in the first launch's process 0
# (the only process JAX lets write it), and every later launch reads it.
XLA_CACHE = os.path.join(tempfile.gettempdir(), f"baselax-test-distributed-xla-{os.getpid()}")

SMALL = ["--total-env-steps", "6400", "--eval-every", "3200", "--num-envs", "4",
         "--learning-starts", "640", "--buffer-size", "2000", "--batch-size", "32",
         "--eval-episodes", "4", "--quiet", "--compilation-cache", XLA_CACHE]


@pytest.fixture(scope="module", autouse=True)
def _remove_the_cache():
  yield
  shutil.rmtree(XLA_CACHE, ignore_errors=True)


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def launch(tmp_path, per_process_args, timeout=240, env_extra=None):
  """Runs one process per entry of ``per_process_args``; returns ``(code, stdout, stderr)``s.

  Every process gets its own working directory and 2 forced CPU devices. If
  one fails, or the time runs out, all are killed (whole process groups): a
  process left alone would wait in its collectives for ever.
  """
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS="--xla_force_host_platform_device_count=2",
             PYTHONPATH=helpers.REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
             **(env_extra or {}))
  procs, dirs = [], []
  try:
    for i, args in enumerate(per_process_args):
      cwd = tmp_path / f"p{i}"
      cwd.mkdir(parents=True, exist_ok=True)  # a resumed run reuses its directories
      dirs.append(cwd)
      procs.append(subprocess.Popen(
          [sys.executable, "-c", PROCESS, str(cwd / "out.json"), *args], cwd=cwd,
          env=env, stdout=open(cwd / "stdout", "w"), stderr=open(cwd / "stderr", "w"),
          start_new_session=True))
    deadline = time.time() + timeout
    while time.time() < deadline:
      codes = [p.poll() for p in procs]
      if all(c is not None for c in codes) or any(c not in (None, 0) for c in codes):
        break
      time.sleep(0.2)
  finally:
    for proc in procs:
      if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
      proc.wait()
  return [(p.returncode, (d / "stdout").read_text(), (d / "stderr").read_text())
          for p, d in zip(procs, dirs)]


def process_args(port, n, extra=()):
  return [SMALL + ["--coordinator-address", f"127.0.0.1:{port}", "--num-processes",
                   str(n), "--process-id", str(i), *extra] for i in range(n)]


# Four chunks, each checkpointed; a lost peer is noticed after 10 s without heartbeats.
RUN = ["--total-env-steps", "12800", "--checkpoint-every", "3200", "--heartbeat-timeout", "10"]


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
  """The uninterrupted 2-process run the interrupted ones must equal: its
  processes' reports and its metrics lines (timing left out)."""
  root = tmp_path_factory.mktemp("straight")
  results = launch(root, process_args(free_port(), 2, RUN))
  for i, (code, out, err) in enumerate(results):
    assert code == 0, f"process {i} failed:\n{out[-2000:]}\n{err[-4000:]}"
  reports = [json.load(open(root / f"p{i}" / "out.json")) for i in range(2)]
  [name] = os.listdir(root / "p0" / "runs")
  return root, results, reports, metrics_of(root / "p0" / "runs" / name)


def metrics_of(run_dir):
  timing = ("sps", "wall_time")
  return [{k: v for k, v in json.loads(line).items() if k not in timing}
          for line in open(run_dir / "metrics.jsonl")]


def test_two_processes_train_one_model(straight):
  root, results, reports, metrics = straight
  assert [r["process_count"] for r in reports] == [2, 2]
  assert [r["devices"] for r in reports] == [4, 4]
  # Gradients are averaged over all 4 devices: one set of params everywhere.
  assert reports[0]["hash"] == reports[1]["hash"]
  # Env steps are counted over every device of every process ...
  assert reports[0]["env_steps"] == reports[1]["env_steps"] == 12800
  per_device = [s for r in reports for row in r["local_env_steps"] for s in row]
  assert len(per_device) == 4 and sum(per_device) == 12800
  # ... and evaluation is aggregated, so both processes report the same returns.
  assert reports[0]["eval_return"] == reports[1]["eval_return"]
  # Only process 0 writes a run directory (both started in empty directories).
  assert len(os.listdir(root / "p0" / "runs")) == 1 and len(metrics) == 4
  assert not os.path.exists(root / "p1" / "runs")
  assert "over 2 processes" in results[0][1] and "run directory" in results[0][1]
  assert "baselax" not in results[1][1] and "run directory" not in results[1][1]


def test_a_run_stopped_then_losing_a_process_resumes_to_the_straight_runs_end(
    straight, tmp_path):
  """A 2-process run asked to stop after its first chunk (every process's
  shards are saved), resumed from the command line (each process under its
  supervisor), then one process SIGKILLed (its supervisor, as a scheduler
  would) after the resumed run's first checkpoint: the survivor stops within
  the heartbeat timeout with one line naming the lost process and the resume
  command, not JAX's C++ abort, and nothing is left running. ``--resume`` on
  both processes then finishes the run: the straight run's params, and its
  metrics, each chunk once. Resuming on one process is refused in one line."""
  _, _, reports, metrics = straight
  stopped = launch(tmp_path, process_args(free_port(), 2, RUN),
                   env_extra={"STOP_AFTER_CHUNK": "0"})
  assert all(code == 0 for code, _, _ in stopped), stopped
  [name] = os.listdir(tmp_path / "p0" / "runs")
  # Every process names the run directory by one path (a shared filesystem):
  # process 1 keeps its shards there too, beside process 0's.
  run_dir = tmp_path / "p0" / "runs" / name
  assert sorted(os.listdir(run_dir / "checkpoints" / "shards")) == ["process-0", "process-1"]
  assert len(metrics_of(run_dir)) == 1
  # A restart with another process count is refused in one line naming both counts.
  [(code, _, err)] = launch(tmp_path / "alone", [SMALL + [*RUN, "--resume", str(run_dir)]])
  assert code == 2 and "num_processes: checkpoint has 2, this run has 1" in err
  assert "num_devices: checkpoint has 4, this run has 2" in err and "Traceback" not in err

  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS="--xla_force_host_platform_device_count=2")

  def start():
    port = free_port()
    return port, [subprocess.Popen(
        [sys.executable, "-m", "baselax", "train", *args], cwd=tmp_path, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for args in process_args(port, 2, [*RUN, "--resume", str(run_dir)])]

  port, procs = start()
  try:
    # Process 0 commits a checkpoint once every process's part is written:
    # from there on a lost peer is the failure under test.
    deadline = time.time() + 180
    while not (run_dir / "checkpoints" / "2" / "manifest.json").exists():
      assert time.time() < deadline and all(p.poll() is None for p in procs)
      time.sleep(0.1)
    procs[1].kill()  # the supervisor: its trainer dies with it
    killed_at = time.time()
    _, err = procs[0].communicate(timeout=120)
    took = time.time() - killed_at
  finally:
    for proc in procs:
      if proc.poll() is None:
        proc.kill()
        proc.wait()
  assert procs[0].returncode == 75 and took < 60, (procs[0].returncode, took, err[-3000:])
  lines = [line for line in err.splitlines() if line.strip()]
  assert len(lines) == 1, err[-3000:]
  assert "lost a process (process 1 stopped sending heartbeats" in lines[0]
  assert f"Continue it from its newest checkpoint with --resume {run_dir}" in lines[0]
  assert subprocess.run(["pgrep", "-f", str(port)], capture_output=True).stdout == b""

  resumed = launch(tmp_path, process_args(free_port(), 2, [*RUN, "--resume", str(run_dir)]))
  for i, (code, out, err) in enumerate(resumed):
    assert code == 0, f"resumed process {i} failed:\n{out[-2000:]}\n{err[-4000:]}"
  again = [json.load(open(tmp_path / f"p{i}" / "out.json")) for i in range(2)]
  assert [r["hash"] for r in again] == [reports[0]["hash"]] * 2
  assert again[0]["eval_return"] == reports[0]["eval_return"]
  assert metrics_of(run_dir) == metrics  # chunks 0-3, each once, as the straight run's


def test_processes_with_different_flags_are_refused(tmp_path):
  args = process_args(free_port(), 2)
  args[1] += ["--learning-rate", "0.1"]
  results = launch(tmp_path, args)
  # Both refuse (or one refuses and the other is stopped with it).
  assert all(code != 0 for code, _, _ in results)
  assert any("different command lines" in err and "process(es) [1]" in err
             for _, _, err in results)


def test_an_unreachable_coordinator_fails_in_bounded_time_naming_it(tmp_path):
  port = free_port()  # nothing listens there
  start = time.time()
  [(code, _, err)] = launch(tmp_path, [SMALL + [
      "--coordinator-address", f"127.0.0.1:{port}", "--num-processes", "2",
      "--process-id", "1", "--initialization-timeout", "3"]], timeout=60)
  assert code != 0 and time.time() - start < 45
  assert f"Could not reach the coordinator at 127.0.0.1:{port} within 3s" in err
  assert "Traceback" not in err


# What JAX's coordination service writes when it ends a survivor (abridged
# from a real run), then its C++ abort.
VERDICT = textwrap.dedent("""
    import os, sys
    sys.stderr.write("a line the run wrote\\n")
    sys.stderr.write("E1207 13:13:17.515176 17248 coordination_service.cc:1549] Use error "
                     "polling to propagate the following error to all tasks: UNAVAILABLE: "
                     "The following tasks are unhealthy (stopped sending heartbeats):\\n")
    sys.stderr.write("/job:jax_worker/replica:0/task:1\\n")
    sys.stderr.write("The tasks have crashed. Check the task logs.\\n")
    sys.stderr.write("F1207 13:13:17.517389 17259 client.h:80] Terminating process because the "
                     "JAX distributed service detected fatal errors.\\n")
    sys.stderr.write("*** Check failure stack trace: ***\\n    @     0x7f119ea0cd5b  f()\\n")
    sys.stderr.flush()
    os.abort()
""")


@pytest.mark.parametrize("child, expected", ids=["verdict", "said"], argvalues=[
    (VERDICT, "process 1 stopped sending heartbeats"),
    # The child found the lost peer first (a collective's error) and said so.
    ("import sys; sys.stderr.write('x: error: the multi-process run lost a process "
     "(a peer)\\n'); sys.exit(75)", "x: error: the multi-process run lost a process (a peer)"),
])
def test_the_supervisor_turns_the_runs_end_into_one_line(child, expected, capfd):
  from baselax.experiment import supervisor
  code = supervisor.supervise("baselax train", 0, [sys.executable, "-c", child])
  err = capfd.readouterr().err
  lines = [line for line in err.splitlines() if line.strip()]
  assert code == supervisor.LOST_PEER, err
  assert lines[-1].endswith(expected) or expected in lines[-1], err
  assert sum("lost a process" in line for line in lines) == 1, err
  assert "Check failure" not in err and "0x7f119ea0cd5b" not in err, err
