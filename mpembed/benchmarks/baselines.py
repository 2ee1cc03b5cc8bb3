"""Lexical baselines on the same splits and scorers: BM25 (bm25s) for retrieval, TF-IDF word and
character n-grams + logistic regression for classification."""

from __future__ import annotations

from pathlib import Path

import bm25s
import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from tqdm.auto import tqdm

from mpembed.benchmarks.data import ClassificationSplit, RetrievalSplit, load_split
from mpembed.benchmarks.evaluate import classification_train, summarize_classification, summarize_retrieval
from mpembed.benchmarks.registry import Benchmark
from mpembed.benchmarks.scoring import score_classification, score_retrieval
from mpembed.params import EvaluateParams


def _tokenize(texts: list[str]) -> list[list[str]]:
    tokens = bm25s.tokenize(texts, lower=True, stopwords=None, return_ids=False, show_progress=False)
    return [t or ["<empty>"] for t in tokens]


def bm25_scores(split: RetrievalSplit) -> np.ndarray:
    retriever = bm25s.BM25()
    retriever.index(_tokenize(list(split.corpus.values())), show_progress=False)
    return np.stack([retriever.get_scores(q) for q in _tokenize(list(split.queries.values()))])


def tfidf_features(train: list[str], test: list[str]) -> tuple[sparse.csr_matrix, sparse.csr_matrix]:
    word = TfidfVectorizer(analyzer="word", ngram_range=(1, 2), min_df=1, sublinear_tf=True)
    char = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True)
    xtr = sparse.hstack([word.fit_transform(train), char.fit_transform(train)]).tocsr()
    xte = sparse.hstack([word.transform(test), char.transform(test)]).tocsr()
    return xtr, xte


def evaluate_baseline(benchmarks: tuple[Benchmark, ...], prepared: Path, params: EvaluateParams, seed: int,
                      train_limit: int) -> dict[str, dict]:
    out = {}
    for bench in tqdm(benchmarks, desc="evaluate lexical baseline", unit="benchmark"):
        folder = prepared / bench.name
        split = load_split(folder, "test")
        if isinstance(split, RetrievalSplit):
            out[bench.name] = summarize_retrieval(split, score_retrieval(split, bm25_scores(split)), params.worst_misses)
        else:
            assert isinstance(split, ClassificationSplit)
            train = classification_train(folder, train_limit, seed)
            xtr, xte = tfidf_features(train.texts, split.texts)
            res = score_classification(xtr, train.labels, xte, split.labels, runs=params.classifier_runs,
                                       samples_per_label=params.classifier_samples_per_label,
                                       max_iter=params.classifier_max_iter, seed=seed, full_fit=True)
            out[bench.name] = summarize_classification(split, res, params.worst_misses)
    return out
