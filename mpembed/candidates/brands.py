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

import re

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
# An abbreviation matching a name's initials ("TNF"/"The North Face") is weaker still.
ABBREV_SIM = 0.6
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
        return pd.DataFrame(
            {c: pd.Series(dtype=object if c in ("a", "b", "sources") else float) for c in COLUMNS}
        )
    keys = [translit_key(n) for n in names]
    vectors = l2_normalise(np.asarray(embeddings)[first_rows]) if embeddings is not None else None
    # n-grams are compared between distinct translit keys: a brand's many spellings share one key, and
    # per-name top-k lists would otherwise fill up with copies of one key ("Samsung", "SAMSUNG",
    # "Самсунг", ...) and never reach the typo "Samsng"
    unique_keys, key_of = np.unique(np.asarray(keys, dtype=object).astype(str), return_inverse=True)
    tfidf = _ngram_matrix(unique_keys.tolist(), ngram_range) if use_char_ngrams else None

    found = []
    if use_translit:
        found.append(_translit_pairs(keys, [skeleton_key(n) for n in names]))
        found.append(_abbreviation_pairs(names))
    if tfidf is not None:
        found.append(_pair_codes(*_bucket_pairs(keys, star_when_big=True), len(names)))
        found.append(_expand_key_pairs(_ngram_pairs(tfidf, ngram_k, ngram_min_sim), key_of, len(names)))
    if use_annoy and vectors is not None:
        found.append(_annoy_pairs(vectors, annoy_n_trees, annoy_search_k, annoy_k, annoy_min_cos, seed))
    codes = np.unique(np.concatenate(found)) if found else np.empty(0, dtype=np.int64)
    i, j = np.divmod(codes, len(names))

    sims = {
        "translit": _translit_sim(names, keys, i, j) if use_translit else None,
        "ngram": _rowwise_sparse_dot(tfidf, key_of[i], key_of[j]) if tfidf is not None else None,
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
    short = np.asarray([abbreviation_of(n) for n in names], dtype=object)
    long_ = np.asarray([initials(n) for n in names], dtype=object)
    abbrev = ((short[i] != "") & (short[i] == long_[j])) | ((short[j] != "") & (short[j] == long_[i]))
    return np.where(same_key, 1.0, np.where(same_skel, SKELETON_SIM, np.where(abbrev, ABBREV_SIM, 0.0)))


def abbreviation_of(name: str) -> str:
    """The letters of a name written as an abbreviation ("TNF", "H&S", "CK", "LRP"): one to five
    Latin letters, in capitals or with '&' / '.' between them; "" otherwise."""
    letters = re.sub(r"[^A-Za-z]", "", name)
    if not 2 <= len(letters) <= 5 or re.search(r"[^A-Za-z&.\s]", name):
        return ""
    if letters.isupper() or re.search(r"[&.]", name):
        return letters.lower()
    return ""


def initials(name: str) -> str:
    """First letters of the words of a Latin multi-word name ("The North Face", "TheNorthFace",
    "Head & Shoulders" -> "tnf", "tnf", "hs"); connectives (and, &, by) are skipped; "" for
    one-word or non-Latin names."""
    if not re.fullmatch(r"[A-Za-z'&.\-\s]+", name):
        return ""
    words = [
        w for w in re.split(r"[\s\-&.]+|(?<=[a-z])(?=[A-Z])", name) if w and w.lower() not in _CONNECTIVES
    ]
    return "".join(w[0].lower() for w in words) if len(words) >= 2 else ""


_CONNECTIVES = {"and", "by", "of", "n"}


def _abbreviation_pairs(names: np.ndarray) -> np.ndarray:
    """Pairs (abbreviation, multi-word name) whose letters equal the name's initials (see
    `abbreviation_of`, `initials`); a key shared by more than MAX_BUCKET names is skipped."""
    by_initials: dict[str, list[int]] = {}
    for idx, name in enumerate(names.tolist()):
        key = initials(name)
        if key:
            by_initials.setdefault(key, []).append(idx)
    left, right = [], []
    for idx, name in enumerate(names.tolist()):
        partners = by_initials.get(abbreviation_of(name), [])
        if 0 < len(partners) <= MAX_BUCKET:
            left += [idx] * len(partners)
            right += partners
    return _pair_codes(np.asarray(left, dtype=np.int64), np.asarray(right, dtype=np.int64), len(names))


def _expand_key_pairs(key_codes: np.ndarray, key_of: np.ndarray, n: int) -> np.ndarray:
    """Pairs of distinct keys -> pairs of the names carrying them (at most MAX_BUCKET names per key)."""
    n_keys = int(key_of.max()) + 1 if len(key_of) else 0
    if len(key_codes) == 0 or n_keys == 0:
        return np.empty(0, dtype=np.int64)
    order = np.argsort(key_of, kind="stable")
    starts = np.searchsorted(key_of[order], np.arange(n_keys + 1))
    ki, kj = np.divmod(key_codes, n_keys)
    left, right = [], []
    for a, b in zip(ki.tolist(), kj.tolist(), strict=True):
        names_a = order[starts[a] : min(starts[a + 1], starts[a] + MAX_BUCKET)]
        names_b = order[starts[b] : min(starts[b + 1], starts[b] + MAX_BUCKET)]
        left.append(np.repeat(names_a, len(names_b)))
        right.append(np.tile(names_b, len(names_a)))
    return _pair_codes(np.concatenate(left), np.concatenate(right), n)


def _ngram_matrix(keys: list[str], ngram_range: tuple[int, int]) -> sp.csr_matrix:
    """L2-normalised char_wb TF-IDF of the translit keys (so cosine = dot product); char_wb pads
    word edges, so a shared first/last letter counts, which matters for short brand names."""
    if not any(keys):  # names without a letter or digit: nothing to compare (sklearn would raise)
        return sp.csr_matrix((len(keys), 1), dtype=np.float32)
    vectoriser = TfidfVectorizer(
        analyzer="char_wb", ngram_range=ngram_range, lowercase=False, dtype=np.float32
    )
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


# --- calibration and closure ---------------------------------------------------------------------

# Groups of accepted pairs are capped at this many spellings: the generated sample's largest gold
# group has 13 (dev) / 10 (train) spellings, real brands a handful to a dozen, and the cap stops a
# weak pair from chaining two groups (or, at 100k names, thousands) into one, which would also make
# the closure's pair count quadratic.
MAX_GROUP = 16


def close_groups(
    candidates: pd.DataFrame, max_group: int = MAX_GROUP, linkage: str = "single"
) -> pd.DataFrame:
    """Agglomerate the candidate graph into groups, so that accepted pairs are transitive.

    Groups start as single spellings; the two groups with the best link merge first and every pair
    across them gets that link as its score. `single` linkage: the best pair between the groups
    (the bottleneck of the best chain); `average`: the mean over all pairs across them, a missing
    pair counting 0. Merge heights never increase, so accepting `score >= t` accepts exactly the
    groups formed above t: "Nike"-"Найк"-"Найки" become one group although "Nike"/"Найки" was never
    a candidate. A merge that would make a group larger than `max_group` is skipped, which is what
    keeps single linkage from chaining distinct brands. On the sample, single linkage reaches the
    higher recall at the same precision (reports/brand_candidates.md). Pairs found only this way get source "closure" and
    NaN per-source similarities; a direct candidate gets the higher of its own and its group score.
    """
    import heapq

    if linkage not in ("single", "average"):
        raise ValueError(f"linkage must be 'single' or 'average', not {linkage!r}")
    if candidates.empty:
        return candidates
    names, codes = np.unique(
        np.r_[candidates["a"].to_numpy(), candidates["b"].to_numpy()].astype(str), return_inverse=True
    )
    n_direct = len(candidates)
    ai, bi = codes[:n_direct].tolist(), codes[n_direct:].tolist()
    members: dict[int, list[int]] = {i: [i] for i in range(len(names))}
    links: dict[int, dict[int, float]] = {i: {} for i in range(len(names))}  # group -> group -> score sum
    combine = (lambda x, y: x + y) if linkage == "average" else max
    for u, v, sc in zip(ai, bi, candidates["score"].to_numpy().tolist(), strict=True):
        if u != v:
            links[u][v] = combine(links[u].get(v, 0.0), sc)
            links[v][u] = links[u][v]
    heap = [(-total, u, v) for u, nb in links.items() for v, total in nb.items() if u < v]
    heapq.heapify(heap)
    new_i, new_j, new_s = [], [], []
    while heap:
        neg, u, v = heapq.heappop(heap)
        if u not in members or v not in members or v not in links[u]:
            continue
        avg = links[u][v] / (len(members[u]) * len(members[v])) if linkage == "average" else links[u][v]
        if abs(-neg - avg) > 1e-12:  # stale entry: a neighbour merged since it was pushed
            continue
        if len(members[u]) + len(members[v]) > max_group:
            continue
        left, right = members[u], members.pop(v)
        new_i.append(np.repeat(left, len(right)))
        new_j.append(np.tile(right, len(left)))
        new_s.append(np.full(len(left) * len(right), avg))
        members[u] = left + right
        del links[u][v]
        for w, total in links.pop(v).items():
            if w == u:
                continue
            del links[w][v]
            links[u][w] = combine(links[u].get(w, 0.0), total)
            links[w][u] = links[u][w]
        size_u = len(members[u])
        for w, total in links[u].items():
            key = total / (size_u * len(members[w])) if linkage == "average" else total
            heapq.heappush(heap, (-key, min(u, w), max(u, w)))
    if not new_i:
        return candidates
    i, j, s = np.concatenate(new_i), np.concatenate(new_j), np.round(np.concatenate(new_s), 6)
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    closed = pd.DataFrame({"a": names[lo], "b": names[hi], "closure": s})
    out = candidates.merge(closed, on=["a", "b"], how="outer")
    direct = out["score"].notna()
    out["score"] = np.fmax(out["score"], out["closure"])
    out["sources"] = out["sources"].where(direct, "closure")
    out = out.drop(columns="closure")
    return out.sort_values(["score", "a", "b"], ascending=[False, True, True], ignore_index=True)
