"""Task-specific classification heads: a linear layer on the pooled embedding, trained jointly with
the shared encoder by cross-entropy, saved next to the encoder and reloadable with one call.

sentence-transformers' `SoftmaxLoss` classifies *pairs* (u, v, |u-v|); our classification tasks
label single texts, hence this small loss module.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.losses import (
    BatchAllTripletLoss,
    BatchHardTripletLossDistanceFunction,
)
from sklearn.linear_model import LogisticRegression
from torch import nn

HEADS_DIR = "heads"


class ClassificationHeadLoss(nn.Module):
    """Cross-entropy of a linear head on the sentence embedding, plus an optional label-contrast term.

    The head starts at zero (uniform predictions, no gradient into the encoder at step 0) or, with
    `train.head_init: probe`, as a linear probe of the base model (`init_from_probe`); it gets its
    own learning rate (`train.head_lr`), so it learns fast while the encoder moves slowly.

    A fast head can fit the labels with the embeddings barely moving, which helps the head but not a
    classifier fitted later on the frozen embeddings from a few examples per label (the MTEB
    protocol). `label_contrast` > 0 adds the library's batch-all triplet loss on the same batch
    (cosine distance, `label_margin`): texts of one label are pulled together, texts of different
    labels apart, so the embedding itself separates the classes. It needs no extra forward pass.
    """

    def __init__(self, model: SentenceTransformer, labels: list[str], label_contrast: float = 0.0,
                 label_margin: float = 0.1):
        super().__init__()
        self.model = model
        self.labels = list(labels)
        self.head = nn.Linear(_dimension(model), len(labels))
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.cross_entropy = nn.CrossEntropyLoss()
        self.label_contrast = label_contrast
        self.contrast = BatchAllTripletLoss(
            model, distance_metric=BatchHardTripletLossDistanceFunction.cosine_distance, margin=label_margin
        )

    @torch.no_grad()
    def init_from_probe(self, embeddings: np.ndarray, labels: np.ndarray, seed: int) -> float:
        """Start the head as a logistic regression fitted on the base model's frozen embeddings.

        LP-FT (Kumar et al., 2022): with a zero head the first updates push the encoder with
        uninformative gradients; a head that already separates the classes changes the pretrained
        features less, which keeps what the base model knew. Returns the probe's training accuracy.
        """
        if len(np.unique(labels)) < 2:  # nothing to separate (tiny data): the head stays at zero
            return 1.0
        probe = LogisticRegression(max_iter=300, random_state=seed).fit(embeddings, labels)
        weight = np.zeros((len(self.labels), embeddings.shape[1]), dtype=np.float32)
        bias = np.zeros(len(self.labels), dtype=np.float32)
        classes = probe.classes_.astype(int)
        if len(classes) == 2:  # sklearn keeps one row for two classes: logit(c1) - logit(c0)
            weight[classes[1]], weight[classes[0]] = probe.coef_[0] / 2, -probe.coef_[0] / 2
            bias[classes[1]], bias[classes[0]] = probe.intercept_[0] / 2, -probe.intercept_[0] / 2
        else:
            weight[classes], bias[classes] = probe.coef_, probe.intercept_
        self.head.weight.copy_(torch.from_numpy(weight))
        self.head.bias.copy_(torch.from_numpy(bias))
        return float(probe.score(embeddings, labels))

    def forward(self, sentence_features, labels: torch.Tensor) -> torch.Tensor:
        embeddings = self.model(sentence_features[0])["sentence_embedding"]
        loss = self.cross_entropy(self.head(embeddings), labels.long())
        if self.label_contrast > 0:
            loss = loss + self.label_contrast * self.contrast.batch_all_triplet_loss(labels, embeddings)
        return loss


def save_heads(losses: dict[str, nn.Module], folder: Path) -> list[str]:
    """Write every trained head as `<folder>/heads/<task>.pt` plus an index with its labels."""
    index = {}
    out = folder / HEADS_DIR
    for name, loss in losses.items():
        if isinstance(loss, ClassificationHeadLoss):
            out.mkdir(parents=True, exist_ok=True)
            torch.save({k: v.detach().cpu() for k, v in loss.head.state_dict().items()}, out / f"{name}.pt")
            index[name] = loss.labels
    if index:
        (out / "labels.json").write_text(json.dumps(index, ensure_ascii=False, indent=2), encoding="utf-8")
    return sorted(index)


class Heads:
    """The heads of a saved embedder: `Heads.load("models/embedder").predict(model, task, texts)`."""

    def __init__(self, heads: dict[str, tuple[list[str], nn.Linear]]):
        self.heads = heads

    @classmethod
    def load(cls, folder: str | Path) -> Heads:
        folder = Path(folder) / HEADS_DIR
        index = json.loads((folder / "labels.json").read_text(encoding="utf-8"))
        heads = {}
        for name, labels in index.items():
            state = torch.load(folder / f"{name}.pt", map_location="cpu", weights_only=True)
            linear = nn.Linear(state["weight"].shape[1], len(labels))
            linear.load_state_dict(state)
            heads[name] = (labels, linear.eval())
        return cls(heads)

    @property
    def tasks(self) -> list[str]:
        return sorted(self.heads)

    @torch.no_grad()
    def predict(self, model: SentenceTransformer, task: str, texts: list[str], prompt_name: str = "query") -> list[str]:
        labels, linear = self.heads[task]
        emb = model.encode(texts, prompt_name=prompt_name if prompt_name in model.prompts else None,
                           convert_to_tensor=True, normalize_embeddings=True).cpu()
        return [labels[i] for i in linear(emb).argmax(dim=1).tolist()]


def _dimension(model: SentenceTransformer) -> int:
    """Embedding size (the method was renamed in sentence-transformers 6)."""
    getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(getter() or 0)
