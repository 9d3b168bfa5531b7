"""Throughput of the Anakin trainer against its limits and against a host loop.

    python scripts/bench.py --quick                 # a reduced sweep, under a minute
    python scripts/bench.py --agents --rounds 3     # every agent beside DQN

``python scripts/bench.py --help`` lists the rows and flags; the code is
``baselax.bench`` (``python -m baselax.bench`` is the same command).
"""

import sys

from baselax.bench import cli

if __name__ == "__main__":
  cli.main(sys.argv[1:])
