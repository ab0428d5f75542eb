"""Live mode: the same controllers against a real model (issue 14; guide: docs/live.md).

* :mod:`collection.live.pool`: a question's branch pool, decoded on demand with the
  collector's requests and seeds;
* :mod:`collection.live.episode`: :class:`~collection.live.episode.LiveEpisode`, the
  engine's Episode over such a pool;
* :mod:`collection.live.runner`: many episodes in flight, their requests batched onto one
  generator (greenlets), and a thread requester for asynchronous applications;
* :mod:`collection.live.endpoints`: OpenAI-compatible servers, failures per request, for
  blocking and for async callers;
* :mod:`collection.live.service`: :class:`~collection.live.service.LiveService`, controllers
  run live from async code (the base of ``autotts serve``);
* :mod:`collection.live.recording`: the replay store of what a run generated;
* :mod:`collection.live.run`: ``autotts run``'s library function,
  :func:`~collection.live.run.live_run`.
"""
