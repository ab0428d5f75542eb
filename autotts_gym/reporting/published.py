"""The paper's Table 1 as published, and the check of a reproduced table against it.

Figures are from Zheng et al., "LLMs Improving LLMs: Agentic Discovery for Test-Time
Scaling" (2026), Table 1, AIME24 and AIME25 columns (accuracy in percent, mean total
tokens per question in thousands). In four cells the published table differs from what
the release's own evaluation code computes on the released data; :data:`RELEASE_CODE`
holds the code's figures there, and :func:`reproduction_targets` uses them, since a
faithful re-implementation of the protocol matches the code.

Published figures are rounded to 0.1 point and 0.1k tokens, so a reproduced cell
matches when its accuracy is within 0.1 point plus half a rounding step (0.05) and
its tokens within 0.1% of the published figure.
"""

from __future__ import annotations

from dataclasses import dataclass

from autotts_gym.reporting.tables import Table1, render_table

ROWS = ("SC@64", "ASC", "ESC", "Parallel-Probe", "CMC beta=0.5", "CMC beta=1.0")
BENCHMARKS = ("aime24", "aime25")

# (model, row) -> (AIME24 accuracy, AIME24 k tokens, AIME25 accuracy, AIME25 k tokens)
PUBLISHED: dict[tuple[str, str], tuple[float, float, float, float]] = {
    ("Qwen3-0.6B", "SC@64"): (21.4, 1008.6, 28.9, 890.5),
    ("Qwen3-0.6B", "ASC"): (21.4, 805.5, 28.9, 653.8),
    ("Qwen3-0.6B", "ESC"): (21.4, 986.7, 28.9, 868.8),
    ("Qwen3-0.6B", "Parallel-Probe"): (21.8, 773.8, 29.7, 697.8),
    ("Qwen3-0.6B", "CMC beta=0.5"): (19.2, 283.6, 28.6, 250.3),
    ("Qwen3-0.6B", "CMC beta=1.0"): (20.9, 542.2, 31.1, 474.7),
    ("Qwen3-1.7B", "SC@64"): (72.5, 1025.8, 44.4, 1054.1),
    ("Qwen3-1.7B", "ASC"): (72.3, 482.6, 44.4, 600.9),
    ("Qwen3-1.7B", "ESC"): (72.5, 909.2, 44.4, 913.8),
    ("Qwen3-1.7B", "Parallel-Probe"): (68.1, 748.5, 44.7, 775.8),
    ("Qwen3-1.7B", "CMC beta=0.5"): (68.5, 276.3, 46.7, 327.9),
    ("Qwen3-1.7B", "CMC beta=1.0"): (70.4, 499.1, 49.0, 612.6),
    ("Qwen3-4B", "SC@64"): (80.0, 886.8, 76.6, 1088.1),
    ("Qwen3-4B", "ASC"): (80.1, 175.7, 76.4, 277.3),
    ("Qwen3-4B", "ESC"): (80.0, 528.9, 76.6, 793.3),
    ("Qwen3-4B", "Parallel-Probe"): (79.7, 688.9, 76.1, 806.0),
    ("Qwen3-4B", "CMC beta=0.5"): (82.0, 236.7, 73.8, 332.3),
    ("Qwen3-4B", "CMC beta=1.0"): (83.5, 424.9, 74.4, 610.4),
    ("Qwen3-8B", "SC@64"): (80.4, 910.8, 76.7, 1124.4),
    ("Qwen3-8B", "ASC"): (80.4, 226.0, 76.7, 406.2),
    ("Qwen3-8B", "ESC"): (80.4, 459.4, 76.7, 793.1),
    ("Qwen3-8B", "Parallel-Probe"): (81.5, 730.8, 76.9, 846.7),
    ("Qwen3-8B", "CMC beta=0.5"): (84.3, 255.3, 74.1, 361.2),
    ("Qwen3-8B", "CMC beta=1.0"): (85.8, 467.4, 75.8, 672.4),
}

# (model, row, benchmark) -> (accuracy, k tokens) computed by the release's own code
# where the published table differs from it.
RELEASE_CODE: dict[tuple[str, str, str], tuple[float, float]] = {
    ("Qwen3-1.7B", "Parallel-Probe", "aime24"): (66.03, 745.4),
    ("Qwen3-1.7B", "Parallel-Probe", "aime25"): (44.43, 776.6),
    ("Qwen3-4B", "ASC", "aime24"): (80.0, 214.2),
    ("Qwen3-4B", "ASC", "aime25"): (76.6, 325.1),
}

ACCURACY_TOLERANCE = 0.1 + 0.05  # points: 0.1 plus half the table's rounding step
TOKENS_TOLERANCE = 0.001  # relative


def reproduction_targets() -> dict[tuple[str, str, str], tuple[float, float]]:
    """(model, row, benchmark) -> (accuracy %, tokens): the published cells, with the
    release code's figures where the two differ. Tokens are in tokens, not thousands."""
    targets = {}
    for (model, row), (a24, t24, a25, t25) in PUBLISHED.items():
        for bench, acc, k_tokens in (("aime24", a24, t24), ("aime25", a25, t25)):
            acc, k_tokens = RELEASE_CODE.get((model, row, bench), (acc, k_tokens))
            targets[(model, row, bench)] = (acc, k_tokens * 1000.0)
    return targets


@dataclass(frozen=True)
class CellCheck:
    """One reproduced cell next to its target."""

    model: str
    row: str
    benchmark: str
    accuracy: float | None
    target_accuracy: float
    tokens: float | None
    target_tokens: float
    source: str  # "paper" or "release code"

    @property
    def ok(self) -> bool:
        """True if the cell is within the tolerances."""
        if self.accuracy is None or self.tokens is None:
            return False
        return (
            abs(self.accuracy - self.target_accuracy) <= ACCURACY_TOLERANCE
            and abs(self.tokens - self.target_tokens) <= TOKENS_TOLERANCE * self.target_tokens
        )


def check_reproduction(table: Table1) -> list[CellCheck]:
    """Every target cell against the reproduced table (missing cells fail)."""
    checks = []
    for (model, row, bench), (acc, tokens) in reproduction_targets().items():
        try:
            cell = table.cell(model, row, bench)
        except KeyError:
            cell = None
        source = "release code" if (model, row, bench) in RELEASE_CODE else "paper"
        checks.append(
            CellCheck(model, row, bench, None if cell is None else cell[0], acc, None if cell is None else cell[1], tokens, source)
        )
    return checks


def format_checks(checks: list[CellCheck]) -> str:
    """The reproduced cells next to their targets, with the differences."""
    header = ["model", "method", "bench", "acc %", "target", "diff", "tokens", "target", "diff %", "ok"]
    body = []
    for c in checks:
        acc = "-" if c.accuracy is None else f"{c.accuracy:.2f}"
        d_acc = "-" if c.accuracy is None else f"{c.accuracy - c.target_accuracy:+.2f}"
        tok = "-" if c.tokens is None else f"{c.tokens / 1000:.1f}k"
        d_tok = "-" if c.tokens is None else f"{100 * (c.tokens - c.target_tokens) / c.target_tokens:+.3f}"
        mark = "yes" if c.ok else "NO"
        if c.source != "paper":
            mark += " (code figure)"
        body.append([c.model, c.row, c.benchmark, acc, f"{c.target_accuracy:.2f}", d_acc, tok, f"{c.target_tokens / 1000:.1f}k", d_tok, mark])
    return render_table(header, body, text_columns=3)
