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
