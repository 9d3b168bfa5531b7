"""The one exception type for a run that is set up wrong.

:class:`ConfigError` is raised, before anything is compiled, for every problem
that the user can fix by changing a setting: a value out of range, an agent
that cannot honour what the run asks of it, an env it cannot serve, more
devices than exist, a checkpoint of another run. The experiment layer turns it
into one line on stderr and exit code 2 (a usage error); any other exception
is a bug and keeps its traceback. It subclasses ``ValueError``, so code that
caught ``ValueError`` before still does.
"""


class ConfigError(ValueError):
  """A setting the run cannot go on with; the message names it and the fix."""
