"""The discovery loop: an LLM proposes controllers, replay evaluates them, the history
(code, beta-sweep curves, execution traces of failures) goes back into the next prompt.

Modules, one job each:

* :mod:`~agents.discovery.contract`: what a candidate module may be and use.
* :mod:`~agents.discovery.checks`: the static check of a candidate's source.
* :mod:`~agents.discovery.sandbox`: a candidate's sweep, statically checked, then run
  isolated (:mod:`autotts_gym.isolation`: an OS container that holds only what its
  episodes reveal, driving the engine in this process).
* :mod:`~agents.discovery.traces`: informative episodes, vote state, compact rendering.
* :mod:`~agents.discovery.proposers`: OpenAI-compatible, Anthropic and scripted proposers.
* :mod:`~agents.discovery.prompt`: the round's prompt within a size limit.
* :mod:`~agents.discovery.history`: the run directory (one folder per round) and selection.
* :mod:`~agents.discovery.tracking`: TensorBoard scalars and sweep figures per round.
* :mod:`~agents.discovery.loop`: the round loop (``autotts discover``).
"""
