"""Task families -> (dataset, loss, prompts), the inputs of `SentenceTransformerTrainer`.

One shared encoder, one loss per task family: in-batch-negatives ranking for question/query ->
document pairs, a triplet loss for mined product triplets, ranking on brand synonym pairs, and a
cross-entropy classification head per classification benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from datasets import Dataset
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer import losses

from mpembed.benchmarks.data import load_train
from mpembed.benchmarks.registry import BENCHMARKS
from mpembed.errors import MpembedError
from mpembed.params import TrainParams
from mpembed.training.heads import ClassificationHeadLoss


@dataclass
class Task:
    name: str
    family: str
    rows: list[dict]
    loss: str  # "ranking" | "triplet" | "label"
    prompts: dict[str, str]  # column -> prompt name
    labels: list[str] | None = None  # class names of a "label" task, index = label id


def _prompts(columns: list[str], query_cols: set[str]) -> dict[str, str]:
    return {c: ("query" if c in query_cols else "passage") for c in columns if c != "label"}


def collect_tasks(prepared: Path, triplets_csv: Path, brand_pairs_csv: Path) -> list[Task]:
    """Read every training source; a task with no rows is left out (and reported by the caller)."""
    tasks: dict[str, Task] = {}
    for bench in BENCHMARKS:
        if bench.task is None:
            continue
        rows = load_train(prepared / bench.name)
        if bench.task == "classification":
            names = sorted({r["label"] for r in rows})
            ids = {lab: i for i, lab in enumerate(names)}
            rows = [{"text": r["text"], "label": ids[r["label"]]} for r in rows]
            tasks[bench.name] = Task(bench.name, "classification", rows, "label", {"text": "query"}, names)
        else:
            t = tasks.setdefault(bench.task, Task(bench.task, bench.task, [], "ranking", {}))
            t.rows.extend(rows)
    for t in tasks.values():
        if t.loss == "ranking" and t.rows:
            t.prompts = _prompts(list(t.rows[0]), {"anchor"})
    trip = pd.read_csv(triplets_csv, dtype=str, keep_default_na=False)
    tasks["sim_goods"] = Task("sim_goods", "sim_goods",
                              trip[["anchor", "positive", "negative"]].to_dict("records"), "triplet",
                              {"anchor": "query", "positive": "query", "negative": "query"})
    pairs = pd.read_csv(brand_pairs_csv, dtype=str, keep_default_na=False)
    tasks["brands"] = Task("brands", "brands", pairs[["anchor", "positive"]].to_dict("records"), "ranking",
                           {"anchor": "query", "positive": "query"})
    return [t for t in tasks.values() if t.rows]


def task_sizes(tasks: list[Task], weights: dict[str, float], total: int) -> dict[str, int]:
    """Examples per task so that families get `weights` of the `total` budget (split evenly inside)."""
    per_family: dict[str, list[Task]] = {}
    for t in tasks:
        per_family.setdefault(t.family, []).append(t)
    active = {f: weights.get(f, 1.0) for f in per_family if weights.get(f, 1.0) > 0}
    norm = sum(active.values()) or 1.0
    sizes = {}
    for family, members in per_family.items():
        share = active.get(family, 0.0) / norm * total / len(members)
        for t in members:
            sizes[t.name] = round(share)
    return sizes


def resample(rows: list[dict], n: int, rng: np.random.Generator) -> list[dict]:
    """`n` rows: whole shuffled passes over the data, then a partial one (no row repeats within a pass)."""
    if n <= 0 or not rows:
        return []
    out: list[dict] = []
    while len(out) < n:
        out.extend(rows[i] for i in rng.permutation(len(rows))[: n - len(out)])
    return out


def make_loss(task: Task, model: SentenceTransformer):
    kind = task.loss
    if kind == "ranking":
        return losses.MultipleNegativesRankingLoss(model)
    if kind == "triplet":
        # Cosine distance with a small margin: the embeddings are normalised, so a Euclidean
        # margin of 5 (the library default) could never be met.
        return losses.TripletLoss(model, distance_metric=losses.TripletDistanceMetric.COSINE, triplet_margin=0.2)
    if kind == "label":
        return ClassificationHeadLoss(model, task.labels or [])
    raise ValueError(kind)


def build_inputs(tasks: list[Task], model: SentenceTransformer, params: TrainParams, seed: int):
    """Datasets, losses and per-column prompt strings keyed by task name, sized by the task weights."""
    rng = np.random.default_rng(seed)
    sizes = task_sizes(tasks, params.task_weights, params.max_steps * params.batch_size)
    datasets, loss_fns, prompts, counts = {}, {}, {}, {}
    for t in tasks:
        # A task with weight > 0 gets at least one batch, even when the step budget is tiny.
        n = max(sizes.get(t.name, 0), params.batch_size) if params.task_weights.get(t.family, 1.0) > 0 else 0
        rows = resample(t.rows, n, rng)
        if len(rows) < params.batch_size:
            counts[t.name] = 0
            continue
        datasets[t.name] = Dataset.from_list(rows)
        loss_fns[t.name] = make_loss(t, model)
        prompts[t.name] = {col: model.prompts.get(p, "") for col, p in t.prompts.items()}
        counts[t.name] = len(rows)
    if not datasets:
        raise MpembedError("no training task has data: check train.task_weights and the prepared splits")
    return datasets, loss_fns, prompts, counts
