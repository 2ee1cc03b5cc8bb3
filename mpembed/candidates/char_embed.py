"""Cheap text vectors for mining: hashed char n-gram TF-IDF reduced by a seeded truncated SVD.

The `triplets` stage encodes every training title; with the e5 model on a 2-core CPU that is about
70 titles/s, i.e. hours for a million products. `triplets.embedder: char_ngrams` uses these vectors
instead: titles that share words and word pieces land close together, which is what hard-negative
mining inside a category needs, at a few thousand titles per second and memory linear in the
number of titles (the hashing vectoriser keeps no vocabulary; the SVD is fitted on a sample).
"""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer

from mpembed.candidates.ann import iter_chunks, l2_normalise

N_FEATURES = 1 << 17
FIT_SAMPLE = 20_000
CHUNK = 100_000


def char_ngram_embeddings(texts: list[str], dim: int = 128, seed: int = 0) -> np.ndarray:
    """(len(texts), dim) float32 unit rows (fewer columns when there are fewer texts or n-grams)."""
    if not texts:
        return np.zeros((0, dim), dtype=np.float32)
    hasher = HashingVectorizer(
        analyzer="char_wb",
        ngram_range=(3, 4),
        n_features=N_FEATURES,
        alternate_sign=False,
        norm=None,
        lowercase=True,
        dtype=np.float32,
    )
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(len(texts), size=min(FIT_SAMPLE, len(texts)), replace=False))
    fit_counts = hasher.transform([texts[i] for i in sample])
    tfidf = TfidfTransformer(sublinear_tf=True).fit(fit_counts)
    fit_matrix = tfidf.transform(fit_counts)
    n_components = max(1, min(dim, fit_matrix.shape[0] - 1, fit_matrix.shape[1] - 1))
    svd = TruncatedSVD(n_components, algorithm="randomized", n_iter=3, random_state=seed).fit(fit_matrix)
    out = np.empty((len(texts), n_components), dtype=np.float32)
    for sl in iter_chunks(len(texts), CHUNK):
        out[sl] = svd.transform(tfidf.transform(hasher.transform(texts[sl])))
    return l2_normalise(out)
