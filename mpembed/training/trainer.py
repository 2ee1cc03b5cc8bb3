"""One fine-tuning run with the library's `SentenceTransformerTrainer`, a dev evaluator choosing the
best checkpoint, and resumable checkpoints."""

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
from transformers.integrations import DVCLiveCallback

from dvclive import Live
from mpembed.benchmarks.data import RetrievalSplit, load_split
from mpembed.benchmarks.registry import BENCHMARKS
from mpembed.params import TrainParams
from mpembed.training.heads import ClassificationHeadLoss

# Dev retrieval benchmarks that pick the best checkpoint; classification dev sets would need a
# classifier fit per evaluation, too slow to run every `eval_steps` on a CPU.
DEV_BENCHMARKS = ("WBQAGoods-all", "WBQASupportFacts", "WBSearchQueryNmRelevance", "WBBrandSyns", "WBSimGoods-triplets")


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


def dev_evaluator(prepared: Path, model: SentenceTransformer, batch_size: int) -> SequentialEvaluator:
    evaluators = []
    by_name = {b.name: b for b in BENCHMARKS}
    for name in DEV_BENCHMARKS:
        split = load_split(prepared / name, "dev")
        if not isinstance(split, RetrievalSplit) or not split.queries:
            continue
        bench = by_name[name]
        evaluators.append(InformationRetrievalEvaluator(
            queries=split.queries, corpus=split.corpus,
            relevant_docs={q: set(r) for q, r in split.relevant.items()},
            name=name, batch_size=batch_size, ndcg_at_k=[10], mrr_at_k=[10], accuracy_at_k=[1],
            precision_recall_at_k=[10], map_at_k=[10], write_csv=False,
            query_prompt=model.prompts.get(bench.query_prompt) or None,
            corpus_prompt=model.prompts.get(bench.doc_prompt) or None,
        ))
    return SequentialEvaluator(evaluators, main_score_function=lambda scores: float(np.mean(scores)))


def run_key(params: TrainParams, seed: int, inputs_digest: str) -> str:
    """Checkpoints are reused only by a run with the same params and inputs."""
    blob = json.dumps({"p": params.model_dump(), "seed": seed, "in": inputs_digest}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def last_checkpoint(folder: Path) -> str | None:
    ckpts = sorted(folder.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    return str(ckpts[-1]) if ckpts else None


def _has_heads(loss_fns: dict) -> bool:
    return any(isinstance(loss, ClassificationHeadLoss) for loss in loss_fns.values())


def pick_device(params: TrainParams) -> str:
    if params.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return params.device


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
    """Train in place (the best dev checkpoint is loaded back into `model`); return run statistics."""
    device = pick_device(params)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(checkpoint_dir),
        max_steps=params.max_steps,
        per_device_train_batch_size=params.batch_size,
        per_device_eval_batch_size=params.batch_size,
        learning_rate=params.lr,
        learning_rate_mapping={r"\.head\.": params.head_lr} if _has_heads(loss_fns) else {},
        warmup_steps=int(params.warmup_ratio * params.max_steps),
        weight_decay=params.weight_decay,
        seed=seed,
        data_seed=seed,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        multi_dataset_batch_sampler=(MultiDatasetBatchSamplers.PROPORTIONAL if params.sampler == "proportional"
                                     else MultiDatasetBatchSamplers.ROUND_ROBIN),
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
    )
    callbacks = []
    if live_dir is not None:
        # Our own Live: the default one would rewrite the repo's dvc.yaml from inside a stage.
        live = Live(str(live_dir), dvcyaml=False, save_dvc_exp=False, report=None)
        callbacks.append(DVCLiveCallback(live=live))
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=datasets, loss=loss_fns, evaluator=evaluator, callbacks=callbacks,
    )
    resume = last_checkpoint(checkpoint_dir)
    if resume:
        print(f"resuming from {resume}")
    result = trainer.train(resume_from_checkpoint=resume)
    history = [h for h in trainer.state.log_history if "eval_sequential_score" in h]
    return {
        "train_loss": float(result.training_loss),
        "steps": int(result.global_step),
        "best_dev_score": float(trainer.state.best_metric) if trainer.state.best_metric is not None else None,
        "best_step": int(trainer.state.best_global_step or 0) if hasattr(trainer.state, "best_global_step") else None,
        "dev_history": [{"step": h["step"], "score": h["eval_sequential_score"]} for h in history],
        "device": device,
        "resumed_from": os.path.basename(resume) if resume else None,
    }
