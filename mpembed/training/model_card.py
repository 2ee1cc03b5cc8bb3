"""A project section on top of the model card that sentence-transformers writes on `save`."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from mpembed.params import Params


def folder_fingerprint(folder: Path) -> str:
    """Content hash of a data folder: names which data version a model was trained on."""
    digest = hashlib.md5()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def project_section(params: Params, data_fingerprint: str, heads: list[str], result: dict) -> str:
    train = json.dumps(params.train.model_dump(), indent=2, ensure_ascii=False)
    lines = [
        "# Marketplace embedder (mpembed)", "",
        f"Fine-tuned from `{params.base_model.name}` on the marketplace data of this repository "
        f"(`data/prepared` fingerprint `{data_fingerprint}`, seed {params.base.seed}). Its benchmark table is "
        "below; `reports/benchmarks.md` of the same git commit / DVC experiment has every metric.", "",
        f"Best dev score {result.get('best_dev_score')} at step {result.get('best_step')} of {result.get('steps')}.", "",
        "```python",
        "from sentence_transformers import SentenceTransformer",
        "from mpembed.training.heads import Heads",
        "",
        'model = SentenceTransformer("models/embedder")',
        'vectors = model.encode(["кроссовки адидас 42"], prompt_name="query")',
        'heads = Heads.load("models/embedder")  # classification heads: ' + ", ".join(heads),
        'heads.predict(model, "WBReviewsPolarityClassification", ["Отличные кроссовки, рекомендую"])',
        "```", "",
        "Training params:", "", "```json", train, "```", "", "---", "",
    ]
    return "\n".join(lines)


def prepend(card: Path, section: str) -> None:
    body = card.read_text(encoding="utf-8") if card.exists() else ""
    if body.startswith("---"):  # keep the YAML metadata block first, as the Hub expects
        end = body.index("---", 3) + 3
        card.write_text(body[:end] + "\n\n" + section + body[end:], encoding="utf-8")
    else:
        card.write_text(section + body, encoding="utf-8")


def benchmark_section(metrics: dict, benchmarks: tuple) -> str:
    """The test-split table of `metrics/benchmarks.json`, main metric per benchmark, as the card shows it."""
    models = [m for m in ("base", "finetuned", "baseline") if m in metrics]
    lines = [
        "## Benchmarks (test splits)", "",
        "| benchmark | metric | " + " | ".join(models) + " | Δ finetuned − base |",
        "|---|---|" + "---|" * len(models) + "---|",
    ]
    for b in benchmarks:
        values = [metrics[m][b.name][b.main_metric] for m in models]
        delta = metrics["finetuned"][b.name][b.main_metric] - metrics["base"][b.name][b.main_metric]
        lines.append(f"| {b.name} | {b.main_metric} | " + " | ".join(f"{v:.3f}" for v in values) + f" | {delta:+.3f} |")
    mean = metrics["mean"]
    lines.append("| **mean** |  | " + " | ".join(f"**{mean[m]:.3f}**" for m in models)
                 + f" | {mean['finetuned'] - mean['base']:+.3f} |")
    lines += ["", f"Fine-tuned beats base on {metrics.get('wins')} of {len(benchmarks)} benchmarks. "
              "All metrics, with F1 and NDCG@1: `reports/benchmarks.md`.", "", ""]
    return "\n".join(lines)


def insert_before(card: Path, marker: str, section: str) -> None:
    """Put `section` just before the first line starting with `marker` (at the end if there is none)."""
    body = card.read_text(encoding="utf-8") if card.exists() else ""
    at = body.find("\n" + marker)
    at = len(body) if at < 0 else at + 1
    card.write_text(body[:at] + section + body[at:], encoding="utf-8")
