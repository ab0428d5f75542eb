"""Mutation check: do the tests catch the single mistakes a tired developer could make?

    OMP_NUM_THREADS=1 python tools/mutation_check.py            # every mutation, default tests
    python tools/mutation_check.py --only E1 V2                  # some mutations
    python tools/mutation_check.py --tests tests/core/test_engine_contract.py
    python tools/mutation_check.py --list                        # the mutations, not run

Each mutation is a textual patch (``old`` -> ``new``, which must occur exactly once in
its file) of the library source. For each one the script patches the file *in place*,
runs ``python -m pytest -x -q`` on the test files (from the repository root, so the
clone's packages are the ones imported), restores the original bytes and mtime (in a
``finally``, also on Ctrl-C), and records whether the run failed (caught, with the first
failing test) or passed (survived). Bytecode is not written during the runs
(``PYTHONDONTWRITEBYTECODE=1``), so no mutated ``.pyc`` outlives its mutation. The
unpatched tree is run first: a failure there makes every result meaningless, so the
script stops.

The compiled build of the engine is not rebuilt per mutation: the tests run with
``AUTOTTS_PURE_PYTHON=1``, so the patched ``.py`` files are what runs.
tests/core/test_builds.py is left out: it compares the (patched) plain-Python build with
the (unpatched) compiled one, so it would flag every engine patch for the wrong reason.

Not here: the slow reproduction test (tests/core/test_reproduction.py, minutes) and the
sandbox tests (tests/agents/test_sandbox.py). Exit status 1 if any mutation survives.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

DEFAULT_TESTS: tuple[str, ...] = (
    "tests/core/test_engine_contract.py",
    "tests/core/test_voting_orders.py",
    "tests/core/test_intervals.py",
    "tests/core/test_budget.py",
    "tests/core/test_env.py",
    "tests/core/test_properties.py",
    "tests/cli/test_protocol_cli.py",
    "tests/core/test_paired.py",
    "tests/core/test_reporting.py",
    "tests/core/test_store.py",
    "tests/agents/test_gym_policy.py",
    "tests/agents/test_dsr.py",
)


@dataclass(frozen=True)
class Mutation:
    """One single-site patch: ``old`` (exactly once in ``path``) becomes ``new``."""

    key: str
    description: str
    path: str
    old: str
    new: str


ENGINE, VOTING, ORDERS, EVALUATION = (
    "autotts_gym/engine/episode.py",
    "autotts_gym/engine/voting.py",
    "autotts_gym/evaluation/orders.py",
    "autotts_gym/evaluation/evaluate.py",
)

MUTATIONS: tuple[Mutation, ...] = (
    # ---- the five of issue 17, item 8 (engine and evaluation)
    Mutation("E1", "result intervals without kappa x probes", ENGINE,
             "intervals=depths + self._kappa * probes,", "intervals=depths,"),
    Mutation("E2", "open_and_probe: probe budget check removed", ENGINE,
             '        if self._budget is not None:\n            self._require_budget(self._kappa, "PROBE")\n        return self._probe(j, 1)',
             "        return self._probe(j, 1)"),
    Mutation("E3", "continue+probe checks _require_budget(1, ...)", ENGINE,
             'self._require_budget(1 + self._kappa, "CONTINUE+PROBE")', 'self._require_budget(1, "CONTINUE+PROBE")'),
    Mutation("V1", "accuracy CI bootstrapped over episodes", EVALUATION,
             "accuracy_ci=bootstrap_ci(acc),", 'accuracy_ci=bootstrap_ci(records["correct"] * 100.0),'),
    Mutation("V2", "percentiles [5, 95] for a 95% interval", EVALUATION,
             "np.percentile(means, [2.5, 97.5])", "np.percentile(means, [5, 95])"),
    # ---- more single mutations
    Mutation("E4", "PROBE checks _require_budget(1, ...)", ENGINE,
             'self._require_budget(self._kappa, "PROBE")\n        return self._probe(j, d)',
             'self._require_budget(1, "PROBE")\n        return self._probe(j, d)'),
    Mutation("E5", "cost ignores kappa x probes", ENGINE,
             "return sum(self._depth) + self._kappa * (len(self._probe_log) // 2)", "return sum(self._depth)"),
    Mutation("E6", "budget admits cost + extra < budget (strict)", ENGINE,
             "self.cost + extra <= self._budget", "self.cost + extra < self._budget"),
    Mutation("E7", "budget_tokens converted with ceil", ENGINE,
             "math.floor(budget_tokens / question.interval_tokens)", "math.ceil(budget_tokens / question.interval_tokens)"),
    Mutation("E8", "finishing step charges total - charged without max(0, .)", ENGINE,
             "self._finish_tokens += tokens_at[d] - tokens_at[d - 1]",
             "self._finish_tokens += self._total_tokens[b] - tokens_at[d - 1]"),
    Mutation("E9", "finishing step also charged Delta in the result", ENGINE,
             "tokens=(stepwise - self._finished_stepwise) * q.interval_tokens", "tokens=stepwise * q.interval_tokens"),
    Mutation("E10", "read_whole charges max(total, P x Delta)", ENGINE,
             "self._finish_tokens += self._total_tokens[b]\n", "self._finish_tokens += self._tokens_at[b][steps]\n"),
    Mutation("E11", "continue_and_probe_many ignores the bursts", ENGINE,
             "out.append(self._continue_and_probe(j, burst))", "out.append(self._continue_and_probe(j, 1))"),
    Mutation("E12", "read_whole budget check counts one interval", ENGINE,
             'self._require_budget(steps, "READ_WHOLE")', 'self._require_budget(1, "READ_WHOLE")'),
    Mutation("E13", "a finished branch stays in the active set", ENGINE,
             "self._status[j] = FINISHED\n        self._leave_active(j)\n", "self._status[j] = FINISHED\n"),
    Mutation("E14", "continue+probe reveals the answer at the depth before the step", ENGINE,
             "answer = self._probe(j, d)", "answer = self._probe(j, d - 1)"),
    Mutation("E15", "open_and_probe probes depth 0", ENGINE,
             "        return self._probe(j, 1)", "        return self._probe(j, 0)"),
    Mutation("E16", "prune forgets the branch's revealed answer (Python prune)", ENGINE,
             "self._n_prunes += 1\n", "self._n_prunes += 1\n        self._latest[j] = NO_ANSWER_ID\n"),
    Mutation("E17", "aggregate ties to the smallest answer id, not first finished", ENGINE,
             "return majority(finals)[0]", "return majority(sorted(finals))[0]"),
    Mutation("E18", "aggregate over latest answers keeps pruned branches", ENGINE,
             "if a >= 0 and episode.status(j) != PRUNED]", "if a >= 0]"),
    Mutation("T1", "top_two: ties to the last seen", VOTING,
             "if c > v1:", "if c >= v1:"),
    Mutation("T5", "the tally of int ids: ties to the last seen", VOTING,
             "if counts[k] > counts[best]:", "if counts[k] >= counts[best]:"),
    Mutation("T2", "Beta confidence with a Jeffreys prior (+0.5)", VOTING,
             "betainc(v1 + 1, v2 + 1, 0.5)", "betainc(v1 + 0.5, v2 + 0.5, 0.5)"),
    Mutation("T3", "Beta confidence with the counts swapped", VOTING,
             "betainc(v1 + 1, v2 + 1, 0.5)", "betainc(v2 + 1, v1 + 1, 0.5)"),
    Mutation("T4", "Beta confidence 0.5 with no votes", VOTING,
             "if v1 <= 0 and v2 <= 0:\n        return 0.0", "if v1 < 0 and v2 < 0:\n        return 0.0"),
    Mutation("O1", "release shuffle via Random(seed).sample", ORDERS,
             "random.Random(seed).shuffle(order)", "order = random.Random(seed).sample(order, len(order))"),
    Mutation("O2", "release shuffle via numpy default_rng(seed)", ORDERS,
             "random.Random(seed).shuffle(order)", "np.random.default_rng(seed).shuffle(order)"),
    Mutation("V3", "tokens CI bootstrapped over episodes", EVALUATION,
             "tokens_ci=bootstrap_ci(tok),", 'tokens_ci=bootstrap_ci(records["tokens"]),'),
    Mutation("V4", "bootstrap resamples one question fewer", EVALUATION,
             "size=(resamples, n))", "size=(resamples, n - 1))"),
)  # fmt: skip


@dataclass
class Outcome:
    """What one pytest run gave."""

    caught: bool
    test: str
    seconds: float


def run_tests(tests: list[str], timeout: float) -> Outcome:
    """``pytest -x -q`` on ``tests`` from the repository root; the first failing test."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    env["AUTOTTS_PURE_PYTHON"] = "1"  # the patched sources, not the compiled build
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", *tests]
    started = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return Outcome(True, f"(timeout after {timeout:g} s)", time.perf_counter() - started)
    seconds = time.perf_counter() - started
    if proc.returncode == 0:
        return Outcome(False, "", seconds)
    found = re.search(r"^(?:FAILED|ERROR) (\S+)", proc.stdout, re.M)
    test = found.group(1) if found else f"(pytest exit {proc.returncode}: {proc.stdout.strip().splitlines()[-1:]})"
    return Outcome(True, test, seconds)


def apply(mutation: Mutation) -> tuple[Path, bytes, tuple[float, float]]:
    """Patch the file in place; returns what :func:`restore` needs."""
    path = ROOT / mutation.path
    original = path.read_bytes()
    text = original.decode()
    count = text.count(mutation.old)
    if count != 1:
        raise SystemExit(f"{mutation.key}: the patch's old text occurs {count} times in {mutation.path}")
    stat = path.stat()
    path.write_text(text.replace(mutation.old, mutation.new))
    return path, original, (stat.st_atime, stat.st_mtime)


def restore(path: Path, original: bytes, times: tuple[float, float]) -> None:
    """Put the original bytes and mtime back."""
    path.write_bytes(original)
    os.utime(path, times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", help="mutation keys to run (default: all)")
    parser.add_argument("--tests", nargs="*", help="test files (default: %(default)s)", default=list(DEFAULT_TESTS))
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per pytest run")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTATIONS if not args.only or m.key in args.only]
    if args.list:
        for m in chosen:
            print(f"{m.key:4} {m.path:26} {m.description}")
        return 0
    tests = [t for t in args.tests if (ROOT / t).exists()]
    missing = sorted(set(args.tests) - set(tests))
    if missing:
        print("not found, skipped:", " ".join(missing))
    baseline = run_tests(tests, args.timeout)
    if baseline.caught:
        print(f"the unmutated tree fails ({baseline.test}): fix that first")
        return 2
    print(f"unmutated tree passes ({baseline.seconds:.0f} s): {len(chosen)} mutations on {len(tests)} test files\n")
    print(f"{'key':4}  {'result':8}  {'secs':>5}  {'mutation':58}  caught by")
    survived = 0
    for m in chosen:
        path, original, times = apply(m)
        try:
            outcome = run_tests(tests, args.timeout)
        finally:
            restore(path, original, times)
        survived += not outcome.caught
        verdict = "caught" if outcome.caught else "SURVIVED"
        print(f"{m.key:4}  {verdict:8}  {outcome.seconds:5.0f}  {m.description:58}  {outcome.test}", flush=True)
    print(f"\n{len(chosen) - survived} caught, {survived} survived")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
