"""One typed schema of `params.yaml`: every stage validates its params through it before any work.

Groups mirror the stages (as in iterative/example-get-started), so `dvc exp run -S train.lr=...`
invalidates only `train` and what follows it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mpembed.errors import ParamsError


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BaseParams(_Group):
    seed: int = 42


class SampleParams(_Group):
    n_products: int = Field(2000, ge=20)


class BaseModelParams(_Group):
    name: str = "multilingual-e5-small"


class PrepareParams(_Group):
    raw_dir: str = "data/raw"
    dev_fraction: float = Field(0.1, gt=0, lt=0.5)
    test_fraction: float = Field(0.2, gt=0, lt=0.5)
    max_eval_queries: int = Field(400, ge=10)
    max_eval_items: int = Field(800, ge=10)


class BrandCandidatesParams(_Group):
    use_translit: bool = True
    use_char_ngrams: bool = True
    use_annoy: bool = True
    ngram_k: int = Field(10, ge=1)
    ngram_min_sim: float = Field(0.5, ge=0, le=1)
    annoy_n_trees: int = Field(20, ge=1)
    annoy_search_k: int = 1000
    annoy_k: int = Field(10, ge=1)
    annoy_min_cos: float = Field(0.8, ge=-1, le=1)
    target_precision: float = Field(0.9, gt=0, le=1)


class TripletsParams(_Group):
    n_per_anchor: int = Field(1, ge=1)
    k: int = Field(20, ge=2)
    annoy_n_trees: int = Field(20, ge=1)
    max_anchors: int | None = Field(None, ge=1)
    neg_pool: int = Field(1000, ge=1)  # products per neighbouring leaf that negatives are searched among
    embedder: Literal["model", "char_ngrams"] = "model"


TASKS = ("qa_goods", "support_facts", "search", "sim_goods", "brands", "classification", "distill")


class TrainParams(_Group):
    lr: float = Field(2e-5, gt=0, lt=1)
    head_lr: float = Field(1e-3, gt=0, lt=1)
    max_steps: int = Field(120, ge=1)
    batch_size: int = Field(32, ge=2)
    max_seq_length: int = Field(64, ge=8, le=512)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    weight_decay: float = Field(0.01, ge=0)
    freeze_embeddings: bool = True
    freeze_layers: int = Field(6, ge=0)
    sampler: Literal["proportional", "round_robin"] = "proportional"
    task_weights: dict[str, float] = Field(default_factory=lambda: dict.fromkeys(TASKS, 1.0))
    eval_steps: int = Field(40, ge=1)
    dev_max_items: int | None = Field(None, ge=1)  # per dev benchmark (queries or rows); None = the whole dev split
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["fp32", "fp16", "bf16"] = "fp32"
    nproc: int = Field(1, ge=1)  # > 1: DDP under torchrun; batch_size is split over processes
    head_init: Literal["zero", "probe"] = "probe"  # probe: heads start as a logistic regression (LP-FT)
    keep_base: float = Field(0.0, ge=0, le=1)  # final weights = (1 - k) * trained + k * base (WiSE-FT)
    label_contrast: float = Field(0.0, ge=0)  # weight of the batch-all triplet term of each head's loss
    label_margin: float = Field(0.1, gt=0, le=2)  # its cosine-distance margin

    @field_validator("task_weights")
    @classmethod
    def _known_tasks(cls, value: dict[str, float]) -> dict[str, float]:
        from mpembed.benchmarks.registry import BENCHMARKS

        # A family, or one classification benchmark (its weight inside the classification family).
        known = [*TASKS, *(b.name for b in BENCHMARKS if b.task == "classification")]
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise ValueError(f"unknown task(s) {unknown}; known: {known}")
        if any(w < 0 for w in value.values()) or not any(w > 0 for w in value.values()):
            raise ValueError("weights must be >= 0 with at least one > 0")
        return value


class EvaluateParams(_Group):
    batch_size: int = Field(64, ge=1)
    max_seq_length: int = Field(128, ge=8, le=512)
    classifier_max_train: int = Field(800, ge=10)
    classifier_runs: int = Field(10, ge=1)  # MTEB's n_experiments
    classifier_samples_per_label: int = Field(8, ge=2)  # MTEB's samples_per_label
    classifier_max_iter: int = Field(300, ge=10)
    benchmarks: list[str] | None = None  # None = all registered benchmarks
    worst_misses: int = Field(3, ge=0)

    @field_validator("benchmarks")
    @classmethod
    def _known_benchmarks(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return value
        from mpembed.benchmarks.registry import BENCHMARKS_BY_NAME

        unknown = [b for b in value if b not in BENCHMARKS_BY_NAME]
        if unknown:
            raise ValueError(f"unknown benchmark(s) {unknown}; known: {sorted(BENCHMARKS_BY_NAME)}")
        return value


class Params(_Group):
    base: BaseParams = BaseParams()
    sample: SampleParams = SampleParams()
    base_model: BaseModelParams = BaseModelParams()
    prepare: PrepareParams = PrepareParams()
    brand_candidates: BrandCandidatesParams = BrandCandidatesParams()
    triplets: TripletsParams = TripletsParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()


def load_params(path: str | Path = "params.yaml") -> Params:
    """Parse and validate params.yaml; errors name the key, e.g. `train.batch_size`."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ParamsError(f"{path}: file not found") from None
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML ({err})") from None
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise ParamsError(f"{path}: {key}: {first['msg']} (got {first.get('input')!r})") from None
