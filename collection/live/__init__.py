"""Live mode: the same controllers against a real model (issue 14).

* :mod:`collection.live.pool`: a question's branch pool, decoded on demand with the
  collector's requests and seeds;
* :mod:`collection.live.episode`: :class:`LiveEpisode`, the engine's Episode over such a pool;
* :mod:`collection.live.runner`: many episodes in flight, batched onto one generator
  (greenlets), and a thread requester for asynchronous applications;
* :mod:`collection.live.recording`: the replay store of what a run generated;
* :mod:`collection.live.run`: ``autotts run``'s library function, :func:`live_run`.
"""
