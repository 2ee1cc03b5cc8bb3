"""Product-level train/dev/test assignment and the leakage guard.

Splitting happens on groups (a product's variant group, a brand group, a support fact, a user),
so an item and its near-duplicates (the same item in another colour, another spelling of the same
brand) always land on the same side.
"""

from __future__ import annotations

import hashlib
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
    return dict(zip(unique, _ranked_splits(len(unique), seed, dev_fraction, test_fraction), strict=True))


def _ranked_splits(n: int, seed: int, dev_fraction: float, test_fraction: float) -> np.ndarray:
    """Split of each of n sorted groups: a seeded permutation ranks them, the first ranks go to test."""
    order = np.random.default_rng(seed).permutation(n)
    n_test = max(1, round(n * test_fraction)) if n >= 3 else 0
    n_dev = max(1, round(n * dev_fraction)) if n >= 3 else 0
    by_rank = np.array(["test"] * n_test + ["dev"] * n_dev + ["train"] * (n - n_test - n_dev), dtype=object)
    out = np.empty(n, dtype=object)
    out[order] = by_rank
    return out


def split_column(keys: pd.Series, seed: int, dev_fraction: float, test_fraction: float) -> pd.Series:
    """`assign_groups` for a column, vectorised: factorize with sort=True orders the distinct keys
    as `sorted` does (code-point order), so both give the same assignment."""
    codes, uniques = pd.factorize(keys.astype(str), sort=True)
    return pd.Series(_ranked_splits(len(uniques), seed, dev_fraction, test_fraction)[codes], index=keys.index)


class LeakIndex:
    """Normalised training texts, built once and probed by every benchmark's dev and test split.

    It holds 16-byte blake2b digests, not the texts: at 1M products the training side is millions
    of strings (a description is ~1 KB in memory) and a set of their normalised copies would double
    that. A digest collision (p < 1e-20 here) could only drop one evaluation item, never admit a leak.
    """

    def __init__(self, train_texts: Iterable[str]) -> None:
        # Dedup by identity of text first: the same description feeds several benchmarks.
        self._keys = {_digest(t) for t in set(train_texts)}

    def __contains__(self, text: object) -> bool:
        return _digest(str(text)) in self._keys

    def __len__(self) -> int:
        return len(self._keys)


def _digest(text: str) -> bytes:
    return hashlib.blake2b(normalize_text(text).encode("utf-8"), digest_size=16).digest()


def find_leaks(test_texts: Mapping[str, str], train: LeakIndex | Iterable[str]) -> list[str]:
    """Ids of test texts whose normalised form occurs among the training texts."""
    index = train if isinstance(train, LeakIndex) else LeakIndex(train)
    return [tid for tid, text in test_texts.items() if text in index]


def assert_no_leakage(test_texts: Mapping[str, str], train: LeakIndex | Iterable[str], where: str) -> None:
    """Fail the run, naming the offending ids, if any test text leaked into training data."""
    leaks = find_leaks(test_texts, train)
    if leaks:
        shown = ", ".join(leaks[:10]) + (f" and {len(leaks) - 10} more" if len(leaks) > 10 else "")
        raise LeakageError(f"{where}: {len(leaks)} test text(s) also occur in training data: {shown}")
