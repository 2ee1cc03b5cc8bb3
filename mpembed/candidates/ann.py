"""Nearest-neighbour helpers shared by brand and triplet mining: annoy for large sets, chunked
numpy brute force as the exact reference (and for groups too small for an index to pay off)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from annoy import AnnoyIndex

# Rows of the (chunk x n) similarity block kept in memory at once by exact search: 1024 x 100k
# float32 is 400 MB at worst, and BLAS is already at full speed at this size.
EXACT_CHUNK = 1024


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """float32 unit rows, so that a dot product is the cosine (zero rows stay zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def build_annoy(vectors: np.ndarray, n_trees: int, seed: int, n_jobs: int = 1) -> AnnoyIndex:
    """Angular annoy index over `vectors` (item i = row i).

    `set_seed` fixes the random hyperplanes; the build is single-threaded by default because
    annoy's multi-threaded build numbers tree nodes in thread-timing order, which can change
    which leaves a bounded search visits, i.e. results would not be reproducible.
    """
    index = AnnoyIndex(vectors.shape[1], "angular")
    index.set_seed(seed)
    for i, row in enumerate(vectors):
        index.add_item(i, row)
    index.build(n_trees, n_jobs=n_jobs)
    return index


def angular_to_cos(distance: np.ndarray) -> np.ndarray:
    """annoy's angular distance is sqrt(2 - 2 cos) between unit vectors."""
    return 1.0 - np.square(distance) / 2.0


def annoy_neighbours(
    index: AnnoyIndex, items: np.ndarray, k: int, search_k: int = -1
) -> tuple[np.ndarray, np.ndarray]:
    """Up to k nearest other items for each of `items` (index item ids).

    Returns (ids, cos), both (len(items), k), best first, padded with -1 / NaN. The item itself
    is removed, which is why k + 1 neighbours are requested.
    """
    ids = np.full((len(items), k), -1, dtype=np.int64)
    cos = np.full((len(items), k), np.nan, dtype=np.float32)
    for row, item in enumerate(items.tolist()):
        found, dist = index.get_nns_by_item(item, k + 1, search_k=search_k, include_distances=True)
        kept = [(f, d) for f, d in zip(found, dist, strict=True) if f != item][:k]
        if kept:
            f_arr, d_arr = zip(*kept, strict=True)
            ids[row, : len(kept)] = f_arr
            cos[row, : len(kept)] = angular_to_cos(np.asarray(d_arr))
    return ids, cos


def iter_chunks(n: int, size: int = EXACT_CHUNK) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def top_k_rows(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Column ids and values of the k largest entries per row, best first (-inf entries are
    returned as id -1 / NaN so masked-out columns never come back). May modify `scores`."""
    k = min(k, scores.shape[1])
    if k == 0:
        empty = np.empty((scores.shape[0], 0))
        return empty.astype(np.int64), empty.astype(np.float32)
    if k <= 4:
        ids, vals = _top_few(scores, k)
    else:
        ids = np.argpartition(scores, scores.shape[1] - k, axis=1)[:, -k:]
        vals = np.take_along_axis(scores, ids, axis=1)
        order = np.argsort(-vals, axis=1, kind="stable")
        ids = np.take_along_axis(ids, order, axis=1).astype(np.int64)
        vals = np.take_along_axis(vals, order, axis=1)
    vals = vals.astype(np.float32)
    masked = ~np.isfinite(vals)
    ids[masked] = -1
    vals[masked] = np.nan
    return ids, vals


def _top_few(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """k rounds of argmax: several times faster than argpartition for the k = 1..4 hardest
    negatives that triplet mining asks of every anchor (argmax is one vectorised pass)."""
    rows = np.arange(scores.shape[0])
    ids = np.empty((scores.shape[0], k), dtype=np.int64)
    vals = np.empty((scores.shape[0], k), dtype=scores.dtype)
    for col in range(k):
        ids[:, col] = np.argmax(scores, axis=1)
        vals[:, col] = scores[rows, ids[:, col]]
        scores[rows, ids[:, col]] = -np.inf
    return ids, vals


def exact_neighbours(vectors: np.ndarray, k: int, chunk: int = EXACT_CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest other rows by cosine (unit `vectors`), by chunked brute force.

    The reference that annoy's recall is measured against; O(n^2 d) time but O(chunk x n) memory.
    """
    n = len(vectors)
    ids = np.full((n, k), -1, dtype=np.int64)
    cos = np.full((n, k), np.nan, dtype=np.float32)
    for sl in iter_chunks(n, chunk):
        scores = vectors[sl] @ vectors.T
        scores[np.arange(sl.stop - sl.start), np.arange(sl.start, sl.stop)] = -np.inf
        got_ids, got_cos = top_k_rows(scores, k)
        ids[sl, : got_ids.shape[1]] = got_ids
        cos[sl, : got_cos.shape[1]] = got_cos
    return ids, cos


def recall_at_k(approx_ids: np.ndarray, exact_ids: np.ndarray) -> float:
    """Share of the exact k nearest neighbours that the approximate search also returned."""
    hits = total = 0
    for got, want in zip(approx_ids, exact_ids, strict=True):
        want = want[want >= 0]
        hits += len(np.intersect1d(got[got >= 0], want))
        total += len(want)
    return hits / total if total else 1.0
