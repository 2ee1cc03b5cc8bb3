"""Task families -> (dataset, loss, prompts), the inputs of `SentenceTransformerTrainer`.

One shared encoder, one loss per task family: in-batch-negatives ranking for question/query ->
document pairs, a triplet loss for mined product triplets, ranking on brand synonym pairs, a
cross-entropy classification head per classification benchmark, and a distillation task that keeps
the encoder close to the base model on the same texts (what the base model knew is not forgotten).
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
    loss: str  # "ranking" | "triplet" | "label" | "distill"
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
    found = [t for t in tasks.values() if t.rows]
    found.append(distill_task(found))
    return [t for t in found if t.rows]


def distill_task(tasks: list[Task]) -> Task:
    """Every distinct training text with its e5 prompt name; the teacher embeddings come later."""
    seen: set[tuple[str, str]] = set()
    for t in tasks:
        for row in t.rows:
            seen.update((prompt, str(row[col])) for col, prompt in t.prompts.items())
    rows = [{"prompt": p, "text": text} for p, text in sorted(seen)]
    return Task("distill", "distill", rows, "distill", {"text": ""})


def with_teacher_embeddings(rows: list[dict], model: SentenceTransformer, batch_size: int) -> list[dict]:
    """Prefix each text with its prompt and label it with the (still untrained) model's embedding.

    EmbedDistillLoss reads the teacher embedding from the `label` column; computing it before
    training from the same weights makes the base model its own teacher.
    """
    texts = [model.prompts.get(r["prompt"], "") + r["text"] for r in rows]
    emb = model.encode(texts, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True)
    return [{"text": text, "label": e.tolist()} for text, e in zip(texts, emb, strict=True)]


def task_sizes(tasks: list[Task], weights: dict[str, float], total: int) -> dict[str, int]:
    """Examples per task so that families get `weights` of the `total` budget.

    Inside a family the share is split by the task's own weight (`weights[task name]`, default 1),
    so one classification benchmark can get more batches than its siblings.
    """
    per_family: dict[str, list[Task]] = {}
    for t in tasks:
        per_family.setdefault(t.family, []).append(t)
    active = {f: weights.get(f, 1.0) for f in per_family if weights.get(f, 1.0) > 0}
    norm = sum(active.values()) or 1.0
    sizes = {}
    for family, members in per_family.items():
        share = active.get(family, 0.0) / norm * total
        inner = [task_weight(t, weights) for t in members]
        inner_norm = sum(inner) or 1.0
        for t, w in zip(members, inner, strict=True):
            sizes[t.name] = round(share * w / inner_norm)
    return sizes


def task_weight(task: Task, weights: dict[str, float]) -> float:
    """A task's weight inside its family (1 unless `train.task_weights` names the task itself)."""
    return 1.0 if task.name == task.family else weights.get(task.name, 1.0)


def resample(rows: list[dict], n: int, rng: np.random.Generator) -> list[dict]:
    """`n` rows: whole shuffled passes over the data, then a partial one (no row repeats within a pass)."""
    if n <= 0 or not rows:
        return []
    out: list[dict] = []
    while len(out) < n:
        out.extend(rows[i] for i in rng.permutation(len(rows))[: n - len(out)])
    return out


def make_loss(task: Task, model: SentenceTransformer, params: TrainParams | None = None):
    kind = task.loss
    if kind == "ranking":
        return losses.MultipleNegativesRankingLoss(model)
    if kind == "triplet":
        # Cosine distance with a small margin: the embeddings are normalised, so a Euclidean
        # margin of 5 (the library default) could never be met.
        return losses.TripletLoss(model, distance_metric=losses.TripletDistanceMetric.COSINE, triplet_margin=0.2)
    if kind == "label":
        if params is None:
            return ClassificationHeadLoss(model, task.labels or [])
        return ClassificationHeadLoss(model, task.labels or [], params.label_contrast, params.label_margin)
    if kind == "distill":
        return losses.EmbedDistillLoss(model, distance_metric="cosine")
    raise ValueError(kind)


PROBE_MAX_TEXTS = 1000  # per head: enough for a linear probe, ~15 s of base-model encoding on 2 CPU cores


def init_head(loss: ClassificationHeadLoss, task: Task, rows: list[dict], model: SentenceTransformer,
              batch_size: int, seed: int) -> None:
    """Fit the head's starting point on the base model's embeddings of the task's own training rows."""
    seen: dict[str, int] = {}
    for r in rows:  # rows are already shuffled: the first distinct texts are a seeded sample
        if len(seen) >= PROBE_MAX_TEXTS:
            break
        seen.setdefault(r["text"], r["label"])
    prompt = task.prompts.get("text")
    emb = model.encode(list(seen), prompt_name=prompt if prompt in model.prompts else None,
                       batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True)
    acc = loss.init_from_probe(emb, np.array(list(seen.values())), seed)
    print(f"head {task.name}: probe on {len(seen)} base-model embeddings, train accuracy {acc:.3f}")


def build_inputs(tasks: list[Task], model: SentenceTransformer, params: TrainParams, seed: int):
    """Datasets, losses and per-column prompt strings keyed by task name, sized by the task weights."""
    rng = np.random.default_rng(seed)
    sizes = task_sizes(tasks, params.task_weights, params.max_steps * params.batch_size)
    datasets, loss_fns, prompts, counts = {}, {}, {}, {}
    for t in tasks:
        # A task with weight > 0 gets at least one batch, even when the step budget is tiny.
        weight = params.task_weights.get(t.family, 1.0) * task_weight(t, params.task_weights)
        n = max(sizes.get(t.name, 0), params.batch_size) if weight > 0 else 0
        rows = resample(t.rows, n, rng)
        if len(rows) < params.batch_size:
            counts[t.name] = 0
            continue
        if t.loss == "distill":
            rows = with_teacher_embeddings(rows, model, params.batch_size)
        datasets[t.name] = Dataset.from_list(rows)
        loss_fns[t.name] = make_loss(t, model, params)
        if t.loss == "label" and params.head_init == "probe":
            init_head(loss_fns[t.name], t, rows, model, params.batch_size, seed)
        prompts[t.name] = {col: model.prompts[p] for col, p in t.prompts.items() if p in model.prompts}
        counts[t.name] = len(rows)
    if not datasets:
        raise MpembedError("no training task has data: check train.task_weights and the prepared splits")
    return datasets, loss_fns, prompts, counts
