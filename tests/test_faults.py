"""Runs killed at awkward moments resume with the same command, damaged
checkpoints are set aside, a full disk ends a run cleanly, and a run
directory has one writer at a time. Every interrupted run must end with the
metrics of an uninterrupted one, line for line."""

import errno
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

import helpers
from baselax import experiment
from baselax.errors import ConfigError
from baselax.training import checkpoint
from test_experiment import SMALL, StopAfter

#: What must equal between an interrupted and an uninterrupted run (wall
#: clock and speed may not).
SAME = ("chunk", "env_steps", "updates", "train_return", "train_episodes",
        "recent_return", "loss", "eval_returns")


def metrics(run_dir):
  with open(os.path.join(run_dir, "metrics.jsonl")) as f:
    return [{k: row.get(k) for k in SAME} for row in map(json.loads, f)]


@pytest.fixture(scope="module")
def flags(tmp_path_factory):
  """SMALL with a compilation cache of the module's own: the runs here
  compile the same program, so all but the first load it."""
  cache = str(tmp_path_factory.mktemp("xla-cache"))
  i = SMALL.index("--compilation-cache")
  return SMALL[:i] + ["--compilation-cache", cache] + SMALL[i + 2:]


@pytest.fixture(scope="module")
def straight_run(flags, tmp_path_factory):
  run_dir = str(tmp_path_factory.mktemp("faults") / "straight")
  experiment.run(flags + ["--run-dir", run_dir])
  return run_dir


def resume(run_dir):
  return experiment.run(["--resume", run_dir, "--quiet"])


def test_a_run_killed_before_its_first_checkpoint_resumes_afresh(flags, straight_run,
                                                                  tmp_path, capsys):
  """SIGKILL while compiling (config.json written, no checkpoint yet; a
  metrics line cut short): ``--resume`` starts over from the recorded
  configuration, takes the dead writer's lock over, and ends as an
  uninterrupted run ends."""
  killed = str(tmp_path / "killed")
  proc = subprocess.Popen(
      [sys.executable, "experiments/anakin_dqn.py", *flags, "--run-dir", killed],
      cwd=helpers.REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
      env=dict(os.environ, JAX_PLATFORMS="cpu"))
  proc.stdout.readline()  # the header: the run directory exists, nothing is trained
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert os.path.exists(os.path.join(killed, "config.json"))
  assert os.path.exists(os.path.join(killed, "run.lock"))  # left by the killed writer
  with open(os.path.join(killed, "metrics.jsonl"), "a") as f:
    f.write('{"chunk": 0, "env_steps": 10')  # a line its writer did not finish
  capsys.readouterr()
  resumed = resume(killed)
  out = capsys.readouterr()
  assert "no checkpoint yet: starting it afresh" in out.out
  assert "taking over" in out.err
  assert resumed.result.first_chunk == 0
  assert metrics(killed) == metrics(straight_run)
  assert not os.path.exists(os.path.join(killed, "run.lock"))


def test_one_writer_per_run_directory(flags, tmp_path, capsys):
  run_dir = str(tmp_path / "run")
  os.makedirs(run_dir)
  sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
  try:
    with open(os.path.join(run_dir, "run.lock"), "w") as f:
      json.dump({"pid": sleeper.pid, "host": os.uname().nodename}, f)
    with pytest.raises(SystemExit) as exit_info:
      experiment.run(flags + ["--run-dir", run_dir])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(err) == 1, err
    assert f"is in use by pid {sleeper.pid}" in err[0]
    assert not os.path.exists(os.path.join(run_dir, "config.json"))  # refused first
  finally:
    sleeper.kill()
    sleeper.wait()
  # Its holder gone, the lock is stale: the next run takes it over.
  experiment.run(flags + ["--run-dir", run_dir])
  assert "taking over" in capsys.readouterr().err


def test_a_resumed_run_keeps_its_checkpoint_cadence(flags, tmp_path):
  """--resume takes the run's own --checkpoint-every (every chunk here), so a
  run killed again loses at most a chunk, not everything since the resume."""
  run_dir = str(tmp_path / "run")
  experiment.run(flags + ["--run-dir", run_dir], loggers=[StopAfter(1)])
  saved = []
  save = checkpoint.Checkpointer.save

  def noting(self, chunks_done, *args, **kwargs):
    saved.append(chunks_done)
    return save(self, chunks_done, *args, **kwargs)

  checkpoint.Checkpointer.save = noting
  try:
    resume(run_dir)
  finally:
    checkpoint.Checkpointer.save = save
  assert saved == [3, 4]
  with open(os.path.join(run_dir, "config.json")) as f:
    assert json.load(f)["run"]["checkpoint_every"] == 1000


def test_the_writer_removes_a_killed_saves_unfinished_checkpoint(flags, tmp_path):
  """A save killed mid-write leaves orbax's tmp directory; the run's next
  writer deletes it, a reader (evaluation beside a live run) leaves it."""
  run_dir = str(tmp_path / "run")
  experiment.run(flags + ["--run-dir", run_dir], loggers=[StopAfter(1)])
  ckpt = os.path.join(run_dir, "checkpoints")
  unfinished = os.path.join(ckpt, "3.orbax-checkpoint-tmp-1796536599")
  os.makedirs(os.path.join(unfinished, "state"))
  checkpoint.Checkpointer(ckpt).close()  # a reader
  assert os.path.isdir(unfinished)
  resume(run_dir)
  assert not os.path.exists(unfinished)
  assert sorted(os.listdir(ckpt)) == ["3", "4"]


# --- damaged checkpoints ---------------------------------------------------------


def test_the_manifest_names_what_changed_in_a_checkpoint(tmp_path):
  step = tmp_path / "3"
  (step / "state").mkdir(parents=True)
  (step / "state" / "data").write_bytes(b"0123456789")
  (step / "meta").write_text("{}")
  assert checkpoint.damage(str(step)) is None  # no manifest: nothing to check against
  (step / checkpoint.MANIFEST).write_text(json.dumps(checkpoint.manifest(str(step))))
  assert checkpoint.damage(str(step)) is None
  (step / "state" / "data").write_bytes(b"0123456788")  # one byte flipped
  assert checkpoint.damage(str(step)) == "state/data changed since it was written"
  (step / "state" / "data").write_bytes(b"01234")
  assert checkpoint.damage(str(step)) == "state/data has 5 bytes, 10 were written"
  (step / "extra").write_text("x")
  assert checkpoint.damage(str(step)) == "extra was not in it when it was written"
  (step / "extra").unlink()
  (step / "state" / "data").unlink()
  assert checkpoint.damage(str(step)) == "state/data is missing"
  (step / checkpoint.MANIFEST).write_text('{"meta": [2,')
  assert checkpoint.damage(str(step)) == "its manifest.json is damaged"


def largest_file(step_dir):
  files = [os.path.join(root, name) for root, _, names in os.walk(step_dir)
           for name in names if name != checkpoint.MANIFEST]
  return max(files, key=os.path.getsize)


def metadata_file(step_dir):
  return next(os.path.join(root, name) for root, _, names in os.walk(step_dir)
              for name in sorted(names) if "METADATA" in name.upper())


@pytest.mark.parametrize("harm", ["flip", "truncate", "delete", "delete-metadata"])
def test_a_damaged_newest_checkpoint_is_set_aside_and_the_run_resumes_exactly(
    harm, flags, straight_run, tmp_path, capsys):
  run_dir = str(tmp_path / "run")
  experiment.run(flags + ["--run-dir", run_dir], loggers=[StopAfter(2)])  # steps 2, 3
  step_dir = os.path.join(run_dir, "checkpoints", "3")
  victim = metadata_file(step_dir) if harm == "delete-metadata" else largest_file(step_dir)
  with open(victim, "rb") as f:
    data = f.read()
  if harm.startswith("delete"):
    os.remove(victim)
  else:
    with open(victim, "wb") as f:
      f.write(data[:-9] + bytes([data[-9] ^ 0xFF]) + data[-8:] if harm == "flip"
              else data[:len(data) // 2])
  capsys.readouterr()
  resumed = resume(run_dir)
  assert resumed.result.first_chunk == 2  # from checkpoint 2, not the damaged 3
  err = capsys.readouterr().err
  assert "checkpoint 3 (" in err and "resuming from checkpoint 2" in err, err
  assert os.path.isdir(os.path.join(run_dir, "checkpoints", "damaged-3"))
  assert metrics(run_dir) == metrics(straight_run)


def test_no_intact_checkpoint_is_refused_in_one_line(straight_run, tmp_path, capsys):
  run_dir = str(tmp_path / "run")
  shutil.copytree(straight_run, run_dir)
  for step in os.listdir(os.path.join(run_dir, "checkpoints")):
    os.remove(largest_file(os.path.join(run_dir, "checkpoints", step)))
  capsys.readouterr()
  with pytest.raises(SystemExit) as exit_info:
    resume(run_dir)
  err = capsys.readouterr().err.strip().splitlines()
  assert exit_info.value.code == 2 and len(err) == 1, err
  assert f"--resume {run_dir}: no intact checkpoint in " in err[0]
  assert "is missing" in err[0]


def test_a_full_disk_ends_the_run_in_one_line_and_it_resumes_once_there_is_room(
    flags, straight_run, tmp_path, monkeypatch, capsys):
  run_dir = str(tmp_path / "run")
  save = checkpoint.Checkpointer.save

  def full_after_two(self, chunks_done, *args, **kwargs):
    if chunks_done > 2:
      raise OSError(errno.ENOSPC, "No space left on device")
    return save(self, chunks_done, *args, **kwargs)

  monkeypatch.setattr(checkpoint.Checkpointer, "save", full_after_two)
  with pytest.raises(SystemExit) as exit_info:
    experiment.run(flags + ["--run-dir", run_dir])
  assert exit_info.value.code == 1
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "No space left on device" in err[0], err
  assert f"continue with --resume {run_dir}" in err[0]
  monkeypatch.setattr(checkpoint.Checkpointer, "save", save)  # room again
  assert resume(run_dir).result.first_chunk == 2
  assert metrics(run_dir) == metrics(straight_run)


def test_kills_anywhere_end_as_an_uninterrupted_run(tmp_path):
  """scripts/kill_anywhere.py: SIGKILL at 3 random moments (start-up,
  compiling, training, checkpoint writes), each resumed with --resume; the
  metrics and the final state, array by array, equal a straight run's (the
  committed figures: 20 kills, docs/results/faults)."""
  proc = subprocess.run(
      [sys.executable, "scripts/kill_anywhere.py", "--kills", "3", "--chunks", "10",
       "--seed", "1", "--out", str(tmp_path)],
      cwd=helpers.REPO, capture_output=True, text=True, timeout=600,
      env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
  report = json.loads((tmp_path / "kills.json").read_text())
  assert len([k for k in report["kills"] if "chunks_logged" in k]) == 3
  result = report["result"]
  assert result["metrics_equal"] and result["no_line_twice"] and result["every_line_whole"]
  assert result["arrays"] > 20 and result["arrays_unequal"] == []
  assert (tmp_path / "kills.png").exists()


def test_a_lock_from_another_host_lives_by_its_heartbeat(tmp_path, monkeypatch):
  """A requeued job may land on another node: another host's lock is live
  while its writer refreshes it and stale once it stops, never alive forever."""
  from baselax.experiment import runlock
  path = tmp_path / "run.lock"
  path.write_text(json.dumps({"pid": 1, "host": "another-node"}))
  with pytest.raises(ConfigError, match="in use by pid 1 on another-node"):
    runlock.RunLock(str(tmp_path)).acquire()
  old = time.time() - runlock.STALE_AFTER_S - 5
  os.utime(path, (old, old))  # its writer died: no refresh since
  lock = runlock.RunLock(str(tmp_path))
  warnings = []
  handler = logging.Handler(logging.WARNING)
  handler.emit = lambda record: warnings.append(record.getMessage())
  runlock.logger.addHandler(handler)  # (whatever the suite did to propagation)
  try:
    lock.acquire()
  finally:
    runlock.logger.removeHandler(handler)
  assert any("taking over" in w and "another-node" in w for w in warnings), warnings
  assert json.loads(path.read_text())["host"] == socket.gethostname()
  lock.release()
  assert not path.exists()
  # A held lock is refreshed while its writer lives (heartbeat shortened here).
  monkeypatch.setattr(runlock, "HEARTBEAT_S", 0.05)
  lock = runlock.RunLock(str(tmp_path))
  lock.acquire()
  os.utime(path, (old, old))
  deadline = time.time() + 10
  while time.time() - path.stat().st_mtime > runlock.STALE_AFTER_S and time.time() < deadline:
    time.sleep(0.05)
  assert time.time() - path.stat().st_mtime < runlock.STALE_AFTER_S
  lock.release()
  assert not path.exists() and not lock._heartbeat.is_alive()
