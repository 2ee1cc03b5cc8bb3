"""Stage `export`: the model users load, `models/embedder`: the trained encoder and heads with a model
card that carries this model's benchmark table (which only exists after `evaluate`)."""

import shutil
from pathlib import Path

from mpembed.benchmarks.registry import selected
from mpembed.cli import run_stage
from mpembed.io import atomic_dir, read_json
from mpembed.params import load_params
from mpembed.training.model_card import benchmark_section, insert_before

TRAINED = Path("models/trained")
OUT = Path("models/embedder")


def main() -> None:
    params = load_params()
    metrics = read_json("metrics/benchmarks.json")
    with atomic_dir(OUT) as tmp:
        shutil.copytree(TRAINED, tmp, dirs_exist_ok=True)
        section = benchmark_section(metrics, selected(params.evaluate.benchmarks))
        insert_before(tmp / "README.md", "Training params:", section)
    print(f"exported {OUT} (fine-tuned mean {metrics['mean']['finetuned']}, wins {metrics.get('wins')})")


if __name__ == "__main__":
    run_stage(main)
