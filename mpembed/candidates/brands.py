"""Brand synonym candidates from three switchable sources, a combined score, and threshold choice.

Sources (each retrieves pairs; afterwards every enabled source scores every retrieved pair):

* translit — equal `translit_key` (similarity 1.0) or equal `skeleton_key` (`SKELETON_SIM`):
  different scripts and renderings of one name ("Адидас"/"adidas", "Найк"/"Nike").
* ngram — cosine of char n-gram TF-IDF vectors of the translit keys, top `ngram_k` per name:
  typos and partial variants ("addidas"/"adidas", "samsng"/"samsung").
* embed — cosine of the model's embeddings via an annoy index, top `annoy_k` per name: spellings
  the model knows are related although their letters differ.

Score: noisy-OR of per-source evidence. Each similarity is rescaled so that the source's own
retrieval floor maps to 0 and identity to 1 (`e = (sim - floor) / (1 - floor)`, clipped), then
weighted by a fixed reliability `SOURCE_WEIGHTS` and combined as `1 - prod(1 - w * e)`: one strong
source is enough, agreeing sources add up, and the result stays in [0, 1]. The weights are not
fitted; `choose_threshold` picks the cut on a dev set instead, which only needs the ranking.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from mpembed.candidates.ann import annoy_neighbours, build_annoy, iter_chunks, l2_normalise
from mpembed.candidates.translit import skeleton_key, translit_key

SOURCES = ("translit", "ngram", "embed")
# Reliability of one source's full-strength evidence: an equal translit key is as good as proof;
# n-gram and embedding neighbours at cosine 1 are still occasionally different brands
# ("Samsung"/"Samsonite" share letters, embeddings put competitors side by side).
SOURCE_WEIGHTS = {"translit": 1.0, "ngram": 0.9, "embed": 0.9}
# A skeleton-only match is weaker than an equal translit key: the skeleton merges vowels.
SKELETON_SIM = 0.8
# Buckets of equal keys bigger than this are linked as a star (equal translit keys: same brand,
# components unchanged) or skipped (equal skeletons: too generic to be evidence), so that no
# bucket produces a quadratic number of pairs.
MAX_BUCKET = 50
# N-grams present in more than this share of names (and more than NGRAM_RETRIEVAL_MIN_CAP names)
# are left out of the n-gram *retrieval*, not of the similarity: their IDF is low anyway, and they
# would make the sparse product dense (every name sharing "er" compared with every other).
NGRAM_RETRIEVAL_MAX_DF = 0.02
NGRAM_RETRIEVAL_MIN_CAP = 200
COLUMNS = ["a", "b", "score", "sources", "sim_translit", "sim_ngram", "sim_embed"]


def find_brand_candidates(
    spellings: list[str],
    embeddings: np.ndarray | None,
    *,
    use_translit: bool,
    use_char_ngrams: bool,
    use_annoy: bool,
    ngram_range: tuple[int, int] = (2, 4),
    ngram_k: int = 10,
    ngram_min_sim: float = 0.5,
    annoy_n_trees: int = 20,
    annoy_search_k: int = -1,
    annoy_k: int = 10,
    annoy_min_cos: float = 0.8,
    seed: int = 0,
) -> pd.DataFrame:
    """Candidate synonym pairs among distinct `spellings` (embeddings row-aligned with them).

    One row per unordered pair with a < b, columns `COLUMNS`, sorted by score descending. The
    `sim_*` column of a disabled source is NaN; `sources` lists the enabled sources whose own
    floor the pair passes (translit: equal key or skeleton; ngram: >= ngram_min_sim; embed:
    >= annoy_min_cos), joined with "+".
    """
    if use_annoy and embeddings is None:
        raise ValueError("use_annoy needs embeddings")
    if embeddings is not None and len(embeddings) != len(spellings):
        raise ValueError(f"{len(spellings)} spellings but {len(embeddings)} embeddings")
    names, first_rows = np.unique(np.asarray(spellings, dtype=object).astype(str), return_index=True)
    if len(names) < 2:
        return pd.DataFrame({c: pd.Series(dtype=object if c in ("a", "b", "sources") else float) for c in COLUMNS})
    keys = [translit_key(n) for n in names]
    vectors = l2_normalise(np.asarray(embeddings)[first_rows]) if embeddings is not None else None
    tfidf = _ngram_matrix(keys, ngram_range) if use_char_ngrams else None

    found = []
    if use_translit:
        found.append(_translit_pairs(keys, [skeleton_key(n) for n in names]))
    if tfidf is not None:
        found.append(_ngram_pairs(tfidf, ngram_k, ngram_min_sim))
    if use_annoy and vectors is not None:
        found.append(_annoy_pairs(vectors, annoy_n_trees, annoy_search_k, annoy_k, annoy_min_cos, seed))
    codes = np.unique(np.concatenate(found)) if found else np.empty(0, dtype=np.int64)
    i, j = np.divmod(codes, len(names))

    sims = {
        "translit": _translit_sim(names, keys, i, j) if use_translit else None,
        "ngram": _rowwise_sparse_dot(tfidf, i, j) if tfidf is not None else None,
        "embed": np.einsum("ij,ij->i", vectors[i], vectors[j]) if use_annoy and vectors is not None else None,
    }
    floors = {"translit": 0.0, "ngram": ngram_min_sim, "embed": annoy_min_cos}
    frame = pd.DataFrame({"a": names[i].astype(str), "b": names[j].astype(str)})
    frame["score"] = combine_scores(sims, floors, len(codes))
    frame["sources"] = _source_labels(sims, floors, len(codes))
    for source in SOURCES:
        sim = sims[source]
        frame[f"sim_{source}"] = np.nan if sim is None else np.round(sim.astype(np.float64), 6)
    frame = frame[frame["sources"] != ""]
    return frame.sort_values(["score", "a", "b"], ascending=[False, True, True], ignore_index=True)[COLUMNS]


def combine_scores(sims: dict[str, np.ndarray | None], floors: dict[str, float], n: int) -> np.ndarray:
    """Noisy-OR of rescaled, weighted per-source evidence (see module docstring)."""
    miss = np.ones(n)
    for source, sim in sims.items():
        if sim is None:
            continue
        floor = floors[source]
        evidence = np.clip((sim - floor) / max(1.0 - floor, 1e-6), 0.0, 1.0)
        miss *= 1.0 - SOURCE_WEIGHTS[source] * evidence
    return np.round(1.0 - miss, 6)


def _source_labels(sims: dict[str, np.ndarray | None], floors: dict[str, float], n: int) -> np.ndarray:
    labels = np.full(n, "", dtype=object)
    for source in SOURCES:
        sim = sims[source]
        if sim is None:
            continue
        passes = sim > 0 if source == "translit" else sim >= floors[source] - 1e-6
        labels = np.where(passes, np.where(labels == "", source, labels + "+" + source), labels)
    return labels


def _pair_codes(i: np.ndarray, j: np.ndarray, n: int) -> np.ndarray:
    """Unordered pair -> one int64 (min * n + max), so that sources can be unioned with np.unique.
    Names are sorted, so index order is the a < b string order."""
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    keep = lo != hi
    return lo[keep].astype(np.int64) * n + hi[keep]


def _bucket_pairs(keys: list[str], star_when_big: bool) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs of names with equal non-empty keys, bounded by MAX_BUCKET (see there)."""
    frame = pd.DataFrame({"key": keys, "idx": np.arange(len(keys))})
    frame = frame[frame["key"] != ""]
    sizes = frame.groupby("key")["idx"].transform("size")
    left, right = [], []
    for _, members in frame[sizes > 1].groupby("key", sort=True)["idx"]:
        m = members.to_numpy()
        if len(m) <= MAX_BUCKET:
            a, b = np.triu_indices(len(m), k=1)
            left.append(m[a])
            right.append(m[b])
        elif star_when_big:
            left.append(np.full(len(m) - 1, m[0]))
            right.append(m[1:])
    if not left:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    return np.concatenate(left), np.concatenate(right)


def _translit_pairs(keys: list[str], skeletons: list[str]) -> np.ndarray:
    n = len(keys)
    return np.concatenate(
        [
            _pair_codes(*_bucket_pairs(keys, star_when_big=True), n),
            _pair_codes(*_bucket_pairs(skeletons, star_when_big=False), n),
        ]
    )


def _translit_sim(names: np.ndarray, keys: list[str], i: np.ndarray, j: np.ndarray) -> np.ndarray:
    key_arr = np.asarray(keys, dtype=object)
    skel = np.asarray([skeleton_key(n) for n in names], dtype=object)
    same_key = key_arr[i] == key_arr[j]
    same_skel = (skel[i] == skel[j]) & (skel[i] != "")
    return np.where(same_key, 1.0, np.where(same_skel, SKELETON_SIM, 0.0))


def _ngram_matrix(keys: list[str], ngram_range: tuple[int, int]) -> sp.csr_matrix:
    """L2-normalised char_wb TF-IDF of the translit keys (so cosine = dot product); char_wb pads
    word edges, so a shared first/last letter counts, which matters for short brand names."""
    if not any(keys):  # names without a letter or digit: nothing to compare (sklearn would raise)
        return sp.csr_matrix((len(keys), 1), dtype=np.float32)
    vectoriser = TfidfVectorizer(analyzer="char_wb", ngram_range=ngram_range, lowercase=False, dtype=np.float32)
    return vectoriser.fit_transform(keys).tocsr()


def _ngram_pairs(tfidf: sp.csr_matrix, k: int, min_sim: float) -> np.ndarray:
    """Top-k n-gram neighbours per name with cosine >= min_sim, by chunked sparse products.

    A sparse product instead of sklearn NearestNeighbors, whose brute-force cosine densifies every
    (chunk x n) block: O(n^2) work for 100k names. Only names sharing a reasonably rare n-gram are
    compared (NGRAM_RETRIEVAL_MAX_DF). The cosine splits into a rare-n-gram part (the product) and
    a common-n-gram part bounded by the product of the common parts' norms (Cauchy-Schwarz), so
    pairs whose bound stays below min_sim are dropped unseen and only the rest are rescored exactly.
    """
    n = tfidf.shape[0]
    df = np.bincount(tfidf.indices, minlength=tfidf.shape[1])
    is_rare = df <= max(NGRAM_RETRIEVAL_MIN_CAP, NGRAM_RETRIEVAL_MAX_DF * n)
    rare = (tfidf @ sp.diags(is_rare.astype(np.float32))).tocsr()
    common = tfidf @ sp.diags((~is_rare).astype(np.float32))
    common_norm = np.sqrt(np.asarray(common.multiply(common).sum(axis=1)).ravel())
    rare_t = rare.T.tocsr()
    codes = []
    for sl in iter_chunks(n, 2048):
        block = (rare[sl] @ rare_t).tocoo()
        rows, cols = block.row + sl.start, block.col
        keep = (rows != cols) & (block.data + common_norm[rows] * common_norm[cols] >= min_sim - 1e-6)
        rows, cols = rows[keep], cols[keep]
        sim = _rowwise_sparse_dot(tfidf, rows, cols)
        ok = sim >= min_sim
        rows, cols, sim = rows[ok], cols[ok], sim[ok]
        order = np.lexsort((cols, -sim, rows))
        rows, cols = rows[order], cols[order]
        rank = np.arange(len(rows)) - np.searchsorted(rows, rows, side="left")
        codes.append(_pair_codes(rows[rank < k], cols[rank < k], n))
    return np.concatenate(codes) if codes else np.empty(0, dtype=np.int64)


def _rowwise_sparse_dot(matrix: sp.csr_matrix, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Cosine of rows i[t] and j[t] of an L2-normalised sparse matrix, without densifying."""
    if len(i) == 0:
        return np.empty(0, dtype=np.float32)
    return np.asarray(matrix[i].multiply(matrix[j]).sum(axis=1)).ravel().astype(np.float32)


def _annoy_pairs(
    vectors: np.ndarray, n_trees: int, search_k: int, k: int, min_cos: float, seed: int
) -> np.ndarray:
    index = build_annoy(vectors, n_trees, seed)
    ids, cos = annoy_neighbours(index, np.arange(len(vectors)), k, search_k)
    rows = np.repeat(np.arange(len(vectors)), ids.shape[1])
    ids, cos = ids.ravel(), cos.ravel()
    ok = (ids >= 0) & (cos >= min_cos)
    return _pair_codes(rows[ok], ids[ok], len(vectors))


def _gold_labels(candidates: pd.DataFrame, gold_groups: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """(labelled, is_synonym) per candidate row; a pair with a spelling outside gold_groups has
    no label and is left out of precision."""
    ga = candidates["a"].map(gold_groups)
    gb = candidates["b"].map(gold_groups)
    labelled = (ga.notna() & gb.notna()).to_numpy()
    return labelled, (labelled & (ga == gb).to_numpy())


def _n_gold_pairs(gold_groups: dict[str, int]) -> int:
    sizes = pd.Series(gold_groups).value_counts().to_numpy()
    return int((sizes * (sizes - 1) // 2).sum())


def pair_metrics(candidates: pd.DataFrame, gold_groups: dict[str, int], threshold: float) -> dict[str, float]:
    """Pairs with score >= threshold against the gold synonym pairs.

    Gold pairs are all unordered pairs of spellings sharing a group in `gold_groups` (spelling ->
    group id), so recall counts the pairs no source found at all. Precision is over accepted
    pairs whose both spellings are labelled.
    """
    labelled, positive = _gold_labels(candidates, gold_groups)
    accepted = (candidates["score"] >= threshold).to_numpy()
    n_accepted = int((accepted & labelled).sum())
    tp = int((accepted & positive).sum())
    n_gold = _n_gold_pairs(gold_groups)
    precision = tp / n_accepted if n_accepted else 1.0
    recall = tp / n_gold if n_gold else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "threshold": float(threshold),
        "n_candidates": int(accepted.sum()),
        "n_labelled": n_accepted,
        "n_gold_pairs": n_gold,
        "tp": tp,
        "fp": n_accepted - tp,
        "precision": precision,
        "recall": recall,
        "f1": f1,
    }


def choose_threshold(
    candidates: pd.DataFrame, gold_groups: dict[str, int], *, target_precision: float = 0.9
) -> float:
    """The lowest score threshold whose precision on the labelled dev pairs is >= target_precision.

    Rule: among cut points (distinct scores of labelled pairs), keep those meeting the precision
    target and take the one that accepts the most pairs, i.e. maximal recall at the precision the
    brand merge can afford. If no cut meets the target, the cut with the highest precision (the
    highest score on a tie) is returned; with no labelled pair at all, 1.0 (accept only certain pairs).
    """
    labelled, positive = _gold_labels(candidates, gold_groups)
    scores = candidates["score"].to_numpy()[labelled]
    if len(scores) == 0:
        return 1.0
    is_pos = positive[labelled]
    order = np.argsort(-scores, kind="stable")
    scores, is_pos = scores[order], is_pos[order]
    tp = np.cumsum(is_pos)
    precision = tp / np.arange(1, len(scores) + 1)
    last_of_tie = np.r_[scores[1:] != scores[:-1], True]
    cut_scores, cut_precision = scores[last_of_tie], precision[last_of_tie]
    meets = np.flatnonzero(cut_precision >= target_precision)
    if len(meets):
        return float(cut_scores[meets[-1]])
    return float(cut_scores[np.argmax(cut_precision)])
