"""Build a replay store from a model and a question set: ``autotts collect`` / ``python -m collection``.

    autotts collect --model Qwen/Qwen3-0.6B --questions examples/questions/aime25.jsonl --out runs/stores/qwen3-0.6b-aime25

Offline mode (default) runs vLLM's ``LLM`` in this process; ``--data-parallel-size K``
starts K such processes, each on its own GPUs, sharing the questions. Server mode
(``--endpoint URL``, repeatable) sends the same requests to running vLLM servers. A
killed run resumes from its work folder when started again with the same settings.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from autotts_gym.data.store import Store
from collection.config import CollectConfig, ConfigError, build_config, load_config_file
from collection.generation import Generator
from collection.questions import read_questions
from collection.shards import ShardStore, build_split, write_store
from collection.stats import format_summary
from collection.trajectories import TrajectoryCollector, plan_shards

GeneratorFactory = Callable[[CollectConfig], Generator]
PromptFactory = Callable[[CollectConfig], Any]


def default_generator(config: CollectConfig) -> Generator:
    """The server backend when endpoints are given, else the offline vLLM engine."""
    if config.server_mode:
        from collection.server import ServerGenerator

        return ServerGenerator(config)
    from collection.offline import OfflineGenerator

    return OfflineGenerator(config)


def default_prompts(config: CollectConfig) -> Any:
    """A :class:`~collection.prompts.PromptBuilder` over the model's tokenizer."""
    from collection.prompts import PromptBuilder, load_tokenizer

    return PromptBuilder(load_tokenizer(config), config)


def collect(
    config: CollectConfig,
    make_generator: GeneratorFactory = default_generator,
    make_prompts: PromptFactory = default_prompts,
) -> Store | None:
    """Run (or resume) a collection and write the store.

    Args:
        config: the run's settings.
        make_generator: builds the model backend (called only if work is left).
        make_prompts: builds the prompt builder (``prompt_ids(question)``,
            ``probe_suffix``, ``decode(ids)``).

    Returns:
        The written store, reloaded from disk; ``None`` in a data-parallel worker
        (its parent writes the store).
    """
    config.validate()
    _check_dependencies(config, make_generator, make_prompts)
    if make_prompts is default_prompts or make_generator is default_generator:
        check_model(config)
    out = Path(config.out)
    if config.dp_rank is None and (out / "manifest.json").exists() and not config.overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
    questions = read_questions(config.questions, config.question_field, config.answer_field, config.limit)
    plan = plan_shards(len(questions), config.trajectories, config.shard_size)
    shards = ShardStore(config.shard_dir, config.fingerprint())
    if config.data_parallel_size > 1 and config.dp_rank is None:
        _run_data_parallel(config)
    else:
        rank, size = (config.dp_rank or 0), config.data_parallel_size
        mine = [spec for i, spec in enumerate(plan) if i % size == rank]
        pending = shards.pending(mine)
        if pending:
            _collect_shards(config, questions, pending, shards, make_generator, make_prompts,
                            total=sum(s.count for s in mine), done=sum(s.count for s in mine) - sum(s.count for s in pending))
        elif config.progress:
            print(f"all {len(mine)} shards of {shards.root} are collected; writing the store", file=sys.stderr)
    if config.dp_rank is not None:
        return None
    store = write_store(build_split(config, questions, shards, plan), out, overwrite=config.overwrite)
    if config.progress:
        split = store.splits[0]
        print(f"wrote {out}: {split.name}, {split.num_questions} questions x {config.trajectories} trajectories",
              file=sys.stderr)
    return store


def check_model(config: CollectConfig) -> None:
    """Fail at once, with a sentence, when the model (or tokenizer) cannot be loaded.

    A local folder must exist; when it does, the Hugging Face hub is switched off
    (``HF_HUB_OFFLINE``), so loading it never waits on network retries. A hub name is
    left to the hub, except that offline mode without a cached copy is refused here.
    """
    for setting, name in (("model", config.model), ("tokenizer", config.tokenizer)):
        if not name or (config.server_mode and setting == "model" and config.served_model_name):
            continue
        path = Path(name).expanduser()
        if path.exists():
            if not path.is_dir():
                raise ConfigError(f"--{setting} {name}: not a model folder (a file)")
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            continue
        if name.startswith(("/", "./", "../", "~")) or name.count("/") > 1:
            raise ConfigError(f"--{setting} {name}: no such folder (and not a Hugging Face model name)")
        if os.environ.get("HF_HUB_OFFLINE") == "1" and not _cached_on_hub(name):
            raise ConfigError(
                f"--{setting} {name}: not a local folder and not in the Hugging Face cache, and HF_HUB_OFFLINE=1 "
                "forbids downloading it"
            )


def _cached_on_hub(name: str) -> bool:
    try:
        from huggingface_hub import snapshot_download

        snapshot_download(name, local_files_only=True)
    except Exception:  # not cached, or no huggingface_hub: the loader will say what is wrong
        return False
    return True


class MissingDependency(ValueError):
    """A package the requested collection needs is not installed."""


def _check_dependencies(config: CollectConfig, make_generator: GeneratorFactory, make_prompts: PromptFactory) -> None:
    """Fail before any work (not at the end of a long run) if a needed package is missing."""
    needed = []
    if make_prompts is default_prompts:
        needed.append("transformers")
    if make_generator is default_generator:
        needed.append("openai" if config.server_mode else "vllm")
    if config.use_math_verify:
        needed.append("math_verify")
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingDependency(
            f"collection needs {', '.join(missing)}: pip install -e '.[collect]' on GPU machines, "
            "bash collection/requirements-ci.sh on CPU-only ones"
            + (" (or pass --no-math-verify)" if missing == ["math_verify"] else "")
        )


def _collect_shards(config, questions, pending, shards, make_generator, make_prompts, total, done) -> None:
    prompts = make_prompts(config)
    generator = make_generator(config)
    try:
        needed = sorted({spec.question for spec in pending})
        prompt_ids = {q: tuple(prompts.prompt_ids(questions[q])) for q in needed}
        collector = TrajectoryCollector(
            generator, config, prompt_ids, tuple(prompts.probe_suffix), prompts.decode,
            max_model_len=getattr(generator, "max_model_len", None) or config.max_model_len,
        )
        for q in needed:  # a prompt that leaves no room is an error now, not hours into the run
            collector.token_cap(q)
        stats = collector.run(pending, shards.write, total_trajectories=total, initial=done)
        summary = stats.summary()
        summary["rank"] = config.dp_rank or 0
        summary["backend"] = generator.describe()
        shards.log_run(summary)
        if config.progress:
            print(format_summary(summary), file=sys.stderr)
    finally:
        generator.close()


def _run_data_parallel(config: CollectConfig) -> None:
    """One worker process per replica, each pinned to its own ``tensor_parallel_size`` GPUs."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    devices = visible.split(",") if visible else [str(i) for i in range(config.data_parallel_size * config.tensor_parallel_size)]
    tp = config.tensor_parallel_size
    if len(devices) < config.data_parallel_size * tp:
        raise ConfigError(
            f"data_parallel_size {config.data_parallel_size} x tensor_parallel_size {tp} needs "
            f"{config.data_parallel_size * tp} GPUs; CUDA_VISIBLE_DEVICES names {len(devices)}"
        )
    config_file = config.shard_dir / "data-parallel-config.json"
    config_file.write_text(json.dumps(dataclasses.asdict(config), indent=2))
    workers = []
    for rank in range(config.data_parallel_size):
        env = dict(os.environ, CUDA_VISIBLE_DEVICES=",".join(devices[rank * tp : (rank + 1) * tp]))
        cmd = [sys.executable, "-m", "collection", "--config", str(config_file), "--dp-rank", str(rank)]
        if rank > 0 or not config.progress:
            cmd.append("--quiet")
        workers.append(subprocess.Popen(cmd, env=env))
    failed = [rank for rank, w in enumerate(workers) if w.wait() != 0]
    if failed:
        raise RuntimeError(f"data-parallel worker(s) {failed} failed; rerun the same command to resume")


# ------------------------------------------------------------------ command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The collection flags (all default to None so a config file can supply them)."""
    a = parser.add_argument
    a("--config", help="JSON or TOML file of settings (flags override it)")
    a("--model", help="model path or name served by vLLM")
    a("--questions", help="question file: .jsonl, .json, .csv or .parquet")
    a("--out", help="output store folder")
    a("--model-name", help="model name in the store (default: last part of --model)")
    a("--benchmark", help="benchmark name in the store (default: question file stem)")
    a("--question-field", help="question field of the question file (default: question)")
    a("--answer-field", help="gold answer field of the question file (default: answer)")
    a("--limit", type=int, help="use only the first LIMIT questions")
    a("--tokenizer", help="tokenizer path or name (default: --model)")
    a("--prompt-template", help="user message with {question} (default: reason step by step, answer in \\boxed{})")
    a("--system-prompt", help="optional system message")
    a("--chat-template", help="Jinja chat template file replacing the tokenizer's")
    a("-n", "--trajectories", type=int, help="N, trajectories per question (default: 128)")
    a("--interval-tokens", "--delta", type=int, dest="interval_tokens", help="Delta, tokens per interval (default: 500)")
    a("--probe-suffix", help="text appended to a prefix to ask for the answer (default closes </think>, opens \\boxed{)")
    a("--probe-tokens", type=int, help="greedy tokens decoded per probe (default: 24)")
    a("--temperature", type=float, help="sampling temperature (default: 0.7)")
    a("--top-p", type=float, help="nucleus sampling (default: 1.0)")
    a("--top-k", type=int, help="top-k sampling, -1 for off (default: -1)")
    a("--seed", type=int, help="base seed of all requests (default: 0)")
    a("--max-tokens", type=int, help="maximum tokens per trajectory (default: 40000)")
    a("--dtype", help="model dtype (default: auto)")
    a("--max-model-len", type=int, help="context length (default: the model's)")
    a("--tensor-parallel-size", "--tp", type=int, dest="tensor_parallel_size", help="GPUs per replica (offline)")
    a("--data-parallel-size", "--dp", type=int, dest="data_parallel_size", help="replicas, one process each (offline)")
    a("--gpu-memory-utilization", type=float, help="fraction of GPU memory for vLLM (default: 0.9)")
    a("--no-prefix-caching", dest="enable_prefix_caching", action="store_const", const=False,
      help="disable vLLM's prefix cache (for comparison only: probes then recompute their prefix)")
    a("--engine-arg", dest="engine_args", action="append", metavar="KEY=VALUE",
      help="extra vllm.LLM keyword argument (JSON value), repeatable, e.g. block_size=32")
    a("--endpoint", dest="endpoints", action="append", metavar="URL",
      help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1 (repeatable; enables server mode)")
    a("--served-model-name", help="model name the servers know (default: --model)")
    a("--api-key", help="API key for the servers (default: EMPTY)")
    a("--max-concurrency", type=int, help="requests in flight per endpoint (default: 64)")
    a("--request-timeout", type=float, help="seconds per server request (default: 3600)")
    a("--trajectories-per-shard", type=int, help="trajectories per shard file (default: N)")
    a("--batch-trajectories", type=int, help="trajectories decoded together (default: 256)")
    a("--work-dir", help="shard folder, reused to resume (default: OUT.work)")
    a("--overwrite", action="store_const", const=True, help="replace an existing output store")
    a("--no-math-verify", dest="use_math_verify", action="store_const", const=False,
      help="grade by normalised string equality instead of math-verify")
    a("--dp-rank", type=int, help=argparse.SUPPRESS)
    a("--quiet", dest="progress", action="store_const", const=False, help="no progress bars or summary")


def config_from_args(args: argparse.Namespace) -> CollectConfig:
    """Merge defaults, ``--config`` file and flags into a validated config."""
    file_settings = load_config_file(args.config) if args.config else {}
    flags = {k: v for k, v in vars(args).items() if k in {f.name for f in dataclasses.fields(CollectConfig)}}
    if flags.get("engine_args") is not None:
        flags["engine_args"] = {**file_settings.get("engine_args", {}), **parse_engine_args(flags["engine_args"])}
    return build_config(file_settings, flags)


def parse_engine_args(items: Sequence[str]) -> dict[str, Any]:
    """``["block_size=32", "enforce_eager=true"]`` -> ``{"block_size": 32, "enforce_eager": True}``."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--engine-arg {item!r}: expected KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value  # a bare string such as distributed_executor_backend=uni
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Script entry point (``python -m collection ...``)."""
    parser = argparse.ArgumentParser(prog="python -m collection", description=__doc__.split("\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        collect(config_from_args(args))
    except (ValueError, KeyError, FileNotFoundError, FileExistsError) as err:
        print(f"collect: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
