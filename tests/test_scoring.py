import numpy as np
import pytest

from mpembed.benchmarks.data import RetrievalSplit
from mpembed.benchmarks.scoring import score_classification, score_retrieval


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
    good = score_classification(x[::2], y[::2], x[1::2], y[1::2], runs=3, samples_per_label=16, max_iter=200, seed=0)
    assert good.metrics["accuracy"] > 0.95 and good.metrics["f1"] > 0.95
    noise = rng.normal(0, 1, x.shape)
    bad = score_classification(noise[::2], y[::2], noise[1::2], y[1::2], runs=3, samples_per_label=16,
                               max_iter=200, seed=0)
    assert bad.metrics["accuracy"] < 0.75
    assert len(good.predictions) == 60
