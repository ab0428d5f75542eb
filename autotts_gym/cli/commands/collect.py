"""``autotts collect``: build a replay store from a model and a question set with vLLM."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of :func:`collection.collect.add_arguments`."""
    from collection.collect import add_arguments as collection_arguments

    collection_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Collect (or resume) and write the store."""
    from collection.collect import collect, config_from_args

    collect(config_from_args(args))
    return 0
