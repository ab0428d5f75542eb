"""The README's five-minute tour is executable truth: every ``python`` and ``bash`` block
of its "A five-minute tour" section runs as written, from a scratch copy of the checkout
with ``../shared`` beside it, and no command may fail or print an error.

The scratch copy is a folder of symlinks to the checkout's top-level entries (so
``examples/...`` and ``../shared/...`` resolve as in the checkout) in which the tour's
``runs/`` is created; ``autotts`` is a shim that runs ``python -m autotts_gym.cli`` with
this checkout first on the path. Afterwards the checkout itself must be unchanged.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
RELEASE = SHARED / "replay" / "autotts-release"
SECTION = "## A five-minute tour"
ERROR = re.compile(r"\berror\b|Traceback|Warning:", re.IGNORECASE)

pytestmark = [
    pytest.mark.readme,
    pytest.mark.skipif(not RELEASE.is_dir(), reason="the release replay data in ../shared is absent"),
]


def tour_blocks(text: str) -> list[tuple[str, str]]:
    """``(language, code)`` of every fenced block of the tour section, in order."""
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    section = text[start : end if end >= 0 else None]
    return re.findall(r"^```(python|bash)\n(.*?)^```", section, flags=re.M | re.S)


def bash_commands(code: str) -> list[str]:
    """The commands of a bash block: continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", code)
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_the_tour_has_python_and_bash_blocks():
    blocks = tour_blocks((ROOT / "README.md").read_text())
    kinds = [kind for kind, _ in blocks]
    assert kinds.count("python") >= 3 and kinds.count("bash") >= 4
    commands = [c for kind, code in blocks if kind == "bash" for c in bash_commands(code)]
    # Only quick, offline commands belong to the tour: no servers, GPUs or API keys.
    assert not [c for c in commands if re.search(r"vllm|collect |API_KEY|OPENAI_BASE_URL|tensorboard --logdir|pip ", c)]
    # Every output path is under runs/ (git-ignored): nothing lands in the repository root.
    for c in commands:
        for path in re.findall(r"--(?:out|tensorboard)\s+(\S+)", c):
            assert path.startswith("runs/"), c


@pytest.fixture
def scratch(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    work = tmp_path / "work"
    checkout = work / "autotts-gym"
    checkout.mkdir(parents=True)
    for entry in ROOT.iterdir():
        if entry.name not in ("runs", ".git"):
            (checkout / entry.name).symlink_to(entry)
    (work / "shared").symlink_to(SHARED)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "autotts"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m autotts_gym.cli "$@"\n')
    shim.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
        "PYTHONWARNINGS": "default",
    }
    return checkout, env


def test_the_tour_runs_as_written(scratch):
    checkout, env = scratch
    before = _git_status()
    blocks = tour_blocks((ROOT / "README.md").read_text())
    python = "\n".join(code for kind, code in blocks if kind == "python")
    steps = [("python (the tour's Python blocks, in order)", [sys.executable, "-c", python])]
    steps += [(c, ["bash", "-euo", "pipefail", "-c", c]) for kind, code in blocks if kind == "bash" for c in bash_commands(code)]
    # Discovery needs the OS container (bubblewrap). Where the machine has none, its
    # commands are left out here, loudly; CI installs it and sets AUTOTTS_REQUIRE_ISOLATION.
    from autotts_gym.isolation import support

    if support() is not None and not os.environ.get("AUTOTTS_REQUIRE_ISOLATION"):
        left_out = [label for label, _ in steps if label.startswith("autotts discover")]
        steps = [(label, argv) for label, argv in steps if label not in left_out]
        print(f"\nleft out (no isolation here: {support()}): {left_out}")
    timings = []
    for label, argv in steps:
        started = time.perf_counter()
        done = subprocess.run(argv, cwd=checkout, env=env, capture_output=True, text=True, timeout=600)
        timings.append((time.perf_counter() - started, label))
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"{label}\nexited with {done.returncode}:\n{output[-3000:]}"
        found = ERROR.search(output)
        assert not found, f"{label}\nprinted {found.group(0)!r}:\n{output[-3000:]}"
    assert (checkout / "runs").is_dir() and not (checkout / "store").exists()
    assert _git_status() == before, "the tour wrote into the checkout"
    total = sum(t for t, _ in timings)
    report = "\n".join(f"{t:7.1f} s  {label[:110]}" for t, label in timings)
    print(f"\nthe tour: {len(steps)} steps in {total:.0f} s\n{report}")


def _git_status() -> str:
    if not (ROOT / ".git").exists():
        return ""
    return subprocess.run(["git", "status", "--porcelain", "--ignored=no"], cwd=ROOT, capture_output=True, text=True).stdout
