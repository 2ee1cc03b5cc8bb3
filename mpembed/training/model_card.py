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
        f"(`data/prepared` fingerprint `{data_fingerprint}`, seed {params.base.seed}). The benchmark table for this "
        "model is `reports/benchmarks.md` of the same git commit / DVC experiment.", "",
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
