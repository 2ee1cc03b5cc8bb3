"""The few-shot dev evaluator that joins the retrieval dev scores in choosing the best checkpoint."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from mpembed.benchmarks.data import ClassificationSplit
from mpembed.training.dev_classification import POOL_PER_LABEL, FewShotClassificationEvaluator


class _StubModel:
    """Encodes a text as its label's direction plus noise (`flip` texts point the other way)."""

    def __init__(self, noise: float):
        self.noise, self.seen = noise, []
        self.model_card_data = SimpleNamespace(set_evaluation_metrics=lambda *a, **k: None)

    def encode(self, texts, prompt=None, **_):
        self.seen.append((prompt, list(texts)))
        rng = np.random.default_rng(len(texts))
        centre = {"a": np.array([1.0, 0.0, 0.0]), "b": np.array([0.0, 1.0, 0.0])}
        vecs = np.stack([centre[t.split("-")[0]] for t in texts]) + self.noise * rng.standard_normal((len(texts), 3))
        return vecs / np.linalg.norm(vecs, axis=1, keepdims=True)


def _data() -> tuple[list[dict], ClassificationSplit]:
    train = [{"text": f"{lab}-{i}", "label": lab} for lab in "ab" for i in range(40)]
    dev = ClassificationSplit([{"id": f"d{lab}{i}", "text": f"{lab}-dev{i}", "label": lab} for lab in "ab" for i in range(30)])
    return train, dev


def test_separable_embeddings_score_high_and_noise_scores_near_chance():
    train, dev = _data()
    clean = FewShotClassificationEvaluator("Toy", train, dev, "query: ", batch_size=8, seed=0)
    model = _StubModel(noise=0.05)
    scores = clean(model)
    assert set(scores) == {"Toy_accuracy", "Toy_f1"}
    assert clean.primary_metric == "Toy_accuracy"
    assert scores["Toy_accuracy"] == pytest.approx(1.0)
    # only a pool of POOL_PER_LABEL training texts per label is encoded, with the prompt
    prompt, texts = model.seen[0]
    assert prompt == "query: " and len(texts) == 2 * POOL_PER_LABEL + len(dev)
    noisy = FewShotClassificationEvaluator("Toy", train, dev, None, batch_size=8, seed=0)(_StubModel(noise=50.0))
    assert 0.2 < noisy["Toy_accuracy"] < 0.8


def test_the_pool_is_seeded():
    train, dev = _data()
    one = FewShotClassificationEvaluator("Toy", train, dev, None, batch_size=8, seed=1)
    two = FewShotClassificationEvaluator("Toy", train, dev, None, batch_size=8, seed=1)
    other = FewShotClassificationEvaluator("Toy", train, dev, None, batch_size=8, seed=2)
    assert one.train_texts == two.train_texts != other.train_texts
    assert sorted(set(one.train_labels)) == ["a", "b"] and one.train_labels.count("a") == POOL_PER_LABEL


def test_dev_subset_caps_queries_and_keeps_their_judged_documents():
    from mpembed.benchmarks.data import RetrievalSplit
    from mpembed.training.trainer import dev_subset

    queries = {f"q{i}": f"вопрос {i}" for i in range(50)}
    corpus = {f"d{i}": f"документ {i}" for i in range(300)}
    relevant = {f"q{i}": {f"d{i}": 2, f"d{i + 100}": 1} for i in range(50)}
    split = RetrievalSplit(queries, corpus, relevant)
    sub = dev_subset(split, 10, seed=3)
    assert len(sub.queries) == 10 and set(sub.queries) <= set(queries)
    assert len(sub.corpus) == 20  # 20 judged documents fill the 2x budget: no distractor needed
    assert all(set(sub.relevant[q]) <= set(sub.corpus) for q in sub.queries)
    wide = dev_subset(split, 30, seed=3)
    assert len(wide.corpus) == 60 and len(set(wide.corpus) - {d for r in wide.relevant.values() for d in r}) == 0
    small = dev_subset(RetrievalSplit(dict(list(queries.items())[:5]), corpus, relevant), 10, seed=3)
    assert len(small.queries) == 5 and len(small.corpus) == 300  # under the cap: unchanged
    assert dev_subset(split, 10, seed=3).queries == sub.queries  # seeded
    assert dev_subset(split, None, seed=3) is split


def test_dev_subset_caps_classification_rows():
    from mpembed.training.trainer import dev_subset

    _, dev = _data()
    sub = dev_subset(dev, 25, seed=0)
    assert len(sub.rows) == 25 and all(r in dev.rows for r in sub.rows)
    assert dev_subset(dev, 100, seed=0) is dev
