"""The `prepare` stage's logic: validate raw tables, split by group, build every benchmark, drop leaks."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import pandas as pd

from mpembed.benchmarks.data import BenchmarkData, ClassificationSplit, RetrievalSplit, save
from mpembed.benchmarks.registry import BENCHMARKS
from mpembed.data.schema import TABLES, check_refs, read_table
from mpembed.data.splits import LeakIndex, find_leaks, split_column
from mpembed.errors import DataError
from mpembed.io import atomic_dir, write_csv
from mpembed.params import Params

# Which column groups a table is split by; tables not listed inherit the split of their product.
_SPLIT_KEYS = {
    "products": "model_id",
    "brands": "brand_id",
    "support_facts": "fact_id",
    "support_short": "item_id",
    "users": "user_id",
}


# The raw table and column whose rows become each benchmark's test queries/items (for error messages).
_SOURCES = {
    "WBQAGoods-all": ("product_questions", "question"),
    "WBQAGoods-answer": ("product_questions", "question"),
    "WBQAGoods-description": ("product_questions", "question"),
    "WBQASupportFacts": ("support_questions", "question"),
    "WBSearchQueryNmRelevance": ("search_relevance", "query"),
    "WBSimGoods-triplets": ("products", "title"),
    "WBBrandSyns": ("brands", "spelling"),
    "WBReviewsClassification": ("reviews", "text"),
    "WBReviewsPolarityClassification": ("reviews", "text"),
    "WBReviewsSummarizationClassification": ("review_summaries", "text"),
    "WBGoodsCategoriesClassification": ("products", "title"),
    "WBGenderClassification": ("users", "user_id"),
    "WBQASupportShort": ("support_short", "question"),
}


def read_raw(raw_dir: str | Path) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Read and validate every table; return the tables and warnings (e.g. unknown extra columns)."""
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise DataError(raw_dir, "raw data folder not found (run the `sample` stage or `dvc pull`)")
    tables, warnings = {}, []
    for table in TABLES:
        frame = read_table(raw_dir, table)
        if frame is None:
            continue
        for col in frame.attrs.get("extra_columns", []):
            warnings.append(f"{raw_dir / table.file}, column '{col}': unknown column ignored")
        if frame.attrs.get("delimiter", ",") != ",":
            warnings.append(f"{raw_dir / table.file}: read as '{frame.attrs['delimiter']}'-separated")
        tables[table.name] = frame
    if tables["products"].empty:
        raise DataError(raw_dir / "products.csv", "no products (the dataset is empty)")
    check_refs(tables)
    return tables, warnings


def _fill_defaults(products: pd.DataFrame) -> pd.DataFrame:
    """Optional product columns get neutral defaults so `data_sampled_30.csv`-style files work."""
    p = products.copy()
    if "category" not in p:
        p["category"] = p["parentname"]
    if "brand" not in p:
        p["brand"] = ""
    if "model_id" not in p:
        p["model_id"] = p["nm_id"]
    if "isdeleted" not in p:
        p["isdeleted"] = 0
    return p


def assign_splits(tables: dict[str, pd.DataFrame], params: Params) -> dict[str, pd.DataFrame]:
    pp, seed = params.prepare, params.base.seed
    out = dict(tables)
    out["products"] = _fill_defaults(tables["products"])
    for name, key in _SPLIT_KEYS.items():
        if name in out:
            out[name] = out[name].assign(split=split_column(out[name][key], seed, pp.dev_fraction, pp.test_fraction))
    return out


def _train_texts(data: dict[str, BenchmarkData], tables: dict[str, pd.DataFrame]) -> Iterator[str]:
    """Every text a model may see in training, including what the mining stages draw from."""
    for bench in data.values():
        for row in bench.train:
            yield from (str(v) for k, v in row.items() if k in ("anchor", "positive", "negative", "text"))
    p = tables["products"]
    tr = p[p["split"] == "train"]
    yield from tr["title"]
    yield from tr["description"]
    b = tables["brands"]
    yield from b[b["split"] == "train"]["spelling"]


def eval_texts(split: RetrievalSplit | ClassificationSplit) -> dict[str, str]:
    """Texts of an evaluation split that must never be trained on: queries and their relevant docs."""
    if isinstance(split, ClassificationSplit):
        return {r["id"]: r["text"] for r in split.rows}
    out = dict(split.queries)
    for q, rel in split.relevant.items():
        for d in rel:
            out[f"{q}->{d}"] = split.corpus[d]
    return out


def drop_leaks(
    data: dict[str, BenchmarkData], train_texts: LeakIndex | Iterable[str]
) -> tuple[dict[str, int], dict[str, int]]:
    """Remove dev/test texts that occur in training text; return (items or queries, documents) dropped.

    A leaked query or classification item is dropped. A leaked relevant document is dropped from
    the corpus and from every judgment, and only queries left with nothing relevant go with it:
    dropping every query with one leaked document among hundreds of same-category products would
    empty WBSimGoods-triplets at 1M products, where a few generic titles equal training queries.
    """
    seen = train_texts if isinstance(train_texts, LeakIndex) else LeakIndex(train_texts)
    items, docs = {}, {}
    for name, bench in data.items():
        n_items = n_docs = 0
        for split_name in ("dev", "test"):
            split = getattr(bench, split_name)
            leaked = find_leaks(eval_texts(split), seen)
            if isinstance(split, ClassificationSplit):
                bad = set(leaked)
                n_items += sum(r["id"] in bad for r in split.rows)
                split.rows = [r for r in split.rows if r["id"] not in bad]
                continue
            bad_docs = {k.split("->", 1)[1] for k in leaked if "->" in k}
            n_docs += len(bad_docs & split.corpus.keys())
            split.drop_docs(bad_docs)
            bad = {k for k in leaked if "->" not in k} | {q for q, rel in split.relevant.items() if not rel}
            n_items += len(bad & split.queries.keys())
            split.drop_queries(bad)
        items[name], docs[name] = n_items, n_docs
    return items, docs


def build_all(tables: dict[str, pd.DataFrame], params: Params) -> tuple[dict[str, BenchmarkData], dict]:
    pp, seed = params.prepare, params.base.seed
    data = {b.name: b.loader(tables, pp.max_eval_queries, pp.max_eval_items, seed) for b in BENCHMARKS}
    leaks, leaked_docs = drop_leaks(data, _train_texts(data, tables))
    metrics: dict = {}
    for name, bench in data.items():
        if len(bench.test) == 0:
            table, column = _SOURCES.get(name, (None, None))
            dropped = {"leak": leaks[name], **bench.dropped}
            why = ", ".join(f"{v} dropped as {k.replace('_', ' ')}" for k, v in dropped.items() if v)
            where = Path(pp.raw_dir) / f"{table}.csv" if table else Path(pp.raw_dir)
            raise DataError(where, f"benchmark {name} has no test items after "
                            f"splitting and dedup ({why or 'no rows in the test split'}); add data or raise "
                            "prepare.test_fraction", column=column)
        metrics[name] = {"train": len(bench.train), "dev": len(bench.dev), "test": len(bench.test),
                         "dropped_leak": leaks[name], "dropped_leak_docs": leaked_docs[name],
                         **{f"dropped_{k}": v for k, v in bench.dropped.items()},
                         **bench.counts}
    return data, metrics


def run_prepare(params: Params, out_dir: str | Path, metrics_path: str | Path) -> dict:
    from mpembed.io import write_json

    tables, warnings = read_raw(params.prepare.raw_dir)
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    n_all = len(tables["products"])
    tables["products"] = _fill_defaults(tables["products"])
    deleted = int(tables["products"]["isdeleted"].sum())
    tables["products"] = tables["products"][tables["products"]["isdeleted"] == 0].reset_index(drop=True)
    tables = assign_splits(tables, params)
    data, bench_metrics = build_all(tables, params)
    with atomic_dir(out_dir) as tmp:
        for name, bench in data.items():
            save(bench, tmp / name)
        write_csv(tmp / "products.csv", tables["products"])
        write_csv(tmp / "brands.csv", tables["brands"])
    splits = tables["products"]["split"].value_counts().to_dict()
    metrics = {
        "products": {"raw": n_all, "dropped_deleted": deleted, **{s: int(splits.get(s, 0)) for s in ("train", "dev", "test")}},
        "dropped_leak_total": sum(m["dropped_leak"] for m in bench_metrics.values()),
        "benchmarks": bench_metrics,
    }
    write_json(metrics_path, metrics)
    return metrics
