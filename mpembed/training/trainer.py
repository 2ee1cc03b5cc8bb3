"""One fine-tuning run with the library's `SentenceTransformerTrainer`, a dev evaluator choosing the
best checkpoint, resumable checkpoints, a training loss per task in the logs, and data-parallel
training under torchrun (see `mpembed.training.distributed`)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
from sentence_transformers.sentence_transformer.evaluation import (
    InformationRetrievalEvaluator,
    SequentialEvaluator,
)
from sentence_transformers.sentence_transformer.training_args import (
    BatchSamplers,
    MultiDatasetBatchSamplers,
    SentenceTransformerTrainingArguments,
)

from dvclive import Live
from mpembed.benchmarks.data import ClassificationSplit, RetrievalSplit, load_split, load_train
from mpembed.benchmarks.registry import BENCHMARKS
from mpembed.errors import ParamsError
from mpembed.params import TrainParams
from mpembed.training import distributed
from mpembed.training.dev_classification import FewShotClassificationEvaluator
from mpembed.training.heads import ClassificationHeadLoss
from mpembed.training.live import StepAlignedDVCLiveCallback, run_train_loss

HEADS_FILE = "heads.pt"  # classification heads inside each checkpoint folder

# Dev retrieval benchmarks that, with every classification benchmark's few-shot dev score, pick the
# best checkpoint (the other two retrieval benchmarks share these benchmarks' training data).
DEV_BENCHMARKS = (
    "WBQAGoods-all",
    "WBQASupportFacts",
    "WBSearchQueryNmRelevance",
    "WBBrandSyns",
    "WBSimGoods-triplets",
)


def freeze(model: SentenceTransformer, freeze_embeddings: bool, n_layers: int) -> dict[str, int]:
    """Freeze the token embeddings and the lowest `n_layers` encoder layers.

    Keeps training conservative (what the base model knew about Russian is mostly in the lower
    layers and the 250k-token embedding matrix) and makes a CPU step ~30% cheaper.
    """
    backbone = model[0].auto_model
    if freeze_embeddings and hasattr(backbone, "embeddings"):
        for p in backbone.embeddings.parameters():
            p.requires_grad = False
    layers = backbone.encoder.layer if hasattr(backbone, "encoder") else []
    for layer in list(layers)[:n_layers]:
        for p in layer.parameters():
            p.requires_grad = False
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return {"trainable_params": trainable, "total_params": total}


def dev_subset(split: RetrievalSplit | ClassificationSplit, max_items: int | None, seed: int):
    """At most `max_items` queries (or labelled rows) of a dev split, drawn with `seed`.

    A retrieval corpus keeps every document judged for the kept queries and is filled with other
    documents up to twice the query count: fewer distractors than the test split, which is enough
    to rank checkpoints, and each dev evaluation is paid every `train.eval_steps` steps.
    """
    rng = np.random.default_rng(seed)
    if isinstance(split, ClassificationSplit):
        if max_items is None or len(split.rows) <= max_items:
            return split
        return ClassificationSplit([split.rows[i] for i in sorted(rng.choice(len(split.rows), max_items, replace=False))])
    qids = list(split.queries)
    if max_items is None or len(qids) <= max_items:
        return split
    keep = [qids[i] for i in sorted(rng.choice(len(qids), max_items, replace=False))]
    judged = {d for q in keep for d in split.relevant.get(q, {}) if d in split.corpus}
    others = [d for d in split.corpus if d not in judged]
    n_other = min(len(others), max(0, 2 * max_items - len(judged)))
    chosen = judged | {others[i] for i in rng.choice(len(others), n_other, replace=False)}
    return RetrievalSplit({q: split.queries[q] for q in keep},
                          {d: text for d, text in split.corpus.items() if d in chosen},
                          {q: dict(split.relevant.get(q, {})) for q in keep})


def dev_evaluator(prepared: Path, model: SentenceTransformer, batch_size: int, seed: int = 0,
                  max_items: int | None = None) -> SequentialEvaluator:
    """Retrieval dev scores (the library's IR evaluator) and few-shot classification dev accuracy
    on at most `max_items` dev items per benchmark (see `dev_subset`); the main score, which picks
    the best checkpoint, is their unweighted mean."""
    evaluators: list = []
    by_name = {b.name: b for b in BENCHMARKS}
    for name in DEV_BENCHMARKS:
        split = load_split(prepared / name, "dev")
        if not isinstance(split, RetrievalSplit) or not split.queries:
            continue
        split = dev_subset(split, max_items, seed)
        bench = by_name[name]
        evaluators.append(
            InformationRetrievalEvaluator(
                queries=split.queries,
                corpus=split.corpus,
                relevant_docs={q: set(r) for q, r in split.relevant.items()},
                name=name,
                batch_size=batch_size,
                ndcg_at_k=[10],
                mrr_at_k=[10],
                accuracy_at_k=[1],
                precision_recall_at_k=[10],
                map_at_k=[10],
                write_csv=False,
                query_prompt=model.prompts.get(bench.query_prompt) or None,
                corpus_prompt=model.prompts.get(bench.doc_prompt) or None,
            )
        )
    for bench in BENCHMARKS:
        if bench.kind != "classification":
            continue
        split = load_split(prepared / bench.name, "dev")
        train_rows = load_train(prepared / bench.name)
        if isinstance(split, ClassificationSplit) and split.rows and len({r["label"] for r in train_rows}) > 1:
            split = dev_subset(split, max_items, seed)
            evaluators.append(FewShotClassificationEvaluator(
                bench.name, train_rows, split, model.prompts.get(bench.query_prompt) or None, batch_size, seed))
    return SequentialEvaluator(evaluators, main_score_function=lambda scores: float(np.mean(scores)))


def run_key(params: TrainParams, seed: int, inputs_digest: str) -> str:
    """Checkpoints are reused only by a run with the same params and inputs."""
    blob = json.dumps({"p": params.model_dump(), "seed": seed, "in": inputs_digest}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def code_fingerprint() -> str:
    """Hash of the training code (this package's training modules and the stage script)."""
    digest = hashlib.sha256()
    root = Path(__file__).resolve().parents[2]
    for path in sorted([*Path(__file__).parent.glob("*.py"), root / "stages" / "train.py"]):
        if path.exists():
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:12]


def last_checkpoint(folder: Path) -> str | None:
    """The newest complete checkpoint; `trainer_state.json` is written last, so a folder without it
    is one a killed run left half-written."""
    ckpts = sorted((p for p in folder.glob("checkpoint-*") if (p / "trainer_state.json").exists()),
                   key=lambda p: int(p.name.split("-")[1]))
    return str(ckpts[-1]) if ckpts else None


def _has_heads(loss_fns: dict) -> bool:
    return any(isinstance(loss, ClassificationHeadLoss) for loss in loss_fns.values())


def pick_device(params: TrainParams) -> str:
    if params.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return params.device


def per_device_batch(batch_size: int, n_proc: int) -> int:
    """`train.batch_size` is the global batch; each of `n_proc` processes takes an equal share."""
    if batch_size % n_proc or batch_size // n_proc < 2:
        raise ParamsError(
            f"train.batch_size ({batch_size}) must split into equal batches of at least 2 "
            f"over {n_proc} processes (train.nproc)"
        )
    return batch_size // n_proc


TASK_LOSS_PREFIX = "task_loss/"  # `loss/<task>` would clash with the scalar `loss` in dvclive's metrics.json


class MultiTaskTrainer(SentenceTransformerTrainer):
    """`SentenceTransformerTrainer` that also logs the mean training loss of each task (dataset name)
    since the last log, as `task_loss/<task>` next to the aggregate `loss`.

    The library only splits the logged loss into the components of a loss that returns a dict; it
    does not split it by dataset. Under DDP the sums and counts are all-reduced, so a task's value is
    the mean over every batch of that task on any rank. A task with no batch since the last log is
    left out of that log entry.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.task_names = sorted(self.loss) if isinstance(self.loss, dict) else []
        self._task_index = {name: i for i, name in enumerate(self.task_names)}
        self._task_sum: torch.Tensor | None = None
        self._task_count: torch.Tensor | None = None

    # The classification heads live in the loss modules, not in the model the library checkpoints:
    # without these two hooks a resumed run restarts its heads at zero, and loading the best
    # checkpoint at the end would keep the heads of the last step.
    def _save(self, output_dir: str | None = None, state_dict=None) -> None:
        super()._save(output_dir, state_dict)
        heads = {name: loss.head.state_dict() for name, loss in self._heads().items()}
        if heads:
            torch.save(heads, os.path.join(output_dir or self.args.output_dir, HEADS_FILE))

    def _load_from_checkpoint(self, resume_from_checkpoint: str, *args, **kwargs) -> None:
        super()._load_from_checkpoint(resume_from_checkpoint, *args, **kwargs)
        saved = Path(resume_from_checkpoint) / HEADS_FILE
        if saved.exists():
            heads = self._heads()
            for name, state in torch.load(saved, map_location="cpu", weights_only=True).items():
                if name in heads:
                    heads[name].head.load_state_dict(state)

    def _heads(self) -> dict[str, ClassificationHeadLoss]:
        losses = self.loss if isinstance(self.loss, dict) else {}
        return {name: loss for name, loss in losses.items() if isinstance(loss, ClassificationHeadLoss)}

    def _task_accumulators(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._task_sum is None or self._task_count is None:
            n = len(self.task_names)
            self._task_sum = torch.zeros(n, dtype=torch.float64, device=self.args.device)
            self._task_count = torch.zeros(n, dtype=torch.float64, device=self.args.device)
        return self._task_sum, self._task_count

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        task = inputs.get("dataset_name")  # the library pops it in compute_loss
        out = super().compute_loss(
            model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
        )
        if task in self._task_index and self.model.training:
            loss = out[0] if return_outputs else out
            sums, counts = self._task_accumulators()
            sums[self._task_index[task]] += loss.detach().to(sums)
            counts[self._task_index[task]] += 1
        return out

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self.task_names:  # a training log; every rank logs at the same step
            sums, counts = self._task_accumulators()
            totals = torch.cat([sums, counts])
            if distributed.world_size() > 1:
                torch.distributed.all_reduce(totals)
            logs = dict(logs)
            n = len(self.task_names)
            for i, name in enumerate(self.task_names):
                if totals[n + i] > 0:
                    logs[f"{TASK_LOSS_PREFIX}{name}"] = round(float(totals[i] / totals[n + i]), 4)
            sums.zero_()
            counts.zero_()
        return super().log(logs, start_time)


def train(
    model: SentenceTransformer,
    datasets: dict,
    loss_fns: dict,
    prompts: dict,
    evaluator: SequentialEvaluator,
    params: TrainParams,
    seed: int,
    checkpoint_dir: Path,
    live_dir: Path | None = None,
) -> dict:
    """Train in place (the best dev checkpoint is loaded back into `model`); return run statistics.

    Under torchrun every process calls this. `params.batch_size` is the global batch: each of the N
    processes takes `batch_size / N` examples a step, so N processes run the same number of
    optimizer steps over the same examples as one (in-batch negatives per device are N times fewer).
    Only rank 0 logs to dvclive; every rank returns the same statistics.
    """
    device = pick_device(params)
    n_proc = distributed.world_size()
    args = SentenceTransformerTrainingArguments(
        output_dir=str(checkpoint_dir),
        max_steps=params.max_steps,
        per_device_train_batch_size=per_device_batch(params.batch_size, n_proc),
        per_device_eval_batch_size=params.batch_size,
        learning_rate=params.lr,
        learning_rate_mapping={r"\.head\.": params.head_lr} if _has_heads(loss_fns) else {},
        warmup_steps=int(params.warmup_ratio * params.max_steps),
        weight_decay=params.weight_decay,
        seed=seed,
        data_seed=seed,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        multi_dataset_batch_sampler=(
            MultiDatasetBatchSamplers.PROPORTIONAL
            if params.sampler == "proportional"
            else MultiDatasetBatchSamplers.ROUND_ROBIN
        ),
        prompts=prompts,
        eval_strategy="steps",
        eval_steps=params.eval_steps,
        save_strategy="steps",
        save_steps=params.eval_steps,
        save_total_limit=2,
        load_best_model_at_end=True,
        metric_for_best_model="eval_sequential_score",
        greater_is_better=True,
        logging_steps=max(1, params.eval_steps // 4),
        report_to=["none"],
        use_cpu=device == "cpu",
        fp16=params.precision == "fp16" and device == "cuda",
        bf16=params.precision == "bf16" and device == "cuda",
        dataloader_num_workers=0,
        disable_tqdm=False,
        # Only used under torchrun (a backend set for one process would make accelerate look for a
        # process group). Each step runs one task's loss, and not every weight (e.g. BERT's
        # pooler) gets a gradient, so DDP must look for unused parameters.
        ddp_backend="gloo" if device == "cpu" and n_proc > 1 else None,
        ddp_find_unused_parameters=True,
    )
    callbacks: list = [distributed.SyncLossParameters(loss_fns, model, seed)]
    if live_dir is not None and distributed.is_main():
        # Our own Live: the default one would rewrite the repo's dvc.yaml from inside a stage.
        live = Live(str(live_dir), dvcyaml=False, save_dvc_exp=False, report=None)
        callbacks.append(StepAlignedDVCLiveCallback(live=live))
    trainer = MultiTaskTrainer(
        model=model,
        args=args,
        train_dataset=datasets,
        loss=loss_fns,
        evaluator=evaluator,
        callbacks=callbacks,
    )
    resume = last_checkpoint(checkpoint_dir)
    if resume:
        print(f"resuming from {resume}")
    result = trainer.train(resume_from_checkpoint=resume)
    distributed.barrier()  # every rank has loaded the best checkpoint before rank 0 removes them
    history = [h for h in trainer.state.log_history if "eval_sequential_score" in h]
    return {
        "train_loss": run_train_loss(trainer.state.log_history),
        "steps": int(result.global_step),
        "best_dev_score": float(trainer.state.best_metric) if trainer.state.best_metric is not None else None,
        "best_step": int(trainer.state.best_global_step or 0)
        if hasattr(trainer.state, "best_global_step")
        else None,
        "dev_history": [{"step": h["step"], "score": h["eval_sequential_score"]} for h in history],
        "device": device,
        "nproc": n_proc,
        "resumed_from": os.path.basename(resume) if resume else None,
    }
