"""Synthetic profiles vs the real AutoTTS release, side by side.

    python benchmarks/calibration.py            # print the table, write docs/calibration.md
    python benchmarks/calibration.py --fit      # refit the profiles on AIME24, print them

For each Qwen3 model: the statistics of its real AIME24 split (the search split the
profile was fitted to), of the synthetic profile (a large generated split, so the figure
is the profile's expectation, not one 30-question draw), and of its real AIME25 split
(held out: never used for fitting, shown for reference). Needs the release in
../shared/replay/autotts-release.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from calibration_stats import calibration_stats, fit_profile  # benchmarks/calibration_stats.py, beside this script

from autotts_gym.data.release import read_release_file
from autotts_gym.data.synthetic import generate_split

ROOT = Path(__file__).resolve().parents[1]
RELEASE = ROOT.parent / "shared" / "replay" / "autotts-release"
MODELS = {"Qwen3-0.6B": "qwen3-0.6b-like", "Qwen3-1.7B": "qwen3-1.7b-like", "Qwen3-4B": "qwen3-4b-like", "Qwen3-8B": "qwen3-8b-like"}
SYNTHETIC_QUESTIONS, SYNTHETIC_BRANCHES, SYNTHETIC_SEED = 2000, 128, 12345

# (label, stats key, kind): kind "pct" prints 100 x value, "k" thousands of tokens, "num" as is.
ROWS = [
    ("accuracy of one trajectory (%)", "trajectory_acc", "pct"),
    ("accuracy of majority@64 (%)", "majority64_acc", "pct"),
    *[(f"probe = final, depth decile {i} (%)", f"agree_d{i}", "pct") for i in range(1, 11)],
    ("branch length mean (k tokens)", "len_mean", "k"),
    ("branch length q25 (k tokens)", "len_q25", "k"),
    ("branch length median (k tokens)", "len_median", "k"),
    ("branch length q75 (k tokens)", "len_q75", "k"),
    ("branch length p90 (k tokens)", "len_p90", "k"),
    ("ERR probes (%)", "err_probe", "pct"),
    ("ERR final answers (%)", "err_final", "pct"),
    ("distinct final answers per question", "distinct_finals", "num"),
    ("probe equals the previous probe (%)", "persistence", "pct"),
]


def fmt(value: float, kind: str) -> str:
    """One table cell."""
    if kind == "pct":
        return f"{100 * value:.1f}"
    if kind == "k":
        return f"{value / 1000:.1f}"
    return f"{value:.1f}"


def model_table(model: str, real24: dict, synthetic: dict, real25: dict) -> str:
    """Markdown table of one model."""
    lines = [
        f"### {model} vs `{MODELS[model]}`",
        "",
        "| statistic | real AIME24 (fitted) | synthetic | gap | real AIME25 (held out) |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, key, kind in ROWS:
        gap = synthetic[key] - real24[key]
        lines.append(
            f"| {label} | {fmt(real24[key], kind)} | {fmt(synthetic[key], kind)} | "
            f"{'+' if gap >= 0 else ''}{fmt(gap, kind)} | {fmt(real25[key], kind)} |"
        )
    return "\n".join(lines)


def real_stats(model: str, benchmark: str) -> dict:
    """Statistics of one release file."""
    return calibration_stats(read_release_file(RELEASE / model / f"{benchmark}.json", model, benchmark))


def refit() -> None:
    """Fit every profile on its model's AIME24 split; print PROFILES and TARGETS as Python."""
    profiles, targets = {}, {}
    for model, name in MODELS.items():
        start = time.perf_counter()
        split = read_release_file(RELEASE / model / "aime24.json", model, "aime24")
        profiles[name] = fit_profile(split, name)
        targets[name] = {k: round(v, 4) for k, v in calibration_stats(split).items()}
        print(f"# fitted {name} in {time.perf_counter() - start:.1f} s")
    print("PROFILES: dict[str, Profile] = {")
    for name, prof in profiles.items():
        print(f'    "{name}": Profile(')
        for field in dataclasses.fields(prof):
            value = getattr(prof, field.name)
            if field.default is dataclasses.MISSING or value != field.default:
                print(f"        {field.name}={value!r},".replace("'", '"'))
        print("    ),")
    print("}\n\nTARGETS: dict[str, dict[str, float]] = {")
    for name, stats in targets.items():
        print(f'    "{name}": {{')
        for key, value in stats.items():
            print(f'        "{key}": {value!r},')
        print("    },")
    print("}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", action="store_true", help="refit the profiles on AIME24 and print them")
    parser.add_argument("--out", default=str(ROOT / "docs" / "calibration.md"), help="markdown file to write")
    args = parser.parse_args()
    if not RELEASE.is_dir():
        raise SystemExit(f"{RELEASE}: the AutoTTS release is not there; this script compares against it")
    if args.fit:
        refit()
        return
    sections = []
    for model, name in MODELS.items():
        start = time.perf_counter()
        synthetic = calibration_stats(
            generate_split(SYNTHETIC_QUESTIONS, SYNTHETIC_BRANCHES, SYNTHETIC_SEED, profile=name)
        )
        table = model_table(model, real_stats(model, "aime24"), synthetic, real_stats(model, "aime25"))
        print(table, f"\n({time.perf_counter() - start:.1f} s)\n", flush=True)
        sections.append(table)
    out = Path(args.out)
    text = out.read_text() if out.exists() else ""
    marker = "<!-- calibration table: written by benchmarks/calibration.py -->"
    head = text.split(marker)[0] if marker in text else text
    out.write_text(head.rstrip() + "\n\n" + marker + "\n\n" + "\n\n".join(sections) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
