"""``autotts run``: run a controller live against a model (in-process vLLM or OpenAI-compatible
servers), print the figures ``evaluate`` prints plus the live ones, and keep the run as a
replay store (``OUT/store``) that ``autotts evaluate OUT/store --method SAME`` replays."""

from __future__ import annotations

import argparse
import sys

from autotts_gym.cli.commands._args import nonnegative_float, positive_float, positive_int, unit_float
from autotts_gym.evaluation.orders import SHUFFLES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``autotts run``: the controller, the protocol, and the collector's
    model, prompt, sampling and backend flags (``-n`` is the pool size per question)."""
    from agents.registry import spec_help
    from collection.collect import add_arguments as collection_arguments

    method = parser.add_argument_group("controller")
    method.add_argument("--method", required=True, metavar="SPEC", help=spec_help())
    method.add_argument("--beta", type=unit_float, metavar="B", help="build the method from its schedule at B")
    method.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one parameter (repeatable)")
    protocol = parser.add_argument_group("protocol (as in evaluate)")
    protocol.add_argument("--seeds", type=positive_int, default=1, metavar="N",
                          help="episode seeds 0..N-1 per question; seed s opens branches in replay's order of seed s "
                               "(default 1)")
    protocol.add_argument("--shuffle", default="release", choices=SHUFFLES, help="branch order per (question, seed)")
    protocol.add_argument("--budget-tokens", type=positive_float, metavar="T", help="per-episode token budget")
    protocol.add_argument("--kappa-probe", type=nonnegative_float, default=0.0, metavar="K",
                          help="cost of one probe in intervals (default 0)")
    protocol.add_argument("--max-in-flight", type=positive_int, default=64, metavar="E",
                          help="episodes running at once; their requests are batched together (default 64)")
    output = parser.add_argument_group("output")
    output.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    output.add_argument("--tensorboard", metavar="DIR", help="write TensorBoard scalars to DIR")
    collection_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run the controller live and write OUT (records.csv, summary.json, store/)."""
    import json

    from agents.registry import parse_overrides
    from autotts_gym.cli.methods import parse_method_spec
    from collection.collect import check_model, config_from_args
    from collection.live.run import live_run, summary_lines
    from collection.live.runner import LiveOptions

    spec = parse_method_spec(args.method, parse_overrides(args.set))
    if args.beta is not None:
        if spec.beta is not None:
            raise ValueError(f"--method {args.method} fixes beta {spec.beta:g}; drop --beta or the @{spec.beta:g}")
        spec = type(spec)(spec.method, args.beta, spec.overrides)
    config = config_from_args(args).validate()
    check_model(config)
    controller = spec.build()
    options = LiveOptions(pool_size=config.trajectories, shuffle=args.shuffle, budget_tokens=args.budget_tokens,
                          kappa_probe=args.kappa_probe)
    try:
        summary = live_run(config, controller, str(spec), list(range(args.seeds)), options, config.out,
                           max_in_flight=args.max_in_flight, progress=config.progress)
    except KeyboardInterrupt as stop:
        print(f"autotts run: {stop}" if str(stop) else "autotts run: interrupted", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(summary.as_dict(), default=str))
    else:
        print("\n".join(summary_lines(summary)))
    print(f"wrote {config.out}/records.csv, summary.json and store/ (replay it: autotts evaluate {config.out}/store "
          f"--method {spec} --seeds {args.seeds}" + (f" --budget-tokens {args.budget_tokens:g}" if args.budget_tokens else "")
          + (f" --kappa-probe {args.kappa_probe:g}" if args.kappa_probe else "") + ")", file=sys.stderr)
    if args.tensorboard:
        from autotts_gym.reporting.tracking import log_summaries

        print(f"wrote TensorBoard events to {log_summaries(args.tensorboard, [summary.evaluation])}", file=sys.stderr)
    return 0
