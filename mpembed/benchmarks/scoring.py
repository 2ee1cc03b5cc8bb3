"""Scorers: graded NDCG for retrieval, MTEB-style logistic regression on frozen embeddings.

Both take precomputed embeddings, so the same code scores any model (or a lexical baseline that
produces a score matrix).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, ndcg_score

from mpembed.benchmarks.data import RetrievalSplit

_EXCLUDED = -1e9  # score given to a query's own document (a product never retrieves itself)


@dataclass
class RetrievalResult:
    metrics: dict[str, float]
    per_query: list[dict]  # qid, ndcg@10, top1 doc id, best relevant doc id (for error analysis)


def relevance_matrix(split: RetrievalSplit) -> tuple[list[str], list[str], np.ndarray]:
    qids, dids = list(split.queries), list(split.corpus)
    col = {d: j for j, d in enumerate(dids)}
    y = np.zeros((len(qids), len(dids)), dtype=np.float64)
    for i, q in enumerate(qids):
        for d, grade in split.relevant[q].items():
            if d in col:
                y[i, col[d]] = grade
    return qids, dids, y


def ndcg_at(y_true: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """Per-query NDCG@k with graded gains (sklearn's implementation: linear gain, ties averaged)."""
    return np.array([ndcg_score(y_true[i : i + 1], scores[i : i + 1], k=k, ignore_ties=False)
                     for i in range(len(y_true))])


def score_retrieval(split: RetrievalSplit, scores: np.ndarray) -> RetrievalResult:
    """`scores[i, j]` = similarity of query i and corpus doc j (in the split's dict order)."""
    qids, dids, y = relevance_matrix(split)
    scores = np.array(scores, dtype=np.float64, copy=True)
    did_col = {d: j for j, d in enumerate(dids)}
    for i, q in enumerate(qids):
        if q in did_col:
            scores[i, did_col[q]] = _EXCLUDED
    per_q10 = ndcg_at(y, scores, 10)
    metrics = {"ndcg@1": float(ndcg_at(y, scores, 1).mean()), "ndcg@10": float(per_q10.mean())}
    top = scores.argmax(axis=1)
    best = y.argmax(axis=1)
    per_query = [
        {"qid": q, "ndcg@10": float(per_q10[i]), "got": dids[top[i]], "expected": dids[best[i]]}
        for i, q in enumerate(qids)
    ]
    return RetrievalResult(metrics, per_query)


@dataclass
class ClassificationResult:
    metrics: dict[str, float]
    predictions: list[str]  # of the first run, for confusion matrices and error analysis
    full_fit: dict[str, float] | None = None  # one fit on every drawn example (see score_classification)


def per_label_sample(labels: np.ndarray, per_label: int, rng: np.random.Generator) -> np.ndarray:
    idx = []
    for lab in np.unique(labels):
        where = np.flatnonzero(labels == lab)
        idx.extend(rng.choice(where, size=min(per_label, len(where)), replace=False).tolist())
    return np.sort(np.array(idx, dtype=np.int64))


def fewshot_draws(train_y: list[str], *, runs: int, samples_per_label: int, seed: int) -> list[np.ndarray]:
    """The training rows of each run (run r draws with seed + r), so a caller can embed only those."""
    ytr = np.asarray(train_y)
    return [per_label_sample(ytr, samples_per_label, np.random.default_rng(seed + run)) for run in range(runs)]


def score_classification(
    train_x: np.ndarray,
    train_y: list[str],
    test_x: np.ndarray,
    test_y: list[str],
    *,
    runs: int,
    samples_per_label: int,
    max_iter: int,
    seed: int,
    full_fit: bool = False,
) -> ClassificationResult:
    """MTEB protocol: in each run resample `samples_per_label` training examples per label, fit a
    logistic regression on the frozen features, score the full test set; report the mean over runs.

    `full_fit` also fits one regression on every row any run drew (up to `runs * samples_per_label`
    per label, ten times the few-shot data with MTEB's defaults): the few-shot figure says how well
    the features separate labels, this one what a supervised classifier reaches with many more
    labels, at no extra encoding. Only rows in `fewshot_draws(...)` are read, so `train_x` may leave
    the others unset.
    """
    ytr, yte = np.asarray(train_y), np.asarray(test_y)
    accs, f1s, first = [], [], None
    draws = fewshot_draws(train_y, runs=runs, samples_per_label=samples_per_label, seed=seed)
    for run, idx in enumerate(draws):
        if len(np.unique(ytr[idx])) < 2:
            pred = np.full(len(yte), ytr[idx][0] if len(idx) else "")
        else:
            clf = LogisticRegression(max_iter=max_iter, random_state=seed + run)
            clf.fit(train_x[idx], ytr[idx])
            pred = clf.predict(test_x)
        accs.append(accuracy_score(yte, pred))
        f1s.append(f1_score(yte, pred, average="macro", zero_division=0))
        if first is None:
            first = [str(p) for p in pred]
    full = None
    rows = np.unique(np.concatenate(draws)) if draws else np.zeros(0, dtype=np.int64)
    if full_fit and len(np.unique(ytr[rows])) >= 2:
        clf = LogisticRegression(max_iter=max_iter, random_state=seed).fit(train_x[rows], ytr[rows])
        pred = clf.predict(test_x)
        full = {"accuracy": float(accuracy_score(yte, pred)),
                "f1": float(f1_score(yte, pred, average="macro", zero_division=0))}
    return ClassificationResult({"accuracy": float(np.mean(accs)), "f1": float(np.mean(f1s))}, first or [], full)
