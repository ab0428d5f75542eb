"""The replay store: building, the engine's question layout, lookups, and the Parquet format."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from autotts_gym.data.sources import load_store
from autotts_gym.data.store import Split, SplitInfo, Store, StoreError

DELTA = 500

# Question 0: gold "5" given by branches; ERR present. Question 1: gold never given, no ERR,
# one branch without probes, and a final answer ("8") seen before a later probe ("6"): ids
# are interned in first-seen order over (probes of branch 0, its final, probes of branch 1, ...).
BRANCHES = [
    [
        (["3", "5", "5"], 1700, "5"),  # total > P * Delta
        (["ERR", "7"], 600, "7"),  # total < P * Delta: final step costs nothing extra
        (["5"], 500, "5"),  # total == P * Delta
    ],
    [
        (["9", "9"], 1001, "9"),
        ([], 120, "8"),  # finishes within its first interval
        (["6"], 400, "6"),
    ],
]
CONFIDENCE = [
    [[0.1, 0.6, 0.9], [0.25, 0.5], [0.75]],
    [[0.5, 0.55], [], [0.3]],
]


def make_split(model: str = "M", benchmark: str = "quiz", confidence: bool = False) -> Split:
    info = SplitInfo(
        model=model,
        benchmark=benchmark,
        interval_tokens=DELTA,
        sampling={"temperature": 0.7},
        source="unit test",
        extra={"note": "tiny"},
    )
    return Split.from_lists(
        info, ["q0", "q1"], ["5", "42"], BRANCHES, probe_confidence=CONFIDENCE if confidence else None
    )


def all_branches(split: Split) -> list[list[tuple[list[str], int, str]]]:
    return [[split.branch_answers(q, b) for b in range(split.num_branches(q))] for q in range(split.num_questions)]


# --------------------------------------------------------------------------- building
def test_from_lists_interns_answers_per_question_in_first_seen_order():
    split = make_split()
    assert split.vocabs == (("3", "5", "ERR", "7"), ("9", "8", "6"))
    # Ids are per question: "9" is id 0 in question 1 although question 0 has four answers.
    assert split.probe_ids.tolist() == [0, 1, 1, 2, 3, 1, 0, 0, 2]
    assert split.final_ids.tolist() == [1, 3, 1, 0, 1, 2]
    assert split.total_tokens.tolist() == [1700, 600, 500, 1001, 120, 400]
    assert split.branch_offsets.tolist() == [0, 3, 6]
    assert split.probe_offsets.tolist() == [0, 3, 5, 6, 8, 8, 9]
    assert all_branches(split) == [[(list(p), t, f) for p, t, f in pool] for pool in BRANCHES]


def test_gold_and_no_answer_ids():
    split = make_split()
    q0, q1 = split.question(0), split.question(1)
    assert (q0.gold, q0.gold_id, q0.vocab[q0.gold_id]) == ("5", 1, "5")
    assert (q0.no_answer_id, q0.vocab[q0.no_answer_id]) == (2, "ERR")
    assert (q1.gold, q1.gold_id, q1.no_answer_id) == ("42", -1, -1)


def test_question_layout_follows_the_cost_accounting():
    q = make_split().question(0)
    assert q.index == 0 and q.text == "q0" and q.interval_tokens == DELTA
    assert q.num_branches == 3
    assert q.num_probes == (3, 2, 1)
    assert q.total_tokens == (1700, 600, 500)
    assert q.final_answer == (1, 3, 1)
    # Depth k <= P: probe k; depth P + 1: the final answer. Index 0 is unused.
    assert q.answer_at == ((-1, 0, 1, 1, 1), (-1, 2, 3, 3), (-1, 1, 1))
    # tokens_at[b][k] = k * Delta for k <= P, then max(total, P * Delta).
    assert q.tokens_at == ((0, 500, 1000, 1500, 1700), (0, 500, 1000, 1000), (0, 500, 500))
    short = make_split().question(1)
    assert short.answer_at == ((-1, 0, 0, 0), (-1, 1), (-1, 2, 2))
    assert short.tokens_at == ((0, 500, 1000, 1001), (0, 120), (0, 500, 500))
    assert short.probe_confidence is None


def test_question_layout_matches_accounting_rule_on_random_pools():
    rng = np.random.default_rng(3)
    pools = [
        [([str(a) for a in rng.integers(0, 4, rng.integers(0, 6))], int(rng.integers(0, 4000)), "1") for _ in range(9)]
        for _ in range(4)
    ]
    split = Split.from_lists(SplitInfo("M", "r", interval_tokens=300), ["q"] * 4, ["1"] * 4, pools)
    for qi, pool in enumerate(pools):
        data = split.question(qi)
        for b, (probes, total, final) in enumerate(pool):
            p = len(probes)
            assert [data.vocab[a] for a in data.answer_at[b][1:]] == [*probes, final]
            assert list(data.tokens_at[b]) == [k * 300 for k in range(p + 1)] + [max(total, p * 300)]


def test_question_is_cached_and_out_of_range_is_an_error():
    split = make_split()
    assert split.question(1) is split.question(1)
    with pytest.raises(IndexError, match="split M/quiz has 2 questions; question 2 does not exist"):
        split.question(2)


def test_probe_confidence_layout_and_length_check():
    q = make_split(confidence=True).question(0)
    conf = q.probe_confidence
    # Indexed by depth like answer_at: NaN at depth 0 and at the finishing step.
    assert [math.isnan(c) for c in conf[0]] == [True, False, False, False, True]
    assert conf[0][1:4] == pytest.approx((0.1, 0.6, 0.9))
    assert conf[2][1] == pytest.approx(0.75)
    bad = [[[0.1, 0.6], [0.25, 0.5], [0.75]], CONFIDENCE[1]]
    with pytest.raises(StoreError, match="question 0, branch 0: probe_confidence has 2 values for 3 probe answers"):
        Split.from_lists(SplitInfo("M", "b"), ["q0", "q1"], ["5", "42"], BRANCHES, probe_confidence=bad)


def test_arrays_are_immutable():
    split = make_split(confidence=True)
    for array in (
        split.branch_offsets,
        split.probe_offsets,
        split.probe_ids,
        split.final_ids,
        split.total_tokens,
        split.probe_confidence,
    ):
        assert not array.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 1
    with pytest.raises(AttributeError):
        split.question(0).gold_id = 3  # QuestionData is a frozen dataclass


def test_inconsistent_arrays_are_rejected():
    with pytest.raises(StoreError, match="per-branch arrays do not match branch_offsets"):
        Split(
            SplitInfo("M", "b"),
            ["q"],
            ["1"],
            np.array([0, 2]),
            np.array([0, 1, 2]),
            np.array([0, 0]),
            np.array([0]),
            np.array([10, 20]),
            [("1",)],
        )


# --------------------------------------------------------------------------- save / load
@pytest.mark.parametrize("confidence", [False, True], ids=["no confidence", "with confidence"])
def test_save_load_round_trip(tmp_path, confidence):
    split = make_split(confidence=confidence)
    Store([split, make_split(benchmark="other")]).save(tmp_path / "store")
    loaded = Store.load(tmp_path / "store")
    assert loaded.path == str(tmp_path / "store")
    back = loaded.split("M/quiz")
    assert back.info == split.info
    assert back.questions == split.questions and back.gold_answers == split.gold_answers
    assert all_branches(back) == all_branches(split)
    # Same interned ids and vocabularies as the split that was saved.
    assert back.vocabs == split.vocabs
    for name in ("branch_offsets", "probe_offsets", "probe_ids", "final_ids", "total_tokens"):
        assert np.array_equal(getattr(back, name), getattr(split, name)), name
    for q in range(split.num_questions):
        a, b = back.question(q), split.question(q)
        assert (a.answer_at, a.tokens_at, a.gold_id, a.no_answer_id) == (
            b.answer_at,
            b.tokens_at,
            b.gold_id,
            b.no_answer_id,
        )
    if confidence:
        assert np.allclose(back.probe_confidence, split.probe_confidence)
        assert back.probe_confidence.dtype == np.float32
    else:
        assert back.probe_confidence is None
    assert loaded.split("M/other").probe_confidence is None


def test_parquet_files_are_plain_parquet(tmp_path):
    Store([make_split(model="Org/M", confidence=True)]).save(tmp_path / "store")
    manifest = json.loads((tmp_path / "store" / "manifest.json").read_text())
    assert manifest["format"] == "autotts-store" and manifest["version"] == 1
    entry = manifest["splits"][0]
    assert entry["model"] == "Org/M" and entry["path"] == "Org_M/quiz"  # "/" is not a folder level
    assert (entry["num_questions"], entry["num_branches"], entry["has_probe_confidence"]) == (2, 6, True)
    folder = tmp_path / "store" / entry["path"]
    questions = pq.read_table(folder / "questions.parquet").to_pylist()
    assert questions == [
        {"question_index": 0, "question": "q0", "gold_answer": "5"},
        {"question_index": 1, "question": "q1", "gold_answer": "42"},
    ]
    branches = pq.read_table(folder / "branches.parquet")
    assert branches.column_names == [
        "question_index",
        "branch_index",
        "probe_answers",
        "total_tokens",
        "final_answer",
        "probe_confidence",
    ]
    assert branches.schema.field("total_tokens").type == pa.int64()
    rows = branches.to_pylist()
    assert [(r["question_index"], r["branch_index"]) for r in rows] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    assert [(r["probe_answers"], r["total_tokens"], r["final_answer"]) for r in rows] == [
        (list(p), t, f) for pool in BRANCHES for p, t, f in pool
    ]
    assert rows[1]["probe_confidence"] == pytest.approx([0.25, 0.5])
    assert rows[4]["probe_confidence"] == []
    assert rows[5]["probe_confidence"] == pytest.approx([0.3])


def test_save_refuses_to_overwrite_unless_asked(tmp_path):
    target = tmp_path / "store"
    Store([make_split()]).save(target)
    with pytest.raises(FileExistsError, match="exists; pass overwrite=True"):
        Store([make_split(benchmark="new")]).save(target)
    Store([make_split(benchmark="new")]).save(target, overwrite=True)
    assert [s.name for s in Store.load(target)] == ["M/new"]
    assert sorted(os.listdir(tmp_path)) == ["store"]  # no temporary folders left behind


def test_failed_save_leaves_nothing_behind_and_keeps_the_old_store(tmp_path, monkeypatch):
    target = tmp_path / "store"
    Store([make_split()]).save(target)
    before = {p.relative_to(target): p.read_bytes() for p in target.rglob("*") if p.is_file()}
    calls = []

    def failing_write(table, where, *args, **kwargs):
        calls.append(where)
        if len(calls) == 3:  # the first file of the second split
            raise OSError("disk full")
        return real_write(table, where, *args, **kwargs)

    real_write = pq.write_table
    monkeypatch.setattr(pq, "write_table", failing_write)
    with pytest.raises(OSError, match="disk full"):
        Store([make_split(benchmark="a"), make_split(benchmark="b")]).save(target, overwrite=True)
    with pytest.raises(OSError, match="disk full"):
        calls.clear()
        Store([make_split(benchmark="a"), make_split(benchmark="b")]).save(tmp_path / "fresh")
    assert sorted(os.listdir(tmp_path)) == ["store"]
    after = {p.relative_to(target): p.read_bytes() for p in target.rglob("*") if p.is_file()}
    assert after == before


# --------------------------------------------------------------------------- bad stores
def _saved(tmp_path) -> tuple:
    Store([make_split()]).save(tmp_path / "store")
    path = tmp_path / "store" / "manifest.json"
    return path, json.loads(path.read_text())


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda m: m.__setitem__("format", "other"), "field 'format' is 'other', expected 'autotts-store'"),
        (lambda m: m.__setitem__("version", 99), "unsupported store version 99"),
        (lambda m: m.__setitem__("splits", []), "field 'splits' must be a non-empty list"),
        (lambda m: m.pop("splits"), "field 'splits' must be a non-empty list, got None"),
        (lambda m: m["splits"].__setitem__(0, "M/quiz"), r"splits\[0\] must be an object, got str"),
        (lambda m: m["splits"][0].pop("interval_tokens"), r"splits\[0\] lacks field 'interval_tokens'"),
        (lambda m: m["splits"][0].pop("path"), r"splits\[0\] lacks field 'path'"),
        (
            lambda m: m["splits"][0].__setitem__("interval_tokens", "500"),
            r"'interval_tokens': must be an integer, got str '500' \(allowed: integers 1\.\.10000000\)",
        ),
        (
            lambda m: m["splits"][0].__setitem__("interval_tokens", 0),
            r"'interval_tokens': is out of range: 0 \(allowed: integers 1\.\.10000000\)",
        ),
        (lambda m: m["splits"][0].__setitem__("model", 3), r"splits\[0\]: field 'model' must be a non-empty string"),
    ],
    ids=[
        "format",
        "version",
        "no splits",
        "splits missing",
        "entry not object",
        "no interval",
        "no path",
        "interval str",
        "interval zero",
        "model not str",
    ],
)
def test_bad_manifest_names_file_and_field(tmp_path, change, expected):
    path, manifest = _saved(tmp_path)
    change(manifest)
    path.write_text(json.dumps(manifest))
    with pytest.raises(StoreError, match=expected) as err:
        Store.load(path.parent)
    assert str(err.value).startswith(f"{path}: ")


def test_unreadable_manifest_and_missing_files(tmp_path):
    path, _ = _saved(tmp_path)
    path.write_text("{not json")
    with pytest.raises(StoreError, match=rf"^{path}: malformed JSON"):
        Store.load(path.parent)
    path.write_text("[1, 2]")
    with pytest.raises(StoreError, match=rf"^{path}: expected a JSON object, got list"):
        Store.load(path.parent)
    with pytest.raises(StoreError, match="not a store \\(no manifest.json\\)"):
        Store.load(tmp_path)
    path, _ = _saved(tmp_path / "again")
    branches = path.parent / "M" / "quiz" / "branches.parquet"
    branches.unlink()
    with pytest.raises(StoreError, match=rf"^{branches}: missing file of split M/quiz"):
        list(Store.load(path.parent))
    branches.write_bytes(b"not parquet")
    with pytest.raises(StoreError, match=rf"^{branches}: unreadable Parquet file of split M/quiz"):
        list(Store.load(path.parent))


def test_parquet_missing_column_is_named(tmp_path):
    path, _ = _saved(tmp_path)
    branches = path.parent / "M" / "quiz" / "branches.parquet"
    pq.write_table(pq.read_table(branches).drop_columns(["total_tokens"]), branches)
    with pytest.raises(StoreError, match=rf"^{branches}: missing column 'total_tokens'"):
        Store.load(path.parent).select(["M/quiz"])


def test_one_broken_split_blocks_only_what_asks_for_it(tmp_path, capsys):
    """A corrupted Parquet file in one split: the others still load, in the library and
    through every command that names them; asking for the broken one names its file."""
    from autotts_gym.cli.main import main
    from autotts_gym.data.synthetic import generate_split

    folder = tmp_path / "store"
    Store([generate_split(3, 8, 0, model="M", benchmark="good"), generate_split(3, 8, 1, model="M", benchmark="bad")]).save(folder)
    broken = folder / "M" / "bad" / "branches.parquet"
    broken.write_bytes(b"PAR1 torn in half")
    store = Store.load(folder)
    assert store.names == ["M/good", "M/bad"] and store.benchmarks == ["good", "bad"]
    assert [s.name for s in store.select(["M/good"])] == ["M/good"]
    with pytest.raises(StoreError, match=rf"^{broken}: unreadable Parquet file of split M/bad"):
        store.select(["*/bad"])
    argv = ["evaluate", str(folder), "--method", "sc", "--seeds", "1", "--workers", "1", "--no-progress"]
    assert main([*argv, "--splits", "M/good"]) == 0
    assert "M/good" in capsys.readouterr().out
    assert main(argv) == 2
    assert f"{broken}: unreadable Parquet file of split M/bad" in capsys.readouterr().err


# --------------------------------------------------------------------------- lookups
@pytest.fixture
def store() -> Store:
    return Store([make_split("A", "x"), make_split("A", "y"), make_split("B", "x"), make_split("Org/C", "y")])


def test_store_lists_models_and_benchmarks(store):
    assert store.models == ["A", "B", "Org/C"]
    assert store.benchmarks == ["x", "y"]
    assert len(store) == 4 and [s.name for s in store] == ["A/x", "A/y", "B/x", "Org/C/y"]


def test_split_lookup(store):
    assert store.split("A/y").name == "A/y"
    assert store.split("Org/C/y").name == "Org/C/y"
    assert store.split(model="B").name == "B/x"
    assert store.split(model="A", benchmark="x").name == "A/x"
    assert Store([make_split()]).split().name == "M/quiz"
    with pytest.raises(KeyError, match=r"'x' matches 2 splits of store <memory>; it holds: A/x, A/y, B/x, Org/C/y"):
        store.split("x")
    with pytest.raises(KeyError, match="'A/z' matches 0 splits"):
        store.split("A/z")
    with pytest.raises(KeyError, match="model=A benchmark=None' matches 2 splits"):
        store.split(model="A")


def test_select_patterns(store):
    names = lambda splits: [s.name for s in splits]  # noqa: E731
    assert names(store.select(None)) == names(store.select([])) == names(store)
    assert names(store.select(["x"])) == ["A/x", "B/x"]
    assert names(store.select(["A/*"])) == ["A/x", "A/y"]
    assert names(store.select(["*/y"])) == ["A/y", "Org/C/y"]
    assert names(store.select(["Org/C/*"])) == ["Org/C/y"]
    assert names(store.select(["B/x", "*/x"])) == ["B/x", "A/x"]  # no duplicates, order as asked
    with pytest.raises(KeyError, match="no split matches 'C/y'; the store holds: A/x, A/y, B/x, Org/C/y"):
        store.select(["C/y"])


def test_store_rejects_duplicates_and_emptiness():
    with pytest.raises(StoreError, match="duplicate splits"):
        Store([make_split(), make_split()])
    with pytest.raises(StoreError, match="at least one split"):
        Store([])


def test_load_store_dispatch(tmp_path):
    saved = Store([make_split()])
    assert load_store(saved) is saved
    saved.save(tmp_path / "store")
    assert load_store(tmp_path / "store").split().name == "M/quiz"
    release = tmp_path / "Model" / "bench.json"
    release.parent.mkdir()
    branches = [[["1"], 400, "1"]]
    release.write_text(
        json.dumps(
            [
                {
                    "question": "q",
                    "gold_answer": "1",
                    "probe_freq": 500,
                    "final_answers_trace": ["1"],
                    "each_branch": branches,
                }
            ]
        )
    )
    assert load_store(str(release)).split().name == "Model/bench"
    with pytest.raises(StoreError, match="no such store, release JSON file or folder"):
        load_store(tmp_path / "nothing")


# --------------------------------------------------------------------------- summary
def test_summary_figures():
    s = make_split(confidence=True).summary()
    assert (s["model"], s["benchmark"], s["questions"], s["branches"]) == ("M", "quiz", 2, 6)
    assert s["branches_per_question"] == [3, 3]
    assert s["interval_tokens"] == DELTA and s["probes"] == 9
    totals = [1700, 600, 500, 1001, 120, 400]
    assert s["tokens_mean"] == pytest.approx(sum(totals) / 6)
    assert s["tokens_median"] == 550 and s["tokens_max"] == 1700
    assert s["tokens_p90"] == pytest.approx(np.percentile(totals, 90))
    assert s["probes_per_branch_mean"] == pytest.approx(9 / 6)
    assert s["branch_accuracy"] == pytest.approx(2 / 6)  # two branches of question 0 end on gold "5"
    assert s["no_answer_probe_rate"] == pytest.approx(1 / 9)
    assert s["has_probe_confidence"] is True
    assert (s["source"], s["sampling"]) == ("unit test", {"temperature": 0.7})


# --------------------------------------------------------------------------- bounds on Parquet (issue 13)
def _edit_column(path, name, values, type_=None) -> None:
    table = pq.read_table(path)
    i = table.column_names.index(name)
    pq.write_table(table.set_column(i, name, pa.array(values, type_)), path)


def _invalid_utf8_golds(path) -> None:
    # "5" and then the bytes ff fe: a string column that is not UTF-8 (hand-made buffers).
    offsets = pa.py_buffer(np.array([0, 1, 3], np.int32).tobytes())
    golds = pa.Array.from_buffers(pa.string(), 2, [None, offsets, pa.py_buffer(b"5\xff\xfe")])
    table = pq.read_table(path)
    pq.write_table(table.set_column(table.column_names.index("gold_answer"), "gold_answer", golds), path)


TOTALS = [b[1] for pool in BRANCHES for b in pool]
PARQUET_CASES = [
    # (id, file, edit, substrings of the message)
    ("total_tokens 10**17", "branches", lambda p: _edit_column(p, "total_tokens", TOTALS[:4] + [10**17] + TOTALS[5:],
                                                                pa.int64()),
     ["question 1, branch 1, field total_tokens", "out of range: 100000000000000000", "0..10000000"]),
    ("total_tokens uint64 2**64-1", "branches",
     lambda p: _edit_column(p, "total_tokens", [2**64 - 1] + TOTALS[1:], pa.uint64()),
     ["question 0, branch 0, field total_tokens", "out of range: 18446744073709551615"]),
    ("total_tokens negative", "branches", lambda p: _edit_column(p, "total_tokens", [-1] + TOTALS[1:], pa.int64()),
     ["question 0, branch 0, field total_tokens", "is negative: -1"]),
    ("total_tokens float", "branches", lambda p: _edit_column(p, "total_tokens", [float(t) for t in TOTALS]),
     ["field total_tokens", "Arrow type double"]),
    ("total_tokens null", "branches", lambda p: _edit_column(p, "total_tokens", [None] + TOTALS[1:], pa.int64()),
     ["field total_tokens", "null in row 0"]),
    ("total_tokens 0 with 3 probes", "branches", lambda p: _edit_column(p, "total_tokens", [0] + TOTALS[1:], pa.int64()),
     ["question 0, branch 0, field probe_answers", "3 probe answers for total_tokens 0", "len(probe_answers) <="]),
    ("question_index out of range", "branches",
     lambda p: _edit_column(p, "question_index", [0, 0, 0, 1, 1, 7], pa.int32()),
     ["field question_index", "row 5 refers to question 7"]),
    ("branch_index wrong", "branches",
     lambda p: _edit_column(p, "branch_index", [0, 1, 2, 0, 5, 2], pa.int32()),
     ["question 1, branch 1, field branch_index", "is 5 in row 4"]),
    ("gold empty", "questions", lambda p: _edit_column(p, "gold_answer", ["5", ""]),
     ["question 1, field gold_answer", "is empty"]),
    ("gold invalid UTF-8", "questions", _invalid_utf8_golds, ["question 1, field gold_answer", "not valid UTF-8"]),
    ("final answer too long", "branches",
     lambda p: _edit_column(p, "final_answer", ["5", "7", "5", "9", "8" * 5000, "6"]),
     ["question 1, branch 1, field final_answer", "5000 characters", "at most 4096"]),
]


@pytest.mark.parametrize("file, edit, expected", [c[1:] for c in PARQUET_CASES], ids=[c[0] for c in PARQUET_CASES])
def test_out_of_bounds_parquet_names_file_split_question_and_field(tmp_path, file, edit, expected):
    path, _ = _saved(tmp_path)
    target = path.parent / "M" / "quiz" / f"{file}.parquet"
    edit(target)
    store = Store.load(path.parent)  # splits are read when asked for
    with pytest.raises(StoreError) as err:
        store.split("M/quiz")
    message = str(err.value)
    assert message.startswith(f"{target}: split M/quiz")
    for part in expected:
        assert part in message, message


def test_probe_confidence_of_the_wrong_length_is_named(tmp_path):
    Store([make_split(confidence=True)]).save(tmp_path / "store")
    target = tmp_path / "store" / "M" / "quiz" / "branches.parquet"
    conf = [[0.1, 0.6, 0.9], [0.25], [0.75], [0.5, 0.55], [], [0.3]]
    _edit_column(target, "probe_confidence", conf, pa.list_(pa.float32()))
    with pytest.raises(StoreError, match=r"question 0, branch 1, field probe_confidence: has 1 values for 2 probe"):
        Store.load(tmp_path / "store").split("M/quiz")


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda t: t.replace('"interval_tokens": 500', '"interval_tokens": 1000000000000000000000000000000'),
         r"splits\[0\]: field 'interval_tokens': is out of range: 10+ \(allowed: integers 1\.\.10000000\)"),
        (lambda t: t.replace('"interval_tokens": 500', '"interval_tokens": 500, "interval_tokens": 400'),
         r"field splits\[0\]\.interval_tokens: key 'interval_tokens' appears twice"),
        (lambda t: t.replace('"path": "M/quiz"', '"path": "../../M/quiz"'), r"field 'path': '\.\./\.\./M/quiz' leaves"),
        (lambda t: t.replace('"extra": {', '"extra": [{').replace('"note": "tiny"\n      }', '"note": "tiny"}]'),
         r"field 'extra': got list"),
        (lambda t: t.replace('"model": "M"', '"model": "\\ud800"'), r"field splits\[0\]\.model: holds a lone surrogate"),
    ],
    ids=["interval 10**30", "duplicate key", "path outside", "extra a list", "lone surrogate"],
)
def test_bad_manifest_values_are_named(tmp_path, edit, expected):
    path, _ = _saved(tmp_path)
    text = path.read_text()
    edited = edit(text)
    assert edited != text
    path.write_text(edited)
    with pytest.raises(StoreError, match=expected) as err:
        Store.load(path.parent)
    assert str(err.value).startswith(f"{path}: ")


def test_save_refuses_a_split_out_of_bounds_and_writes_nothing(tmp_path):
    info = SplitInfo(model="M", benchmark="quiz", interval_tokens=DELTA)
    bad = Split.from_lists(info, ["q0"], ["5"], [[(["5"], 700, "5"), (["5"] * 30, 0, "5")]])
    with pytest.raises(StoreError, match=r"^split M/quiz, question 0, branch 1, field probe_answers: 30 probe answers"):
        Store([bad]).save(tmp_path / "store")
    assert os.listdir(tmp_path) == []


def test_a_saved_store_has_the_usual_mode(tmp_path):
    """Not mkdtemp's 0700: a lab shares stores on a cluster."""
    import os

    old = os.umask(0o022)
    try:
        path, _ = _saved(tmp_path)
        folder = path.parent
        assert folder.stat().st_mode & 0o777 == 0o755
        assert all(p.stat().st_mode & 0o777 in (0o755, 0o644) for p in folder.rglob("*"))
        os.umask(0o002)
        Store.load(folder).save(folder, overwrite=True)
        assert folder.stat().st_mode & 0o777 == 0o775
    finally:
        os.umask(old)


def test_answer_order_numbers_those_answers_first_and_survives_a_save(tmp_path):
    pools = [[(["b", "a"], 10, "c"), (["a"], 5, "ERR")], [(["x"], 3, "y")]]
    info = SplitInfo(model="m", benchmark="b", interval_tokens=5, extra={"answer_order": [["ERR", "c", "a"], ["ERR"]]})
    split = Split.from_lists(info, ["q0", "q1"], ["a", "y"], pools)
    assert split.vocabs == (("ERR", "c", "a", "b"), ("ERR", "x", "y"))  # listed answers come first, held or not
    q = split.question(0)
    assert [q.vocab[i] for i in q.answer_at[0][1:]] == ["b", "a", "c"] and q.vocab[q.final_answer[1]] == "ERR"
    assert q.no_answer_id == 0 and q.gold_id == 2 and split.question(1).no_answer_id == 0
    Store([split]).save(tmp_path / "s")
    loaded = load_store(str(tmp_path / "s")).select(["m/b"])[0]
    assert loaded.vocabs == split.vocabs
    assert np.array_equal(loaded.probe_ids, split.probe_ids) and np.array_equal(loaded.final_ids, split.final_ids)
