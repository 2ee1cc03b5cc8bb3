"""(anchor, positive, hard negative) product triplets from the category tree and embeddings.

* positive: same leaf category, among the anchor's k nearest same-leaf products; products of
  another `model_id` come first (a variant of the same model in another colour teaches the
  model little), the same model only when no other product is among those neighbours.
* negative: same parent category, another leaf, hardest (highest cosine) first: close enough to
  be informative, still a different kind of product.
* confidence: sigmoid((pos_sim - neg_sim) / temperature). 0.5 means the current embedder cannot
  tell positive from negative; well below 0.5 flags a likely mislabelled or too-hard triplet
  that a training stage may down-weight or drop.

Search is per leaf: each leaf of a parent gets a searcher, exact (chunked matrix products) up to
`exact_max` products, where that is both exact and faster than building an index, and an annoy
index above. Positives come from the anchor's own leaf. Negatives come from the `neg_leaves`
other leaves of the parent whose centroids are closest to the anchor's leaf centroid (all other
leaves when the parent has no more): the hardest negatives sit in neighbouring leaves, and one
annoy index over the whole parent would return mostly same-leaf neighbours, so its lists would
have to be very long to reach another leaf.

Negatives are searched exactly in a seeded random pool of at most `neg_pool` products of each
neighbouring leaf (the whole leaf when it is smaller). The hardest of ~10 x 1000 candidates is
still a hard negative, and the work per anchor stays bounded as leaves grow: searching whole
leaves costs the square of the leaf size, which made the stage grow faster than n log n between
100k and 1M products (reports/scale.md). Memory stays at the embeddings plus one parent's
searchers and a (chunk x leaf) score block; nothing is n x n.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import pandas as pd
from annoy import AnnoyIndex

from mpembed.candidates.ann import (
    annoy_neighbours,
    build_annoy,
    iter_chunks,
    l2_normalise,
    top_k_rows,
)

COLUMNS = ["anchor_id", "positive_id", "negative_id", "pos_sim", "neg_sim", "confidence"]
REQUIRED = ("nm_id", "category", "parentname", "model_id", "title")


@dataclass(frozen=True)
class _Config:
    n_per_anchor: int
    k: int
    n_trees: int
    search_k: int
    seed: int
    exact_max: int
    neg_leaves: int
    neg_pool: int


class _LeafSearch:
    """k nearest products inside one leaf: exact for small leaves, annoy above exact_max."""

    def __init__(self, rows: np.ndarray, vectors: np.ndarray, config: _Config, rng: np.random.Generator):
        self.rows = rows  # global row ids, local id = position
        self.vectors = vectors
        # local ids of the negative pool, in leaf order; the whole leaf when it fits
        self.pool = (
            np.arange(len(rows))
            if len(rows) <= config.neg_pool
            else np.sort(rng.choice(len(rows), size=config.neg_pool, replace=False))
        )
        self.pool_vectors = vectors[self.pool]
        # annoy's default budget is n_trees x (neighbours asked); pin it to a k-neighbour search
        # (n_trees x k) so a query that asks for fewer neighbours is not searched more coarsely
        self.search_k = config.search_k if config.search_k > 0 else config.n_trees * config.k
        self.index: AnnoyIndex | None = None
        if len(rows) > config.exact_max:
            self.index = build_annoy(vectors, config.n_trees, config.seed)

    def members(self, local: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Neighbours of the leaf's own products (self excluded): global rows (-1 = none), cos."""
        if self.index is not None:
            ids, cos = annoy_neighbours(self.index, local, k, self.search_k)
        else:
            scores = self.vectors[local] @ self.vectors.T
            scores[np.arange(len(local)), local] = -np.inf
            ids, cos = top_k_rows(scores, k)
        return self._global(ids, k), _pad(cos, k, np.nan)

    def query(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Nearest pool products of outside vectors, exactly: global rows (-1 = none), cos."""
        ids, cos = top_k_rows(queries @ self.pool_vectors.T, k)
        local = np.where(ids >= 0, self.pool[np.maximum(ids, 0)], -1)
        return self._global(local, k), _pad(cos, k, np.nan)

    def _global(self, local_ids: np.ndarray, k: int) -> np.ndarray:
        local_ids = _pad(local_ids, k, -1)
        return np.where(local_ids >= 0, self.rows[np.maximum(local_ids, 0)], -1)


def mine_triplets(
    products: pd.DataFrame,
    embeddings: np.ndarray,
    *,
    n_per_anchor: int = 1,
    k: int = 20,
    annoy_n_trees: int = 20,
    seed: int = 0,
    max_anchors: int | None = None,
    temperature: float = 0.05,
    exact_max: int = 10_000,
    neg_leaves: int = 10,
    neg_pool: int = 1000,
    search_k: int = -1,
) -> pd.DataFrame:
    """Triplets of `nm_id`s, row-aligned `products` / L2-normalised `embeddings`.

    Up to `n_per_anchor` triplets per anchor (the i-th one pairs the i-th positive with the i-th
    negative, cycling the shorter list); anchors without a positive or a negative yield none.
    `max_anchors` samples that many anchors with `seed`; `neg_pool` bounds the products per
    neighbouring leaf that negatives are searched among (pools drawn with `seed`). Columns
    `COLUMNS`, ordered by anchor row.
    """
    _validate(products, embeddings, n_per_anchor, k, temperature)
    vectors = _unit_float32(embeddings)
    if neg_pool < 1:
        raise ValueError("need neg_pool >= 1")
    config = _Config(n_per_anchor, k, annoy_n_trees, search_k, seed, exact_max, neg_leaves, neg_pool)
    rng = np.random.default_rng(seed)  # negative pools, drawn leaf by leaf in catalogue order
    is_anchor = _anchor_mask(len(products), max_anchors, seed)
    model = _model_codes(products["model_id"])
    parts = []
    for members in _leaves_by_parent(products):
        if len(members) > 1 and any(is_anchor[rows].any() and len(rows) > 1 for rows in members):
            parts.extend(_mine_parent(members, vectors, is_anchor, model, config, rng))
    return _to_frame(products, parts, temperature)


def _leaves_by_parent(products: pd.DataFrame) -> list[list[np.ndarray]]:
    """Row ids of each leaf (a (parentname, category) pair), grouped by parent."""
    if len(products) == 0:
        return []
    tree = products[["parentname", "category"]].astype(str)
    parent = tree.groupby("parentname", sort=True).ngroup().to_numpy()
    leaf = tree.groupby(["parentname", "category"], sort=True).ngroup().to_numpy()
    order = np.lexsort((np.arange(len(products)), leaf))  # rows grouped by leaf, leaves by parent
    starts = np.flatnonzero(np.r_[True, leaf[order][1:] != leaf[order][:-1], True])
    leaf_rows = [order[a:b] for a, b in pairwise(starts)]
    leaf_parent = np.array([parent[rows[0]] for rows in leaf_rows])
    bounds = np.flatnonzero(np.r_[True, leaf_parent[1:] != leaf_parent[:-1], True])
    return [leaf_rows[a:b] for a, b in pairwise(bounds)]


def _validate(products: pd.DataFrame, embeddings: np.ndarray, n_per_anchor: int, k: int, temperature: float) -> None:
    missing = [c for c in REQUIRED if c not in products.columns]
    if missing:
        raise ValueError(f"products lack columns {missing}")
    if len(products) != len(embeddings):
        raise ValueError(f"{len(products)} products but {len(embeddings)} embeddings")
    if n_per_anchor < 1 or k < n_per_anchor or temperature <= 0:
        raise ValueError("need n_per_anchor >= 1, k >= n_per_anchor and temperature > 0")


def _unit_float32(embeddings: np.ndarray) -> np.ndarray:
    """float32 unit rows; no copy when they already are (1M x 384 is 1.5 GB)."""
    vectors = np.asarray(embeddings, dtype=np.float32)
    if np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3):
        return vectors
    return l2_normalise(vectors)


def _anchor_mask(n: int, max_anchors: int | None, seed: int) -> np.ndarray:
    mask = np.ones(n, dtype=bool)
    if max_anchors is not None and max_anchors < n:
        mask[:] = False
        mask[np.random.default_rng(seed).choice(n, size=max_anchors, replace=False)] = True
    return mask


def _model_codes(model_id: pd.Series) -> np.ndarray:
    """Integer model codes; a missing model_id (NaN, or "" when read with keep_default_na=False)
    is its own model, never "the same model" as another product."""
    blank = model_id.isna() | (model_id.astype(str).str.strip() == "")
    codes = pd.factorize(model_id.where(~blank))[0].astype(np.int64)
    missing = codes < 0
    codes[missing] = -1 - np.flatnonzero(missing)
    return codes


def _neighbour_leaves(searchers: list[_LeafSearch], n: int) -> np.ndarray:
    """For each leaf of a parent, the n other leaves with the most similar centroid, best first."""
    centroids = l2_normalise(np.stack([s.vectors.mean(axis=0) for s in searchers]))
    sims = centroids @ centroids.T
    np.fill_diagonal(sims, -np.inf)
    return top_k_rows(sims, min(n, len(searchers) - 1))[0]


def _mine_parent(
    members: list[np.ndarray],
    vectors: np.ndarray,
    is_anchor: np.ndarray,
    model: np.ndarray,
    config: _Config,
    rng: np.random.Generator,
) -> list[tuple[np.ndarray, ...]]:
    """Triplet columns (anchor, positive, negative rows, pos_sim, neg_sim) for one parent."""
    searchers = [_LeafSearch(rows, vectors[rows], config, rng) for rows in members]
    nearest_leaves = _neighbour_leaves(searchers, config.neg_leaves)
    out = []
    for leaf, search in enumerate(searchers):
        local = np.flatnonzero(is_anchor[search.rows]) if len(search.rows) > 1 else np.empty(0, dtype=np.int64)
        for sl in iter_chunks(len(local)):
            anchors = local[sl]
            pos, pos_sim = search.members(anchors, config.k)
            neg, neg_sim = _hardest_negatives(search.vectors[anchors], searchers, nearest_leaves[leaf], config)
            rows = search.rows[anchors]
            pos, pos_sim = _prefer_other_model(model, rows, pos, pos_sim, config.n_per_anchor)
            out.append(_pair_up(rows, pos, pos_sim, neg, neg_sim, config.n_per_anchor))
    return out


def _hardest_negatives(
    queries: np.ndarray, searchers: list[_LeafSearch], leaves: np.ndarray, config: _Config
) -> tuple[np.ndarray, np.ndarray]:
    """The n_per_anchor highest-cosine products over the given other leaves."""
    found = [searchers[j].query(queries, config.n_per_anchor) for j in leaves if j >= 0]
    ids = np.concatenate([f[0] for f in found], axis=1)
    cos = np.concatenate([f[1] for f in found], axis=1)
    best, _ = top_k_rows(np.where(ids >= 0, cos, -np.inf), config.n_per_anchor)
    valid = best >= 0
    safe = np.maximum(best, 0)
    return (
        _pad(np.where(valid, np.take_along_axis(ids, safe, axis=1), -1), config.n_per_anchor, -1),
        _pad(np.where(valid, np.take_along_axis(cos, safe, axis=1), np.nan), config.n_per_anchor, np.nan),
    )


def _pad(values: np.ndarray, width: int, fill: float) -> np.ndarray:
    """Right-pad a (rows x w) array to `width` columns (a leaf smaller than k gives fewer)."""
    if values.shape[1] >= width:
        return values
    pad = np.full((values.shape[0], width - values.shape[1]), fill, dtype=values.dtype)
    return np.concatenate([values, pad], axis=1)


def _prefer_other_model(
    model: np.ndarray, anchors: np.ndarray, pos: np.ndarray, pos_sim: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Reorder each row's positive candidates: other model first, then same model, each by
    cosine; keep the first n."""
    valid = pos >= 0
    other_model = valid & (model[np.maximum(pos, 0)] != model[anchors][:, None])
    # tier 2: other model, 1: same model, 0: empty slot; cosine (in [-1, 1]) orders within a tier
    key = np.where(valid, other_model + 1.0, 0.0) * 4.0 + np.nan_to_num(pos_sim, nan=-2.0)
    order = np.argsort(-key, axis=1, kind="stable")[:, :n]
    return np.take_along_axis(pos, order, axis=1), np.take_along_axis(pos_sim, order, axis=1)


def _pair_up(
    anchors: np.ndarray, pos: np.ndarray, pos_sim: np.ndarray, neg: np.ndarray, neg_sim: np.ndarray, n: int
) -> tuple[np.ndarray, ...]:
    """Triplet j of an anchor = (positive j mod #pos, negative j mod #neg), j < max(#pos, #neg)
    and j < n: every triplet is distinct and no candidate is wasted."""
    n_pos, n_neg = (pos >= 0).sum(axis=1), (neg >= 0).sum(axis=1)
    count = np.where((n_pos > 0) & (n_neg > 0), np.minimum(n, np.maximum(n_pos, n_neg)), 0)
    row = np.repeat(np.arange(len(anchors)), count)
    j = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    p_col, n_col = j % np.maximum(n_pos[row], 1), j % np.maximum(n_neg[row], 1)
    return anchors[row], pos[row, p_col], neg[row, n_col], pos_sim[row, p_col], neg_sim[row, n_col]


def confidence(pos_sim: np.ndarray, neg_sim: np.ndarray, temperature: float) -> np.ndarray:
    """sigmoid((pos_sim - neg_sim) / temperature): 0.5 at a zero margin, monotone in the margin."""
    margin = (np.asarray(pos_sim, dtype=np.float64) - np.asarray(neg_sim, dtype=np.float64)) / temperature
    return 0.5 * (1.0 + np.tanh(margin / 2.0))  # = 1 / (1 + exp(-margin)) without overflow


def _to_frame(products: pd.DataFrame, parts: list[tuple[np.ndarray, ...]], temperature: float) -> pd.DataFrame:
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype="int64" if c.endswith("_id") else "float64") for c in COLUMNS})
    a, p, n, ps, ns = (np.concatenate(cols) for cols in zip(*parts, strict=True))
    order = np.argsort(a, kind="stable")
    nm = products["nm_id"].to_numpy()
    frame = pd.DataFrame(
        {
            "anchor_id": nm[a[order]],
            "positive_id": nm[p[order]],
            "negative_id": nm[n[order]],
            "pos_sim": np.round(ps[order].astype(np.float64), 6),
            "neg_sim": np.round(ns[order].astype(np.float64), 6),
        }
    )
    frame["confidence"] = np.round(confidence(frame["pos_sim"], frame["neg_sim"], temperature), 6)
    frame = frame[frame["anchor_id"] != frame["positive_id"]]
    return frame.drop_duplicates(["anchor_id", "positive_id", "negative_id"], ignore_index=True)
