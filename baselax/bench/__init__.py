"""Throughput of the Anakin trainer against its limits and against a host loop.

    python scripts/bench.py                       # the full sweep (minutes)
    python scripts/bench.py --quick               # a reduced sweep, under a minute
    python scripts/bench.py --num-envs 64 512 --train-every 4 --json bench.json

Rows, each at N envs (per device):

  limit          env steps with random actions in a lax.scan, vmapped over N
                 (--env-id: any id of baselax.envs.make; valid ones only
                 where the env has an action mask)
  limit+policy   env + agent.predict (no learning): the ceiling for any trainer
  anakin         the full loop: act, env, replay add/sample, DQN update
  memory         (printed first) bytes per stored transition of each replay
                 buffer kind, float32 and auto observation storage
                 (--memory-only: this table alone)
  hostloop       the same agent and settings through baselax.hostloop on
                 gymnasium's own CartPole-v1 vector env (numpy, one Python step
                 per iteration)
  seeds          anakin with 1, 8, 32 vmapped seeds on one device (total and
                 per-seed SPS)
  seeds/dev      the same seeds spread over every local device (parallel=seeds:
                 no collective); on CPU, --cpu-devices K gives K host devices
  scaling        (--scaling D1 D2 ...) anakin on D devices, N envs each: env
                 steps/s against the device count, and the efficiency
                 SPS(D) / (D x SPS(1)). On CPU, --cpu-devices K forces K host
                 devices (they share the machine's cores, so CPU efficiency
                 says little about GPUs).

With ``--agent NAME`` (any registered agent) and the variant flags
(``--prioritized``, ``--n-step``, ``--noisy``, ``--dueling``,
``--double-dqn``), or ``--agents`` (the DQN family's row set: dqn,
prioritized, n-step, noisy, dueling + Double (shared and per-stream hidden
layers), c51, qrdqn, mdqn, rainbow),
the rows are instead the main job's training chunk of each agent (the
registry's build, every scan step learning, no evaluation) beside DQN at the
same settings, timed in interleaved rounds in one process; each row gives
its median env steps/s and its median ratio to DQN's time in the same round:

    python scripts/bench.py --agents --rounds 3
    python scripts/bench.py --agent rainbow --env-id Breakout-MinAtar --num-envs 16
    python scripts/bench.py --agent dqn --noisy --num-envs 10

Compile time is always reported apart from run time: every compiled row is
called once to warm up, then timed with ``block_until_ready``. Figures vary
from run to run on shared machines: compare ratios from one run.

Modules: :mod:`~baselax.bench.rows` (the throughput rows),
:mod:`~baselax.bench.agents` (the agent rows), :mod:`~baselax.bench.memory`
(bytes per transition), :mod:`~baselax.bench.cli` (the command line;
``scripts/bench.py`` and ``python -m baselax.bench`` call it).
"""
