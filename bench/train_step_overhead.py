"""Cost of one training step of our `train` setup vs a bare sentence-transformers loop, same batches.

    .venv/bin/python bench/train_step_overhead.py                   # packaged MiniLM (tiny, fast)
    .venv/bin/python bench/train_step_overhead.py --model models/base   # the real base model

Reads the project's training inputs (`data/prepared`, `data/candidates/*.csv`: run `dvc repro
triplets` first) and the `train` group of params.yaml.

* ours: `mpembed.training.trainer.train` exactly as the `train` stage calls it (our datasets, losses,
  prompts, multi-dataset batch sampler, dev evaluator, DVCLive callback, SentenceTransformerTrainer),
  for `--warmup + --steps` steps with `eval_steps` past the end, so no dev evaluation or checkpoint
  falls inside the timed steps (their cost is per `eval_steps`, not per step: `--time-eval`).
  A step's time is the interval between two `on_step_end` callbacks: fetching and collating the
  batch, forward, backward, gradient clipping, optimizer and scheduler step, logging, callbacks.
* bare: a fresh copy of the same model (same frozen layers), the same loss modules (`make_loss`),
  torch's fused AdamW (the trainer's default `adamw_torch_fused`) with the same learning rates
  (classification heads at `head_lr`), and a manual loop over the very batches ours consumed, in
  the same order: `model.preprocess` (prompt + tokenize, as the collator does) -> loss -> backward
  -> optimizer.step -> zero_grad.

The two loops run in lockstep, in one process: right after each of our steps, the bare loop takes
its step on the same batch, so load changes on a shared machine hit both sides alike. Figures: the
median step time of each side over the timed steps of all rounds (after `--warmup` steps per round;
fresh models each round), their ratio ours/bare (target <= 1.10), and the median of the per-step
ratios (each step paired with the bare step on the same batch).
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
# the trainer class `mpembed.training.trainer.train` instantiates
_TRAINER_CLASS = (
    "MultiTaskTrainer" if hasattr(trainer_mod, "MultiTaskTrainer") else "SentenceTransformerTrainer"
)


class Bare:
    """The bare loop's state: a fresh model, the same losses, AdamW; `step(batch)` times one step."""

    def __init__(self, folder: Path, p, seed: int, tasks, prompts: dict, names: list[str]):
        set_seed(seed)
        self.model = load_model(str(folder), max_seq_length=p.max_seq_length)
        trainer_mod.freeze(self.model, p.freeze_embeddings, p.freeze_layers)
        by_name = {t.name: t for t in tasks}
        self.losses = {name: make_loss(by_name[name], self.model) for name in names}
        heads = [
            q
            for loss in self.losses.values()
            if isinstance(loss, ClassificationHeadLoss)
            for q in loss.head.parameters()
        ]
        head_ids = {id(q) for q in heads}
        body = [q for q in self.model.parameters() if q.requires_grad and id(q) not in head_ids]
        groups = [{"params": body, "lr": p.lr}]
        if heads:
            groups.append({"params": heads, "lr": p.head_lr})
        # fused, as the trainer's default optimizer (`adamw_torch_fused`): the comparison is of the loops
        self.optimizer = torch.optim.AdamW(groups, weight_decay=p.weight_decay, fused=True)
        self.prompts = prompts
        self.model.train()

    def step(self, batch: list[dict]) -> float:
        start = time.perf_counter()
        name = batch[0]["dataset_name"]
        columns = [c for c in batch[0] if c != "dataset_name"]
        label_col = next((c for c in columns if c in _LABEL_COLUMNS), None)
        features = [
            self.model.preprocess([row[c] for row in batch], prompt=self.prompts[name].get(c) or None)
            for c in columns
            if c != label_col
        ]
        labels = torch.tensor([row[label_col] for row in batch]) if label_col else None
        loss = self.losses[name](features, labels)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad()
        return time.perf_counter() - start


class _LockstepTimer(TrainerCallback):
    """Times each of our steps and, right after it, runs and times the bare step on the same batch.

    Our step k is the time from the end of the bare step k-1 to our `on_step_end` k, so the two loops
    alternate step by step and see the same machine load.
    """

    def __init__(self, batches: list, bare: Bare):
        self.batches, self.bare = batches, bare
        self.ours: list[float] = []
        self.bare_times: list[float] = []
        self.mark = 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        self.mark = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.ours.append(time.perf_counter() - self.mark)
        # accelerate's dataloader fetches one batch ahead: step k's batch is the k-th one collated
        self.bare_times.append(self.bare.step(self.batches[len(self.ours) - 1]))
        self.mark = time.perf_counter()


def _timed_trainer(timer: TrainerCallback, batches: list):
    """Our trainer class with a step timer and a collator that records the raw batches."""
    base = getattr(trainer_mod, _TRAINER_CLASS)

    class Timed(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args, callbacks=None, **kwargs):
            super().__init__(*args, callbacks=[*(callbacks or []), timer], **kwargs)
            collator = self.data_collator

            class Recording(type(collator)):  # type: ignore[misc]
                def __call__(self, features):
                    batches.append([dict(f) for f in features])
                    return super().__call__(features)

            collator.__class__ = Recording  # keeps every attribute the trainer reads from it

    return Timed


def run_round(folder: Path, params, seed: int, project: Path, n_steps: int, work: Path):
    """Our setup for `n_steps`, the bare loop in lockstep; returns (our step times, bare step times)."""
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
    evaluator = trainer_mod.dev_evaluator(project / "data/prepared", model, p.batch_size, max_items=p.dev_max_items)
    batches: list = []
    timer = _LockstepTimer(batches, Bare(folder, p, seed, tasks, prompts, sorted(datasets)))
    original = getattr(trainer_mod, _TRAINER_CLASS)
    setattr(trainer_mod, _TRAINER_CLASS, _timed_trainer(timer, batches))
    try:
        set_seed(seed)
        trainer_mod.train(model, datasets, losses, prompts, evaluator, p, seed, work / "ckpt", work / "live")
    finally:
        setattr(trainer_mod, _TRAINER_CLASS, original)
    if not timer.ours:
        raise RuntimeError(f"the timing hooks did not run: is {_TRAINER_CLASS} still what train() uses?")
    return timer.ours, timer.bare_times, p


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
    ap.add_argument("--time-eval", action="store_true", help="also time one dev evaluation")
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
            ours, bare, p = run_round(
                folder, params, seed, project, args.warmup + args.steps, work / f"round{r}"
            )
            ours_t += ours[args.warmup :]
            bare_t += bare[args.warmup :]
            if args.time_eval and eval_s is None:
                model = load_model(str(folder), max_seq_length=p.max_seq_length)
                evaluator = trainer_mod.dev_evaluator(project / "data/prepared", model, p.batch_size, max_items=p.dev_max_items)
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
    paired = statistics.median(a / b for a, b in zip(ours_t, bare_t, strict=True))
    print(f"ratio ours/bare (median step times): {ours / bare:.3f}; median per-step ratio: {paired:.3f}")
    if eval_s is not None:
        print(
            f"dev evaluation (once every train.eval_steps={params.train.eval_steps} steps, not per step): {eval_s:.2f} s"
        )


if __name__ == "__main__":
    main()
