"""Stage `evaluate`: score the fine-tuned model on every benchmark next to the `reference` scores
(base model, lexical baselines); write metrics, the report and the plots."""

from pathlib import Path

from mpembed.benchmarks.evaluate import evaluate_model
from mpembed.benchmarks.registry import selected
from mpembed.cli import run_stage
from mpembed.embeddings import Embedder, load_model
from mpembed.errors import DataError
from mpembed.guard import check_training_leakage
from mpembed.io import atomic_dir, read_json, write_json
from mpembed.params import load_params
from mpembed.report import markdown_report, metrics_json, write_plots, write_report

PREPARED = Path("data/prepared")
REFERENCE = Path("data/reference/results.json")


def main() -> None:
    params = load_params()
    p, seed = params.evaluate, params.base.seed
    benchmarks = selected(p.benchmarks)
    check_training_leakage(PREPARED, Path("data/candidates"), benchmarks)
    reference = read_json(REFERENCE)
    missing = [b.name for b in benchmarks if any(b.name not in reference.get(k, {}) for k in ("base", "baseline"))]
    if missing:
        raise DataError(REFERENCE, f"no reference scores for {missing}; run `dvc repro reference`")
    embed = Embedder(load_model("models/trained", max_seq_length=p.max_seq_length), batch_size=p.batch_size)
    finetuned = evaluate_model(embed, benchmarks, PREPARED, p, seed, p.classifier_max_train, "finetuned")
    results = {"base": reference["base"], "finetuned": finetuned, "baseline": reference["baseline"]}
    metrics = metrics_json(results, benchmarks)
    write_json("metrics/benchmarks.json", metrics)
    notes = [f"Base model: `{params.base_model.name}`. Classification: logistic regression on frozen embeddings, "
             f"{p.classifier_runs} seeded runs, each on {p.classifier_samples_per_label} training examples drawn per label "
             "(the MTEB protocol; its defaults are 10 runs of 8), mean reported. This few-shot figure measures how well "
             "the embedding separates labels; \"Classification with more training examples\" below fits on many more.",
             "`baseline` is lexical: BM25 (bm25s) for retrieval, TF-IDF word 1-2-grams + char 2-5-grams with the "
             "same logistic-regression protocol for classification."]
    write_report(Path("reports/benchmarks.md"), markdown_report(results, benchmarks, notes))
    # reports/plots holds two outs (scores.json, confusion/): replaced together, never mixed with a
    # previous run's files.
    with atomic_dir("reports/plots") as tmp:
        write_plots(results, benchmarks, tmp)
    print(f"mean: base {metrics['mean']['base']:.4f} -> fine-tuned {metrics['mean']['finetuned']:.4f}; "
          f"fine-tuned wins {metrics.get('wins')} of {len(benchmarks)}")


if __name__ == "__main__":
    run_stage(main)
