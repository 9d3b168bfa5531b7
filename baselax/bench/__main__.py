"""``python -m baselax.bench``: ``scripts/bench.py``."""

import sys

from baselax.bench import cli

if __name__ == "__main__":
  cli.main(sys.argv[1:])
