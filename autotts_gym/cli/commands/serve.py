"""``autotts serve``: an OpenAI-compatible endpoint whose answers come from a controller run
live on upstream vLLM servers (issue 15; the application is :mod:`collection.serve.app`).

This module only parses flags, builds the controllers from method specs (the controllers
live in ``agents``, which ``collection`` may not import) and starts uvicorn."""

from __future__ import annotations

import argparse
import os
import sys

from autotts_gym.cli.commands._args import nonnegative_float, positive_float, positive_int, unit_float
from autotts_gym.evaluation.orders import SHUFFLES

API_KEY_ENV = "AUTOTTS_API_KEY"
UPSTREAM_KEY_ENV = "AUTOTTS_UPSTREAM_API_KEY"
# Collector settings of the live episodes that `serve` takes as flags (dest -> CollectConfig field).
EPISODE_FLAGS = ("tokenizer", "prompt_template", "system_prompt", "chat_template", "interval_tokens", "probe_suffix",
                 "probe_tokens", "temperature", "top_p", "top_k", "seed", "max_tokens", "max_model_len",
                 "max_concurrency", "request_timeout", "served_model_name", "trajectories")  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``autotts serve``: the controller, the upstream, the server and its
    limits, and the collector's episode settings (as ``autotts run`` takes them)."""
    from agents.registry import spec_help

    c = parser.add_argument_group("controller")
    c.add_argument("--method", required=True, metavar="SPEC", help=f"the default controller: {spec_help()}")
    c.add_argument("--beta", type=unit_float, metavar="B", help="build the method from its schedule at B")
    c.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one parameter of --method (repeatable)")
    c.add_argument("--allow-methods", default="builtin", metavar="LIST",
                   help="methods a request may pick with autotts.method: comma-separated names, 'builtin' (every built-in "
                        "family, the default) or 'none' (only --method)")
    u = parser.add_argument_group("upstream")
    u.add_argument("--upstream", dest="endpoints", action="append", metavar="URL",
                   help="OpenAI-compatible vLLM base URL, e.g. http://127.0.0.1:8000/v1 (repeatable)")
    u.add_argument("--model", help="the model: its tokenizer (path or Hugging Face name) and, unless "
                                   "--served-model-name, its name upstream")
    u.add_argument("--served-model-name", help="the model's name on the upstream servers (default: --model)")
    u.add_argument("--tokenizer", help="tokenizer path or name (default: --model)")
    u.add_argument("--upstream-api-key", default=os.environ.get(UPSTREAM_KEY_ENV, "EMPTY"), metavar="KEY",
                   help=f"API key sent upstream (default: ${UPSTREAM_KEY_ENV} or EMPTY)")
    u.add_argument("--max-concurrency", type=positive_int, help="requests in flight per upstream server (default 64)")
    u.add_argument("--request-timeout", type=positive_float, help="seconds per upstream request (default 3600)")
    s = parser.add_argument_group("server")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=positive_int, default=8100, help="port (default 8100)")
    s.add_argument("--name", help="the model id clients ask for (default: the upstream's name of the model)")
    s.add_argument("--api-key", default=os.environ.get(API_KEY_ENV), metavar="KEY",
                   help=f"require 'Authorization: Bearer KEY' on every request but GET /health (default: ${API_KEY_ENV})")
    s.add_argument("--max-inflight", type=positive_int, default=32, metavar="N",
                   help="requests answered at once; more get 429 with Retry-After (default 32)")
    s.add_argument("--max-request-bytes", type=positive_int, default=256 * 1024, metavar="B",
                   help="largest request body (default 262144)")
    s.add_argument("--stream-interval", type=positive_float, default=1.0, metavar="S",
                   help="seconds between progress chunks of a streamed answer (default 1)")
    s.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p = parser.add_argument_group("episodes (the protocol and the collector's settings, as in autotts run)")
    p.add_argument("--config", help="JSON or TOML file of collector settings (a run's or collection's; flags override it)")
    p.add_argument("-n", "--pool-size", dest="trajectories", type=positive_int,
                   help="branches one request may open (default 128)")
    p.add_argument("--shuffle", default="release", choices=SHUFFLES, help="branch order per (seed, episode seed)")
    p.add_argument("--budget-tokens", type=positive_float, metavar="T", help="default per-request token budget")
    p.add_argument("--max-budget-tokens", type=positive_float, metavar="T",
                   help="largest budget a request may ask for (default: --budget-tokens; none if neither is set)")
    p.add_argument("--max-beta", type=unit_float, default=1.0, metavar="B", help="largest beta a request may ask for")
    p.add_argument("--kappa-probe", type=nonnegative_float, default=0.0, metavar="K", help="cost of one probe in intervals")
    p.add_argument("--interval-tokens", "--delta", dest="interval_tokens", type=positive_int,
                   help="Delta, tokens per interval (default 500)")
    p.add_argument("--max-tokens", type=positive_int, help="maximum tokens of one branch (default 40000)")
    p.add_argument("--max-model-len", type=positive_int, help="context length (default: the upstream's)")
    p.add_argument("--probe-suffix", help="text appended to a prefix to ask for the answer")
    p.add_argument("--probe-tokens", type=positive_int, help="greedy tokens per probe (default 24)")
    p.add_argument("--temperature", type=float, help="sampling temperature of the branches (default 0.7)")
    p.add_argument("--top-p", type=float, help="nucleus sampling (default 1.0)")
    p.add_argument("--top-k", type=int, help="top-k sampling, -1 for off (default -1)")
    p.add_argument("--seed", type=int, help="base seed of every request's sampling seeds (default 0)")
    p.add_argument("--prompt-template", help="user message with {question} (default: reason step by step, \\boxed{})")
    p.add_argument("--system-prompt", help="system message (a request's own system message replaces it)")
    p.add_argument("--chat-template", help="Jinja chat template file replacing the tokenizer's")


def build_app(args: argparse.Namespace) -> object:
    """The application the flags describe (also for tests and benchmarks)."""
    import dataclasses

    from agents.registry import METHODS, make_controller, parse_overrides
    from autotts_gym.cli.methods import parse_method_spec
    from collection.collect import check_model
    from collection.config import CollectConfig, ConfigError
    from collection.serve.app import create_app
    from collection.serve.settings import ServeSettings

    overrides = parse_overrides(args.set)
    spec = parse_method_spec(args.method, overrides)
    if args.beta is not None:
        if spec.beta is not None:
            raise ValueError(f"--method {args.method} fixes beta {spec.beta:g}; drop --beta or the @{spec.beta:g}")
        spec = type(spec)(spec.method, args.beta, spec.overrides)
    # A collection's or a run's settings file (run.json too): the collector's settings in it
    # apply; its question file, output, servers and keys do not (serve has --upstream).
    known = {f.name for f in dataclasses.fields(CollectConfig)} - {"questions", "out", "endpoints", "api_key"}
    settings_file = _settings_file(args.config) if args.config else {}
    flags = {k: getattr(args, k) for k in EPISODE_FLAGS if getattr(args, k, None) is not None}
    values = {k.replace("-", "_"): v for k, v in {**settings_file, **flags}.items() if k.replace("-", "_") in known}
    # No gold answer here: math-verify would only compare every answer with a missing gold
    # (the collector grades against the gold; answers are still normalised as it does).
    values["use_math_verify"] = False
    values["model"] = args.model or values.get("model", "")
    config = CollectConfig(**values, endpoints=list(args.endpoints or []), api_key=args.upstream_api_key, progress=False)
    allow = args.allow_methods.strip()
    allowed = tuple(METHODS) if allow == "builtin" else () if allow in ("", "none") else \
        tuple(m.strip() for m in allow.split(",") if m.strip())  # fmt: skip
    settings = ServeSettings(
        config=config, method=str(spec), name=args.name or "", allowed_methods=allowed,
        pool_size=config.trajectories, shuffle=args.shuffle, budget_tokens=args.budget_tokens,
        max_budget_tokens=args.max_budget_tokens, kappa_probe=args.kappa_probe, max_beta=args.max_beta,
        api_key=args.api_key or None, max_inflight=args.max_inflight, max_request_bytes=args.max_request_bytes,
        stream_interval=args.stream_interval,
    ).validate()  # fmt: skip
    if config.model:
        check_model(config)
    if not allowed and allow not in ("", "none"):
        raise ConfigError(f"--allow-methods {args.allow_methods!r}: no method named")

    def controller(method: str, beta: float | None) -> object:
        return make_controller(method, beta=beta, overrides=spec.overrides if method == spec.method else None)

    return create_app(settings, controller, spec.method, spec.beta)


def _settings_file(path: str) -> dict:
    """A collector settings file; a run's ``run.json`` (which also holds the method, seeds
    and protocol options) is read as JSON, its collector settings kept."""
    import json

    from collection.config import load_config_file

    if path.endswith("run.json"):
        try:
            return dict(json.loads(open(path, encoding="utf-8").read()))
        except (OSError, ValueError) as err:
            raise ValueError(f"--config {path}: {err}") from None
    return load_config_file(path)


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted (Ctrl-C or SIGTERM stop it cleanly)."""
    import uvicorn

    app = build_app(args)
    settings = app.state.serve.settings  # type: ignore[attr-defined]
    if args.host not in ("127.0.0.1", "localhost", "::1") and not settings.api_key:
        print(f"autotts serve: warning: listening on {args.host} without an API key (--api-key or ${API_KEY_ENV})",
              file=sys.stderr)  # fmt: skip
    print(f"autotts serve: {settings.method} as model {settings.model_name!r} on http://{args.host}:{args.port}/v1 "
          f"(upstream {', '.join(settings.config.endpoints)})", file=sys.stderr)  # fmt: skip
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, timeout_graceful_shutdown=10)  # type: ignore[arg-type]
    return 0
