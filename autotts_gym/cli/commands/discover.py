"""``autotts discover``: the LLM discovery loop (see :mod:`agents.discovery.loop`)."""

from __future__ import annotations

import argparse
import sys

from autotts_gym.cli.commands._args import nonnegative_float, nonnegative_int, positive_float, positive_int, unit_float
from autotts_gym.evaluation.orders import SHUFFLES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``autotts discover``."""
    from agents.discovery.loop import DEFAULT_BETAS, DEFAULT_HELDOUT_SEEDS, DEFAULT_SEEDS
    from agents.discovery.sandbox import SandboxLimits

    limits = SandboxLimits()
    parser.add_argument(
        "--rounds", type=positive_int, required=True, metavar="R", help="rounds in all (a resumed run continues up to R)"
    )
    parser.add_argument(
        "--proposer",
        required=True,
        metavar="SPEC",
        help="openai:MODEL, anthropic:MODEL or scripted:FOLDER (one file per round)",
    )
    parser.add_argument("--out", required=True, metavar="RUN_DIR", help="the run directory (one folder per round)")
    parser.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR; finished rounds are kept")

    data = parser.add_argument_group("data")
    data.add_argument(
        "--search",
        default="default",
        metavar="STORE[:PATTERN,...]",
        help="store and search split patterns (default: the embedded store; patterns default to */aime24, else */search)",
    )
    data.add_argument(
        "--heldout",
        nargs="+",
        default=[],
        metavar="PATTERN",
        help="held-out split patterns of the same store (or STORE:PATTERN): evaluated once at the end, for the report only",
    )
    data.add_argument(
        "--betas",
        nargs="+",
        type=unit_float,
        default=list(DEFAULT_BETAS),
        metavar="B",
        help="the sweep (default 0 0.25 0.5 0.75 1)",
    )
    data.add_argument(
        "--seeds",
        type=positive_int,
        default=DEFAULT_SEEDS,
        metavar="N",
        help=f"seeds per question in search (default {DEFAULT_SEEDS}, small for speed)",
    )
    data.add_argument(
        "--heldout-seeds",
        type=positive_int,
        default=DEFAULT_HELDOUT_SEEDS,
        metavar="N",
        help=f"seeds per question held out (default {DEFAULT_HELDOUT_SEEDS})",
    )
    data.add_argument(
        "--shuffle", default="release", choices=SHUFFLES, help="branch order per (question, seed) (default: release)"
    )

    ablation = parser.add_argument_group("ablations")
    ablation.add_argument("--no-traces", action="store_true", help="history without execution traces")
    ablation.add_argument(
        "--free-params", action="store_true", help="candidates declare grid() settings instead of schedule(beta)"
    )

    llm = parser.add_argument_group("proposer")
    llm.add_argument("--base-url", metavar="URL", help="API base URL (default: OPENAI_BASE_URL / ANTHROPIC_BASE_URL)")
    llm.add_argument("--api-key", metavar="KEY", help="API key (default: OPENAI_API_KEY / ANTHROPIC_API_KEY)")
    llm.add_argument("--temperature", type=nonnegative_float, default=0.7, help="sampling temperature (default 0.7)")
    llm.add_argument(
        "--max-tokens", type=positive_int, default=8192, metavar="N", help="most completion tokens per reply (default 8192)"
    )
    llm.add_argument(
        "--request-timeout", type=positive_float, default=600.0, metavar="S", help="seconds per API request (default 600)"
    )
    llm.add_argument("--retries", type=nonnegative_int, default=2, metavar="N", help="API retries of a failed request (default 2)")
    llm.add_argument("--price-table", metavar="FILE", help="JSON: model -> {prompt, completion} USD per million tokens")

    feedback = parser.add_argument_group("prompt and traces")
    feedback.add_argument(
        "--prompt-chars", type=positive_int, default=60_000, metavar="N", help="prompt size limit (default 60000)"
    )
    feedback.add_argument(
        "--trace-chars", type=positive_int, default=8_000, metavar="N", help="size limit of one round's traces (default 8000)"
    )
    feedback.add_argument(
        "--trace-episodes", type=nonnegative_int, default=3, metavar="K", help="episodes traced per round (default 3)"
    )

    sandbox = parser.add_argument_group("sandbox")
    sandbox.add_argument(
        "--cpu-seconds",
        type=positive_float,
        default=limits.cpu_seconds,
        metavar="S",
        help=f"CPU time per evaluation (default {limits.cpu_seconds:g})",
    )
    sandbox.add_argument(
        "--timeout",
        type=positive_float,
        default=limits.wall_seconds,
        metavar="S",
        help=f"wall-clock time per evaluation (default {limits.wall_seconds:g})",
    )
    sandbox.add_argument(
        "--memory-mb",
        type=positive_float,
        default=limits.memory_mb,
        metavar="MB",
        help=f"memory a candidate may add (default {limits.memory_mb:g})",
    )
    sandbox.add_argument(
        "--max-actions",
        type=positive_int,
        default=limits.max_actions,
        metavar="N",
        help=f"attempted actions per episode (default {limits.max_actions})",
    )
    sandbox.add_argument(
        "--workers",
        type=positive_int,
        metavar="W",
        help="sandbox processes per evaluation, sharing the betas (default: usable cores)",
    )
    sandbox.add_argument(
        "--unsafe-no-containment",
        action="store_true",
        help="run candidates without the OS container, for machines that cannot provide one: each candidate still "
        "runs in its own process holding only what its episodes revealed, but CAN READ YOUR FILES AND USE THE NETWORK",
    )
    parser.add_argument("--tensorboard", metavar="DIR", help="TensorBoard log directory (default RUN_DIR/tensorboard)")


def run(args: argparse.Namespace) -> int:
    """Build the configuration and the proposer, run the loop."""
    from agents.discovery.loop import DiscoveryConfig, absolute_store, parse_split_source, run_discovery
    from agents.discovery.proposers import PriceTable, ProposerError, make_proposer
    from agents.discovery.sandbox import SandboxLimits
    from autotts_gym.evaluation.evaluate import default_workers

    if args.rounds < 1 or args.seeds < 1 or args.heldout_seeds < 1:
        raise ValueError("--rounds, --seeds and --heldout-seeds must be at least 1")
    if any(not 0.0 <= b <= 1.0 for b in args.betas):
        raise ValueError(f"--betas must lie in [0, 1], got {args.betas}")
    from autotts_gym.isolation import support

    missing = support()
    if missing and not args.unsafe_no_containment:
        print(
            f"autotts discover: candidates cannot be contained on this machine: {missing}. "
            "Install what is missing, or pass --unsafe-no-containment to run them without the container.",
            file=sys.stderr,
        )
        return 2
    if args.unsafe_no_containment:
        print(
            "autotts discover: WARNING: --unsafe-no-containment: candidate code runs without the OS container "
            "and can read your files and use the network",
            file=sys.stderr,
        )
    # Paths are resolved here, before anything starts: the sandbox runs in a folder of its own.
    store, search = parse_split_source(args.search)
    store = absolute_store(store)
    heldout_store, heldout = _heldout(args.heldout)
    heldout_store = absolute_store(heldout_store)
    config = DiscoveryConfig(
        out=args.out,
        rounds=args.rounds,
        proposer=args.proposer,
        search_store=store,
        search=search,
        heldout=heldout,
        heldout_store=heldout_store,
        betas=tuple(args.betas),
        seeds=args.seeds,
        heldout_seeds=args.heldout_seeds,
        shuffle=args.shuffle,
        traces=not args.no_traces,
        trace_episodes=args.trace_episodes,
        free_params=args.free_params,
        prompt_chars=args.prompt_chars,
        trace_chars=args.trace_chars,
        limits=SandboxLimits(
            args.cpu_seconds, args.timeout, args.memory_mb, args.max_actions, contain=not args.unsafe_no_containment
        ),
        workers=args.workers or default_workers(),
        tensorboard=args.tensorboard,
    )
    try:
        proposer = make_proposer(
            args.proposer,
            base_url=args.base_url,
            api_key=args.api_key,
            temperature=args.temperature,
            max_tokens=args.max_tokens,
            timeout=args.request_timeout,
            max_retries=args.retries,
            prices=PriceTable.load(args.price_table),
        )
        result = run_discovery(config, proposer, resume=args.resume, say=lambda line: print(line, flush=True))
    except ProposerError as err:
        print(f"autotts discover: proposer error: {err}", file=sys.stderr)
        print(f"autotts discover: finished rounds are kept; continue with --resume --out {args.out}", file=sys.stderr)
        return 1
    if result.error:
        print(f"autotts discover: error: {result.error}", file=sys.stderr)
        return 1
    return 0


def _heldout(patterns: list[str]) -> tuple[str | None, tuple[str, ...]]:
    """Held-out patterns of the search store, or ``STORE:PATTERN`` of another store."""
    from agents.discovery.loop import parse_split_source

    stores, out = set(), []
    for text in patterns:
        store, found = parse_split_source(text) if ":" in text else (None, (text,))
        stores.add(store)
        out.extend(found)
    if len(stores) > 1:
        raise ValueError(
            "--heldout: give every pattern of one store (all STORE:PATTERN with the same STORE, or all plain patterns)"
        )
    return (stores.pop() if stores else None), tuple(out)
