"""The 13 benchmarks, declared once: evaluate, report, training and tests all iterate this list.

Adding a benchmark is one entry here plus a loader in `loaders.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from mpembed.benchmarks import loaders

RETRIEVAL_METRICS = ("ndcg@1", "ndcg@10")
CLASSIFICATION_METRICS = ("accuracy", "f1")


@dataclass(frozen=True)
class Benchmark:
    name: str
    kind: Literal["retrieval", "classification"]
    description: str
    loader: Callable[..., loaders.BenchmarkData]
    task: str | None  # training task family its train split feeds (None: fed by a mining stage)
    query_prompt: str = "query"  # e5 convention: "query: " for queries and for classification texts
    doc_prompt: str = "passage"

    @property
    def metrics(self) -> tuple[str, ...]:
        return RETRIEVAL_METRICS if self.kind == "retrieval" else CLASSIFICATION_METRICS

    @property
    def main_metric(self) -> str:
        return "ndcg@10" if self.kind == "retrieval" else "accuracy"


BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark("WBQAGoods-all", "retrieval", "buyer question -> seller answers and product descriptions",
              loaders.load_qa_all, None),
    Benchmark("WBQAGoods-answer", "retrieval", "buyer question -> seller answer", loaders.load_qa_answer,
              "qa_goods"),
    Benchmark("WBQAGoods-description", "retrieval", "buyer question -> product description",
              loaders.load_qa_description, "qa_goods"),
    Benchmark("WBQASupportFacts", "retrieval", "support question -> help-centre fact",
              loaders.load_support_facts, "support_facts"),
    Benchmark("WBSearchQueryNmRelevance", "retrieval", "search query -> product title, graded 0-3",
              loaders.load_search, "search"),
    Benchmark("WBSimGoods-triplets", "retrieval", "product title -> variants (2) and same-leaf products (1)",
              loaders.load_sim_goods, None, doc_prompt="query"),
    Benchmark("WBBrandSyns", "retrieval", "brand spelling -> other spellings of the same brand",
              loaders.load_brand_syns, None, doc_prompt="query"),
    Benchmark("WBReviewsClassification", "classification", "review text -> rating 1-5",
              loaders.load_reviews, "classification"),
    Benchmark("WBReviewsPolarityClassification", "classification", "review text -> positive (4-5) / negative (1-2)",
              loaders.load_polarity, "classification"),
    Benchmark("WBReviewsSummarizationClassification", "classification", "review-set summary -> good / bad",
              loaders.load_summaries, "classification"),
    Benchmark("WBGoodsCategoriesClassification", "classification", "product title -> leaf category",
              loaders.load_categories, "classification"),
    Benchmark("WBGenderClassification", "classification", "purchase history titles -> buyer gender",
              loaders.load_gender, "classification"),
    Benchmark("WBQASupportShort", "classification", "support context + yes/no question -> answer",
              loaders.load_support_short, "classification"),
)

BENCHMARKS_BY_NAME = {b.name: b for b in BENCHMARKS}


def selected(names: list[str] | None) -> tuple[Benchmark, ...]:
    return BENCHMARKS if names is None else tuple(BENCHMARKS_BY_NAME[n] for n in names)
