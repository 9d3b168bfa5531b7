"""The training core (``baselax.training``): the config both trainers share
and how the Anakin trainer's extends it, settings renamed since runs were
first written, and a run directory written under the old names resuming."""

import dataclasses
import json
import os

import numpy as np
import pytest

from baselax import experiment
from baselax.anakin import AnakinConfig
from baselax.errors import ConfigError
from baselax.experiment import rundir
from baselax.training import checkpoint, config as config_lib
from baselax.training.config import TrainingConfig

from test_experiment import SMALL, StopAfter


def test_the_anakin_config_is_the_training_config_plus_seeds_and_devices():
  shared = {f.name for f in dataclasses.fields(TrainingConfig)}
  anakin = {f.name for f in dataclasses.fields(AnakinConfig)}
  assert anakin - shared == {"num_seeds", "num_devices", "parallel", "devices_per_group"}
  assert TrainingConfig(num_envs=4).derive() == AnakinConfig(num_envs=4).derive(1)
  # Each setting is checked once, where it is defined, naming its class.
  with pytest.raises(ConfigError, match=r"TrainingConfig.n_step must be a positive integer"):
    TrainingConfig(n_step=0)
  with pytest.raises(ConfigError, match=r"AnakinConfig.n_step must be a positive integer"):
    AnakinConfig(n_step=0)
  with pytest.raises(ConfigError, match=r"AnakinConfig.num_seeds must be a positive integer"):
    AnakinConfig(num_seeds=0)


def test_prioritized_is_the_old_name_of_sampling_prioritized():
  assert AnakinConfig(prioritized=True).sampling == "prioritized"
  assert AnakinConfig(prioritized=True).prioritized
  assert not AnakinConfig().prioritized and AnakinConfig().sampling == "uniform"
  kept = dataclasses.replace(AnakinConfig(prioritized=True), num_envs=4)
  assert kept.sampling == "prioritized"  # replace keeps it
  assert "prioritized" not in dataclasses.asdict(AnakinConfig())  # saved once, as sampling
  with pytest.raises(ConfigError, match="prioritized=True asks for sampling='prioritized', "
                                        "but sampling is 'newest'"):
    AnakinConfig(prioritized=True, sampling="newest")
  assert config_lib.migrate({"trainer.prioritized": True, "x": 1}, prefix="trainer.") == {
      "trainer.sampling": "prioritized", "x": 1}
  assert config_lib.migrate({"prioritized": False}) == {"sampling": "uniform"}
  assert config_lib.migrate({"sampling": "uniform"}) == {"sampling": "uniform"}


def rename_in_checkpoints(run_dir):
  """Rewrites a run directory as the code before ``sampling``, ``huber_delta``
  and ``dueling_hidden`` wrote it: ``prioritized`` and ``huber`` (booleans),
  no ``dueling_hidden``, in config.json and in every checkpoint's
  fingerprint (with the checkpoint's manifest, so it is intact)."""
  path = os.path.join(run_dir, "config.json")
  saved = json.load(open(path))
  saved["trainer"]["prioritized"] = saved["trainer"].pop("sampling") == "prioritized"
  saved["agent"]["huber"] = saved["agent"].pop("huber_delta") == 1.0
  del saved["agent"]["dueling_hidden"]  # before it existed: a stack per stream
  json.dump(saved, open(path, "w"))
  ckpt = os.path.join(run_dir, "checkpoints")
  for step in os.listdir(ckpt):
    meta_dir = os.path.join(ckpt, step, "meta")
    for name in os.listdir(meta_dir):
      meta_path = os.path.join(meta_dir, name)
      try:
        meta = json.load(open(meta_path))
      except (ValueError, UnicodeDecodeError):
        continue
      fingerprint = meta["fingerprint"]
      fingerprint["trainer.prioritized"] = fingerprint.pop("trainer.sampling") == "prioritized"
      fingerprint["meta.agent.huber"] = fingerprint.pop("meta.agent.huber_delta") == 1.0
      del fingerprint["meta.agent.dueling_hidden"]
      json.dump(meta, open(meta_path, "w"))
    json.dump(checkpoint.manifest(os.path.join(ckpt, step)),
              open(os.path.join(ckpt, step, checkpoint.MANIFEST), "w"))


def test_a_run_written_before_renamed_and_added_settings_resumes_exactly(tmp_path, capsys):
  # A dueling MLP had a hidden stack per stream before dueling_hidden existed.
  flags = SMALL + ["--prioritized", "--n-step", "2", "--huber", "--dueling",
                   "--dueling-hidden", "per-stream"]
  stopped = experiment.run(flags + ["--run-dir", str(tmp_path / "old")],
                           loggers=[StopAfter(1)])
  assert stopped.interrupted
  rename_in_checkpoints(str(tmp_path / "old"))
  saved = rundir.load_config(str(tmp_path / "old"))
  assert (saved["trainer"]["sampling"], saved["agent"]["huber_delta"],
          saved["agent"]["dueling_hidden"]) == ("prioritized", 1.0, "per-stream")
  # Asking it for the shared stack (today's MLP default) is refused in one line.
  with pytest.raises(SystemExit):
    experiment.parse(["--resume", str(tmp_path / "old"), "--dueling-hidden", "shared"])
  err = capsys.readouterr().err
  assert "--dueling-hidden: the run has 'per-stream', you asked for 'shared'" in err
  assert len(err.strip().splitlines()) == 1
  resumed = experiment.run(["--resume", str(tmp_path / "old"), "--quiet"])
  # It went on from its checkpoint (resuming exactly is test_qrdqn's and test_faults').
  assert resumed.result.config.sampling == "prioritized" and resumed.result.first_chunk == 2
  assert len(resumed.result.history) == 4 and np.isfinite(
      resumed.result.history[-1].scalars["loss"]).all()
