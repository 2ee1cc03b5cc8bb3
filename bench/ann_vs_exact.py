"""Annoy vs exact nearest neighbours, brand-candidate and triplet-mining cost, side by side.

    .venv/bin/python bench/ann_vs_exact.py                       # 10k, 100k and 1M
    .venv/bin/python bench/ann_vs_exact.py --sizes 10000,100000 --extras-max 100000

Data (generated, seeded):
* names: brand-like spellings (random syllable words, each brand also as a Cyrillic rendering,
  a typo and a case/spacing variant), embedded cheaply as char n-gram TF-IDF -> TruncatedSVD
  (64 dims, fitted on a 20k sample): a neighbour structure like a text model's (variants of one
  brand close, shared syllables partly close), without loading a model.
* products: a category tree (parents -> leaves of log-normal size -> models of 1-8 variants),
  384-dim unit vectors = parent + leaf + model offsets + noise, so leaves and models cluster.

Exact search is chunked numpy brute force over all names for up to --max-exact-queries queries
(by default a seeded subsample of 500 at every size: brute force over 1M names costs about
20 ms a query on 2 cores); its time is scaled linearly to all
queries otherwise (brute force cost is exactly linear in the number of queries). Annoy answers the
same query rows (its time scaled the same way when they are a subsample), so recall and speedup
come from one run. Speedup = exact time / annoy query time, and exact time / (annoy build + query
time). Each size is measured at the stage's default budget (`brand_candidates.annoy_search_k`,
`DEFAULT_SEARCH_K`) and at annoy's own default (n_trees x k). Triplet mining runs in a fresh process per size so
that its peak RSS (VmHWM, whole process including the generated inputs) is its own.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing as mp
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from transliterate import get_translit_function

# run from a checkout without installing the package
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mpembed.candidates.ann import (
    annoy_neighbours,
    build_annoy,
    exact_neighbours,
    l2_normalise,
    recall_at_k,
    top_k_rows,
)
from mpembed.candidates.brands import find_brand_candidates, pair_metrics
from mpembed.candidates.triplets import mine_triplets

K = 10
N_TREES = 20
# The stage default (params.yaml brand_candidates.annoy_search_k): the smallest budget of the sweep
# in reports/ann_vs_exact.md that keeps recall@10 >= 0.95 at 100k names.
DEFAULT_SEARCH_K = 1000
NAME_DIM = 64
PRODUCT_DIM = 384
_ONSETS = [
    "b",
    "v",
    "g",
    "d",
    "k",
    "l",
    "m",
    "n",
    "p",
    "r",
    "s",
    "t",
    "f",
    "z",
    "sh",
    "ch",
    "br",
    "st",
    "tr",
    "gr",
]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ea", "y"]
_CODAS = ["", "", "", "n", "r", "s", "x", "k", "l"]
_TO_CYRILLIC = get_translit_function("ru")


def brand_names(n: int, seed: int) -> tuple[list[str], dict[str, int]]:
    """n distinct spellings of about n/4 brands, and spelling -> brand id."""
    rng = np.random.default_rng(seed)
    spellings: dict[str, int] = {}
    brand = 0
    while len(spellings) < n:
        base = _random_word(rng) + (" " + _random_word(rng) if rng.random() < 0.2 else "")
        for variant in _variants(base, rng):
            if variant not in spellings and len(spellings) < n:
                spellings[variant] = brand
        brand += 1
    return list(spellings), spellings


def _random_word(rng: np.random.Generator) -> str:
    n_syl = int(rng.integers(2, 4))
    return "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(n_syl)) + rng.choice(_CODAS)


def _variants(base: str, rng: np.random.Generator) -> list[str]:
    chars = list(base)
    pos = int(rng.integers(1, len(chars) - 1))
    if rng.random() < 0.5:
        typo = "".join(chars[:pos] + chars[pos + 1 :])  # a dropped letter
    else:
        typo = "".join([*chars[:pos], chars[pos + 1], chars[pos], *chars[pos + 2 :]])  # swapped letters
    return [base.title(), _TO_CYRILLIC(base).capitalize(), typo, base.upper().replace(" ", "-")]


def name_embeddings(names: list[str], seed: int) -> np.ndarray:
    vectoriser = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 3), lowercase=True, dtype=np.float32)
    tfidf = vectoriser.fit_transform(names)
    rng = np.random.default_rng(seed)
    fit_rows = rng.choice(len(names), size=min(20_000, len(names)), replace=False)
    svd = TruncatedSVD(NAME_DIM, random_state=seed).fit(tfidf[fit_rows])
    return l2_normalise(svd.transform(tfidf))


def product_catalogue(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """n products in a parent -> leaf -> model tree with clustered unit embeddings (float32)."""
    rng = np.random.default_rng(seed)
    n_leaves = max(10, n // 400)
    n_parents = max(3, n_leaves // 15)
    leaf_size = rng.lognormal(0.0, 1.0, n_leaves)
    leaf = np.sort(rng.choice(n_leaves, size=n, p=leaf_size / leaf_size.sum()))
    leaf_parent = rng.integers(0, n_parents, n_leaves)
    # rows are leaf-sorted; a new model starts with probability 1/4 and at every new leaf
    model = np.cumsum((rng.random(n) < 0.25) | np.r_[True, leaf[1:] != leaf[:-1]]) - 1
    parent_vec = _unit(rng.standard_normal((n_parents, PRODUCT_DIM)))
    leaf_vec = _unit(parent_vec[leaf_parent] + 0.7 * _unit(rng.standard_normal((n_leaves, PRODUCT_DIM))))
    vectors = np.empty((n, PRODUCT_DIM), dtype=np.float32)
    model_starts = np.searchsorted(model, np.arange(model[-1] + 2))
    for first in range(0, model[-1] + 1, 20_000):  # chunks of whole models bound the temporaries
        last = min(first + 20_000, model[-1] + 1)
        sl = slice(model_starts[first], model_starts[last])
        model_vec = _unit(rng.standard_normal((last - first, PRODUCT_DIM)))
        noise = _unit(rng.standard_normal((sl.stop - sl.start, PRODUCT_DIM)))
        vectors[sl] = _unit(leaf_vec[leaf[sl]] + 0.35 * model_vec[model[sl] - first] + 0.1 * noise)
    products = pd.DataFrame(
        {
            "nm_id": np.arange(n) + 1,
            "category": [f"leaf{x}" for x in leaf],
            "parentname": [f"parent{leaf_parent[x]}" for x in leaf],
            "model_id": model,
            "title": "",
        }
    )
    return products, vectors


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def ann_rows(
    n: int, seed: int, max_exact_queries: int, search_ks: tuple[int, ...], with_brands: bool
) -> tuple[list[dict[str, object]], dict[str, object] | None]:
    """Annoy (each search budget) vs exact on n names, then (optionally) the full brand candidates."""
    names, gold = brand_names(n, seed)
    vectors = name_embeddings(names, seed)
    queries = np.random.default_rng(seed).choice(n, size=min(n, max_exact_queries), replace=False)
    queries.sort()
    t0 = time.perf_counter()
    exact_ids = _exact_for(vectors, queries)
    exact_s = (time.perf_counter() - t0) * n / len(queries)
    t0 = time.perf_counter()
    index = build_annoy(vectors, N_TREES, seed)
    build_s = time.perf_counter() - t0
    rows = []
    for search_k in search_ks:
        t0 = time.perf_counter()
        approx_ids, _ = annoy_neighbours(index, queries, K, search_k)
        query_s = (time.perf_counter() - t0) * n / len(queries)
        rows.append(
            {
                "names": n,
                "dim": NAME_DIM,
                "search_k": f"{N_TREES * K} (annoy default)"
                if search_k < 0
                else f"{search_k} (stage default)"
                if search_k == DEFAULT_SEARCH_K
                else search_k,
                "exact queries": len(queries),
                "exact s": round(exact_s, 2),
                "annoy build s": round(build_s, 2),
                "annoy query s": round(query_s, 2),
                f"recall@{K}": round(recall_at_k(approx_ids, exact_ids), 4),
                "speedup (query)": round(exact_s / query_s, 1),
                "speedup (build+query)": round(exact_s / (build_s + query_s), 1),
            }
        )
    if not with_brands:
        return rows, None
    t0 = time.perf_counter()
    cands = find_brand_candidates(
        names,
        vectors,
        use_translit=True,
        use_char_ngrams=True,
        use_annoy=True,
        annoy_search_k=DEFAULT_SEARCH_K,
        seed=seed,
    )
    brands_s = time.perf_counter() - t0
    by_source = cands["sources"].str.split("+").explode().value_counts()
    brands = {
        "names": n,
        "seconds (all 3 sources)": round(brands_s, 1),
        "candidate pairs": len(cands),
        "translit / ngram / embed": " / ".join(
            str(by_source.get(s, 0)) for s in ("translit", "ngram", "embed")
        ),
        "gold-pair recall": round(pair_metrics(cands, gold, threshold=0.0)["recall"], 3),
    }
    return rows, brands


def _exact_for(vectors: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Exact top-K of the query rows among all rows (self excluded), chunked."""
    if len(queries) == len(vectors):
        return exact_neighbours(vectors, K)[0]
    out = []
    chunk = max(16, min(1024, 50_000_000 // len(vectors)))  # <= 200 MB of scores (+ argpartition's ids)
    for start in range(0, len(queries), chunk):
        q = queries[start : start + chunk]
        scores = vectors[q] @ vectors.T
        scores[np.arange(len(q)), q] = -np.inf
        out.append(top_k_rows(scores, K)[0])
    return np.concatenate(out)


def _peak_rss_mb() -> float:
    """Peak RSS of this process: VmHWM, which starts afresh at exec, unlike ru_maxrss, which a
    spawned child inherits from the parent's peak on Linux."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak_rss() -> bool:
    """Restart VmHWM from the current RSS (Linux >= 4.0), so that the peak measured afterwards is
    the mining phase's and not the catalogue generator's temporaries."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _triplet_worker(n: int, seed: int, exact_max: int, queue: mp.Queue) -> None:
    products, vectors = product_catalogue(n, seed)
    gc.collect()
    _reset_peak_rss()
    before_mb = _peak_rss_mb()
    t0 = time.perf_counter()
    trip = mine_triplets(
        products, vectors, n_per_anchor=1, k=20, annoy_n_trees=N_TREES, seed=seed, exact_max=exact_max
    )
    seconds = time.perf_counter() - t0
    peak_mb = _peak_rss_mb()
    leaves = products.groupby(["parentname", "category"]).size()
    row = {
        "products": n,
        "dim": PRODUCT_DIM,
        "leaf search": "exact <= 10k, annoy above" if exact_max else "annoy in every leaf",
        "parents / leaves (largest)": f"{products['parentname'].nunique()} / {len(leaves)} ({leaves.max()})",
        "triplets": len(trip),
        "mine s": round(seconds, 1),
        "RSS at start MB": round(before_mb),
        "peak RSS MB": round(peak_mb),
        "mean confidence": round(float(trip["confidence"].mean()), 3),
    }
    queue.put((row, trip[["anchor_id", "positive_id", "negative_id"]].to_numpy()))


def triplet_row(n: int, seed: int, exact_max: int) -> tuple[dict[str, object], np.ndarray]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_triplet_worker, args=(n, seed, exact_max, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def triplet_rows(n: int, seed: int, annoy_everywhere: bool) -> list[dict[str, object]]:
    """Default search, and optionally annoy in every leaf with its agreement with the default."""
    row, exact = triplet_row(n, seed, 10_000)
    rows = [{**row, "same triplet as default": "-"}]
    if annoy_everywhere:
        row, approx = triplet_row(n, seed, 0)
        same = len({tuple(t) for t in exact.tolist()} & {tuple(t) for t in approx.tolist()}) / max(
            len(exact), 1
        )
        rows.append({**row, "same triplet as default": round(same, 3)})
    return rows


def markdown(rows: list[dict[str, object]]) -> str:
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(r[h]) for h in head) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated sizes")
    parser.add_argument("--max-exact-queries", type=int, default=500)
    parser.add_argument(
        "--search-k",
        default=f"{DEFAULT_SEARCH_K},-1",
        help="comma-separated annoy search budgets (-1 = annoy's default n_trees x k)",
    )
    parser.add_argument(
        "--extras-max",
        type=int,
        default=100_000,
        help="run the brand-candidate and triplet-mining tables up to this size only",
    )
    parser.add_argument(
        "--annoy-triplets-max",
        type=int,
        default=100_000,
        help="also mine with annoy in every leaf up to this size (10 annoy queries per anchor: slow at 1M)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="reports/ann_vs_exact.md")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    search_ks = tuple(int(s) for s in args.search_k.split(","))

    ann, brands = [], []
    for n in sizes:
        rows, brand_row = ann_rows(n, args.seed, args.max_exact_queries, search_ks, n <= args.extras_max)
        ann += rows
        print(markdown(rows), flush=True)
        if brand_row is not None:
            brands.append(brand_row)
            print(markdown([brand_row]), flush=True)
    trip = []
    for n in sizes:
        if n <= args.extras_max:
            trip += triplet_rows(n, args.seed, n <= args.annoy_triplets_max)
            print(markdown(trip[-1:]), flush=True)
    load = os.getloadavg()
    busy = ": other work shared the cores, so times are upper bounds" if load[0] > mp.cpu_count() else ""
    report = "\n\n".join(
        [
            "# Annoy vs exact nearest neighbours; brand-candidate and triplet mining cost",
            f"`python bench/ann_vs_exact.py --sizes {args.sizes} --max-exact-queries {args.max_exact_queries} "
            f"--search-k {args.search_k} --extras-max {args.extras_max}` on {platform.machine()} with "
            f"{mp.cpu_count()} cores (load average at the end {load[0]:.1f}{busy}); annoy {N_TREES} trees, single-threaded build, k={K}, seed {args.seed}. "
            "Data (generated) and method: see the script's docstring.",
            "## Nearest neighbours of brand-name embeddings: annoy vs chunked numpy brute force",
            markdown(ann),
            "`exact s` is the brute-force time for all names and `annoy query s` annoy's time for all names "
            "(both measured on the same `exact queries` rows when fewer, scaled linearly). `recall@10`: share "
            "of the exact 10 nearest that annoy returns, over those rows. The stage default "
            f"`brand_candidates.annoy_search_k: {DEFAULT_SEARCH_K}` (= 5 x n_trees x k) is the budget the "
            "first row of each size uses.",
            "## Brand candidates (`find_brand_candidates`, all sources, default parameters)",
            markdown(brands) if brands else "(not run: sizes above --extras-max)",
            "Pairs per source count a pair once for each source it passes. `gold-pair recall`: share of "
            "same-brand spelling pairs among all candidates (threshold 0). The generated names differ "
            "from each other mostly in vowels, which makes skeleton matches far less precise than on "
            "real brands: read these as cost figures, not quality figures.",
            "## Triplet mining (`mine_triplets`, n_per_anchor=1, k=20, neg_leaves=10)",
            markdown(trip) if trip else "(not run: sizes above --extras-max)",
            "RSS is the whole process (interpreter, libraries, catalogue and embeddings included): `RSS at "
            "start` once the inputs exist, `peak RSS` the high-water mark during `mine_triplets`.",
        ]
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(report + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
