"""The architecture as a contract: the import-linter contracts in pyproject.toml hold, no
module of the project takes part in an import cycle, and the command line imports only
what the chosen subcommand needs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("autotts_gym", "agents", "collection")


def test_import_contracts_hold():
    pytest.importorskip("importlinter")
    from importlinter.cli import lint_imports

    assert lint_imports(config_filename=str(ROOT / "pyproject.toml")) == 0


def test_no_import_cycles():
    grimp = pytest.importorskip("grimp")
    graph = grimp.build_graph(*PACKAGES, exclude_type_checking_imports=True)
    # A package's __init__ importing its own modules is how packages export: not an edge.
    edges = {m: {d for d in graph.find_modules_directly_imported_by(m) if not d.startswith(m + ".")} for m in graph.modules}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for d in sorted(edges.get(m, ())):
            if state.get(d) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(d) :] + [d]))
            if d not in state:
                visit(d)
        path.pop()
        state[m] = 2

    for m in sorted(graph.modules):
        if m not in state:
            visit(m)


@pytest.mark.parametrize("argv", [["--help"], ["info", "default"]])
def test_the_command_line_stays_light(argv):
    code = (
        "import sys, io, contextlib\nfrom autotts_gym.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n    try:\n        main(sys.argv[1:])\n"
        "    except SystemExit:\n        pass\n"
        "print(sorted(m for m in ('torch', 'matplotlib', 'tensorboard', 'stable_baselines3', 'agents.cmc') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code, *argv], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
