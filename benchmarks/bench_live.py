"""Live mode's overhead: the share of wall time outside vLLM's generate calls, and the
prompt tokens a probe makes vLLM compute (issue 14's benchmark).

    python benchmarks/bench_live.py                       # the tiny reasoning model (trained once, cached)
    python benchmarks/bench_live.py --model DIR --method cmc@0.5 --questions 64

Runs one controller live on N arithmetic questions, all in flight at once, with
in-process vLLM (CPU settings of the tests: block size 32, eager, KV cache 1 GiB) and
prints: wall time, time inside ``LLM.generate``, the share outside it (the controllers,
the engine, request building, answer extraction), and per probe the prompt tokens sent,
served from the prefix cache and computed. With prefix caching a probe should compute
only its branch's last partial block and the probe suffix. Figures are printed, not
asserted.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CPU_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "0", "OMP_NUM_THREADS": "1",
           "TOKENIZERS_PARALLELISM": "false"}  # fmt: skip
# max_num_batched_tokens: vLLM CPU cannot split a seeded prompt over two steps ("CPU Generator
# does not use offset"), so a step must hold the whole batch of 64 questions.
ENGINE_ARGS = {"block_size": 32, "enforce_eager": True, "distributed_executor_backend": "uni", "max_num_batched_tokens": 65536}


def tiny_model() -> Path:
    """The tiny reasoning model of the live tests (collection/tiny_model.py; trained on
    first use, about a minute of one core, then cached)."""
    from collection.tiny_model import build_tiny_model

    return build_tiny_model()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="model folder (default: the tiny reasoning model, trained and cached)")
    parser.add_argument("--method", default="cmc@0.5")
    parser.add_argument("--questions", type=int, default=64, help="questions, all in flight (default 64)")
    parser.add_argument("--pool", type=int, default=16, help="branches per question")
    parser.add_argument("--delta", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=192)
    parser.add_argument("--no-prefix-caching", action="store_true")
    args = parser.parse_args()
    for key, value in CPU_ENV.items():
        os.environ.setdefault(key, value)
    work = Path(tempfile.mkdtemp(prefix="bench-live-"))
    os.environ.setdefault("VLLM_CACHE_ROOT", str(work / "vllm-cache"))
    model = Path(args.model) if args.model else tiny_model()
    from collection.tiny_model import write_tiny_questions

    questions = write_tiny_questions(work / "questions.jsonl", args.questions)

    from agents.registry import make_controller, parse_method_spec
    from collection.config import CollectConfig
    from collection.live.run import live_run
    from collection.live.runner import LiveOptions
    from collection.offline import OfflineGenerator

    config = CollectConfig(model=str(model), questions=str(questions), out=str(work / "run"), trajectories=args.pool, interval_tokens=args.delta,
                           max_tokens=args.max_tokens, max_model_len=512, dtype="bfloat16", seed=7,
                           engine_args=dict(ENGINE_ARGS), enable_prefix_caching=not args.no_prefix_caching,
                           progress=False, use_math_verify=False)  # fmt: skip
    started = time.perf_counter()
    generator = OfflineGenerator(config)
    load = time.perf_counter() - started
    generate_seconds = 0.0

    class Timed:
        max_model_len = generator.max_model_len

        def generate(self, requests):
            nonlocal generate_seconds
            t0 = time.perf_counter()
            try:
                return generator.generate(requests)
            finally:
                generate_seconds += time.perf_counter() - t0

        def close(self):  # the engine serves both runs; closed at the end
            pass

    method, beta = parse_method_spec(args.method)
    controller = make_controller(method, beta=beta)
    # Warm-up (first logprob request, kernels) on two questions, outside the figures.
    live_run(config, controller, args.method, [0], LiveOptions(pool_size=args.pool), work / "warm",
             make_generator=lambda c: Timed(), progress=False, max_in_flight=2)  # fmt: skip
    generate_seconds = 0.0
    started = time.perf_counter()
    summary = live_run(config, controller, args.method, [0], LiveOptions(pool_size=args.pool), work / "run",
                       make_generator=lambda c: Timed(), progress=False, max_in_flight=args.questions)  # fmt: skip
    wall = time.perf_counter() - started
    generator.close()
    import csv

    with open(work / "run" / "records.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    from collection.live.run import summary_lines

    print("\n".join(summary_lines(summary)))
    print(f"model load {load:.1f} s; {args.questions} questions in flight, {args.method}, pool {args.pool}, "
          f"Delta {args.delta}, prefix caching {'off' if args.no_prefix_caching else 'on'}")
    print(f"wall {wall:.2f} s (run incl. writing the store), inside generate {generate_seconds:.2f} s, outside "
          f"{wall - generate_seconds:.2f} s = {100 * (wall - generate_seconds) / wall:.1f}% of wall time")
    print(f"batches {summary.rounds}, requests {summary.requests}")
    probes = sum(int(r["probe_requests"]) for r in rows)
    sent = sum(int(r["probe_prompt_tokens"]) for r in rows)
    if probes and all(r["probe_cached_tokens"] != "" for r in rows):
        cached = sum(int(r["probe_cached_tokens"]) for r in rows)
        print(f"per probe: prompt {sent / probes:.1f} tokens, from the prefix cache {cached / probes:.1f}, computed "
              f"{(sent - cached) / probes:.1f} (the probe suffix is {len(config.probe_suffix)} characters)")


if __name__ == "__main__":
    main()
