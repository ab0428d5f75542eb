"""Shared fixtures. The tests are grouped by layer: ``core/`` (store, engine, env,
evaluation, reporting, the import contracts), ``isolation/`` (untrusted controllers),
``agents/`` (controllers, PPO, discovery), ``collection/`` (vLLM collection) and ``cli/``
(the command line and the README's tour).

``release``: the AutoTTS data release (``../shared/replay/autotts-release`` next to the
repository). The tests that need it take this fixture and are skipped, with the reason
below, when it is absent; nothing else in tests/ spells the path out.

``engine_path``: runs a test once with the engine's and the voting helpers' C loops
(``autotts_gym._speedups``) and once with their Python reference, so a mistake in either
is seen (the C path takes over most unbudgeted calls and would hide a Python mistake).

``tiny_model_dir``: the tiny trained reasoning model for tests with real vLLM
(:func:`collection.tiny_model.build_tiny_model`), trained once (about a minute of CPU) and
cached in ``$AUTOTTS_TINY_MODEL_CACHE`` or pytest's cache folder (``.pytest_cache``), so a
session, and later sessions, reuse it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from autotts_gym.engine import Episode, voting
from autotts_gym.engine import episode as engine

RELEASE_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "replay" / "autotts-release"
RELEASE_SKIP_REASON = f"the AutoTTS release data is absent (looked for {RELEASE_DIR})"


@pytest.fixture(scope="session")
def release() -> Path:
    """The release folder (one sub-folder per model, ``aime24.json``/``aime25.json`` in
    each); skips the test when it is absent."""
    if not RELEASE_DIR.is_dir():
        pytest.skip(RELEASE_SKIP_REASON)
    return RELEASE_DIR


@pytest.fixture(params=["c", "python"])
def engine_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """``"c"``: the installed methods (C loops when the extension is built); ``"python"``:
    the reference Python methods and voting (the ``AUTOTTS_PURE_PYTHON=1`` state)."""
    if request.param == "c" and not engine.REFERENCE_METHODS:
        pytest.skip("the C extension autotts_gym._speedups is not built")
    if request.param == "python":
        for name, reference in engine.REFERENCE_METHODS.items():
            monkeypatch.setattr(Episode, name, reference)
        monkeypatch.setattr(voting, "_C", None)
    return request.param


@pytest.fixture(scope="session")
def tiny_model_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model's folder (Hugging Face format, tokenizer and chat template included)."""
    import os

    from collection.tiny_model import CACHE_ENV, build_tiny_model

    cache = getattr(request.config, "cache", None)  # None under -p no:cacheprovider: train per session
    folder = os.environ.get(CACHE_ENV) or (cache.mkdir("tiny-model") if cache else tmp_path_factory.mktemp("tiny"))
    return build_tiny_model(folder, seed=0)
