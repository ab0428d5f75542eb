"""Opening a store from whatever the user points at: the embedded default, a store
folder, release JSON files. Above the store and its importers, so neither imports the
other."""

from __future__ import annotations

import os
from pathlib import Path

from autotts_gym.data.release import import_release
from autotts_gym.data.store import Store, StoreError
from autotts_gym.data.synthetic import default_store


def load_store(source: str | os.PathLike | Store | None = None) -> Store:
    """Open a store from whatever the user points at.

    Args:
        source: ``None`` or ``"default"`` for the embedded synthetic store; a store
            folder (with ``manifest.json``); a release-format JSON file or a folder of
            ``<model>/<benchmark>.json`` files (imported in memory); or a Store.
    """
    if isinstance(source, Store):
        return source
    if source is None or str(source) == "default":
        return default_store()
    path = Path(source)
    if (path / "manifest.json").is_file():
        return Store.load(path)
    if path.is_file() and path.suffix == ".json" or path.is_dir():
        return import_release([path])
    raise StoreError(f"{path}: no such store, release JSON file or folder")
