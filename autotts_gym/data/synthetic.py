"""Seeded synthetic replay data: the embedded default store and large stores for scale tests.

The generator is a small generative model of reasoning trajectories, built directly in the
columnar form of :class:`~autotts_gym.data.store.Split` (vectorised numpy, no per-branch Python
objects), so 10,000 questions x 256 branches take seconds. Its parameters come in
*profiles* named after the four Qwen3 backbones of the AutoTTS release, each fitted to
that model's AIME24 data by ``fit_profile`` (benchmarks/calibration_stats.py)
(``python benchmarks/calibration.py --fit``); docs/calibration.md has the side-by-side
table.

The model, per question:

* A latent skill logit ``z ~ Normal(skill_mean, skill_sd)``; a branch's final answer is the
  gold with probability ``sigmoid(z)`` (times one minus the question's ERR share), so the
  per-question accuracy ranges from "always right" to "gold never seen".
* Final answers: gold, ``ERR`` (share ``~ Beta`` around ``err_final_mean``), a few
  recurring distractors (Dirichlet weights) and one-off answers (share ``noise_final`` of
  the wrong mass).
* Length: log-normal; its median falls with the question's skill, wrong branches are
  longer; branches beyond ``max_tokens`` are truncated (as the release's 40k cap).
* Probes: a branch *settles* at a relative depth ``u ~ Beta`` (earlier for correct
  branches). Before that, each probe either repeats the previous one (``stickiness``) or
  draws afresh: the branch's own final (a glimpse), a distractor (weighted independently
  of how often it is a final answer), one of the question's interim answers, a one-off, or ``ERR`` (a hump-shaped rate over depth). After settling,
  probes equal the final answer except for ``ERR`` glitches; the last probe is always the
  final answer (true of every branch of the release), and usually a few before it too.
* ``len(probe_answers) = floor(total_tokens / Delta) + offset`` with the release's offsets
  (-8..+1) and their frequencies.

Answers are integers written as strings (AIME-like 0-999 for gold, distractors and interim
answers; 1000-99999 for one-offs) and interned per question in a random order, so an
answer id says nothing about correctness.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from autotts_gym.data.store import NO_ANSWER, Split, SplitInfo, Store
from autotts_gym.utils.progress import progress_bar

COUNT_OFFSETS = tuple(range(-8, 2))  # len(probe_answers) - floor(total_tokens / Delta) in the release
_CHUNK_QUESTIONS = 128  # questions generated per vectorised block (bounds temporary memory)
_NOISE_BASE, _NOISE_SPAN, _NOISE_STRIDE = 1000, 99000, 7919  # one-off answers: 1000 + (h + j * 7919) % 99000
_UNITS_MOD_1000 = np.array([s for s in range(1, 1000) if s % 2 and s % 5], dtype=np.int64)
_GOLD, _ERR, _FIRST_DISTRACTOR = 0, 1, 2  # raw answer slots of a question (see _Layout)
# Glimpses of the final answer grow with depth: rate glimpse * (0.4 + 1.2 x), mean glimpse
# (the release's rate rises about threefold from the first to the ninth decile).
_GLIMPSE_RAMP = (0.4, 1.2)
_DEPTH_BINS = 256  # resolution of the depth-dependent rates


@dataclass(frozen=True)
class Profile:
    """Parameters of the generative model (see the module docstring).

    Attributes:
        name: profile name (``"qwen3-1.7b-like"``, ...).
        skill_mean, skill_sd: mean and spread of the per-question gold logit.
        err_final_mean, err_final_concentration: Beta(mean, concentration) of the per-question
            share of ``ERR`` final answers.
        distractors, distractor_alpha: number of recurring wrong answers per question and the
            symmetric Dirichlet concentration of their weights.
        noise_final: share of the wrong final mass given to one-off answers.
        length_log_median: log of the median branch length (tokens) of an average question.
        length_skill_slope: decrease of the log length per standard deviation of skill.
        length_question_sd, length_branch_sd: spread of the log length between questions
            and between branches of a question.
        length_wrong_shift: log-length added to branches whose final answer is wrong.
        settle_correct, settle_wrong: ``(mean, concentration)`` of the Beta-distributed
            relative depth at which a correct (wrong) branch of median length settles on
            its final answer.
        settle_length_slope: change of the logit of that mean per unit of log length
            (longer branches settle relatively later).
        settle_tail: mean of the Poisson number of probes, beyond the last one, that a
            branch spends on its final answer after settling (few branches settle only at
            their very last probe).
        stickiness: probability that an unsettled probe repeats the previous one.
        glimpse, distractor_interim, rare_interim: probabilities that a fresh unsettled
            probe is the branch's own final answer (on average over depth; the rate grows
            with depth), a distractor, or a one-off answer (the rest: one of the
            question's interim answers).
        err_unsettled, err_settled: ``(peak, a, b)`` of the ``ERR`` probe rate over relative
            depth x, ``peak * x^a (1-x)^b`` scaled to reach ``peak`` at its mode.
        count_offsets: probabilities of ``len(probes) - floor(total / Delta)`` for the
            offsets of :data:`COUNT_OFFSETS`.
        interim_answers, interim_alpha: number of interim answers per question and the
            Dirichlet concentration of their weights.
        noise_pool: distinct one-off answers available per question.
        max_tokens, overflow_tokens: truncation length and the spread above it at which
            truncated branches end. min_tokens: shortest branch.
    """

    name: str
    skill_mean: float
    skill_sd: float
    err_final_mean: float
    err_final_concentration: float
    distractors: int
    distractor_alpha: float
    noise_final: float
    length_log_median: float
    length_skill_slope: float
    length_question_sd: float
    length_branch_sd: float
    length_wrong_shift: float
    settle_correct: tuple[float, float]
    settle_wrong: tuple[float, float]
    settle_length_slope: float
    settle_tail: float
    stickiness: float
    glimpse: float
    distractor_interim: float
    rare_interim: float
    err_unsettled: tuple[float, float, float]
    err_settled: tuple[float, float, float]
    count_offsets: tuple[float, ...]
    interim_answers: int = 10
    interim_alpha: float = 0.5
    noise_pool: int = 2000
    max_tokens: int = 40000
    overflow_tokens: int = 1500
    min_tokens: int = 1000

    def replace(self, **changes: object) -> Profile:
        """A copy with some parameters changed."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, object]:
        """The parameters as a JSON-friendly dict (stored in the split's metadata)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


# Fitted by `python benchmarks/calibration.py --fit` on the release's AIME24 split of each
# model (the search split; AIME25 is held out and only reported).
PROFILES: dict[str, Profile] = {
    "qwen3-0.6b-like": Profile(
        name="qwen3-0.6b-like",
        skill_mean=-3.5162,
        skill_sd=2.2478,
        err_final_mean=0.00425,
        err_final_concentration=55.947,
        distractors=16,
        distractor_alpha=0.5,
        noise_final=0.2748,
        length_log_median=9.297,
        length_skill_slope=0.148,
        length_question_sd=0.3696,
        length_branch_sd=0.4509,
        length_wrong_shift=0.244,
        settle_correct=(0.6145, 1.7753),
        settle_wrong=(0.8678, 2.0525),
        settle_length_slope=0.8619,
        settle_tail=0.688,
        stickiness=0.5965,
        glimpse=0.0831,
        distractor_interim=0.4431,
        rare_interim=0.144,
        err_unsettled=(0.0492, 0.2898, 0.7276),
        err_settled=(0.1281, 0.0, 0.7458),
        count_offsets=(0.0, 0.00052, 0.00156, 0.00234, 0.00599, 0.01927, 0.06849, 0.20625, 0.53307, 0.1625),
    ),
    "qwen3-1.7b-like": Profile(
        name="qwen3-1.7b-like",
        skill_mean=-0.2335,
        skill_sd=1.6368,
        err_final_mean=0.00252,
        err_final_concentration=68.656,
        distractors=8,
        distractor_alpha=0.8,
        noise_final=0.2278,
        length_log_median=9.2517,
        length_skill_slope=0.2474,
        length_question_sd=0.3462,
        length_branch_sd=0.3429,
        length_wrong_shift=0.4572,
        settle_correct=(0.6388, 2.2948),
        settle_wrong=(0.8022, 2.217),
        settle_length_slope=0.8915,
        settle_tail=0.9599,
        stickiness=0.5472,
        glimpse=0.0511,
        distractor_interim=0.4661,
        rare_interim=0.0982,
        err_unsettled=(0.0777, 0.7557, 1.0132),
        err_settled=(0.087, 0.303, 1.2119),
        count_offsets=(0.00078, 0.00365, 0.00599, 0.00391, 0.00677, 0.0401, 0.13359, 0.2474, 0.41016, 0.14766),
    ),
    "qwen3-4b-like": Profile(
        name="qwen3-4b-like",
        skill_mean=2.8386,
        skill_sd=4.4995,
        err_final_mean=0.0038,
        err_final_concentration=130.052,
        distractors=24,
        distractor_alpha=0.1,
        noise_final=0.1777,
        length_log_median=9.1785,
        length_skill_slope=0.3292,
        length_question_sd=0.3928,
        length_branch_sd=0.3075,
        length_wrong_shift=0.4959,
        settle_correct=(0.5758, 2.5314),
        settle_wrong=(0.6167, 1.6531),
        settle_length_slope=1.2055,
        settle_tail=1.3668,
        stickiness=0.5345,
        glimpse=0.0557,
        distractor_interim=0.4136,
        rare_interim=0.0567,
        err_unsettled=(0.109, 0.5162, 0.9887),
        err_settled=(0.3813, 0.3726, 1.5061),
        count_offsets=(0.00052, 0.00469, 0.00313, 0.00469, 0.01042, 0.02057, 0.04948, 0.15521, 0.54792, 0.20339),
    ),
    "qwen3-8b-like": Profile(
        name="qwen3-8b-like",
        skill_mean=4.7535,
        skill_sd=6.2948,
        err_final_mean=0.01186,
        err_final_concentration=13.538,
        distractors=12,
        distractor_alpha=0.2,
        noise_final=0.1848,
        length_log_median=9.2501,
        length_skill_slope=0.3649,
        length_question_sd=0.3554,
        length_branch_sd=0.2983,
        length_wrong_shift=0.4392,
        settle_correct=(0.6039, 2.8922),
        settle_wrong=(0.6282, 1.542),
        settle_length_slope=1.2256,
        settle_tail=0.9184,
        stickiness=0.5381,
        glimpse=0.0617,
        distractor_interim=0.4061,
        rare_interim=0.0508,
        err_unsettled=(0.0462, 1.2311, 1.7301),
        err_settled=(0.179, 1.1921, 2.0137),
        count_offsets=(0.00026, 0.0026, 0.00234, 0.00625, 0.01302, 0.03464, 0.05833, 0.1474, 0.52552, 0.20964),
    ),
}

DEFAULT_PROFILE = "qwen3-1.7b-like"

# Calibration targets: statistics of the real AutoTTS release (AIME24, 30 questions x 128
# branches per model), measured by calibration_stats (benchmarks/calibration_stats.py). The tests
# check that each profile reproduces its model's figures within loose tolerances.
TARGETS: dict[str, dict[str, float]] = {
    "qwen3-0.6b-like": {
        "trajectory_acc": 0.1089,
        "majority64_acc": np.float64(0.21),
        "agree_d1": 0.045,
        "agree_d2": 0.0703,
        "agree_d3": 0.0987,
        "agree_d4": 0.1327,
        "agree_d5": 0.158,
        "agree_d6": 0.1981,
        "agree_d7": 0.2437,
        "agree_d8": 0.3117,
        "agree_d9": 0.4351,
        "agree_d10": 0.7366,
        "len_mean": 15749.7563,
        "len_q25": 9700.75,
        "len_median": 14745.0,
        "len_q75": 20691.25,
        "len_p90": 26070.7,
        "err_probe": 0.0397,
        "err_final": 0.0042,
        "distinct_finals": 43.4,
        "persistence": 0.6531,
    },
    "qwen3-1.7b-like": {
        "trajectory_acc": 0.4594,
        "majority64_acc": np.float64(0.7267),
        "agree_d1": 0.0503,
        "agree_d2": 0.0794,
        "agree_d3": 0.1187,
        "agree_d4": 0.1604,
        "agree_d5": 0.1953,
        "agree_d6": 0.2681,
        "agree_d7": 0.3331,
        "agree_d8": 0.4105,
        "agree_d9": 0.5603,
        "agree_d10": 0.8184,
        "len_mean": 16033.1617,
        "len_q25": 8386.75,
        "len_median": 15217.0,
        "len_q75": 22102.75,
        "len_p90": 27625.0,
        "err_probe": 0.0506,
        "err_final": 0.0029,
        "distinct_finals": 23.2333,
        "persistence": 0.6529,
    },
    "qwen3-4b-like": {
        "trajectory_acc": 0.7185,
        "majority64_acc": np.float64(0.8),
        "agree_d1": 0.0614,
        "agree_d2": 0.0951,
        "agree_d3": 0.1307,
        "agree_d4": 0.1703,
        "agree_d5": 0.2224,
        "agree_d6": 0.3112,
        "agree_d7": 0.3986,
        "agree_d8": 0.4974,
        "agree_d9": 0.6537,
        "agree_d10": 0.8618,
        "len_mean": 13851.274,
        "len_q25": 6544.5,
        "len_median": 10794.5,
        "len_q75": 19635.75,
        "len_p90": 27100.5,
        "err_probe": 0.1025,
        "err_final": 0.0036,
        "distinct_finals": 11.1667,
        "persistence": 0.6586,
    },
    "qwen3-8b-like": {
        "trajectory_acc": 0.757,
        "majority64_acc": np.float64(0.8033),
        "agree_d1": 0.0817,
        "agree_d2": 0.0965,
        "agree_d3": 0.1366,
        "agree_d4": 0.184,
        "agree_d5": 0.2416,
        "agree_d6": 0.3273,
        "agree_d7": 0.4222,
        "agree_d8": 0.5236,
        "agree_d9": 0.6531,
        "agree_d10": 0.852,
        "len_mean": 14228.8352,
        "len_q25": 6785.25,
        "len_median": 11269.5,
        "len_q75": 20035.5,
        "len_p90": 27920.2,
        "err_probe": 0.0481,
        "err_final": 0.0128,
        "distinct_finals": 9.3333,
        "persistence": 0.6686,
    },
}


def get_profile(profile: str | Profile) -> Profile:
    """The profile named ``profile`` (or ``profile`` itself)."""
    if isinstance(profile, Profile):
        return profile
    try:
        return PROFILES[profile]
    except KeyError:
        raise KeyError(f"unknown synthetic profile {profile!r}; choose one of {', '.join(PROFILES)}") from None


# --------------------------------------------------------------------------- public API
def generate_split(
    num_questions: int,
    num_branches: int,
    seed: int,
    *,
    model: str = "synthetic",
    benchmark: str = "synthetic",
    profile: str | Profile = DEFAULT_PROFILE,
    interval_tokens: int = 500,
    progress: bool = False,
) -> Split:
    """Generate one split of synthetic trajectories, deterministically from ``seed``.

    Args:
        num_questions: questions in the split.
        num_branches: branches per question (the pool size).
        seed: non-negative seed; the same arguments always give identical arrays.
        model, benchmark: the split's name.
        profile: a profile name of :data:`PROFILES` or a :class:`Profile`.
        interval_tokens: Delta, tokens between two probes.
        progress: a tqdm bar on stderr over the questions (two passes: plan, answers).
    """
    prof = get_profile(profile)
    if num_questions < 1 or num_branches < 1:
        raise ValueError(f"need at least one question and one branch, got {num_questions} x {num_branches}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    if interval_tokens < 1:
        raise ValueError(f"interval_tokens must be positive, got {interval_tokens}")
    bar = progress_bar(2 * num_questions, desc="synth", unit="q", enabled=progress)
    plans = []
    for block, q0 in enumerate(range(0, num_questions, _CHUNK_QUESTIONS)):
        size = min(_CHUNK_QUESTIONS, num_questions - q0)
        plans.append(_plan_block(np.random.default_rng([seed, block, 0]), prof, q0, size, num_branches, interval_tokens))
        bar.update(size)
    counts = np.concatenate([p.counts for p in plans])
    probe_offsets = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=probe_offsets[1:])
    probe_ids = np.empty(int(probe_offsets[-1]), np.int32)  # filled block by block: no concatenation copy
    final_ids = np.empty(len(counts), np.int32)
    vocabs: list[tuple[str, ...]] = []
    for block, plan in enumerate(plans):
        b0 = plan.first_question * num_branches
        b1 = b0 + len(plan.counts)
        raw_probes = _probe_answers(np.random.default_rng([seed, block, 1]), prof, plan)
        ids, finals, block_vocabs = _intern(np.random.default_rng([seed, block, 2]), plan, raw_probes)
        probe_ids[probe_offsets[b0] : probe_offsets[b1]] = ids
        final_ids[b0:b1] = finals
        vocabs.extend(block_vocabs)
        bar.update(len(plan.counts) // num_branches)
    bar.close()
    golds = [_number_strings()[g] for p in plans for g in p.gold_values.tolist()]
    info = SplitInfo(
        model=model,
        benchmark=benchmark,
        interval_tokens=interval_tokens,
        sampling={"profile": prof.name, "seed": seed, "max_tokens": prof.max_tokens, "trajectories": num_branches},
        source="autotts_gym.data.synthetic generator",
        extra={"profile": prof.to_dict()},
    )
    questions = [f"Synthetic question {q} ({prof.name}, seed {seed})" for q in range(num_questions)]
    branch_offsets = np.arange(num_questions + 1, dtype=np.int64) * num_branches
    totals = np.concatenate([p.totals for p in plans])
    return Split(info, questions, golds, branch_offsets, probe_offsets, probe_ids, final_ids, totals, vocabs)


@lru_cache(maxsize=1)
def default_store() -> Store:
    """The embedded default store: splits ``synthetic/search`` and ``synthetic/heldout``,
    30 questions x 128 branches each (the release's shape), default profile, seeds 0 and
    1. Built once per process (a fraction of a second) and cached; works offline."""
    return Store(
        [
            generate_split(30, 128, seed=0, benchmark="search"),
            generate_split(30, 128, seed=1, benchmark="heldout"),
        ],
        path=None,
    )


# --------------------------------------------------------------------------- model pieces
@dataclass(frozen=True)
class _Layout:
    """Raw answer slots of every question: 0 gold, 1 ERR, then distractors, interim
    answers and one-off answers."""

    distractors: int
    interim: int
    noise: int

    @property
    def first_interim(self) -> int:
        return _FIRST_DISTRACTOR + self.distractors

    @property
    def first_noise(self) -> int:
        return self.first_interim + self.interim

    @property
    def size(self) -> int:
        return self.first_noise + self.noise


@dataclass(frozen=True)
class _Plan:
    """Question- and branch-level draws of one block of questions."""

    first_question: int
    num_branches: int
    layout: _Layout
    gold_values: np.ndarray  # int64[Q], the gold answer (0-999)
    value_stride: np.ndarray  # int64[Q], unit mod 1000: distractor/interim values
    noise_shift: np.ndarray  # int64[Q], offset of the one-off values
    distractor_cdf: np.ndarray  # float64[Q, K], weights of the distractors as final answers
    distractor_interim_cdf: np.ndarray  # float64[Q, K], their own weights as interim answers
    interim_cdf: np.ndarray  # float64[Q, M]
    final_raw: np.ndarray  # int64[Q * B], raw slot of each branch's final answer
    correct: np.ndarray  # bool[Q * B]
    totals: np.ndarray  # int64[Q * B]
    counts: np.ndarray  # int64[Q * B], number of probes
    settle: np.ndarray  # int64[Q * B], index of the first settled probe


def _dirichlet_cdf(rng: np.random.Generator, rows: int, size: int, alpha: float) -> np.ndarray:
    weights = rng.gamma(alpha, size=(rows, size)) + 1e-12
    cdf = np.cumsum(weights, axis=1)
    cdf /= cdf[:, -1:]
    return cdf


def _sample_rows(rng: np.random.Generator, cdf: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """One index per entry of ``rows``, drawn from that row's cumulative distribution."""
    n_rows, width = cdf.shape
    # Row r's CDF lives in (r, r + 1]: one sorted array serves every row at once.
    flat = (cdf + np.arange(n_rows)[:, None]).ravel()
    idx = np.searchsorted(flat, rows + rng.random(len(rows)), side="right") - rows * width
    return np.minimum(idx, width - 1)


def _plan_block(
    rng: np.random.Generator, prof: Profile, first_question: int, nq: int, nb: int, delta: int
) -> _Plan:
    layout = _Layout(prof.distractors, prof.interim_answers, prof.noise_pool)
    skill = rng.standard_normal(nq)
    gold_share = 1.0 / (1.0 + np.exp(-(prof.skill_mean + prof.skill_sd * skill)))
    if prof.err_final_mean > 0:
        c = prof.err_final_concentration
        err_share = rng.beta(prof.err_final_mean * c, (1 - prof.err_final_mean) * c, nq)
    else:
        err_share = np.zeros(nq)
    distractor_cdf = _dirichlet_cdf(rng, nq, layout.distractors, prof.distractor_alpha)
    interim_cdf = _dirichlet_cdf(rng, nq, layout.interim, prof.interim_alpha)

    # Final answer of every branch: gold, ERR, one-off, or a distractor.
    wrong = (1 - gold_share) * (1 - err_share)
    category_cdf = np.cumsum(
        np.stack([gold_share * (1 - err_share), err_share, wrong * prof.noise_final, wrong * (1 - prof.noise_final)], 1),
        axis=1,
    )
    question_of = np.repeat(np.arange(nq), nb)
    u = rng.random(nq * nb)
    category = (u[:, None] > category_cdf[question_of]).sum(axis=1).clip(max=3)
    final_raw = np.where(category == 0, _GOLD, _ERR).astype(np.int64)
    noise = category == 2
    final_raw[noise] = layout.first_noise + rng.integers(0, layout.noise, int(noise.sum()))
    dist = np.flatnonzero(category == 3)
    final_raw[dist] = _FIRST_DISTRACTOR + _sample_rows(rng, distractor_cdf, question_of[dist])
    correct = category == 0

    # Length: log-normal, shorter for questions the model masters, longer for wrong branches.
    log_median = prof.length_log_median - prof.length_skill_slope * skill + prof.length_question_sd * rng.standard_normal(nq)
    log_len = log_median[question_of] + prof.length_wrong_shift * ~correct + prof.length_branch_sd * rng.standard_normal(nq * nb)
    totals = np.exp(np.minimum(log_len, 20.0))
    truncated = totals > prof.max_tokens
    totals[truncated] = prof.max_tokens + rng.integers(0, prof.overflow_tokens + 1, int(truncated.sum()))
    totals = np.maximum(totals, prof.min_tokens).astype(np.int64)

    offsets = rng.choice(np.array(COUNT_OFFSETS), size=nq * nb, p=_normalised(prof.count_offsets))
    counts = np.maximum(totals // delta + offsets, 1)
    settle_mean = settle_means(prof, log_len, correct)
    concentration = np.where(correct, prof.settle_correct[1], prof.settle_wrong[1])
    depth = rng.beta(settle_mean * concentration, (1 - settle_mean) * concentration)
    latest = counts - 1 - rng.poisson(prof.settle_tail, nq * nb)
    settle = np.maximum(np.minimum((depth * counts).astype(np.int64), latest), 0)
    return _Plan(
        first_question=first_question,
        num_branches=nb,
        layout=layout,
        gold_values=rng.integers(0, 1000, nq),
        value_stride=rng.choice(_UNITS_MOD_1000, nq),
        noise_shift=rng.integers(0, _NOISE_SPAN, nq),
        distractor_cdf=distractor_cdf,
        distractor_interim_cdf=_dirichlet_cdf(rng, nq, layout.distractors, prof.distractor_alpha),
        interim_cdf=interim_cdf,
        final_raw=final_raw,
        correct=correct,
        totals=totals,
        counts=counts,
        settle=settle,
    )


def settle_means(prof: Profile, log_tokens: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """Mean relative settling depth of branches of the given log length and correctness."""
    base = np.where(correct, prof.settle_correct[0], prof.settle_wrong[0])
    centre = prof.length_log_median + prof.length_wrong_shift * ~correct
    logit = np.log(base / (1 - base)) + prof.settle_length_slope * (log_tokens - centre)
    return 1.0 / (1.0 + np.exp(-logit))


def _normalised(p: tuple[float, ...]) -> np.ndarray:
    arr = np.asarray(p, dtype=float)
    if len(arr) != len(COUNT_OFFSETS) or arr.min() < 0 or arr.sum() <= 0:
        raise ValueError(f"count_offsets needs {len(COUNT_OFFSETS)} non-negative probabilities, got {p}")
    return arr / arr.sum()


def hump(x: np.ndarray, shape: tuple[float, float, float]) -> np.ndarray:
    """``peak * x^a (1-x)^b``, scaled so that its maximum over [0, 1] is ``peak``."""
    peak, a, b = shape
    mode = a / (a + b) if a + b > 0 else 0.5
    top = mode**a * (1 - mode) ** b
    return np.clip(peak * x**a * (1 - x) ** b / top, 0.0, 1.0)


def _probe_answers(rng: np.random.Generator, prof: Profile, plan: _Plan) -> np.ndarray:
    """Raw answer slots of every probe of the block, branch after branch."""
    counts = plan.counts
    n_probes = int(counts.sum())
    branch_of = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    position = np.arange(n_probes) - starts[branch_of]
    # Depth-dependent rates are read from tables over _DEPTH_BINS bins of (position + 0.5) / n.
    depth_bin = ((2 * position + 1) * _DEPTH_BINS) // (2 * counts[branch_of])
    settled = position >= plan.settle[branch_of]
    final = plan.final_raw[branch_of]
    centres = (np.arange(_DEPTH_BINS) + 0.5) / _DEPTH_BINS

    # Fresh draws of unsettled probes: own final, a distractor, a one-off, or an interim answer.
    fresh = final.copy()
    idx = np.flatnonzero(~settled)
    question_of = branch_of[idx] // plan.num_branches
    r = rng.random(len(idx), dtype=np.float32)
    cut1 = (prof.glimpse * (_GLIMPSE_RAMP[0] + _GLIMPSE_RAMP[1] * centres)).astype(np.float32)[depth_bin[idx]]
    cut2 = cut1 + np.float32(prof.distractor_interim)
    cut3 = cut2 + np.float32(prof.rare_interim)
    pick = np.flatnonzero((r >= cut1) & (r < cut2))
    fresh[idx[pick]] = _FIRST_DISTRACTOR + _sample_rows(rng, plan.distractor_interim_cdf, question_of[pick])
    pick = np.flatnonzero((r >= cut2) & (r < cut3))
    fresh[idx[pick]] = plan.layout.first_noise + rng.integers(0, plan.layout.noise, len(pick))
    pick = np.flatnonzero(r >= cut3)
    fresh[idx[pick]] = plan.layout.first_interim + _sample_rows(rng, plan.interim_cdf, question_of[pick])
    err_table = np.stack([hump(centres, prof.err_unsettled), hump(centres, prof.err_settled)]).astype(np.float32)
    fresh[rng.random(n_probes, dtype=np.float32) < err_table[settled.view(np.int8), depth_bin]] = _ERR

    # Unsettled probes repeat the previous one with probability `stickiness`: each takes
    # the value of the latest non-repeating position of its branch.
    repeat = (rng.random(n_probes, dtype=np.float32) < prof.stickiness) & ~settled & (position > 0)
    source = np.where(repeat, 0, np.arange(n_probes))
    np.maximum.accumulate(source, out=source)
    answers = fresh[source]
    answers[starts + counts - 1] = plan.final_raw  # the last probe is the final answer
    return answers


def _intern(rng: np.random.Generator, plan: _Plan, raw_probes: np.ndarray) -> tuple[np.ndarray, np.ndarray, list]:
    """Per-question answer ids (over the answers actually used, in a random order) and
    the vocabularies."""
    layout = plan.layout
    nq = len(plan.gold_values)
    probe_question = np.repeat(np.arange(len(plan.counts)) // plan.num_branches, plan.counts)
    final_question = np.arange(len(plan.counts)) // plan.num_branches
    # A random slot order per question hides which id is the gold answer.
    raw_at = rng.permuted(np.tile(np.arange(layout.size), (nq, 1)), axis=1)
    slot_of = np.argsort(raw_at, axis=1)
    probe_slot = slot_of[probe_question, raw_probes]
    final_slot = slot_of[final_question, plan.final_raw]
    used = np.zeros((nq, layout.size), bool)
    used[probe_question, probe_slot] = True
    used[final_question, final_slot] = True
    rank = np.cumsum(used, axis=1) - 1
    probe_ids = rank[probe_question, probe_slot]
    final_ids = rank[final_question, final_slot]

    rows, cols = np.nonzero(used)
    raw = raw_at[rows, cols]
    values = _answer_values(plan, rows, raw)
    strings = _number_strings()
    flat = [NO_ANSWER if v < 0 else strings[v] for v in values.tolist()]
    ends = np.cumsum(used.sum(axis=1)).tolist()
    vocabs = [tuple(flat[lo:hi]) for lo, hi in zip([0, *ends[:-1]], ends)]
    return probe_ids, final_ids, vocabs


def _answer_values(plan: _Plan, question: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """The integer behind each raw slot (-1 for ERR); distinct within a question."""
    layout = plan.layout
    gold = plan.gold_values[question]
    # Gold, distractors and interim answers: gold + i * stride (mod 1000), distinct for i < 1000.
    small = (gold + (raw - 1) * plan.value_stride[question]) % 1000
    noise = _NOISE_BASE + (plan.noise_shift[question] + (raw - layout.first_noise) * _NOISE_STRIDE) % _NOISE_SPAN
    values = np.where(raw >= layout.first_noise, noise, small)
    values[raw == _GOLD] = gold[raw == _GOLD]
    values[raw == _ERR] = -1
    return values


@lru_cache(maxsize=1)
def _number_strings() -> tuple[str, ...]:
    # Shared string objects: a large store's vocabularies hold references, not copies.
    return tuple(str(i) for i in range(_NOISE_BASE + _NOISE_SPAN))
