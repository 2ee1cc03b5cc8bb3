"""Product-level train/dev/test assignment and the leakage guard.

Splitting happens on groups (a product's variant group, a brand group, a support fact, a user),
so an item and its near-duplicates (the same item in another colour, another spelling of the same
brand) always land on the same side.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from mpembed.errors import LeakageError

SPLITS = ("train", "dev", "test")

_NON_WORD = re.compile(r"[^\w]+", re.UNICODE)


def normalize_text(text: str) -> str:
    """Key under which two texts count as near-duplicates: case, ё/е, punctuation and spacing ignored."""
    text = unicodedata.normalize("NFKC", str(text)).lower().replace("ё", "е")
    return _NON_WORD.sub(" ", text).strip()


def assign_groups(groups: Iterable[object], seed: int, dev_fraction: float, test_fraction: float) -> dict:
    """Map each distinct group to a split with a seeded shuffle (same seed, same assignment)."""
    unique = sorted({str(g) for g in groups})
    order = np.random.default_rng(seed).permutation(len(unique))
    n_test = max(1, round(len(unique) * test_fraction)) if len(unique) >= 3 else 0
    n_dev = max(1, round(len(unique) * dev_fraction)) if len(unique) >= 3 else 0
    out = {}
    for rank, idx in enumerate(order):
        out[unique[idx]] = "test" if rank < n_test else "dev" if rank < n_test + n_dev else "train"
    return out


def split_column(keys: pd.Series, seed: int, dev_fraction: float, test_fraction: float) -> pd.Series:
    mapping = assign_groups(keys, seed, dev_fraction, test_fraction)
    return keys.astype(str).map(mapping)


def find_leaks(test_texts: Mapping[str, str], train_texts: Iterable[str]) -> list[str]:
    """Ids of test texts whose normalised form occurs among the training texts."""
    seen = {normalize_text(t) for t in train_texts}
    return [tid for tid, text in test_texts.items() if normalize_text(text) in seen]


def assert_no_leakage(test_texts: Mapping[str, str], train_texts: Iterable[str], where: str) -> None:
    """Fail the run, naming the offending ids, if any test text leaked into training data."""
    leaks = find_leaks(test_texts, train_texts)
    if leaks:
        shown = ", ".join(leaks[:10]) + (f" and {len(leaks) - 10} more" if len(leaks) > 10 else "")
        raise LeakageError(f"{where}: {len(leaks)} test text(s) also occur in training data: {shown}")
