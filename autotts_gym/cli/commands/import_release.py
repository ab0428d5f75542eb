"""``autotts import``: convert AutoTTS release JSON files into a store folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from autotts_gym.data.release import import_release, read_release_file
from autotts_gym.data.store import Split, Store


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``autotts import``."""
    parser.add_argument("sources", nargs="+", metavar="SRC", help="release JSON file(s) or folder(s)")
    parser.add_argument("--out", required=True, metavar="STORE", help="store folder to write")
    parser.add_argument("--overwrite", action="store_true", help="replace STORE if it exists")
    parser.add_argument("--model", help="model name of a single SRC file (default: its folder's name)")
    parser.add_argument("--benchmark", help="benchmark name of a single SRC file (default: its file name)")


def run(args: argparse.Namespace) -> int:
    """Validate every source, then write the store atomically; print one line per split."""
    out = Path(args.out)
    # Fail before the (possibly long) validation when the write is bound to fail anyway.
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
    store = _read_sources(args)
    store.save(out, overwrite=args.overwrite)
    for split in store:
        print(_summary_line(split))
    print(f"wrote {len(store)} split(s) to {out}")
    return 0


def _read_sources(args: argparse.Namespace) -> Store:
    if args.model is None and args.benchmark is None:
        return import_release(args.sources)
    source = Path(args.sources[0])
    if len(args.sources) != 1:
        raise ValueError(f"--model and --benchmark name a single SRC file; got {len(args.sources)} sources")
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such file")
    if not source.is_file():
        raise ValueError(f"{source} is a folder; --model and --benchmark name a single release JSON file")
    model = args.model or source.parent.name or "model"
    benchmark = args.benchmark or source.stem
    return Store([read_release_file(source, model, benchmark)])


def _summary_line(split: Split) -> str:
    s = split.summary()
    lo, hi = s["branches_per_question"]
    per_question = str(lo) if lo == hi else f"{lo}-{hi}"
    return (
        f"{split.name}: {s['questions']} questions, {per_question} branches each, "
        f"Delta {s['interval_tokens']}, {s['tokens_mean']:.0f} tokens per branch on average, "
        f"single-branch accuracy {100 * s['branch_accuracy']:.1f}%"
    )
