"""Stage `evaluate`: score base and fine-tuned models on every benchmark; write metrics and the report."""

from pathlib import Path

from mpembed.benchmarks.baselines import evaluate_baseline
from mpembed.benchmarks.evaluate import evaluate_model
from mpembed.benchmarks.registry import selected
from mpembed.cli import run_stage
from mpembed.embeddings import Embedder, load_model
from mpembed.guard import check_training_leakage
from mpembed.io import write_json
from mpembed.params import load_params
from mpembed.report import markdown_report, metrics_json, write_plots, write_report

PREPARED = Path("data/prepared")
MODELS = {"base": "models/base", "finetuned": "models/embedder"}


def main() -> None:
    params = load_params()
    p, seed = params.evaluate, params.base.seed
    benchmarks = selected(p.benchmarks)
    check_training_leakage(PREPARED, Path("data/candidates"), benchmarks)
    results = {}
    for label, path in MODELS.items():
        embed = Embedder(load_model(path, max_seq_length=p.max_seq_length), batch_size=p.batch_size)
        results[label] = evaluate_model(embed, benchmarks, PREPARED, p, seed, p.classifier_max_train, label)
    results["baseline"] = evaluate_baseline(benchmarks, PREPARED, p, seed, p.classifier_max_train)
    metrics = metrics_json(results, benchmarks)
    write_json("metrics/benchmarks.json", metrics)
    notes = [f"Base model: `{params.base_model.name}`. Classification: logistic regression on frozen embeddings, "
             f"{p.classifier_runs} seeded runs of {p.classifier_samples_per_label} training examples per label "
             "(MTEB protocol), mean reported.",
             "`baseline` is lexical: BM25 (bm25s) for retrieval, TF-IDF word 1-2-grams + char 2-5-grams with the "
             "same logistic-regression protocol for classification."]
    write_report(Path("reports/benchmarks.md"), markdown_report(results, benchmarks, notes))
    write_plots(results, benchmarks, Path("reports/plots"))
    print(f"mean: base {metrics['mean']['base']:.4f} -> fine-tuned {metrics['mean']['finetuned']:.4f}; "
          f"fine-tuned wins {metrics.get('wins')} of {len(benchmarks)}")


if __name__ == "__main__":
    run_stage(main)
