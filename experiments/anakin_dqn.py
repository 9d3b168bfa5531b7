"""Train an agent on a gymnax environment with the Anakin trainer: the main job.

    python experiments/anakin_dqn.py                      # DQN on CartPole-v1, solves on a laptop CPU
    python experiments/anakin_dqn.py --agent qrdqn        # any registered agent (--agent NAME --help)
    python experiments/anakin_dqn.py --env-id Breakout-MinAtar --total-env-steps 2000000
    python experiments/anakin_dqn.py --resume runs/CartPole-v1-dqn-20261127-135001
    python experiments/anakin_dqn.py --help               # every flag, with defaults

The run is composed by ``baselax.experiment``; this file is its entry point.
"""

import sys

from baselax import experiment

if __name__ == "__main__":
  sys.exit(experiment.main(prog="anakin_dqn.py"))
