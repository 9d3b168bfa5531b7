"""QR-DQN (Dabney et al. 2018): the quantile Huber loss and n-step targets by hand, and a run from the command line that stops, resumes exactly and evaluates."""

import os
import re
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import helpers
from baselax import experiment
from baselax.agents import QRDQN
from baselax.agents import qrdqn as qrdqn_lib
from baselax.replay import windows
from baselax.experiment import loggers


def test_quantile_huber_loss_by_hand():
  # One quantile (tau = 0.5), target above the prediction by 3: Huber(3) = 2.5,
  # weight |0.5 - 0| = 0.5 -> 1.25; below by 0.5: 0.5 * 0.125 = 0.0625.
  assert float(qrdqn_lib.quantile_huber_loss(jnp.array([0.0]), jnp.array([3.0]))) == (
      pytest.approx(1.25))
  assert float(qrdqn_lib.quantile_huber_loss(jnp.array([0.5]), jnp.array([0.0]))) == (
      pytest.approx(0.0625))


def test_qrdqn_n_step_targets_by_hand():
  """QR-DQN's targets are r + discount * z'(a*) with the batch's discount: gamma^k
  for a truncated k-step window, 0 for a terminated one, gamma^n otherwise."""
  gamma = 0.5
  n = 3
  seq = lambda r, term, trunc: {  # noqa: E731  a window of 3 one-step transitions
      "obs": jnp.zeros((n, 1)), "action": jnp.zeros((n,), jnp.int32),
      "reward": jnp.array(r, jnp.float32), "terminated": jnp.array(term),
      "truncated": jnp.array(trunc), "next_obs": jnp.ones((n, 1))}
  cases = [seq([1., 2., 3.], [0, 0, 0], [0, 0, 0]),     # full window: gamma^3
           seq([1., 2., 3.], [0, 1, 0], [0, 0, 0]),     # terminates at step 2: 0
           seq([1., 2., 3.], [0, 0, 0], [0, 1, 0])]     # truncated at step 2: gamma^2
  batch = jax.vmap(lambda s: windows.n_step_transition(s, gamma))(
      jax.tree.map(lambda *x: jnp.stack(x), *cases))
  np.testing.assert_allclose(batch["discount"], [gamma ** 3, 0.0, gamma ** 2])
  np.testing.assert_allclose(batch["reward"], [1 + 1 + 0.75, 2.0, 2.0])

  # Quantiles: predicted z(s, a) = [0, 0]; z'(s', .) = [[10, 20], [4, 6]] -> a* = 0.
  def network(action_space):
    del action_space
    def forward(obs):
      z_next = jnp.array([[10., 20.], [4., 6.]])
      return jnp.where(obs[:, :1, None] > 0, z_next[None], jnp.zeros((1, 2, 2)))
    return __import__("haiku").without_apply_rng(__import__("haiku").transform(forward))

  agent = QRDQN(network, helpers.spaces_env((1,), 2), 1e-3, discount_factor=gamma)
  dist_t = jnp.array([10., 20.])
  for i, want_discount in enumerate([gamma ** 3, 0.0, gamma ** 2]):
    loss, td = qrdqn_lib.quantile_q_learning(
        jnp.zeros((2, 2)), 0, batch["reward"][i], batch["discount"][i],
        jnp.stack([dist_t, jnp.array([4., 6.])]), jnp.stack([dist_t, jnp.array([4., 6.])]))
    target = batch["reward"][i] + want_discount * dist_t
    assert float(td) == pytest.approx(float(jnp.mean(target)))
    assert float(loss) == pytest.approx(float(qrdqn_lib.quantile_huber_loss(
        jnp.zeros(2), target)))
    # ... and the agent's loss on that transition is the same number.
    data = {k: v[i:i + 1] for k, v in batch.items()}
    agent_loss, out = agent.loss({}, {}, data)
    assert float(agent_loss) == pytest.approx(float(loss))
    assert float(out.td_error[0]) == pytest.approx(float(td))


class StopAfter(loggers.Logger):
  """Asks the run to stop after chunk ``chunk`` (what Ctrl-C does)."""

  def __init__(self, chunk):
    self.chunk = chunk

  def write(self, record):
    return record.chunk == self.chunk


# 4 chunks of 1,000 env steps; learning starts in the first chunk.
SMALL = ["--total-env-steps", "4000", "--eval-every", "1000", "--num-envs", "4",
         "--learning-starts", "500", "--buffer-size", "2000", "--batch-size", "32",
         "--eval-episodes", "4", "--checkpoint-every", "1000", "--quiet",
         "--no-tensorboard", "--compilation-cache", "none"]


def test_qrdqn_from_the_command_line_trains_resumes_exactly_and_evaluates(tmp_path, capsys):
  flags = SMALL + ["--agent", "qrdqn", "--n-step", "3", "--learning-rate", "1e-3"]
  straight = experiment.run(flags + ["--run-dir", str(tmp_path / "straight")])
  stopped = experiment.run(flags + ["--run-dir", str(tmp_path / "d")],
                           loggers=[StopAfter(1)])
  assert stopped.interrupted and len(stopped.result.history) == 2
  capsys.readouterr()
  resumed = experiment.run(["--resume", str(tmp_path / "d"), "--quiet"])
  assert not resumed.interrupted and resumed.result.first_chunk == 2
  # The summary counts this session only: its run time fits in its wall time.
  summary = capsys.readouterr().out
  assert "(resumed at chunk 2: 2,000 env steps per seed in this session)" in summary
  run_s, wall_s = map(float, re.search(r"run ([\d.]+)s \| total wall ([\d.]+)s",
                                       summary).groups())
  assert 0 < run_s <= wall_s and resumed.env_steps == 2000
  assert isinstance(resumed.result.params, QRDQN.Params)
  for a, b in zip(jax.tree.leaves(straight.result.state), jax.tree.leaves(resumed.result.state)):
    np.testing.assert_array_equal(a, b)
  files = set(os.listdir(tmp_path / "d"))
  assert {"config.json", "metrics.jsonl", "learning_curve.png", "checkpoints"} <= files
  assert len(open(tmp_path / "d" / "metrics.jsonl").read().splitlines()) == 4
  out = experiment.evaluate([str(tmp_path / "d"), "--episodes", "3"])
  assert out["returns"].shape == (1, 3) and np.all(out["returns"] >= 1)
