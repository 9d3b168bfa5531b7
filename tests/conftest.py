"""pytest configuration: the tests import their helpers (helpers.py,
probe_envs.py) as plain modules, through ``pythonpath = ["tests"]`` in
pyproject.toml.

JAX's backend starts here, with this machine's devices (one CPU device
unless XLA_FLAGS says otherwise), before any test runs. The main job
(``experiment.run``) gives JAX one host device per core when it is the first
to start the backend (``launch.use_all_cores``); without this, whichever
test file ran first in a pytest process would decide how many devices every
later test in that process gets. Tests of that feature run the main job in
a subprocess."""

import jax

jax.devices()
