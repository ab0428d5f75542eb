"""Statistics of a split's trajectories, and fitting a synthetic profile to them.

The statistics describe what a test-time-scaling controller meets: how often one
trajectory is right, how often a 64-branch majority is, how early probes agree with the
branch's final answer, how long branches are, and how often answers are unparseable
(``ERR``). :func:`calibration_stats` gathers them for any split (real or synthetic);
:func:`fit_profile` fits the parameters of :class:`autotts_gym.data.synthetic.Profile` to a
split so that the generator reproduces them.

Conventions: a probe at 0-based position ``i`` of a branch with ``n`` probes has relative
depth ``i / n``; its decile is ``floor(10 * i / n)``. Accuracies are averaged over
questions; probe and branch rates are pooled.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from autotts_gym.data.store import Split

if TYPE_CHECKING:
    from autotts_gym.data.synthetic import Profile


# --------------------------------------------------------------------------- flat view
@dataclass(frozen=True)
class _Flat:
    """Per-branch and per-probe arrays of a split, with gold and ERR resolved to ids."""

    split: Split

    @cached_property
    def counts(self) -> np.ndarray:
        """Probes per branch."""
        return np.diff(self.split.probe_offsets)

    @cached_property
    def branch_question(self) -> np.ndarray:
        return np.repeat(np.arange(self.split.num_questions), np.diff(self.split.branch_offsets))

    @cached_property
    def probe_branch(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.counts)), self.counts)

    @cached_property
    def position(self) -> np.ndarray:
        """0-based index of each probe within its branch."""
        return np.arange(len(self.split.probe_ids)) - self.split.probe_offsets[:-1][self.probe_branch]

    @cached_property
    def decile(self) -> np.ndarray:
        return (10 * self.position) // self.counts[self.probe_branch]

    def _ids_of(self, answer_of_question: Iterable[str]) -> np.ndarray:
        ids = []
        for vocab, answer in zip(self.split.vocabs, answer_of_question):
            ids.append(vocab.index(answer) if answer in vocab else -2)  # -2 never matches an id
        return np.asarray(ids, dtype=np.int64)

    @cached_property
    def gold(self) -> np.ndarray:
        """Gold answer id per question (-2 if no branch gave it)."""
        return self._ids_of(self.split.gold_answers)

    @cached_property
    def err(self) -> np.ndarray:
        """ERR id per question (-2 if absent)."""
        return self._ids_of([self.split.info.no_answer] * self.split.num_questions)

    @cached_property
    def correct(self) -> np.ndarray:
        """Per branch: final answer equals the gold answer."""
        return self.split.final_ids == self.gold[self.branch_question]

    @cached_property
    def err_final(self) -> np.ndarray:
        return self.split.final_ids == self.err[self.branch_question]

    @cached_property
    def probe_final(self) -> np.ndarray:
        """Per probe: the final answer of its branch."""
        return self.split.final_ids[self.probe_branch]

    @cached_property
    def probe_err(self) -> np.ndarray:
        return self.split.probe_ids == self.err[self.branch_question][self.probe_branch]

    @cached_property
    def settle(self) -> np.ndarray:
        """Per branch: index of the first probe after the last one that is neither the
        final answer nor ERR (from there on the branch has settled)."""
        off = self.split.probe_offsets
        other = (self.split.probe_ids != self.probe_final) & ~self.probe_err
        # The last "other" position of each branch (or -1), by a running maximum.
        mark = np.where(other, self.position, -1)
        last = np.full(len(self.counts), -1, dtype=np.int64)
        nonempty = self.counts > 0
        running = np.maximum.reduceat(mark, off[:-1][nonempty]) if len(mark) else np.zeros(0, np.int64)
        last[nonempty] = running
        return last + 1


_FLAT_CACHE: dict[int, _Flat] = {}


def _flat(split: Split) -> _Flat:
    # Split is immutable: its flat view can be cached by identity while it lives.
    flat = _FLAT_CACHE.get(id(split))
    if flat is None or flat.split is not split:
        flat = _Flat(split)
        _FLAT_CACHE.clear()
        _FLAT_CACHE[id(split)] = flat
    return flat


# --------------------------------------------------------------------------- statistics
def trajectory_accuracy(split: Split) -> float:
    """Accuracy of one random trajectory: per question the share of branches whose final
    answer is the gold, averaged over questions."""
    f = _flat(split)
    sizes = np.diff(split.branch_offsets)
    hits = np.bincount(f.branch_question, weights=f.correct, minlength=split.num_questions)
    return float(np.mean(hits / np.maximum(sizes, 1)))


def majority_accuracy(split: Split, k: int = 64, seeds: Iterable[int] = range(10)) -> float:
    """Accuracy of a majority vote over ``k`` branches drawn at random without replacement
    (all branches if the pool is smaller); ties go to the answer drawn first. Averaged over
    questions and over the ``seeds`` (``numpy.random.default_rng([seed, question])``)."""
    f = _flat(split)
    seeds = list(seeds)
    hits = 0.0
    for q in range(split.num_questions):
        finals = split.final_ids[split.branch_offsets[q] : split.branch_offsets[q + 1]]
        for seed in seeds:
            sample = finals[np.random.default_rng([seed, q]).permutation(len(finals))[:k]]
            votes = np.bincount(sample)
            leaders = votes == votes.max()
            winner = sample[np.argmax(leaders[sample])]  # first drawn among the tied leaders
            hits += winner == f.gold[q]
    return hits / (split.num_questions * len(seeds))


def agreement_by_depth(split: Split, bins: int = 10) -> np.ndarray:
    """Share of probes equal to their branch's final answer, per relative-depth bin
    (probe ``i`` of ``n`` falls in bin ``floor(bins * i / n)``)."""
    f = _flat(split)
    which = (bins * f.position) // f.counts[f.probe_branch]
    equal = split.probe_ids == f.probe_final
    return np.bincount(which, weights=equal, minlength=bins) / np.maximum(np.bincount(which, minlength=bins), 1)


def length_stats(split: Split) -> dict[str, float]:
    """Branch length in tokens: mean, quartiles and 90th percentile."""
    tokens = split.total_tokens
    q25, q50, q75, p90 = np.percentile(tokens, [25, 50, 75, 90])
    return {"mean": float(tokens.mean()), "q25": float(q25), "median": float(q50), "q75": float(q75), "p90": float(p90)}


def err_probe_rate(split: Split) -> float:
    """Share of probe answers that are ERR."""
    return float(_flat(split).probe_err.mean())


def err_final_rate(split: Split) -> float:
    """Share of final answers that are ERR."""
    return float(_flat(split).err_final.mean())


def distinct_finals(split: Split) -> float:
    """Distinct final answers per question, on average."""
    return float(np.mean([len(np.unique(split.final_ids[a:b])) for a, b in zip(split.branch_offsets[:-1], split.branch_offsets[1:])]))


def probe_persistence(split: Split) -> float:
    """Share of probes (after a branch's first) equal to the probe just before them."""
    f = _flat(split)
    later = f.position > 0
    ids = split.probe_ids
    return float(np.mean(ids[1:][later[1:]] == ids[:-1][later[1:]]))


def calibration_stats(split: Split, majority_seeds: Iterable[int] = range(10)) -> dict[str, float]:
    """Every statistic of the calibration table, as a flat dict.

    Keys: ``trajectory_acc``, ``majority64_acc``, ``agree_d1`` .. ``agree_d10`` (agreement
    with the final answer per depth decile), ``len_mean``, ``len_q25``, ``len_median``,
    ``len_q75``, ``len_p90``, ``err_probe``, ``err_final``, ``distinct_finals``,
    ``persistence``.
    """
    stats = {
        "trajectory_acc": trajectory_accuracy(split),
        "majority64_acc": majority_accuracy(split, 64, majority_seeds),
    }
    stats.update({f"agree_d{i + 1}": float(v) for i, v in enumerate(agreement_by_depth(split, 10))})
    stats.update({f"len_{k}": v for k, v in length_stats(split).items()})
    stats["err_probe"] = err_probe_rate(split)
    stats["err_final"] = err_final_rate(split)
    stats["distinct_finals"] = distinct_finals(split)
    stats["persistence"] = probe_persistence(split)
    return stats


# --------------------------------------------------------------------------- fitting
def fit_diagnostics(split: Split) -> dict[str, float]:
    """The finer statistics :func:`fit_profile` matches, one per generator mechanism.

    ``settle_correct`` / ``settle_wrong``: mean relative depth at which correct (wrong)
    branches settle (see ``_Flat.settle``), ``..._late`` the share settling in the last
    tenth; ``settle_last``: share of branches settling only at their last probe;
    ``settle_plain`` / ``settle_weighted``: mean settling depth per branch / per probe; ``err_unsettled`` / ``err_settled``: ERR rate
    of probes before / after settling (last probes excluded); ``persistence_unsettled``:
    probes equal to the previous one, both unsettled; ``own``, ``other_final``,
    ``recurring``: shares of the non-ERR unsettled probes that equal the branch's own
    final answer, another final answer of the question, or an answer probed in at least
    five branches of the question (the rest are rare).
    """
    f = _flat(split)
    n = f.counts
    settle = f.settle
    frac = settle / np.maximum(n, 1)
    unsettled = f.position < settle[f.probe_branch]
    not_last = f.position < n[f.probe_branch] - 1
    ids = split.probe_ids
    prev_unsettled = np.zeros_like(unsettled)
    prev_unsettled[1:] = unsettled[:-1] & (f.position[1:] > 0)
    pairs = unsettled & prev_unsettled
    same_as_prev = np.zeros_like(unsettled)
    same_as_prev[1:] = ids[1:] == ids[:-1]

    # Global answer index, to classify unsettled answers against the question's finals.
    vocab_start = np.concatenate([[0], np.cumsum([len(v) for v in split.vocabs])])
    probe_q = f.branch_question[f.probe_branch]
    probe_global = vocab_start[probe_q] + ids
    final_global = vocab_start[f.branch_question] + split.final_ids
    is_final = np.zeros(int(vocab_start[-1]), bool)
    is_final[final_global] = True
    branches_probing = np.bincount(np.unique(probe_global * len(n) + f.probe_branch) // len(n), minlength=len(is_final))
    cand = unsettled & ~f.probe_err
    own = ids == f.probe_final
    other_final = ~own & is_final[probe_global]
    recurring = ~own & ~other_final & (branches_probing[probe_global] >= 5)
    rare = ~own & ~other_final & ~recurring
    total = max(int(cand.sum()), 1)
    return {
        "settle_correct": float(frac[f.correct].mean()) if f.correct.any() else 0.0,
        "settle_wrong": float(frac[~f.correct].mean()) if (~f.correct).any() else 0.0,
        "settle_correct_late": float((frac[f.correct] >= 0.9).mean()) if f.correct.any() else 0.0,
        "settle_wrong_late": float((frac[~f.correct] >= 0.9).mean()) if (~f.correct).any() else 0.0,
        "settle_last": float(np.mean(settle >= n - 1)),
        "settle_plain": float(frac.mean()),
        "settle_weighted": float(np.average(frac, weights=np.maximum(n, 1))),
        "err_unsettled": float(f.probe_err[unsettled & not_last].mean()) if (unsettled & not_last).any() else 0.0,
        "err_settled": float(f.probe_err[~unsettled & not_last].mean()) if (~unsettled & not_last).any() else 0.0,
        "persistence_unsettled": float(same_as_prev[pairs].mean()) if pairs.any() else 0.0,
        "own": float((cand & own).sum() / total),
        "other_final": float((cand & other_final).sum() / total),
        "recurring": float((cand & recurring).sum() / total),
        "rare": float((cand & rare).sum() / total),
        "length_log_mean": float(np.log(split.total_tokens).mean()),
    }


def fit_profile(split: Split, name: str, *, refine_steps: int = 8, sim_questions: int = 2000, seed: int = 0) -> Profile:
    """Fit a synthetic :class:`~autotts_gym.data.synthetic.Profile` to ``split``.

    Each mechanism of the generator is first estimated directly from the data (maximum
    likelihood for the skill distribution, method of moments for ERR shares and settling
    depths, regression for lengths, least squares for the ERR-rate curves, a small grid
    for the distractors). Then ``refine_steps`` damped fixed-point steps generate
    ``sim_questions`` questions with the current profile (always from ``seed``: common
    random numbers, so the corrections do not chase sampling noise) and correct each parameter by
    the gap between the generated and the real value of the statistic it drives (the
    direct estimates are biased because the mechanisms overlap: a glimpse of the final
    answer looks like early settling, and so on).
    """
    from autotts_gym.data.synthetic import COUNT_OFFSETS, Profile

    f = _flat(split)
    delta = split.info.interval_tokens
    nb = int(np.median(np.diff(split.branch_offsets)))
    target = {**calibration_stats(split), **fit_diagnostics(split)}
    skill_mean, skill_sd = _fit_skill(split)
    err_mean, err_conc = _fit_err_finals(split)
    distractors, alpha, noise = _fit_distractors(split)
    offsets = np.clip(np.diff(split.probe_offsets) - split.total_tokens // delta, COUNT_OFFSETS[0], COUNT_OFFSETS[-1])
    count_pmf = np.bincount(offsets - COUNT_OFFSETS[0], minlength=len(COUNT_OFFSETS)) / len(offsets)
    unsettled = f.position < f.settle[f.probe_branch]
    depth = (f.position + 0.5) / f.counts[f.probe_branch]
    not_last = f.position < f.counts[f.probe_branch] - 1
    lengths = _fit_lengths(split, f)
    profile = Profile(
        name=name,
        skill_mean=skill_mean,
        skill_sd=skill_sd,
        err_final_mean=err_mean,
        err_final_concentration=err_conc,
        distractors=distractors,
        distractor_alpha=alpha,
        noise_final=noise,
        **lengths,
        **_fit_settling(f, lengths),
        stickiness=float(np.clip(target["persistence_unsettled"], 0.0, 0.95)),
        glimpse=target["own"],
        distractor_interim=target["other_final"],
        rare_interim=target["rare"],
        err_unsettled=_fit_hump(depth[unsettled & not_last], f.probe_err[unsettled & not_last]),
        err_settled=_fit_hump(depth[~unsettled & not_last], f.probe_err[~unsettled & not_last]),
        count_offsets=tuple(round(float(p), 5) for p in count_pmf),
    )
    for _ in range(refine_steps):
        profile = _refine(profile, target, sim_questions, nb, delta, seed)
    return profile


def expected_accuracy(skill_mean: float, skill_sd: float, err_final_mean: float) -> float:
    """Expected one-trajectory accuracy of a profile: ``E[sigmoid(z)] * (1 - ERR share)``
    with ``z ~ Normal(skill_mean, skill_sd)``."""
    z = skill_mean + skill_sd * np.linspace(-8.0, 8.0, 4001)
    weight = np.exp(-0.5 * np.linspace(-8.0, 8.0, 4001) ** 2)
    return float(np.sum(weight / (1.0 + np.exp(-z))) / weight.sum() * (1.0 - err_final_mean))


def _skill_mean_for(accuracy: float, skill_sd: float, err_final_mean: float) -> float:
    """The skill mean whose expected one-trajectory accuracy is ``accuracy``."""
    from scipy.optimize import brentq

    goal = min(max(accuracy, 1e-4), (1.0 - err_final_mean) * (1 - 1e-4))
    return round(float(brentq(lambda m: expected_accuracy(m, skill_sd, err_final_mean) - goal, -40.0, 40.0)), 4)


def _refine(profile: Profile, target: dict[str, float], nq: int, nb: int, delta: int, seed: int) -> Profile:
    """One damped correction of every parameter towards the statistic it drives."""
    from autotts_gym.data.synthetic import generate_split

    sim = generate_split(nq, nb, seed, profile=profile, interval_tokens=delta)
    got = {**calibration_stats(sim, majority_seeds=range(2)), **fit_diagnostics(sim)}

    def ratio(key: str, lo: float = 0.5, hi: float = 2.0) -> float:
        return float(np.clip((target[key] + 1e-4) / (got[key] + 1e-4), lo, hi))

    def shift_settling(mc: tuple[float, float], key: str) -> tuple[float, float]:
        # The mean follows the mean depth; the concentration the share settling in the
        # last tenth (a Beta with a high mean piles up at 1 when its concentration is low).
        mean = np.clip(mc[0] + 0.8 * (target[key] - got[key]), 0.02, 0.98)
        concentration = np.clip(mc[1] * ratio(f"{key}_late", 0.7, 1.4) ** -1, 0.3, 200.0)
        return (round(float(mean), 4), round(float(concentration), 4))

    def weighting(stats: dict[str, float]) -> float:
        # How much later long branches settle: probe-weighted minus plain mean depth.
        return stats["settle_weighted"] - stats["settle_plain"]

    def majority_gain(stats: dict[str, float]) -> float:
        return stats["majority64_acc"] - stats["trajectory_acc"]

    def scale_peak(shape: tuple[float, float, float], key: str) -> tuple[float, float, float]:
        peak, a, b = shape
        return (round(float(np.clip(peak * ratio(key), 0.0, 1.0)), 4), a, b)

    # The skill spread follows the majority's gain over one trajectory; the skill mean is
    # then set exactly (no simulation noise) to the one-trajectory accuracy.
    skill_sd = round(float(np.clip(profile.skill_sd * np.exp(2.0 * (majority_gain(got) - majority_gain(target))), 0.3, 12.0)), 4)
    err_mean = round(float(np.clip(profile.err_final_mean * ratio("err_final"), 0.0, 0.5)), 5)
    # Unsettled answers: the glimpse and one-off shares follow their statistics; distractor
    # and interim answers keep their directly estimated proportion (which of them is also
    # some branch's final answer is beyond this model), scaled to fill the rest.
    glimpse = profile.glimpse * ratio("own")
    rare = profile.rare_interim * ratio("rare")
    recurring = 1.0 - profile.glimpse - profile.rare_interim
    distractor = profile.distractor_interim / max(recurring, 1e-3) * max(0.0, 1.0 - glimpse - rare)
    return profile.replace(
        skill_mean=_skill_mean_for(target["trajectory_acc"], skill_sd, err_mean),
        skill_sd=skill_sd,
        err_final_mean=err_mean,
        noise_final=round(float(np.clip(profile.noise_final * ratio("distinct_finals", 0.8, 1.25), 0.0, 0.95)), 4),
        length_log_median=round(profile.length_log_median + target["length_log_mean"] - got["length_log_mean"], 4),
        settle_correct=shift_settling(profile.settle_correct, "settle_correct"),
        settle_wrong=shift_settling(profile.settle_wrong, "settle_wrong"),
        settle_tail=round(float(np.clip(profile.settle_tail * ratio("settle_last", 0.6, 1.6) ** -1, 0.0, 20.0)), 4),
        settle_length_slope=round(profile.settle_length_slope + 4.0 * (weighting(target) - weighting(got)), 4),
        stickiness=round(float(np.clip(profile.stickiness + 0.8 * (target["persistence_unsettled"] - got["persistence_unsettled"]), 0.0, 0.95)), 4),
        glimpse=round(glimpse, 4),
        distractor_interim=round(distractor, 4),
        rare_interim=round(rare, 4),
        err_unsettled=scale_peak(profile.err_unsettled, "err_unsettled"),
        err_settled=scale_peak(profile.err_settled, "err_settled"),
    )


def _fit_skill(split: Split) -> tuple[float, float]:
    """Maximum-likelihood (mean, sd) of a logit-normal gold share, from per-question
    gold counts among the non-ERR branches (Gauss-Hermite quadrature)."""
    from scipy.optimize import minimize
    from scipy.special import gammaln

    f = _flat(split)
    hits = np.bincount(f.branch_question, weights=f.correct, minlength=split.num_questions)
    trials = np.bincount(f.branch_question, weights=~f.err_final, minlength=split.num_questions)
    # The binomial likelihood is sharply peaked in z (128 trials): integrate on a fine grid.
    z = np.linspace(-20.0, 20.0, 4001)
    log_p, log_q = -np.logaddexp(0.0, -z), -np.logaddexp(0.0, z)
    log_choose = gammaln(trials + 1) - gammaln(hits + 1) - gammaln(trials - hits + 1)
    ll = log_choose[:, None] + hits[:, None] * log_p + (trials - hits)[:, None] * log_q
    peak = ll.max(axis=1, keepdims=True)
    like = np.exp(ll - peak)

    def nll(params: np.ndarray) -> float:
        mu, log_sd = params
        sd = np.exp(log_sd)
        prior = np.exp(-0.5 * ((z - mu) / sd) ** 2) / (sd * np.sqrt(2 * np.pi)) * (z[1] - z[0])
        return -float(np.sum(peak[:, 0] + np.log(like @ prior + 1e-300)))

    res = minimize(nll, x0=np.array([0.0, 1.0]), method="Nelder-Mead", options={"xatol": 1e-4, "fatol": 1e-6})
    return round(float(res.x[0]), 4), round(float(np.exp(res.x[1])), 4)


def _fit_err_finals(split: Split) -> tuple[float, float]:
    """Beta-binomial (mean, concentration) of the per-question ERR share, by moments."""
    f = _flat(split)
    sizes = np.diff(split.branch_offsets)
    share = np.bincount(f.branch_question, weights=f.err_final, minlength=split.num_questions) / sizes
    mean = float(f.err_final.mean())
    if mean <= 0:
        return 0.0, 100.0
    n = float(sizes.mean())
    excess = share.var() - mean * (1 - mean) / n
    if excess <= 0:
        return round(mean, 5), 1000.0
    rho = excess / (mean * (1 - mean) * (1 - 1 / n))
    return round(mean, 5), round(float(np.clip(1 / rho - 1, 0.3, 1000.0)), 3)


def _wrong_final_stats(counts_per_question: list[np.ndarray]) -> np.ndarray:
    """(singleton share, top share, distinct answers) of wrong finals, pooled over questions."""
    singles = tops = distinct = total = 0.0
    for c in counts_per_question:
        c = c[c > 0]
        if c.sum() < 10:
            continue
        singles += (c == 1).sum()
        tops += c.max()
        distinct += len(c)
        total += c.sum()
    n_q = sum(1 for c in counts_per_question if c.sum() >= 10)
    return np.array([singles / max(total, 1), tops / max(total, 1), distinct / max(n_q, 1)])


def _fit_distractors(split: Split) -> tuple[int, float, float]:
    """(distractors, Dirichlet alpha, one-off share) whose wrong-final statistics best
    match the split's, by a grid over simulated questions with the real wrong counts."""
    f = _flat(split)
    real_counts, wrong_sizes = [], []
    for q in range(split.num_questions):
        b0, b1 = split.branch_offsets[q], split.branch_offsets[q + 1]
        wrong = ~f.correct[b0:b1] & ~f.err_final[b0:b1]
        real_counts.append(np.bincount(split.final_ids[b0:b1][wrong]))
        wrong_sizes.append(int(wrong.sum()))
    real = _wrong_final_stats(real_counts)
    rng = np.random.default_rng(0)
    best, best_err = (8, 0.5, 0.1), np.inf
    for k in (2, 3, 4, 6, 8, 12, 16, 24, 32, 48):
        for alpha in (0.1, 0.2, 0.3, 0.5, 0.8, 1.2, 2.0):
            for noise in np.linspace(0.0, 0.6, 13):
                sims = []
                for _ in range(8):
                    for w in wrong_sizes:
                        weights = rng.dirichlet(np.full(k, alpha))
                        n_noise = rng.binomial(w, noise)
                        sims.append(np.concatenate([rng.multinomial(w - n_noise, weights), np.ones(n_noise, int)]))
                got = _wrong_final_stats(sims)
                err = float(np.sum(((got - real) / np.maximum(real, [0.02, 0.05, 1.0])) ** 2))
                if err < best_err:
                    best, best_err = (k, alpha, round(float(noise), 3)), err
    return best


def _fit_lengths(split: Split, f: _Flat) -> dict[str, float]:
    """Log-length model: question median against skill (normal scores of the questions'
    accuracy ranks), a shift for wrong branches, and the two spreads."""
    from scipy.stats import norm, rankdata

    y = np.log(split.total_tokens.astype(float))
    q = f.branch_question
    nq = split.num_questions
    wrong = ~f.correct
    diffs = []
    for i in range(nq):
        sel = q == i
        if (sel & wrong).sum() >= 5 and (sel & ~wrong).sum() >= 5:
            diffs.append(y[sel & wrong].mean() - y[sel & ~wrong].mean())
    shift = float(np.mean(diffs)) if diffs else 0.0
    sizes = np.bincount(q, minlength=nq)
    adjusted = y - shift * wrong
    question_mean = np.bincount(q, weights=adjusted, minlength=nq) / sizes
    accuracy = np.bincount(q, weights=f.correct, minlength=nq) / sizes
    score = norm.ppf((rankdata(accuracy) - 0.5) / nq)
    slope, intercept = np.polyfit(score, question_mean, 1)
    resid = question_mean - (intercept + slope * score)
    within = adjusted - question_mean[q]
    return {
        "length_log_median": round(float(intercept), 4),
        "length_skill_slope": round(float(-slope), 4),
        "length_question_sd": round(float(resid.std()), 4),
        "length_branch_sd": round(float(within.std()), 4),
        "length_wrong_shift": round(shift, 4),
    }


def _fit_settling(f: _Flat, lengths: dict[str, float]) -> dict[str, object]:
    """Settling depth: logit of the mean linear in log length (shared slope, one
    intercept per correctness) by least squares; Beta concentrations from the residual
    variance."""
    from scipy.optimize import least_squares

    frac = np.clip(f.settle / np.maximum(f.counts, 1), 1e-3, 1 - 1e-3)
    y = np.log(f.split.total_tokens.astype(float))
    wrong = ~f.correct
    centre = lengths["length_log_median"] + lengths["length_wrong_shift"] * wrong

    def predict(p: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(np.where(wrong, p[1], p[0]) + p[2] * (y - centre))))

    fit = least_squares(lambda p: predict(p) - frac, x0=[0.0, 1.0, 0.5])
    pred = predict(fit.x)
    out: dict[str, object] = {"settle_length_slope": round(float(fit.x[2]), 4), "settle_tail": 1.0}
    for key, sel, logit in (("settle_correct", ~wrong, fit.x[0]), ("settle_wrong", wrong, fit.x[1])):
        resid_var = float(np.var(frac[sel] - pred[sel])) if sel.any() else 0.05
        spread = float(np.mean(pred[sel] * (1 - pred[sel]))) if sel.any() else 0.25
        out[key] = (round(float(1 / (1 + np.exp(-logit))), 4), round(max(spread / max(resid_var, 1e-6) - 1, 0.5), 4))
    return out


def _fit_hump(depth: np.ndarray, is_err: np.ndarray) -> tuple[float, float, float]:
    """Least-squares ``(peak, a, b)`` of the ERR rate over relative depth, on deciles."""
    from scipy.optimize import least_squares

    from autotts_gym.data.synthetic import hump

    bins = np.minimum((depth * 10).astype(int), 9)
    n = np.bincount(bins, minlength=10)
    rate = np.bincount(bins, weights=is_err, minlength=10) / np.maximum(n, 1)
    mid = (np.arange(10) + 0.5) / 10
    weight = np.sqrt(n / max(n.sum(), 1))

    def resid(p: np.ndarray) -> np.ndarray:
        return weight * (hump(mid, (p[0], p[1], p[2])) - rate)

    res = least_squares(resid, x0=[max(rate.max(), 1e-3), 0.5, 1.0], bounds=([0, 0, 0], [1, 5, 10]))
    return tuple(round(float(v), 4) for v in res.x)
