"""``python -m baselax.experiment``: the main job (as ``experiments/anakin_dqn.py``)."""

import sys

from baselax.experiment import launch

if __name__ == "__main__":
  sys.exit(launch.main(prog="anakin_dqn.py"))
