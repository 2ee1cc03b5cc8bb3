"""Cost of one training step of our `train` setup vs a bare sentence-transformers loop, same batches.

    .venv/bin/python bench/train_step_overhead.py                   # packaged MiniLM (tiny, fast)
    .venv/bin/python bench/train_step_overhead.py --model models/base   # the real base model

Reads the project's training inputs (`data/prepared`, `data/candidates/*.csv`: run `dvc repro
triplets` first) and the `train` group of params.yaml.

* ours: `mpembed.training.trainer.train` exactly as the `train` stage calls it (our datasets, losses,
  prompts, multi-dataset batch sampler, dev evaluator, DVCLive callback, SentenceTransformerTrainer),
  for `--warmup + --steps` steps with `eval_steps` past the end, so no dev evaluation or checkpoint
  falls inside the timed steps (their cost is per `eval_steps`, not per step; reported apart below).
  A step's time is the interval between two `on_step_end` callbacks: fetching and collating the
  batch, forward, backward, gradient clipping, optimizer and scheduler step, logging, callbacks.
* bare: a fresh copy of the same model (same frozen layers), the same loss modules (`make_loss`),
  torch AdamW with the same learning rates (classification heads at `head_lr`), and a manual loop
  over the very batches ours consumed, in the same order: prompts + tokenize -> loss -> backward ->
  optimizer.step -> zero_grad.

Rounds alternate ours and bare (fresh models each round) so slow drift of a shared machine hits both
sides alike; the figure is the median step time over the timed steps of all rounds, after `--warmup`
steps per round. Prints the ratio ours/bare (target <= 1.10).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import TrainerCallback, set_seed

# run from a checkout without installing the package
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mpembed.training.trainer as trainer_mod
from mpembed.embeddings import load_model
from mpembed.models.resolve import build_base_model
from mpembed.params import load_params
from mpembed.training.heads import ClassificationHeadLoss
from mpembed.training.tasks import build_inputs, collect_tasks, make_loss

_LABEL_COLUMNS = ("label", "score")


class _StepTimer(TrainerCallback):
    def __init__(self) -> None:
        self.ends: list[float] = []

    def on_train_begin(self, args, state, control, **kwargs):
        self.ends = [time.perf_counter()]

    def on_step_end(self, args, state, control, **kwargs):
        self.ends.append(time.perf_counter())


def _timed_trainer(timer: _StepTimer, batches: list):
    """SentenceTransformerTrainer with a step timer and a collator that records the raw batches."""
    base = trainer_mod.SentenceTransformerTrainer

    class Timed(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args, callbacks=None, **kwargs):
            super().__init__(*args, callbacks=[*(callbacks or []), timer], **kwargs)
            collate = self.data_collator

            def recording(features):
                batches.append([dict(f) for f in features])
                return collate(features)

            self.data_collator = recording

    return Timed


def run_ours(folder: Path, params, seed: int, project: Path, n_steps: int, work: Path):
    """Our setup for `n_steps`; returns step times, the raw batches, and the inputs to rebuild the losses."""
    p = params.train.model_copy(
        update={"max_steps": n_steps, "eval_steps": max(params.train.eval_steps, n_steps + 1)}
    )
    set_seed(seed)
    model = load_model(str(folder), max_seq_length=p.max_seq_length)
    trainer_mod.freeze(model, p.freeze_embeddings, p.freeze_layers)
    tasks = collect_tasks(
        project / "data/prepared",
        project / "data/candidates/triplet_candidates.csv",
        project / "data/candidates/brand_pairs.csv",
    )
    datasets, losses, prompts, _ = build_inputs(tasks, model, p, seed)
    evaluator = trainer_mod.dev_evaluator(project / "data/prepared", model, p.batch_size)
    timer, batches = _StepTimer(), []
    original = trainer_mod.SentenceTransformerTrainer
    trainer_mod.SentenceTransformerTrainer = _timed_trainer(timer, batches)
    try:
        trainer_mod.train(model, datasets, losses, prompts, evaluator, p, seed, work / "ckpt", work / "live")
    finally:
        trainer_mod.SentenceTransformerTrainer = original
    steps = [b - a for a, b in zip(timer.ends, timer.ends[1:], strict=False)]
    return steps, batches, tasks, prompts, p


def run_bare(folder: Path, p, seed: int, tasks, prompts: dict, batches: list) -> list[float]:
    set_seed(seed)
    model = load_model(str(folder), max_seq_length=p.max_seq_length)
    trainer_mod.freeze(model, p.freeze_embeddings, p.freeze_layers)
    by_name = {t.name: t for t in tasks}
    loss_fns = {name: make_loss(by_name[name], model) for name in {b[0]["dataset_name"] for b in batches}}
    heads = [
        q
        for loss in loss_fns.values()
        if isinstance(loss, ClassificationHeadLoss)
        for q in loss.head.parameters()
    ]
    head_ids = {id(q) for q in heads}
    body = [q for q in model.parameters() if q.requires_grad and id(q) not in head_ids]
    groups = [{"params": body, "lr": p.lr}]
    if heads:
        groups.append({"params": heads, "lr": p.head_lr})
    optimizer = torch.optim.AdamW(groups, weight_decay=p.weight_decay)
    model.train()
    times = []
    for batch in batches:
        start = time.perf_counter()
        name = batch[0]["dataset_name"]
        columns = [c for c in batch[0] if c != "dataset_name"]
        label_col = next((c for c in columns if c in _LABEL_COLUMNS), None)
        features = [
            model.tokenize([prompts[name].get(c, "") + row[c] for row in batch])
            for c in columns
            if c != label_col
        ]
        labels = torch.tensor([row[label_col] for row in batch]) if label_col else None
        loss = loss_fns[name](features, labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--model",
        default="all-minilm-l6-v2",
        help="a model folder (e.g. models/base) or a name for the project's resolver "
        "(default: the packaged MiniLM)",
    )
    ap.add_argument("--project", default=".", help="project folder with data/prepared and data/candidates")
    ap.add_argument("--steps", type=int, default=20, help="timed steps per round")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps per round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument(
        "--freeze-layers",
        type=int,
        default=None,
        help="override train.freeze_layers (default: params.yaml, capped at layers - 2)",
    )
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    project = Path(args.project)
    params = load_params(project / "params.yaml")
    seed = params.base.seed
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        folder = Path(args.model)
        if not folder.is_dir():
            folder = work / "model"
            build_base_model(args.model, folder)
        n_layers = len(load_model(str(folder))[0].auto_model.encoder.layer)
        freeze = (
            args.freeze_layers
            if args.freeze_layers is not None
            else min(params.train.freeze_layers, n_layers - 2)
        )
        params = params.model_copy(
            update={"train": params.train.model_copy(update={"freeze_layers": freeze})}
        )
        ours_t, bare_t, eval_s = [], [], None
        for r in range(args.rounds):
            steps, batches, tasks, prompts, p = run_ours(
                folder, params, seed, project, args.warmup + args.steps, work / f"round{r}"
            )
            ours_t += steps[args.warmup :]
            bare_t += run_bare(folder, p, seed, tasks, prompts, batches)[args.warmup :]
            if eval_s is None:
                model = load_model(str(folder), max_seq_length=p.max_seq_length)
                evaluator = trainer_mod.dev_evaluator(project / "data/prepared", model, p.batch_size)
                start = time.perf_counter()
                evaluator(model)
                eval_s = time.perf_counter() - start
    ours, bare = statistics.median(ours_t), statistics.median(bare_t)
    print(
        f"model {args.model} ({n_layers} layers, lowest {freeze} frozen, embeddings frozen: "
        f"{params.train.freeze_embeddings}); batch {params.train.batch_size}, max_seq_length "
        f"{params.train.max_seq_length}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.machine()}"
    )
    print(
        f"{args.rounds} rounds x {args.steps} timed steps after {args.warmup} warm-up steps, same batches both sides"
    )
    print("| loop | median step s | mean step s | min step s |")
    print("|---|---|---|---|")
    for label, t in (("ours (mpembed.training.train)", ours_t), ("bare (manual loop)", bare_t)):
        print(f"| {label} | {statistics.median(t):.4f} | {statistics.mean(t):.4f} | {min(t):.4f} |")
    print(f"ratio ours/bare (median): {ours / bare:.3f}")
    print(
        f"dev evaluation (not per step; once every train.eval_steps={params.train.eval_steps} steps): {eval_s:.2f} s"
    )


if __name__ == "__main__":
    main()
