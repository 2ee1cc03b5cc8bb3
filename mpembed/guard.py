"""Leakage guard run by `evaluate`: no test text may occur in anything `train` consumed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from mpembed.benchmarks.data import load_split, load_train
from mpembed.benchmarks.registry import BENCHMARKS, Benchmark
from mpembed.data.prepare import eval_texts
from mpembed.data.splits import LeakIndex, assert_no_leakage

TRAIN_COLUMNS = ("anchor", "positive", "negative", "text")


def training_texts(prepared: Path, candidates: Path) -> Iterator[str]:
    for bench in BENCHMARKS:
        for row in load_train(prepared / bench.name):
            yield from (str(v) for k, v in row.items() if k in TRAIN_COLUMNS)
    for csv in sorted(candidates.glob("*.csv")):
        frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
        for col in TRAIN_COLUMNS:
            if col in frame.columns:
                yield from frame[col]


def check_training_leakage(prepared: Path, candidates: Path, benchmarks: tuple[Benchmark, ...]) -> None:
    seen = LeakIndex(training_texts(prepared, candidates))
    for bench in benchmarks:
        assert_no_leakage(eval_texts(load_split(prepared / bench.name, "test")), seen, where=f"{bench.name} test")
