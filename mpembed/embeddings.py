"""Encoding with the e5 prompts, cached per (prompt, text) within one run.

Benchmarks share texts (the same product titles, answers and reviews appear in several), so a cache
halves evaluation time without changing any result.
"""

from __future__ import annotations

import numpy as np
from sentence_transformers import SentenceTransformer


def load_model(path: str, device: str = "cpu", max_seq_length: int | None = None) -> SentenceTransformer:
    model = SentenceTransformer(str(path), device=device, local_files_only=True)
    if max_seq_length:
        model.max_seq_length = max_seq_length
    return model


class Embedder:
    """Normalised embeddings of texts under a named prompt ("query" / "passage")."""

    def __init__(self, model: SentenceTransformer, batch_size: int = 64, progress: bool = True):
        self.model, self.batch_size, self.progress = model, batch_size, progress
        self._cache: dict[tuple[str, str], np.ndarray] = {}

    def encode(self, texts: list[str], prompt_name: str) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if (prompt_name, t) not in self._cache))
        if missing:
            vecs = self.model.encode(
                missing,
                prompt_name=prompt_name if prompt_name in self.model.prompts else None,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=self.progress and len(missing) > self.batch_size,
            )
            self._cache.update({(prompt_name, t): v for t, v in zip(missing, vecs, strict=True)})
        dim = _dimension(self.model) or 0
        if not texts:
            return np.zeros((0, dim), dtype=np.float32)
        return np.stack([self._cache[(prompt_name, t)] for t in texts]).astype(np.float32)

    def encode_rows(self, texts: list[str], rows: np.ndarray, prompt_name: str) -> np.ndarray:
        """A `len(texts)` x dim array with the embeddings of `texts[rows]` and NaN elsewhere: a scorer
        that reads only `rows` never pays for the rest, and one that reads more fails loudly."""
        rows = np.unique(np.asarray(rows, dtype=np.int64))
        out = np.full((len(texts), _dimension(self.model)), np.nan, dtype=np.float32)
        if len(rows):
            out[rows] = self.encode([texts[i] for i in rows], prompt_name)
        return out


def _dimension(model: SentenceTransformer) -> int:
    """Embedding size (the method was renamed in sentence-transformers 6)."""
    getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(getter() or 0)
