"""``autotts serve``: an OpenAI-compatible endpoint that answers with a controller (issue 15).

A chat completion request is one question; the server runs a controller on it live
(:class:`collection.live.service.LiveService`) against upstream OpenAI-compatible vLLM
servers and replies with the text of a branch whose final answer is the chosen one,
``usage`` counting every token the request spent and an ``autotts`` field with the decision.

* :mod:`~collection.serve.settings`: the operator's settings and limits.
* :mod:`~collection.serve.openai_api`: the request parser (errors name the field) and the
  response, chunk and error bodies, in OpenAI's formats; no web framework in it.
* :mod:`~collection.serve.upstream`: the upstream servers, with per-request accounting,
  failure kinds and a health check that notices when they come back.
* :mod:`~collection.serve.metrics`: the Prometheus metrics.
* :mod:`~collection.serve.app`: the Starlette application (auth, limits, backpressure,
  streaming, cancellation when a client disconnects).

The package sits on the live service (``collection.live``) and is itself below the
command line (``autotts_gym/cli/commands/serve.py`` parses the flags, builds controllers
from method specs and starts uvicorn): collection may not import the controllers
(``agents``), so the command hands the app a controller factory.
"""

from collection.serve.settings import ServeSettings

__all__ = ["ServeSettings"]
