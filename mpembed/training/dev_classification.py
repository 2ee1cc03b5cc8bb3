"""Few-shot classification on the dev splits, as a sentence-transformers evaluator.

The test benchmarks score classification by the MTEB protocol (a logistic regression fitted on a
few frozen embeddings per label). Choosing the best checkpoint on retrieval dev scores alone would
ignore half the benchmarks, so the dev evaluator runs the same protocol on each classification dev
split. The library has no evaluator for single-text labels fitted on frozen embeddings (its
`LabelAccuracyEvaluator` scores a `SoftmaxLoss` pair head), hence this one. To stay cheap enough
for every `eval_steps` on a CPU, the training side is a fixed seeded pool of
`POOL_PER_LABEL` texts per label, and `score_classification` draws its runs from that pool.
"""

from __future__ import annotations

import numpy as np
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.evaluation import SentenceEvaluator

from mpembed.benchmarks.data import ClassificationSplit
from mpembed.benchmarks.scoring import per_label_sample, score_classification

POOL_PER_LABEL = 8  # training texts per label encoded at each evaluation: one 8-shot draw
RUNS = 1  # one fit per evaluation: the dev score only has to rank checkpoints, and is paid every eval_steps
SAMPLES_PER_LABEL = 8  # the MTEB default, as in `evaluate`


class FewShotClassificationEvaluator(SentenceEvaluator):
    """Mean accuracy of `RUNS` seeded 8-shot logistic regressions on frozen embeddings, on `dev`."""

    def __init__(self, name: str, train: list[dict], dev: ClassificationSplit, prompt: str | None,
                 batch_size: int, seed: int):
        super().__init__()
        labels = np.array([r["label"] for r in train])
        pool = per_label_sample(labels, POOL_PER_LABEL, np.random.default_rng(seed))
        self.name, self.prompt, self.batch_size, self.seed = name, prompt, batch_size, seed
        self.train_texts = [train[i]["text"] for i in pool]
        self.train_labels = labels[pool].tolist()
        self.dev_texts, self.dev_labels = dev.texts, dev.labels
        self.primary_metric = "accuracy"

    def __call__(self, model: SentenceTransformer, output_path: str | None = None, epoch: int = -1,
                 steps: int = -1) -> dict[str, float]:
        emb = model.encode(self.train_texts + self.dev_texts, prompt=self.prompt, batch_size=self.batch_size,
                           normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        n = len(self.train_texts)
        result = score_classification(emb[:n], self.train_labels, emb[n:], self.dev_labels, runs=RUNS,
                                      samples_per_label=SAMPLES_PER_LABEL, max_iter=300, seed=self.seed)
        metrics = self.prefix_name_to_metrics(result.metrics, self.name)
        self.store_metrics_in_model_card_data(model, metrics, epoch, steps)
        return metrics
