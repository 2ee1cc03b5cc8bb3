from collections import Counter

import numpy as np
import pytest

from mpembed.benchmarks.data import RetrievalSplit
from mpembed.benchmarks.scoring import fewshot_draws, score_classification, score_retrieval


def _split(relevant: dict[str, dict[str, int]], docs: list[str]) -> RetrievalSplit:
    return RetrievalSplit({q: q for q in relevant}, {d: d for d in docs}, relevant)


def test_ndcg_matches_hand_computed_graded_values():
    # Ranking by score: d1 (rel 2), d2 (0), d3 (1), d0 (3).
    # DCG@10 = 2/log2(2) + 0 + 1/log2(4) + 3/log2(5) = 3.792030; IDCG = 3 + 2/log2(3) + 1/log2(4) = 4.761860
    split = _split({"q": {"d0": 3, "d1": 2, "d3": 1}}, ["d0", "d1", "d2", "d3"])
    res = score_retrieval(split, np.array([[0.1, 0.9, 0.8, 0.2]]))
    assert res.metrics["ndcg@10"] == pytest.approx(3.792030 / 4.761860, abs=1e-6)
    assert res.metrics["ndcg@1"] == pytest.approx(2 / 3, abs=1e-6)
    assert res.per_query[0]["got"] == "d1" and res.per_query[0]["expected"] == "d0"


def test_ndcg_perfect_and_worst_ranking():
    split = _split({"q1": {"a": 1}, "q2": {"b": 1}}, ["a", "b"])
    perfect = score_retrieval(split, np.array([[1.0, 0.0], [0.0, 1.0]]))
    assert perfect.metrics == {"ndcg@1": 1.0, "ndcg@10": 1.0}
    worst = score_retrieval(split, np.array([[0.0, 1.0], [1.0, 0.0]]))
    assert worst.metrics["ndcg@1"] == 0.0
    assert worst.metrics["ndcg@10"] == pytest.approx(1 / np.log2(3))


def test_query_never_retrieves_itself():
    # "p1" is both a query and a corpus doc; its own top score must be ignored.
    split = RetrievalSplit({"p1": "x"}, {"p1": "x", "p2": "y", "p3": "z"}, {"p1": {"p2": 1}})
    res = score_retrieval(split, np.array([[1.0, 0.5, 0.1]]))
    assert res.metrics["ndcg@1"] == 1.0


def test_classification_separable_vs_noise():
    rng = np.random.default_rng(0)
    y = ["a"] * 60 + ["b"] * 60
    x = np.r_[rng.normal(0, 1, (60, 8)) + 3, rng.normal(0, 1, (60, 8)) - 3]
    good = score_classification(
        x[::2], y[::2], x[1::2], y[1::2], runs=3, samples_per_label=16, max_iter=200, seed=0
    )
    assert good.metrics["accuracy"] > 0.95 and good.metrics["f1"] > 0.95
    noise = rng.normal(0, 1, x.shape)
    bad = score_classification(
        noise[::2], y[::2], noise[1::2], y[1::2], runs=3, samples_per_label=16, max_iter=200, seed=0
    )
    assert bad.metrics["accuracy"] < 0.75
    assert len(good.predictions) == 60
    assert good.full_fit is None  # only on request


def test_full_fit_uses_every_drawn_example():
    # Labels follow a threshold on one noisy feature: three examples per label leave the boundary
    # far off, the union of ten such draws pins it down, so the full fit must beat the few-shot mean.
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (400, 4))
    y = np.where(x[:, 0] + 0.3 * x[:, 1] > 0.4, "pos", "neg").tolist()
    res = score_classification(x[:300], y[:300], x[300:], y[300:], runs=10, samples_per_label=3,
                               max_iter=500, seed=0, full_fit=True)
    assert res.full_fit is not None
    assert res.full_fit["accuracy"] > 0.9
    assert res.full_fit["accuracy"] > res.metrics["accuracy"] + 0.05


def test_fewshot_draws_take_each_label_and_keep_all_of_a_rare_one():
    y = ["a"] * 50 + ["b"] * 3
    draws = fewshot_draws(y, runs=3, samples_per_label=8, seed=0)
    assert len(draws) == 3
    for idx in draws:
        assert sorted(Counter(np.asarray(y)[idx]).items()) == [("a", 8), ("b", 3)]
    assert not all(np.array_equal(draws[0], d) for d in draws[1:])  # each run draws anew


def test_scoring_reads_only_the_drawn_rows():
    # Rows outside the few-shot draws are NaN: the scores, the full fit's included, must equal those
    # on the complete matrix (a scorer that read any other row would fail on the NaN).
    rng = np.random.default_rng(2)
    y = (["a"] * 40 + ["b"] * 40 + ["c"] * 40)
    x = rng.normal(0, 1, (120, 6)) + np.repeat(np.eye(3, 6) * 2, 40, axis=0)
    xte, yte = x[::3] + rng.normal(0, 0.1, (40, 6)), y[::3]
    kw = dict(runs=4, samples_per_label=5, max_iter=300, seed=3)
    needed = np.unique(np.concatenate(fewshot_draws(y, runs=4, samples_per_label=5, seed=3)))
    assert len(needed) < len(y)
    sparse_x = np.full_like(x, np.nan)
    sparse_x[needed] = x[needed]
    a = score_classification(x, y, xte, yte, full_fit=True, **kw)
    b = score_classification(sparse_x, y, xte, yte, full_fit=True, **kw)
    assert a.full_fit is not None
    assert a.metrics == b.metrics and a.full_fit == b.full_fit and a.predictions == b.predictions


# --- Agreement with an independent implementation (ranx) -------------------------------------------
#
# Gain convention: ours is sklearn's `ndcg_score` (linear gain: DCG = sum rel_i / log2(i + 1), the
# Järvelin & Kekäläinen form), which is ranx's `ndcg`; ranx's `ndcg_burges` (2^rel - 1) is NOT ours.
# Ties: ours averages the gain of tied documents over their positions (`ignore_ties=False`), which is
# the expectation of NDCG over every order of the tied documents; ranx breaks ties arbitrarily, so
# with ties we compare against ranx's mean over all tie orders. A query with no relevant document
# scores 0 in both. Judged documents absent from the corpus are ignored by ours (they cannot be
# retrieved, and prepare never produces them: see the real-split test), so ranx gets the judgments
# restricted to the corpus.

ranx = pytest.importorskip("ranx")


def _ranx_per_query(split: RetrievalSplit, run: dict[str, dict[str, float]], metric: str) -> np.ndarray:
    """Per-query ranx scores in the split's query order (qrels restricted to the corpus).

    ranx counts grade >= 1 as relevant (grade-0 judgments are dropped) and scores a query with no
    relevant document 0; its Qrels cannot be built from only such queries, hence one padding query.
    """
    qrels = {q: {d: int(g) for d, g in rel.items() if d in split.corpus} for q, rel in split.relevant.items()}
    qrels["_pad"], run = {"_pad": 1}, {**run, "_pad": {"_pad": 1.0}}
    ranx_run = ranx.Run(run)
    ranx.evaluate(ranx.Qrels(qrels), ranx_run, metric)
    return np.array([ranx_run.scores[metric][q] for q in split.queries], dtype=np.float64)


def _strict_run(
    split: RetrievalSplit, scores: np.ndarray, order_key: np.ndarray
) -> dict[str, dict[str, float]]:
    """A ranx run with no ties: docs ranked by (score desc, order_key asc), the query's own doc left out."""
    dids = list(split.corpus)
    run = {}
    for i, q in enumerate(split.queries):
        ranked = [j for j in np.lexsort((order_key[i], -scores[i])) if dids[j] != q]
        run[q] = {dids[j]: float(len(ranked) - r) for r, j in enumerate(ranked)}
    return run


def _tie_orders(row: np.ndarray):
    """Every tie-breaking key for one query's scores: a permutation inside each group of equal scores."""
    import itertools

    groups = [np.flatnonzero(row == v) for v in np.unique(row)]
    for perms in itertools.product(*(itertools.permutations(g) for g in groups)):
        key = np.zeros(len(row))
        for g, perm in zip(groups, perms, strict=True):
            key[list(perm)] = np.arange(len(g))
        yield key


def _graded_split_with_ties() -> tuple[RetrievalSplit, np.ndarray]:
    docs = [f"d{j}" for j in range(14)] + ["q3"]
    relevant = {
        "q0": {"d0": 3, "d1": 2, "d2": 1, "d3": 1},  # ties across rank 1 and across the rank-10 cut-off
        "q1": {"d4": 3, "d5": 0, "d13": 2},  # a grade-0 judgment; d13 ranked below 10 (missing)
        "q2": {"d6": 1, "dX": 3},  # dX judged but not in the corpus
        "q3": {"d7": 2, "d8": 2},  # q3 is also a corpus doc: never retrieves itself
        "q4": {},  # no relevant document at all
    }
    split = RetrievalSplit({q: q for q in relevant}, {d: d for d in docs}, relevant)
    # Distinct scores except the ties each comment names (few tie orders: at most 6 per query).
    s = np.tile(np.linspace(0.8, 0.1, 15), (5, 1))
    s[0, [1, 2]] = 0.95  # d1 (2) / d2 (1) tie for rank 1
    s[0, [3, 12]] = s[0, 10]  # d3 (1) tied with d10, d12 across the rank-10 cut-off
    s[1, 13] = 0.0  # d13 (2) ranked last: missing from the top 10
    s[1, [5, 0]] = 0.52  # d5 (grade 0) tied with d0 at rank 1
    s[2, [6, 7]] = 0.9  # d6 (1) / d7 (0) tie for rank 1
    s[3, 14] = 0.99  # the query's own doc would be first
    s[3, [7, 8, 1]] = 0.9  # d7 (2) / d8 (2) / d1 (0) three-way tie for rank 1
    s[4, [2, 3]] = 0.9  # a tie that cannot matter (nothing is relevant)
    return split, s


@pytest.mark.parametrize("k", [1, 10])
def test_ndcg_agrees_with_ranx_on_graded_run_with_ties_and_missing_docs(k):
    from mpembed.benchmarks.scoring import _EXCLUDED, ndcg_at, relevance_matrix

    split, scores = _graded_split_with_ties()
    ours = score_retrieval(split, scores).metrics[f"ndcg@{k}"]
    qids, dids, y = relevance_matrix(split)
    masked = scores.copy()
    masked[3, dids.index("q3")] = _EXCLUDED
    ours_per_query = ndcg_at(y, masked, k)
    theirs = []
    for i, q in enumerate(qids):
        one = RetrievalSplit({q: q}, split.corpus, {q: split.relevant[q]})
        values = [
            _ranx_per_query(one, _strict_run(one, scores[i : i + 1], key[None]), f"ndcg@{k}")[0]
            for key in _tie_orders(scores[i])
        ]
        theirs.append(np.mean(values))
    np.testing.assert_allclose(ours_per_query, theirs, rtol=0, atol=1e-6)
    assert ours == pytest.approx(np.mean(theirs), abs=1e-6)
    # The ties matter (a fixed tie order gives another value) and the gain is linear, not 2^rel - 1.
    fixed = _ranx_per_query(split, _strict_run(split, scores, np.zeros_like(scores)), f"ndcg@{k}")
    assert not np.allclose(fixed, theirs, atol=1e-6)
    burges = _ranx_per_query(split, _strict_run(split, scores, np.zeros_like(scores)), f"ndcg_burges@{k}")
    assert not np.allclose(burges, fixed, atol=1e-6)


def test_ndcg_agrees_with_ranx_on_real_prepared_splits(sample_dir, tmp_path):
    from conftest import small_params
    from mpembed.benchmarks.baselines import bm25_scores
    from mpembed.benchmarks.data import load_split
    from mpembed.benchmarks.registry import BENCHMARKS
    from mpembed.data.prepare import run_prepare

    run_prepare(small_params(sample_dir), tmp_path / "prepared", tmp_path / "prepare.json")
    graded = False
    for bench in (b for b in BENCHMARKS if b.kind == "retrieval"):
        split = load_split(tmp_path / "prepared" / bench.name, "test")
        assert isinstance(split, RetrievalSplit) and split.queries
        # prepare never judges a document outside the corpus, so restricting the qrels changes nothing
        assert all(d in split.corpus for rel in split.relevant.values() for d in rel), bench.name
        graded |= len({g for rel in split.relevant.values() for g in rel.values()}) > 1
        bm25 = bm25_scores(split)
        # BM25 ties a lot (zero scores); break them by doc position so both sides see one strict order
        n_docs = bm25.shape[1]
        key = np.tile(np.arange(n_docs, dtype=np.float64), (bm25.shape[0], 1))
        strict = np.empty_like(bm25)
        for i in range(len(bm25)):
            strict[i, np.lexsort((key[i], -bm25[i]))] = np.arange(n_docs, 0, -1)
        ours = score_retrieval(split, strict).metrics
        run = _strict_run(split, strict, key)
        for k in (1, 10):
            theirs = float(
                ranx.evaluate(
                    ranx.Qrels(
                        {q: {d: int(g) for d, g in r.items() if g > 0} for q, r in split.relevant.items()}
                    ),
                    ranx.Run(run),
                    f"ndcg@{k}",
                )
            )
            assert ours[f"ndcg@{k}"] == pytest.approx(theirs, abs=1e-6), (bench.name, k)
    assert graded  # WBSearchQueryNmRelevance (0-3) and the QA/SimGoods 1-2 grades


def test_encode_rows_embeds_only_the_asked_rows():
    from mpembed.embeddings import Embedder, load_model
    from mpembed.models.resolve import minilm_dir

    texts = ["красная куртка", "синие джинсы", "кроссовки для бега", "синие джинсы"]
    embed = Embedder(load_model(str(minilm_dir()), max_seq_length=32), batch_size=2, progress=False)
    out = embed.encode_rows(texts, np.array([3, 0, 3]), "query")
    assert out.shape == (4, 384)
    assert np.isnan(out[[1, 2]]).all() and np.isfinite(out[[0, 3]]).all()
    assert set(embed._cache) == {("query", "красная куртка"), ("query", "синие джинсы")}
    np.testing.assert_allclose(out[[0, 3]], embed.encode([texts[0], texts[3]], "query"), atol=1e-6)
