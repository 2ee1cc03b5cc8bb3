"""Training pieces: task mixing by weight, resampling, freezing, classification heads round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mpembed.models.resolve import build_base_model
from mpembed.training.heads import ClassificationHeadLoss, Heads, save_heads
from mpembed.training.tasks import (
    Task,
    distill_task,
    make_loss,
    resample,
    task_sizes,
    with_teacher_embeddings,
)
from mpembed.training.trainer import freeze


def _task(name: str, family: str, n: int = 10) -> Task:
    return Task(name, family, [{"anchor": str(i), "positive": str(i)} for i in range(n)], "ranking", {})


def test_task_sizes_follow_family_weights_and_split_inside_a_family():
    tasks = [_task("qa", "qa_goods"), _task("c1", "classification"), _task("c2", "classification")]
    sizes = task_sizes(tasks, {"qa_goods": 1.0, "classification": 3.0}, total=800)
    assert sizes == {"qa": 200, "c1": 300, "c2": 300}
    assert task_sizes(tasks, {"qa_goods": 0.0, "classification": 1.0}, total=800)["qa"] == 0


def test_resample_makes_whole_passes_without_repeats_inside_a_pass():
    rows = [{"i": i} for i in range(5)]
    out = resample(rows, 12, np.random.default_rng(0))
    assert len(out) == 12
    assert sorted(r["i"] for r in out[:5]) == list(range(5))
    assert sorted(r["i"] for r in out[5:10]) == list(range(5))
    assert out == resample(rows, 12, np.random.default_rng(0))


@pytest.fixture(scope="module")
def minilm(tmp_path_factory: pytest.TempPathFactory):
    from mpembed.embeddings import load_model

    folder = tmp_path_factory.mktemp("m") / "minilm"
    build_base_model("all-minilm-l6-v2", folder)
    return load_model(str(folder), max_seq_length=32)


def test_freeze_embeddings_and_lower_layers(minilm):
    stats = freeze(minilm, freeze_embeddings=True, n_layers=4)
    backbone = minilm[0].auto_model
    assert not any(p.requires_grad for p in backbone.embeddings.parameters())
    assert not any(p.requires_grad for layer in backbone.encoder.layer[:4] for p in layer.parameters())
    assert all(p.requires_grad for p in backbone.encoder.layer[5].parameters())
    assert 0 < stats["trainable_params"] < stats["total_params"]


def test_classification_head_learns_and_reloads(minilm, tmp_path: Path):
    loss = ClassificationHeadLoss(minilm, ["bad", "good"])
    texts = ["terrible, broke in a day", "awful quality", "excellent, love it", "great value, perfect"]
    labels = torch.tensor([0, 0, 1, 1])
    opt = torch.optim.Adam(loss.head.parameters(), lr=0.5)
    features = minilm.tokenize(texts)
    first = None
    for _ in range(30):
        opt.zero_grad()
        value = loss([features], labels)
        first = first if first is not None else float(value.detach())
        value.backward()
        opt.step()
    assert float(value.detach()) < first
    assert save_heads({"polarity": loss, "other": torch.nn.Identity()}, tmp_path) == ["polarity"]
    heads = Heads.load(tmp_path)
    assert heads.tasks == ["polarity"]
    assert heads.predict(minilm, "polarity", texts) == ["bad", "bad", "good", "good"]


def test_distill_task_targets_the_untrained_model_and_starts_at_zero_loss(minilm):
    qa = Task("qa_goods", "qa_goods", [{"anchor": "where made?", "positive": "Made in Turkey"}], "ranking",
              {"anchor": "query", "positive": "passage"})
    label = Task("Gender", "classification", [{"text": "dress, heels", "label": 1}], "label", {"text": "query"})
    task = distill_task([qa, label])
    assert task.family == "distill"
    assert task.rows == [
        {"prompt": "passage", "text": "Made in Turkey"},
        {"prompt": "query", "text": "dress, heels"},
        {"prompt": "query", "text": "where made?"},
    ]
    rows = with_teacher_embeddings(task.rows, minilm, batch_size=2)
    assert [r["text"] for r in rows] == [minilm.prompts.get(r["prompt"], "") + r["text"] for r in task.rows]
    expected = minilm.encode([r["text"] for r in rows], normalize_embeddings=True)
    np.testing.assert_allclose(np.array([r["label"] for r in rows]), expected, atol=1e-6)
    loss = make_loss(task, minilm)
    value = loss([minilm.tokenize([r["text"] for r in rows])], torch.tensor([r["label"] for r in rows]))
    assert float(value.detach()) == pytest.approx(0.0, abs=1e-5)


def test_a_classification_benchmark_can_outweigh_its_siblings():
    tasks = [_task("qa", "qa_goods"), _task("c1", "classification"), _task("c2", "classification")]
    sizes = task_sizes(tasks, {"qa_goods": 1.0, "classification": 3.0, "c1": 2.0}, total=800)
    assert sizes == {"qa": 200, "c1": 400, "c2": 200}


def test_model_card_gets_the_benchmark_table_before_the_training_params(tmp_path: Path):
    from mpembed.benchmarks.registry import BENCHMARKS
    from mpembed.training.model_card import benchmark_section, insert_before

    two = BENCHMARKS[:2]
    scores = {"base": 0.5, "finetuned": 0.75, "baseline": 0.25}
    metrics = {
        "mean": scores,
        "wins": 2,
        **{m: {b.name: {b.main_metric: v} for b in two} for m, v in scores.items()},
    }
    card = tmp_path / "README.md"
    card.write_text("# Model\n\nTraining params:\n\n{}\n", encoding="utf-8")
    insert_before(card, "Training params:", benchmark_section(metrics, two))
    text = card.read_text(encoding="utf-8")
    assert text.index("## Benchmarks (test splits)") < text.index("Training params:")
    assert f"| {two[0].name} | {two[0].main_metric} | 0.500 | 0.750 | 0.250 | +0.250 |" in text
    assert "| **mean** |  | **0.500** | **0.750** | **0.250** | +0.250 |" in text
    assert "beats base on 2 of 2 benchmarks" in text
