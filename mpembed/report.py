"""Metrics JSON laid out for `dvc exp show`, the markdown benchmark report, and `dvc plots` data."""

from __future__ import annotations

from pathlib import Path

from mpembed.benchmarks.registry import Benchmark
from mpembed.io import write_json, write_text


def metrics_json(models: dict[str, dict[str, dict]], benchmarks: tuple[Benchmark, ...]) -> dict:
    """`{"mean": {model: score}, model: {benchmark: {metric: value}}}`: one column per benchmark x metric."""
    out: dict = {"mean": {}}
    for model, results in models.items():
        out["mean"][model] = round(sum(results[b.name]["metrics"][b.main_metric] for b in benchmarks)
                                   / len(benchmarks), 4)
        out[model] = {b.name: {m: round(results[b.name]["metrics"][m], 4) for m in b.metrics} for b in benchmarks}
    if "finetuned" in models and "base" in models:
        out["mean"]["delta"] = round(out["mean"]["finetuned"] - out["mean"]["base"], 4)
        out["wins"] = sum(
            models["finetuned"][b.name]["metrics"][b.main_metric] > models["base"][b.name]["metrics"][b.main_metric]
            for b in benchmarks
        )
    return out


def _fmt(x: float) -> str:
    return f"{x:.3f}"


def markdown_report(models: dict[str, dict[str, dict]], benchmarks: tuple[Benchmark, ...], notes: list[str],
                    compare: tuple[str, str] = ("finetuned", "base")) -> str:
    """The table a reviewer reads: one row per benchmark x metric, a column per model, the delta
    `compare[0] - compare[1]` when both are present, and the best model per row."""
    names = list(models)
    new, old = compare
    has_delta = new in models and old in models
    delta_head = f" Δ {new} − {old} |" if has_delta else ""
    lines = ["# Benchmarks", "", *notes, "",
             "Main metric: NDCG@10 for retrieval, accuracy for classification (F1 is macro-averaged).", "",
             "| benchmark | metric | " + " | ".join(names) + f" |{delta_head} best |",
             "|---|---|" + "---|" * len(names) + ("---|" if has_delta else "") + "---|"]

    def row(label: str, metric: str, vals: dict[str, float], bold: bool = False) -> str:
        cells = [f"**{_fmt(vals[n])}**" if bold else _fmt(vals[n]) for n in names]
        delta = f" {vals[new] - vals[old]:+.3f} |" if has_delta else ""
        return f"| {label} | {metric} | " + " | ".join(cells) + f" |{delta} {max(vals, key=lambda n: vals[n])} |"

    for b in benchmarks:
        for m in b.metrics:
            lines.append(row(b.name, m, {n: models[n][b.name]["metrics"][m] for n in names}))
    means = {n: sum(models[n][b.name]["metrics"][b.main_metric] for b in benchmarks) / len(benchmarks) for n in names}
    lines.append(row("**mean (main metric)**", "", means, bold=True))
    lines += _full_fit_section(models, benchmarks)
    if new in models:
        lines += ["", f"## Error analysis: worst misses of `{new}`", ""]
        for b in benchmarks:
            misses = models[new][b.name].get("misses", [])
            if not misses:
                continue
            lines += [f"### {b.name}", "", "| input | expected | got |", "|---|---|---|"]
            for miss in misses:
                cells = [str(miss[k]).replace("|", "/").replace("\n", " ")[:160] for k in ("input", "expected", "got")]
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
    return "\n".join(lines) + "\n"


def _full_fit_section(models: dict[str, dict[str, dict]], benchmarks: tuple[Benchmark, ...]) -> list[str]:
    """Classification with one regression on every example the few-shot runs drew, next to the few-shot
    table: lexical features catch up when labels are plentiful, and a reader should see by how much."""
    names = [n for n in models if all("full_fit" in models[n][b.name] for b in benchmarks
                                      if b.kind == "classification")]
    cls = [b for b in benchmarks if b.kind == "classification"]
    if not cls or not names:
        return []
    lines = ["", "## Classification with more training examples", "",
             "One logistic regression on every training item any of the few-shot runs drew (up to "
             "`evaluate.classifier_runs` x `evaluate.classifier_samples_per_label` per label), "
             "not part of the main metric.", "",
             "| benchmark | metric | " + " | ".join(names) + " | best |", "|---|---|" + "---|" * len(names) + "---|"]
    for b in cls:
        for m in b.metrics:
            vals = {n: models[n][b.name]["full_fit"][m] for n in names}
            lines.append(f"| {b.name} | {m} | " + " | ".join(_fmt(vals[n]) for n in names)
                         + f" | {max(vals, key=lambda n: vals[n])} |")
    return lines


def write_plots(models: dict[str, dict[str, dict]], benchmarks: tuple[Benchmark, ...], folder: Path) -> None:
    """Rows for `dvc plots`: a per-benchmark bar chart and a confusion matrix per classification benchmark."""
    # One bar per benchmark x model ("bar" is the y axis): DVC's bar template stacks rows that share a y.
    rows = [{"bar": f"{b.name.removeprefix('WB').replace('Classification', '')} / {n}", "benchmark": b.name, "model": n,
             "score": round(models[n][b.name]["metrics"][b.main_metric], 4)}
            for b in benchmarks for n in models]
    write_json(folder / "scores.json", rows)
    if "finetuned" in models:
        for b in benchmarks:
            conf = models["finetuned"][b.name].get("confusion")
            if conf:
                write_json(folder / "confusion" / f"{b.name}.json", conf)


def write_report(path: Path, text: str) -> None:
    write_text(path, text)
