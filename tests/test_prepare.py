"""prepare: schema validation errors, group-level splits, leakage guard, outputs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import ROOT, small_params
from mpembed.benchmarks.data import ClassificationSplit, RetrievalSplit, load_split, load_train
from mpembed.benchmarks.registry import BENCHMARKS
from mpembed.data.prepare import eval_texts, run_prepare
from mpembed.data.splits import assert_no_leakage, assign_groups, find_leaks, normalize_text
from mpembed.errors import DataError, LeakageError
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


def _corrupt(raw: Path, table: str, edit) -> None:
    frame = pd.read_csv(raw / f"{table}.csv", dtype=str, keep_default_na=False)
    frame = edit(frame)
    frame.to_csv(raw / f"{table}.csv", index=False)


@pytest.mark.parametrize(
    ("table", "edit", "row", "column", "what"),
    [
        ("products", lambda f: f.drop(columns=["title"]), None, "title", "missing required column"),
        ("products", lambda f: f.assign(title=f["title"].mask(f.index == 4, "   ")), 5, "title", "empty"),
        ("reviews", lambda f: f.assign(rating=f["rating"].mask(f.index == 2, "7")), 3, "rating", "outside"),
        ("reviews", lambda f: f.assign(rating=f["rating"].mask(f.index == 0, "five")), 1, "rating", "number"),
        ("users", lambda f: f.assign(gender=f["gender"].mask(f.index == 1, "unknown")), 2, "gender", "unknown label"),
        ("products", lambda f: pd.concat([f, f.iloc[[3]].assign(title="другой")]), None, "nm_id", "duplicate"),
        ("reviews", lambda f: f.assign(nm_id=f["nm_id"].mask(f.index == 0, "99999999")), 1, "nm_id", "not in products"),
    ],
)
def test_bad_input_names_file_row_column_and_writes_nothing(raw_copy, tmp_path, table, edit, row, column, what):
    _corrupt(raw_copy, table, edit)
    with pytest.raises(DataError) as err:
        _prepare(raw_copy, tmp_path)
    msg = str(err.value)
    assert f"{table}.csv" in msg and f"column '{column}'" in msg and what in msg
    if row is not None:
        assert f"row {row}," in msg
    assert not (tmp_path / "prepared").exists() and not (tmp_path / "prepare.json").exists()


def test_broken_utf8_and_truncated_csv_are_named(raw_copy, tmp_path):
    path = raw_copy / "reviews.csv"
    path.write_bytes(path.read_bytes()[:-40].rstrip(b"\n") + b',"unterminated\n')
    with pytest.raises(DataError, match=r"reviews\.csv, row \d+"):
        _prepare(raw_copy, tmp_path)
    path.write_bytes(b"review_id,nm_id,text,rating\n1,1,\xff\xfe bad,5\n")
    with pytest.raises(DataError, match="not valid UTF-8"):
        _prepare(raw_copy, tmp_path)


def test_stage_cli_prints_one_line_and_exits_nonzero(raw_copy, tmp_path):
    _corrupt(raw_copy, "products", lambda f: f.assign(title=f["title"].mask(f.index == 9, "")))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"prepare": {"raw_dir": str(raw_copy)}}))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "stages.prepare"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "products.csv, row 10, column 'title'" in lines[0]
    assert not (tmp_path / "data").exists() and not (tmp_path / "metrics").exists()
