"""prepare: group-level splits, leakage guard, outputs (bad input: test_bad_input.py)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from conftest import small_params
from mpembed.benchmarks.data import BenchmarkData, ClassificationSplit, RetrievalSplit, load_split, load_train
from mpembed.benchmarks.registry import BENCHMARKS
from mpembed.data.prepare import drop_leaks, eval_texts, run_prepare
from mpembed.data.splits import assert_no_leakage, assign_groups, find_leaks, normalize_text
from mpembed.errors import LeakageError
from mpembed.guard import check_training_leakage


def _prepare(raw: Path, out: Path, **prepare: object) -> dict:
    return run_prepare(small_params(raw, **prepare), out / "prepared", out / "prepare.json")


def test_normalize_text_ignores_case_yo_punctuation_spacing():
    assert normalize_text("  Ёлка,  ЗЕЛЁНАЯ!! ") == normalize_text("елка зеленая")
    assert normalize_text("кроссовки 42") != normalize_text("кроссовки 43")


def test_group_assignment_is_seeded_and_proportional():
    groups = list(range(1000))
    a, b = assign_groups(groups, 1, 0.1, 0.2), assign_groups(groups, 1, 0.1, 0.2)
    assert a == b and a != assign_groups(groups, 2, 0.1, 0.2)
    counts = pd.Series(a).value_counts()
    assert counts["test"] == 200 and counts["dev"] == 100 and counts["train"] == 700


def test_leak_finder_catches_near_duplicates_and_names_ids():
    test = {"t1": "Кроссовки Adidas, черные", "t2": "совсем другой текст"}
    assert find_leaks(test, ["кроссовки adidas черные"]) == ["t1"]
    with pytest.raises(LeakageError, match="t1"):
        assert_no_leakage(test, ["КРОССОВКИ ADIDAS   черные!"], where="demo")


def test_prepare_builds_every_benchmark_without_leaks(sample_dir, tmp_path):
    metrics = _prepare(sample_dir, tmp_path)
    prepared = tmp_path / "prepared"
    assert set(metrics["benchmarks"]) == {b.name for b in BENCHMARKS}
    for bench in BENCHMARKS:
        test = load_split(prepared / bench.name, "test")
        assert len(test) > 0, bench.name
        assert isinstance(test, RetrievalSplit if bench.kind == "retrieval" else ClassificationSplit)
        if bench.task is not None:
            assert load_train(prepared / bench.name), bench.name
    # Product-level split: no test product's variant group occurs in train.
    products = pd.read_csv(prepared / "products.csv")
    by_split = products.groupby("split")["model_id"].apply(set)
    assert not by_split["train"] & by_split["test"]
    # The guard that evaluate runs agrees.
    (tmp_path / "candidates").mkdir()
    check_training_leakage(prepared, tmp_path / "candidates", BENCHMARKS)
    assert metrics["products"]["test"] > 0 and "dropped_leak_total" in metrics


def test_leaked_document_leaves_corpus_and_judgments_queries_stay_if_anything_is_left():
    def split() -> RetrievalSplit:
        return RetrievalSplit(
            queries={"q1": "похожие на кофемашину", "q2": "похожие на чайник", "q3": "кофемашина автоматическая"},
            corpus={"d1": "Кофемашина автоматическая", "d2": "Кофемашина капсульная", "d3": "Чайник"},
            relevant={"q1": {"d1": 1, "d2": 2}, "q2": {"d1": 1}, "q3": {"d2": 1}},
        )

    bench = BenchmarkData(train=[], dev=split(), test=split())
    items, docs = drop_leaks({"demo": bench}, ["кофемашина, автоматическая"])
    for s in (bench.dev, bench.test):
        assert "d1" not in s.corpus and s.relevant == {"q1": {"d2": 2}}  # q3 leaked, q2 had only d1
        assert list(s.queries) == ["q1"]
    assert items == {"demo": 4} and docs == {"demo": 2}


def test_leaked_test_text_is_dropped_and_counted(raw_copy, tmp_path):
    # Copy one review text into another product's review: whichever lands in test is a leak.
    reviews = pd.read_csv(raw_copy / "reviews.csv", dtype=str, keep_default_na=False)
    clean = _prepare(raw_copy, tmp_path / "a")["benchmarks"]["WBReviewsClassification"]["dropped_leak"]
    reviews.loc[reviews.index % 2 == 0, "text"] = reviews["text"].iloc[0]
    reviews.to_csv(raw_copy / "reviews.csv", index=False)
    leaky = _prepare(raw_copy, tmp_path / "b")["benchmarks"]["WBReviewsClassification"]
    assert leaky["dropped_leak"] > clean
    test_rows = load_split(tmp_path / "b" / "prepared" / "WBReviewsClassification", "test").rows
    assert test_rows and all(r["text"] != reviews["text"].iloc[0] for r in test_rows)


def test_same_seed_same_outputs(sample_dir, tmp_path):
    _prepare(sample_dir, tmp_path / "a")
    _prepare(sample_dir, tmp_path / "b")
    for bench in BENCHMARKS:
        a = eval_texts(load_split(tmp_path / "a" / "prepared" / bench.name, "test"))
        b = eval_texts(load_split(tmp_path / "b" / "prepared" / bench.name, "test"))
        assert a == b


# Bad-input cases (schema errors, broken files, bad params) live in test_bad_input.py.


def test_search_training_pairs_each_positive_with_a_negative_in_relevance_order():
    from mpembed.benchmarks.loaders import _search_train

    judged = pd.DataFrame(
        [  # query_id, query, nm_id, relevance, title
            (2, "кеды белые", 7, 1, "кеды серые"),
            (1, "чайник", 5, 2, "чайник стальной"),
            (1, "чайник", 3, 3, "чайник стеклянный"),
            (1, "чайник", 4, 3, "чайник с подсветкой"),
            (1, "чайник", 9, 0, "термос"),
            (1, "чайник", 8, 1, "кофеварка"),
            (2, "кеды белые", 6, 3, "кеды белые низкие"),
            (3, "зонт", 1, 3, "зонт складной"),  # no negative: adds no row
        ],
        columns=["query_id", "query", "nm_id", "relevance", "title"],
    )
    assert _search_train(judged) == [
        {"anchor": "чайник", "positive": "чайник стеклянный", "negative": "кофеварка"},
        {"anchor": "чайник", "positive": "чайник с подсветкой", "negative": "термос"},
        {"anchor": "чайник", "positive": "чайник стальной", "negative": "кофеварка"},
        {"anchor": "кеды белые", "positive": "кеды белые низкие", "negative": "кеды серые"},
    ]
