"""Small shared pieces for the tests."""

import os
import subprocess
import sys
import textwrap
import types

import gymnasium
import haiku as hk
import jax.numpy as jnp
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def spaces_env(obs_shape=(2,), num_actions=2):
  """A gym-like object that only has spaces: enough to build an agent."""
  return types.SimpleNamespace(
      observation_space=gymnasium.spaces.Box(-np.inf, np.inf, obs_shape, np.float32),
      action_space=gymnasium.spaces.Discrete(num_actions))


def identity_q_network(action_space):
  """Q(s) = w * s with one scalar parameter w (init 1): Q-values are the obs."""
  del action_space

  def forward(obs):
    w = hk.get_parameter("w", [], init=jnp.ones)
    return w * obs

  return hk.without_apply_rng(hk.transform(forward))


def run_in_subprocess(code: str, num_cpu_devices: int = 4, timeout: int = 300,
                      extra_env=None) -> str:
  """Runs ``code`` in a fresh Python with forced CPU devices; returns stdout.

  JAX reads XLA_FLAGS once at start-up, so multi-device tests need their own
  process. Fails the calling test with the child's stderr on error.
  """
  env = dict(os.environ)
  env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={num_cpu_devices}"
  env["JAX_PLATFORMS"] = "cpu"
  env["PYTHONPATH"] = os.pathsep.join([REPO, os.path.join(REPO, "tests"),
                                       env.get("PYTHONPATH", "")])
  env.update(extra_env or {})
  proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)],
                        capture_output=True, text=True, timeout=timeout,
                        env=env, cwd=REPO)
  if proc.returncode != 0:
    raise AssertionError(f"subprocess failed ({proc.returncode}):\n"
                         f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
  return proc.stdout


def held_transitions(result):
  """Every item a host-loop run's replay can sample (all rows, every start of
  a whole window but pads), as numpy arrays ``(items, ...)``."""
  import jax

  from baselax.replay import store as store_lib
  replay, state = result.state["replay"], result.state["buffer"]
  store = replay.store
  steps = state.steps
  written = store.length if bool(steps.is_full) else int(steps.current_index)
  head = int(steps.current_index) if bool(steps.is_full) else 0
  count = written - store.window + 1
  rows, starts = np.meshgrid(np.arange(store.rows), np.arange(count), indexing="ij")
  rows, starts = jnp.asarray(rows.ravel()), jnp.asarray((head + starts.ravel()) % store.length)
  if store.pads:  # the reset-only steps of a NEXT_STEP env are no transitions
    real = ~np.asarray(store_lib.is_pad(store, state, rows, starts))
    rows, starts = rows[real], starts[real]
  return jax.device_get(store_lib.transitions(store, state, rows, starts))
