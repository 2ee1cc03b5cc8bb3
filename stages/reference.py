"""Stage `reference`: score what fine-tuning is compared against, the base model and the lexical baselines.

Kept apart from `evaluate` so DVC caches it: an experiment that changes only `train` params re-scores
only the fine-tuned model, which halves the time of every `dvc exp run` after the first.
"""

from pathlib import Path

from mpembed.benchmarks.baselines import evaluate_baseline
from mpembed.benchmarks.evaluate import evaluate_model
from mpembed.benchmarks.registry import selected
from mpembed.cli import run_stage
from mpembed.embeddings import Embedder, load_model
from mpembed.io import write_json
from mpembed.params import load_params

PREPARED = Path("data/prepared")
OUT = Path("data/reference/results.json")


def main() -> None:
    params = load_params()
    p, seed = params.evaluate, params.base.seed
    benchmarks = selected(p.benchmarks)
    embed = Embedder(load_model("models/base", max_seq_length=p.max_seq_length), batch_size=p.batch_size)
    results = {
        "base": evaluate_model(embed, benchmarks, PREPARED, p, seed, p.classifier_max_train, "base"),
        "baseline": evaluate_baseline(benchmarks, PREPARED, p, seed, p.classifier_max_train),
    }
    write_json(OUT, results)
    print(f"reference scores of {len(benchmarks)} benchmarks -> {OUT}")


if __name__ == "__main__":
    run_stage(main)
