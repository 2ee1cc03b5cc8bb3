"""Stage `train`: multi-task fine-tuning of the base encoder; writes models/embedder."""

import shutil
from pathlib import Path

import transformers

from mpembed.cli import run_stage
from mpembed.embeddings import load_model
from mpembed.io import atomic_dir, write_json
from mpembed.params import load_params
from mpembed.training.heads import save_heads
from mpembed.training.model_card import folder_fingerprint, prepend, project_section
from mpembed.training.tasks import build_inputs, collect_tasks
from mpembed.training.trainer import dev_evaluator, freeze, pick_device, run_key, train

PREPARED = Path("data/prepared")
TRIPLETS = Path("data/candidates/triplet_candidates.csv")
BRAND_PAIRS = Path("data/candidates/brand_pairs.csv")


def main() -> None:
    params = load_params()
    p, seed = params.train, params.base.seed
    transformers.set_seed(seed)
    model = load_model("models/base", device=pick_device(p), max_seq_length=p.max_seq_length)
    sizes = freeze(model, p.freeze_embeddings, p.freeze_layers)
    tasks = collect_tasks(PREPARED, TRIPLETS, BRAND_PAIRS)
    datasets, losses, prompts, counts = build_inputs(tasks, model, p, seed)
    evaluator = dev_evaluator(PREPARED, model, p.batch_size)
    digest = "|".join(f"{k}:{len(v)}" for k, v in sorted(datasets.items()))
    checkpoints = Path("models/.checkpoints") / run_key(p, seed, digest)
    result = train(model, datasets, losses, prompts, evaluator, p, seed, checkpoints, Path("dvclive/train"))
    with atomic_dir("models/embedder") as tmp:
        model.save(str(tmp))
        heads = save_heads(losses, tmp)
        prepend(tmp / "README.md", project_section(params, folder_fingerprint(PREPARED), heads, result))
    shutil.rmtree(checkpoints, ignore_errors=True)
    write_json("metrics/train.json", {**result, **sizes, "examples": counts, "heads": heads})
    print(f"trained {result['steps']} steps, best dev score {result['best_dev_score']}")


if __name__ == "__main__":
    run_stage(main)
