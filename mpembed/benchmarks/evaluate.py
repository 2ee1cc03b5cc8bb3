"""Score one model on the registered benchmarks (test split), with details for error analysis."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from mpembed.benchmarks.data import ClassificationSplit, RetrievalSplit, load_split, load_train
from mpembed.benchmarks.loaders import _cap
from mpembed.benchmarks.registry import Benchmark
from mpembed.benchmarks.scoring import (
    ClassificationResult,
    RetrievalResult,
    fewshot_draws,
    score_classification,
    score_retrieval,
)
from mpembed.embeddings import Embedder
from mpembed.params import EvaluateParams


def classification_train(folder: Path, limit: int, seed: int) -> ClassificationSplit:
    rows = load_train(folder)
    keep = set(_cap([r["id"] for r in rows], limit, seed))
    return ClassificationSplit([r for r in rows if r["id"] in keep])


def summarize_retrieval(split: RetrievalSplit, res: RetrievalResult, worst: int) -> dict:
    misses = sorted((p for p in res.per_query if p["got"] not in split.relevant[p["qid"]]),
                    key=lambda p: (p["ndcg@10"], p["qid"]))[:worst]
    return {
        "metrics": res.metrics,
        "misses": [{"input": split.queries[m["qid"]], "expected": split.corpus[m["expected"]],
                    "got": split.corpus[m["got"]]} for m in misses],
    }


def summarize_classification(test: ClassificationSplit, res: ClassificationResult, worst: int) -> dict:
    pairs = list(zip(test.labels, res.predictions, strict=True))
    wrong = [i for i, (y, p) in enumerate(pairs) if y != p]
    return {
        "metrics": res.metrics,
        **({"full_fit": res.full_fit} if res.full_fit else {}),
        "confusion": [{"actual": y, "predicted": p} for y, p in pairs],
        "misses": [{"input": test.texts[i], "expected": test.labels[i], "got": res.predictions[i]}
                   for i in wrong[:worst]],
    }


def _retrieval(bench: Benchmark, split: RetrievalSplit, embed: Embedder, worst: int) -> dict:
    q = embed.encode(list(split.queries.values()), bench.query_prompt)
    d = embed.encode(list(split.corpus.values()), bench.doc_prompt)
    return summarize_retrieval(split, score_retrieval(split, q @ d.T), worst)


def _classification(bench: Benchmark, folder: Path, test: ClassificationSplit, embed: Embedder,
                    params: EvaluateParams, seed: int, train_limit: int) -> dict:
    train = classification_train(folder, train_limit, seed)
    draws = fewshot_draws(train.labels, runs=params.classifier_runs,
                          samples_per_label=params.classifier_samples_per_label, seed=seed)
    # Only the rows the regressions read are embedded: about a third of the training pool.
    xtr = embed.encode_rows(train.texts, np.concatenate(draws), bench.query_prompt)
    xte = embed.encode(test.texts, bench.query_prompt)
    res = score_classification(xtr, train.labels, xte, test.labels, runs=params.classifier_runs,
                               samples_per_label=params.classifier_samples_per_label,
                               max_iter=params.classifier_max_iter, seed=seed, full_fit=True)
    return summarize_classification(test, res, params.worst_misses)


def evaluate_model(embed: Embedder, benchmarks: tuple[Benchmark, ...], prepared: Path, params: EvaluateParams,
                   seed: int, train_limit: int, label: str) -> dict[str, dict]:
    out = {}
    for bench in tqdm(benchmarks, desc=f"evaluate {label}", unit="benchmark"):
        folder = prepared / bench.name
        split = load_split(folder, "test")
        if isinstance(split, RetrievalSplit):
            out[bench.name] = _retrieval(bench, split, embed, params.worst_misses)
        else:
            out[bench.name] = _classification(bench, folder, split, embed, params, seed, train_limit)
    return out


def mean_main(results: dict[str, dict], benchmarks: tuple[Benchmark, ...]) -> float:
    return float(np.mean([results[b.name]["metrics"][b.main_metric] for b in benchmarks]))
