"""Zero-shot scores of candidate base models on the 13 sample benchmarks, side by side.

Usage (after `dvc repro prepare`):  python -m bench.base_models_zero_shot [--models NAME ...]
Builds each model with the project's resolver into a temporary folder, scores it with the same
code as the `evaluate` stage, and writes reports/base_models.md.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from mpembed.benchmarks.evaluate import evaluate_model
from mpembed.benchmarks.registry import BENCHMARKS
from mpembed.embeddings import Embedder, load_model
from mpembed.models.resolve import build_base_model
from mpembed.params import load_params
from mpembed.report import markdown_report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", nargs="+", default=["multilingual-e5-small", "all-minilm-l6-v2"])
    ap.add_argument("--out", default="reports/base_models.md")
    args = ap.parse_args()
    params = load_params()
    p = params.evaluate
    results, seconds = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            folder = Path(tmp) / name.replace("/", "__")
            build_base_model(name, folder)
            start = time.perf_counter()
            embed = Embedder(load_model(str(folder), max_seq_length=p.max_seq_length), batch_size=p.batch_size)
            results[name] = evaluate_model(embed, BENCHMARKS, Path("data/prepared"), p, params.base.seed,
                                           p.classifier_max_train, name)
            seconds[name] = time.perf_counter() - start
    notes = ["Zero-shot (no fine-tuning) on the test splits of the generated sample "
             f"(`sample.n_products={params.sample.n_products}`, seed {params.base.seed}); "
             "same scorers as the `evaluate` stage.",
             "", "| model | evaluation time, s |", "|---|---|",
             *[f"| {n} | {s:.0f} |" for n, s in seconds.items()]]
    text = markdown_report(results, BENCHMARKS, notes).replace("# Benchmarks", "# Base models, zero-shot", 1)
    Path(args.out).write_text(text.split("## Error analysis")[0], encoding="utf-8")
    print(text.split("## Error analysis")[0])


if __name__ == "__main__":
    main()
