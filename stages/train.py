"""Stage `train`: multi-task fine-tuning of the base encoder; writes models/trained (`export` turns
it into models/embedder).

With `train.nproc: N > 1` the stage re-runs itself as `python -m torch.distributed.run
--nproc_per_node N -m stages.train` (the DVC `cmd` stays the same); every process trains on its
share of the batches and only rank 0 writes models/trained, metrics/train.json and dvclive/train.
"""

import shutil
from contextlib import nullcontext
from pathlib import Path

import transformers

from mpembed.cli import run_stage
from mpembed.embeddings import load_model
from mpembed.io import atomic_dir, write_json
from mpembed.params import Params, load_params
from mpembed.training import distributed
from mpembed.training.blend import blend_with_base, snapshot_trainable
from mpembed.training.heads import save_heads
from mpembed.training.model_card import folder_fingerprint, prepend, project_section
from mpembed.training.tasks import build_inputs, collect_tasks
from mpembed.training.trainer import (
    code_fingerprint,
    dev_evaluator,
    freeze,
    per_device_batch,
    pick_device,
    run_key,
    train,
)

PREPARED = Path("data/prepared")
TRIPLETS = Path("data/candidates/triplet_candidates.csv")
BRAND_PAIRS = Path("data/candidates/brand_pairs.csv")
LIVE = Path("dvclive/train")


def main() -> None:
    params = load_params()
    per_device_batch(params.train.batch_size, params.train.nproc)  # fail before launching anything
    code = distributed.relaunch(params.train.nproc, "stages.train")
    if code is not None:
        if code:
            raise SystemExit(code)
        return
    try:
        _train(params)
    finally:
        distributed.shutdown()


def _train(params: Params) -> None:
    p, seed = params.train, params.base.seed
    transformers.set_seed(seed)  # the same on every rank: identical start, identical batch order
    device = distributed.local_device(pick_device(p))
    model = load_model("models/base", device=device, max_seq_length=p.max_seq_length)
    sizes = freeze(model, p.freeze_embeddings, p.freeze_layers)
    base_weights = snapshot_trainable(model) if p.keep_base > 0 else {}
    tasks = collect_tasks(PREPARED, TRIPLETS, BRAND_PAIRS)
    datasets, losses, prompts, counts = build_inputs(tasks, model, p, seed)
    evaluator = dev_evaluator(PREPARED, model, p.batch_size, seed, p.dev_max_items)
    digest = "|".join(f"{k}:{len(v)}" for k, v in sorted(datasets.items()))
    digest += "|code:" + code_fingerprint()  # a checkpoint of other training code is not resumed
    if distributed.world_size() > 1:  # checkpoints hold per-rank RNG state: resume only at the same size
        digest += f"|world:{distributed.world_size()}"
    checkpoints = Path("models/.checkpoints") / run_key(p, seed, digest)
    # dvclive appends to its files while training; it writes into a temporary folder that replaces
    # dvclive/train only when training ends, so a killed run leaves the previous curves intact.
    live = atomic_dir(LIVE) if distributed.is_main() else nullcontext(None)
    with live as live_dir:
        result = train(model, datasets, losses, prompts, evaluator, p, seed, checkpoints, live_dir)
    if not distributed.is_main():
        return
    if p.keep_base > 0:
        # The best checkpoint is chosen on the trained weights; the blend is scored once more so
        # metrics/train.json shows what it cost (or gained) on dev.
        blend_with_base(model, base_weights, p.keep_base)
        result["dev_score_blended"] = float(evaluator(model)["sequential_score"])
    with atomic_dir("models/trained") as tmp:
        model.save(str(tmp))
        heads = save_heads(losses, tmp)
        prepend(tmp / "README.md", project_section(params, folder_fingerprint(PREPARED), heads, result))
    shutil.rmtree(checkpoints, ignore_errors=True)
    write_json("metrics/train.json", {**result, **sizes, "examples": counts, "heads": heads})
    print(f"trained {result['steps']} steps, best dev score {result['best_dev_score']}")


if __name__ == "__main__":
    run_stage(main)
