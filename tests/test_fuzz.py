"""Configuration fuzzing: command lines drawn over every agent, variant, env
id family, device/seed/sweep option and numeric range go through the main
job's parse and host-side checks (nothing compiled). Each ends valid or
refused the command line's way (exit code 2, one line naming a flag); any
other exception is a bug, and gets its own row in test_experiment's table of
bad inputs once found.

``scripts/fuzz_flags.py`` runs the same property for longer, unseeded
(``BASELAX_FUZZ_EXAMPLES=N``: N examples, drawn at random instead of the
suite's fixed 2,000)."""

import functools
import os

import pytest
from hypothesis import HealthCheck, given, settings

import fuzzing
from baselax import envs
from baselax.experiment import launch


@pytest.fixture(autouse=True)
def made_once(monkeypatch):
  """Each env id is made once (making an env traces its reset)."""
  monkeypatch.setattr(envs, "make", functools.lru_cache(maxsize=None)(envs.make))


EXAMPLES = int(os.environ.get("BASELAX_FUZZ_EXAMPLES", 0))


@settings(max_examples=EXAMPLES or 2000, deadline=None, derandomize=not EXAMPLES,
          database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(argv=fuzzing.command_lines())
def test_every_command_line_is_valid_or_refused_in_one_line(argv, capsys):
  outcome = fuzzing.check(argv, capsys.readouterr)
  assert outcome in ("valid", "refused")


def test_the_fuzzer_reaches_both_outcomes_and_every_agent(capsys):
  """The strategy is not degenerate: over a fixed sample of draws, command
  lines of every agent are both accepted and refused."""
  seen = set()
  for argv in fuzzing.sample(300, seed=0):
    agent = argv[argv.index("--agent") + 1]
    seen.add((agent, fuzzing.check(argv, capsys.readouterr)))
  for agent in ("dqn", "c51", "qrdqn", "mdqn", "rainbow"):
    assert {(agent, "valid"), (agent, "refused")} <= seen, agent
  assert launch.PROG == "anakin_dqn.py"
