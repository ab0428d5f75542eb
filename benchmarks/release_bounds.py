"""The figures of the real release that the bounds of autotts_gym.data.validation were chosen from.

    python benchmarks/release_bounds.py [RELEASE_DIR]   # default ../shared/replay/autotts-release

Prints, over every release file, the min and max of total_tokens, of len(probe_answers),
of len(probe_answers) - total_tokens / probe_freq, the lengths of answers, gold answers and
questions, and each figure's bound (docs/store-format.md, "Bounds on the data").
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from autotts_gym.data import validation as v
from autotts_gym.data.release import import_release

DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "replay" / "autotts-release"


def main() -> None:
    """Print the figures and the bounds."""
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    store = import_release([source])
    totals = np.concatenate([s.total_tokens for s in store])
    counts = np.concatenate([np.diff(s.probe_offsets) for s in store])
    deltas = np.concatenate([np.full(len(s.total_tokens), s.info.interval_tokens) for s in store])
    excess = counts - totals / deltas
    answers = [len(a) for s in store for vocab in s.vocabs for a in vocab]
    golds = [len(g) for s in store for g in s.gold_answers]
    questions = [len(q) for s in store for q in s.questions]
    per_question = [s.num_branches(q) for s in store for q in range(s.num_questions)]
    print(f"{len(store)} files, {sum(s.num_questions for s in store)} questions, {len(totals)} branches "
          f"({min(per_question)}-{max(per_question)} per question)")
    rows = [
        ("probe_freq", f"{deltas.min()}..{deltas.max()}", f"{v.MIN_INTERVAL_TOKENS}..{v.MAX_INTERVAL_TOKENS}"),
        ("total_tokens", f"{totals.min()}..{totals.max()}", f"0..{v.MAX_TOTAL_TOKENS}"),
        ("len(probe_answers)", f"{counts.min()}..{counts.max()}", "see the next row"),
        ("len(probe_answers) - total_tokens/probe_freq", f"{excess.min():.3f}..{excess.max():.3f}",
         f"-{v.PROBES_BELOW}..+{v.PROBES_ABOVE}"),
        ("len(probe_answers) - floor(total_tokens/probe_freq)",
         f"{(counts - totals // deltas).min()}..{(counts - totals // deltas).max()}", ""),
        ("answer length (probe and final), chars", f"{min(answers)}..{max(answers)}", f"1..{v.MAX_ANSWER_CHARS}"),
        ("gold_answer length, chars", f"{min(golds)}..{max(golds)}", f"1..{v.MAX_ANSWER_CHARS}"),
        ("question length, chars", f"{min(questions)}..{max(questions)}", f"1..{v.MAX_QUESTION_CHARS}"),
    ]
    width = max(len(r[0]) for r in rows)
    for name, seen, bound in rows:
        print(f"{name:<{width}}  real {seen:<16} bound {bound}")


if __name__ == "__main__":
    main()
