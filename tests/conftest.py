"""Shared fixtures. The tests are grouped by layer: ``core/`` (store, engine, env,
evaluation, reporting, the import contracts), ``isolation/`` (untrusted controllers),
``agents/`` (controllers, PPO, discovery), ``collection/`` (vLLM collection) and ``cli/``
(the command line and the README's tour).

``release``: the AutoTTS data release (``../shared/replay/autotts-release`` next to the
repository). The tests that need it take this fixture and are skipped, with the reason
below, when it is absent; nothing else in tests/ spells the path out.

The engine's tests run on the build in use (compiled, or plain Python with
``AUTOTTS_PURE_PYTHON=1``); tests/core/test_builds.py runs both builds side by side.

``tiny_model_dir``: the tiny trained reasoning model for tests with real vLLM
(:func:`collection.tiny_model.build_tiny_model`), trained once (about a minute of CPU) and
cached in ``$AUTOTTS_TINY_MODEL_CACHE`` or pytest's cache folder (``.pytest_cache``), so a
session, and later sessions, reuse it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

RELEASE_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "replay" / "autotts-release"
RELEASE_SKIP_REASON = f"the AutoTTS release data is absent (looked for {RELEASE_DIR})"


@pytest.fixture(scope="session")
def release() -> Path:
    """The release folder (one sub-folder per model, ``aime24.json``/``aime25.json`` in
    each); skips the test when it is absent."""
    if not RELEASE_DIR.is_dir():
        pytest.skip(RELEASE_SKIP_REASON)
    return RELEASE_DIR


@pytest.fixture(scope="session")
def tiny_model_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model's folder (Hugging Face format, tokenizer and chat template included)."""
    import os

    from collection.tiny_model import CACHE_ENV, build_tiny_model

    cache = getattr(request.config, "cache", None)  # None under -p no:cacheprovider: train per session
    folder = os.environ.get(CACHE_ENV) or (cache.mkdir("tiny-model") if cache else tmp_path_factory.mktemp("tiny"))
    return build_tiny_model(folder, seed=0)
