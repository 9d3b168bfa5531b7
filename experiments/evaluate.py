"""Evaluate a trained run: greedy episodes from its newest checkpoint, and a GIF.

    python experiments/evaluate.py runs/CartPole-v1-dqn-20261127-120000
    python experiments/evaluate.py RUN_DIR --episodes 100 --gif cartpole.gif

See ``baselax.experiment.evaluation``; this file is its entry point.
"""

from baselax import experiment

if __name__ == "__main__":
  experiment.evaluate(prog="evaluate.py")
