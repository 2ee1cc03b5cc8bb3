"""In-memory and on-disk forms of one benchmark's splits.

Retrieval splits use the layout of sentence-transformers' `InformationRetrievalEvaluator`
(queries, corpus, graded relevant docs); classification splits are (id, text, label) rows.
Training rows are the columns a sentence-transformers loss takes (anchor/positive[/negative] or text/label).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mpembed.io import read_json, read_jsonl, write_json, write_jsonl


@dataclass
class RetrievalSplit:
    queries: dict[str, str] = field(default_factory=dict)
    corpus: dict[str, str] = field(default_factory=dict)
    relevant: dict[str, dict[str, int]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.queries)

    def to_json(self) -> dict:
        return {"queries": self.queries, "corpus": self.corpus, "relevant": self.relevant}

    def drop_queries(self, qids: set[str]) -> None:
        for q in qids:
            self.queries.pop(q, None)
            self.relevant.pop(q, None)

    def drop_docs(self, doc_ids: set[str]) -> None:
        """Remove documents from the corpus and from every query's judgments."""
        for d in doc_ids:
            self.corpus.pop(d, None)
        for rel in self.relevant.values():
            for d in doc_ids & rel.keys():
                del rel[d]


@dataclass
class ClassificationSplit:
    rows: list[dict] = field(default_factory=list)  # {"id", "text", "label"}

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def texts(self) -> list[str]:
        return [r["text"] for r in self.rows]

    @property
    def labels(self) -> list[str]:
        return [r["label"] for r in self.rows]


EvalSplit = RetrievalSplit | ClassificationSplit


@dataclass
class BenchmarkData:
    train: list[dict]
    dev: EvalSplit
    test: EvalSplit
    dropped: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)  # notable but valid input, e.g. one-spelling brands


def save(data: BenchmarkData, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_jsonl(folder / "train.jsonl", data.train)
    for name in ("dev", "test"):
        split = getattr(data, name)
        if isinstance(split, RetrievalSplit):
            write_json(folder / f"{name}.json", split.to_json())
        else:
            write_jsonl(folder / f"{name}.jsonl", split.rows)


def load_split(folder: Path, name: str) -> EvalSplit:
    if (folder / f"{name}.json").exists():
        return RetrievalSplit(**read_json(folder / f"{name}.json"))
    return ClassificationSplit(read_jsonl(folder / f"{name}.jsonl"))


def load_train(folder: Path) -> list[dict]:
    return read_jsonl(folder / "train.jsonl")
