"""What both trainers share above the replay: the agent <-> trainer contract
and the learning step.

* :mod:`~baselax.learner.contract`: what a run asks of an agent, checked
  before anything is compiled.
* :mod:`~baselax.learner.step`: :func:`~baselax.learner.step.make_learn`, one
  update from a replay sample, with the priorities it writes back.

The Anakin trainer (``baselax.anakin``) and the host loop
(``baselax.hostloop``) both build on these.
"""
