"""Build step of autotts-gym (the metadata is in pyproject.toml): compile the engine.

The modules in :data:`COMPILED` are compiled from their own ``.py`` file by Cython's
pure-Python mode (a ``.pxd`` beside each declares C types; the code is the ``.py``). The
compiled module is optional: without Cython or a C compiler, or with
``AUTOTTS_PURE_PYTHON=1`` at build time, the package installs as plain Python and gives
identical results (tests/core/test_builds.py runs both builds on the same episodes).
"""

import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

# To compile another module: add its .py here (and, for speed, a .pxd beside it).
COMPILED = [
    "autotts_gym/engine/voting.py",
    "autotts_gym/engine/views.py",
    "autotts_gym/engine/episode.py",
    # The isolated controller's channel: both sides of every request.
    "autotts_gym/isolation/wire.py",
    "autotts_gym/isolation/broker.py",
    "autotts_gym/isolation/client.py",
]


class OptionalBuildExt(build_ext):
    """Builds what it can; a module that fails to compile stays plain Python."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as err:  # no compiler at all
            print(f"warning: the engine stays plain Python ({err})", file=sys.stderr)

    def build_extension(self, ext) -> None:
        try:
            super().build_extension(ext)
        except Exception as err:
            print(f"warning: {ext.name} stays plain Python ({err})", file=sys.stderr)


def extensions() -> list:
    if os.environ.get("AUTOTTS_PURE_PYTHON", "") not in ("", "0"):
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        print("warning: Cython is not installed; the engine stays plain Python", file=sys.stderr)
        return []
    return cythonize(COMPILED, build_dir="build/cython", compiler_directives={"language_level": 3, "annotation_typing": False}, quiet=True)


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
