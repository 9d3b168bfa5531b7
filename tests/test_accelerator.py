"""The accelerator installs and checks: the GPU hint, peak memory, the extras,
scripts/accelerator_check.py --smoke, and scripts/offline_wheels.sh.

The two tests that reach PyPI (a full ``pip install --dry-run ".[cuda12]"``,
about 30 s; the offline-wheels round trip, about a minute and 200 MB) run only
with ``BASELAX_NETWORK_TESTS=1``.
"""

import importlib.metadata
import json
import os
import stat
import subprocess
import sys

import pytest

from baselax import hardware

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NETWORK = os.environ.get("BASELAX_NETWORK_TESTS") == "1"
needs_network = pytest.mark.skipif(
    not NETWORK, reason="reaches PyPI: set BASELAX_NETWORK_TESTS=1 to run it")


@pytest.fixture
def fake_nvidia_smi(tmp_path, monkeypatch):
  """PATH holds only an `nvidia-smi` that prints a GPU; no /dev/nvidia0."""
  exe = tmp_path / "nvidia-smi"
  exe.write_text("#!/bin/sh\necho 'NVIDIA H100 80GB HBM3, 81559 MiB, 580.0'\n")
  exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
  monkeypatch.setenv("PATH", str(tmp_path))
  monkeypatch.setattr(hardware, "NVIDIA_DEVICE", str(tmp_path / "no-such-device"))
  return exe


def test_hint_names_the_cuda_install_when_a_gpu_is_visible_but_jax_is_on_cpu(fake_nvidia_smi):
  hint = hardware.accelerator_hint("cpu")
  assert hint is not None and "\n" not in hint
  assert 'pip install -e ".[cuda12]"' in hint
  # With no backend given it asks JAX, which is on the CPU in the tests.
  assert hardware.accelerator_hint() == hint


def test_no_hint_when_jax_uses_the_gpu_or_there_is_none(fake_nvidia_smi, tmp_path, monkeypatch):
  assert hardware.accelerator_hint("gpu") is None
  assert hardware.accelerator_hint("tpu") is None
  empty = tmp_path / "empty"
  empty.mkdir()
  monkeypatch.setenv("PATH", str(empty))
  assert not hardware.nvidia_gpu_present()
  assert hardware.accelerator_hint("cpu") is None


def test_the_device_node_alone_counts_as_a_gpu(tmp_path, monkeypatch):
  node = tmp_path / "nvidia0"
  node.write_text("")
  monkeypatch.setenv("PATH", str(tmp_path / "nothing-here"))
  monkeypatch.setattr(hardware, "NVIDIA_DEVICE", str(node))
  assert hardware.accelerator_hint("cpu") is not None


def test_peak_memory_on_cpu_is_the_resident_peak():
  mem = hardware.peak_memory_bytes()
  assert mem["source"] == "rss"
  assert mem["bytes"] >= 50 * 2**20  # JAX alone is more than that


def test_hardware_runs_a_script_and_reports_its_exit_code_and_memory(tmp_path):
  script = tmp_path / "job.py"
  script.write_text("import sys, jax.numpy as jnp\nprint(float(jnp.ones(3).sum()), sys.argv[1:])\n"
                    "sys.exit(3)\n")
  report = tmp_path / "report.json"
  proc = subprocess.run([sys.executable, "-m", "baselax.hardware", "--report", str(report),
                         "--", str(script), "--flag", "x"],
                        capture_output=True, text=True, timeout=120, cwd=REPO)
  assert proc.returncode == 3, proc.stderr
  assert "3.0 ['--flag', 'x']" in proc.stdout
  out = json.loads(report.read_text())
  assert out["exit_code"] == 3 and out["args"] == ["--flag", "x"]
  assert out["backend"] == "cpu" and out["peak_memory"]["bytes"] > 0


def _pyproject():
  tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
  with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
    return tomllib.load(f)["project"]


def test_accelerator_extras_pin_the_plugins_of_our_jax():
  """cuda12/cuda13/tpu are jax's own extras over our jax range, and jax's
  metadata pins each plugin to exactly its own version."""
  project = _pyproject()
  jax_range = next(d for d in project["dependencies"] if d.startswith("jax>="))
  range_ = jax_range[len("jax"):]
  extras = project["optional-dependencies"]
  for extra in ("cuda12", "cuda13", "tpu"):
    assert extras[extra] == [f"jax[{extra}]{range_}"], extra
  version = importlib.metadata.version("jax")
  requires = importlib.metadata.requires("jax")
  for extra, plugin in (("cuda12", "jax-cuda12-plugin"), ("cuda13", "jax-cuda13-plugin")):
    pins = [r for r in requires if r.startswith(plugin) and f'extra == "{extra}"' in r]
    assert pins and f"<={version}" in pins[0] and f">={version}" in pins[0], pins


@needs_network
@pytest.mark.slow
def test_cuda12_extra_resolves_to_the_plugin_of_the_pinned_jax(tmp_path):
  report = tmp_path / "report.json"
  proc = subprocess.run(
      [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed",
       "--report", str(report), "-e", ".[cuda12]"],
      cwd=REPO, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  versions = {i["metadata"]["name"]: i["metadata"]["version"]
              for i in json.loads(report.read_text())["install"]}
  assert versions["jax-cuda12-plugin"] == versions["jax"] == versions["jax-cuda12-pjrt"]
  assert versions["jaxlib"] == versions["jax"]


def _offline_env():
  """pip with no configuration files and no find-links: DIR must be enough."""
  env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
  env["PIP_CONFIG_FILE"] = os.devnull
  return env


def build_wheel(tmp_path):
  """``python -m build`` of this checkout: ``(the wheel, the sdist)``; no network
  (the build requirements come with ``[dev]``)."""
  dist = tmp_path / "dist"
  proc = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist),
                         REPO], capture_output=True, text=True, timeout=300, cwd=REPO)
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
  wheel, = dist.glob("baselax-*.whl")
  sdist, = dist.glob("baselax-*.tar.gz")
  return wheel, sdist


@pytest.mark.slow
def test_the_wheel_works_outside_the_repository(tmp_path):
  """The wheel, installed into a fresh virtual environment, run from an empty
  directory: ``baselax --help``, ``baselax check --smoke`` (a short ``baselax
  train`` and the bench, reaching its tables), ``baselax evaluate`` of the
  check's run and a dry run of ``baselax table``. Its dependencies are this machine's
  (``--system-site-packages``); with BASELAX_NETWORK_TESTS=1, the offline
  wheelhouse of scripts/offline_wheels.sh installs the project into a venv of
  its own with no index, too."""
  wheel, _ = build_wheel(tmp_path)
  names = subprocess.run([sys.executable, "-m", "zipfile", "-l", str(wheel)],
                         capture_output=True, text=True).stdout
  assert "baselax/py.typed" in names and "baselax/bench/check.py" in names
  venv = tmp_path / "venv"
  subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                 check=True, timeout=300)
  subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                  "--no-deps", "--no-index", str(wheel)], check=True, timeout=300)
  empty = tmp_path / "empty"
  empty.mkdir()

  def baselax(*argv, timeout=300):
    proc = subprocess.run([str(venv / "bin" / "baselax"), *argv], cwd=str(empty),
                          capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert proc.returncode == 0, (argv, proc.stdout[-3000:], proc.stderr[-3000:])
    return proc.stdout

  assert "train" in baselax("--help") and "check" in baselax("--help")
  where = subprocess.run([str(venv / "bin" / "python"), "-c", "import baselax; "
                          "print(baselax.__file__)"], cwd=str(empty), capture_output=True,
                         text=True).stdout
  assert where.startswith(str(venv))  # the wheel's copy, not this checkout
  dry = baselax("table", "--table", "cleanrl-classic", "--agents", "dqn", "--envs",
                "CartPole-v1", "--dry-run", "--runs-dir", "cells", "--out", "tables")
  assert "-m baselax.experiment --preset cleanrl-classic --agent dqn" in dry
  # The accelerator check at tiny budgets (its breakout item is left out here:
  # its conv MinAtar run is test_minatar's preset run). Its default item is a
  # `baselax train` of the wheel's copy, whose run evaluate.py then reads.
  baselax("check", "--smoke", "--only", "default", "bench", "--out", "check")
  run = empty / "check" / "runs" / "default"
  assert (run / "checkpoints").is_dir() and (run / "metrics.jsonl").is_file()
  assert "run directory:" in (empty / "check" / "logs" / "default.log").read_text()
  assert "greedy return over 2 episodes" in baselax("evaluate", str(run), "--episodes", "2")
  summary = json.loads((empty / "check" / "accelerator_check.json").read_text())
  assert summary["smoke"] and summary["header"]["backend"] == "cpu"
  items = {r["name"]: r for r in summary["items"]}
  assert set(items) == {"default", "bench"}
  assert all(r["status"] == "ok" for r in items.values()), items
  assert items["default"]["env_steps_per_s"] > 0 and items["default"]["compile_s"] > 0
  assert items["default"]["final_return"] is not None
  assert items["default"]["peak_memory"]["bytes"] > 0
  assert items["default"]["command"].startswith("baselax train ")
  kinds = {row["kind"] for row in items["bench"]["bench"]["rows"]}
  assert {"limit", "limit+policy", "anakin"} <= kinds
  table = (empty / "check" / "accelerator_check.md").read_text()
  assert "| default | CartPole-v1" in table and "| anakin | 8 |" in table
  if os.environ.get("BASELAX_NETWORK_TESTS") == "1":
    offline_wheelhouse_installs_the_project(tmp_path)


def offline_wheelhouse_installs_the_project(tmp_path):
  """scripts/offline_wheels.sh's wheelhouse (downloaded: it needs the network)
  installs the project into a venv of its own with no index."""
  wheels = tmp_path / "wheels"
  proc = subprocess.run(["bash", os.path.join(REPO, "scripts", "offline_wheels.sh"),
                         str(wheels)], capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "pip install --no-index --find-links" in proc.stdout
  names = os.listdir(wheels)
  assert all(n.endswith(".whl") for n in names)
  assert any(n.startswith("jaxlib-") for n in names) and any(
      n.startswith("baselax-") for n in names)
  venv = tmp_path / "isolated"
  env = _offline_env()
  subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=env, timeout=300)
  python = str(venv / "bin" / "python")
  proc = subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-compile",
                         "--no-index", "--find-links", str(wheels), "baselax"],
                        capture_output=True, text=True, env=env, timeout=900)
  assert proc.returncode == 0, proc.stderr[-3000:]
  proc = subprocess.run(
      [python, "-c", "import baselax, baselax.hardware, jax, gymnax, flashbax, haiku, "
       "orbax.checkpoint; print(jax.__version__, baselax.hardware.__file__)"],
      capture_output=True, text=True, env=env, timeout=300, cwd=str(tmp_path))
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert str(venv) in proc.stdout  # the venv's copy, not this checkout
