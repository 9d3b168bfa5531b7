"""pytest configuration: the tests import their helpers (helpers.py,
probe_envs.py) as plain modules, through ``pythonpath = ["tests"]`` in
pyproject.toml."""
