"""Command lines of the main job drawn at random, and the property they must
keep (tests/test_fuzz.py, scripts/fuzz_flags.py)."""

import random
from typing import Callable, List

from hypothesis import strategies as st

from baselax.agents import registry
from baselax.experiment import launch, presets

#: Env ids of every family: gymnax (discrete and continuous actions), the
#: papers' MinAtar, and ids that do not exist.
ENV_IDS = ("CartPole-v1", "Acrobot-v1", "Breakout-MinAtar", "Pendulum-v1",
           "minatar:Breakout", "minatar:Freeway", "minatar:Pong", "NoSuchEnv-v0",
           "bogus:Thing")

#: Values per flag, the valid ones with edge cases and invalid ones among them.
VALUES = {
    "--env-id": ENV_IDS,
    "--preset": (*presets.names(), "nature-2015"),
    "--total-env-steps": ("-5", "0", "1", "100", "1000", "5000", "100000", "1e3", "1.5"),
    "--num-envs": ("-1", "0", "1", "2", "4", "10", "64", "x"),
    "--buffer-size": ("0", "1", "16", "100", "1000", "10000", "100000"),
    "--batch-size": ("0", "1", "8", "32", "128", "4096"),
    "--learning-starts": ("-1", "0", "8", "100", "1000", "10000"),
    "--train-every": ("0", "1", "4", "100"),
    "--n-step": ("0", "1", "3", "50"),
    "--num-seeds": ("0", "1", "2", "3", "8"),
    "--num-devices": ("none", "1", "2", "0"),
    "--parallel": ("auto", "data", "seeds", "groups", "pipeline"),
    "--devices-per-group": ("none", "1", "2"),
    "--eval-every": ("0", "1", "500", "10000"),
    "--eval-episodes": ("0", "1", "32"),
    "--eval-max-steps": ("none", "0", "10", "27000"),
    "--seed": ("-3", "0", "7", "1.5"),
    "--learning-rate": ("-1", "0", "1e-4", "0.001", "10", "nan", "inf"),
    "--discount-factor": ("0", "0.5", "0.99", "1", "1.5"),
    "--epsilon-start": ("-0.1", "0", "1", "2"),
    "--epsilon-end": ("0", "0.05", "1.5"),
    "--exploration-fraction": ("0", "0.5", "1", "2"),
    "--exploration-steps": ("none", "0", "1", "100000"),
    "--target-update-interval": ("0", "1", "250", "2.5"),
    "--hidden-sizes": (("64", "64"), ("none",), ("0",), ("none", "3"), ("8",)),
    "--network": ("auto", "mlp", "conv", "nature", "resnet"),
    "--conv-padding": ("valid", "same", "full"),
    "--optimizer": ("adam", "rmsprop", "sgd"),
    "--optimizer-eps": ("none", "0", "1e-8", "0.01"),
    "--max-grad-norm": ("none", "0", "10"),
    "--priority-exponent": ("0", "0.6", "1.5"),
    "--importance-exponent-end": ("0.5", "1", "-1"),
    "--reward-clip": ("none", "0", "1"),
    "--obs-storage": ("auto", "float32", "uint8", "bool", "int8"),
    "--sweep": ("learning_rate=1e-4,1e-3", "target_update_interval=50,200",
                "hidden_sizes=8,16", "n_step=1,3", "learning_rate=", "bogus"),
    # Agent settings some agents have and others do not.
    "--num-atoms": ("1", "51"), "--v-min": ("-10", "10"), "--num-quantiles": ("0", "21"),
    "--kappa": ("0", "1"), "--munchausen-alpha": ("0.9", "2"),
}
#: Boolean flags (each drawn as --flag, --no-flag, or left out).
SWITCHES = ("prioritized", "noisy", "dueling", "double-dqn", "huber", "lr-decay")


def _argv(agent: str, flags: List[List[str]]) -> List[str]:
  return ["--agent", agent] + [token for flag in flags for token in flag]


def _flag(name: str, value) -> List[str]:
  return [name, *value] if isinstance(value, tuple) else [name, value]


@st.composite
def command_lines(draw) -> List[str]:
  """A command line of the main job: an agent and a random subset of flags."""
  agent = draw(st.sampled_from(registry.names()))
  names = draw(st.lists(st.sampled_from(sorted(VALUES)), max_size=8, unique=True))
  flags = [_flag(n, draw(st.sampled_from(VALUES[n]))) for n in names]
  for switch in draw(st.lists(st.sampled_from(SWITCHES), max_size=3, unique=True)):
    flags.append([f"--{'' if draw(st.booleans()) else 'no-'}{switch}"])
  return _argv(agent, flags)


def sample(count: int, seed: int) -> List[List[str]]:
  """``count`` command lines drawn with Python's ``random`` (no hypothesis
  run): a fixed sample for checking the strategy itself."""
  rng = random.Random(seed)
  out = []
  for _ in range(count):
    names = rng.sample(sorted(VALUES), rng.randint(0, 8))
    flags = [_flag(n, rng.choice(VALUES[n])) for n in names]
    out.append(_argv(rng.choice(registry.names()), flags))
  return out


def check(argv: List[str], read_output: Callable) -> str:
  """``"valid"`` or ``"refused"``; fails (AssertionError) on anything else.

  Valid: parsed, and every host-side check of the main job passes
  (``launch.prepare(spec, traced_checks=False)``: env, sizes, agent,
  contract, sweep values). Refused: exit code 2 with one line on stderr,
  ``anakin_dqn.py: error: --flag ...``. Any other exception propagates.
  """
  try:
    spec = launch.parse(argv)
    with launch.usage_errors(spec):
      launch.prepare(spec, traced_checks=False)
  except SystemExit as exit_info:
    err = read_output().err
    lines = err.strip().splitlines()
    assert exit_info.code == 2, (argv, exit_info.code, err)
    assert len(lines) == 1, (argv, err)
    assert lines[0].startswith(f"{launch.PROG}: error: --"), (argv, err)
    return "refused"
  read_output()
  return "valid"
