"""Fixtures of the real-vLLM test modules (collection, tiny model, live, serve)."""

from __future__ import annotations

from pathlib import Path

import pytest

from collection.tiny_model import vllm_cpu_env


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """A scratch folder per test module: vLLM's caches, stores, servers' logs."""
    return tmp_path_factory.mktemp("vllm")


@pytest.fixture(scope="module")
def cpu_env(scratch):
    """vLLM's CPU settings (:func:`collection.tiny_model.vllm_cpu_env`, nothing from a hub)
    for one test module, restored afterwards; a module asks for them with
    ``pytest.mark.usefixtures("cpu_env")``."""
    with pytest.MonkeyPatch.context() as patch:
        values = {**vllm_cpu_env(scratch), "HF_HUB_OFFLINE": "1"}
        for name, value in values.items():
            patch.setenv(name, value)
        yield values
