"""Train an agent on an Atari game (ale-py) with the host loop.

    pip install -e ".[atari]"                                  # ale-py (ROMs included)
    python experiments/hostloop_atari.py --env-id ALE/Pong-v5  # DQN, CleanRL dqn_atari settings
    python experiments/hostloop_atari.py --env-id ALE/Breakout-v5 --terminal-on-life-loss
    python experiments/hostloop_atari.py --resume runs/ALE_Pong-v5-dqn-20261128-120000
    python experiments/hostloop_atari.py --help                # every flag, with defaults

Atari is not written in JAX, so it trains through ``baselax.hostloop`` (a
Python loop over a gymnasium vector env), not the Anakin trainer. The run is
composed by ``baselax.atari``; this file is its entry point.
"""

import sys

from baselax import atari

if __name__ == "__main__":
  sys.exit(atari.main(prog="hostloop_atari.py"))
