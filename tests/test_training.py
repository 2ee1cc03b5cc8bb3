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


def _head_run(model_dir: Path, checkpoints: Path, live_dir: Path | None = None) -> dict:
    """4 steps of one classification head (batch 4 over 8 texts), checkpoints every 2 steps."""
    import transformers
    from datasets import Dataset
    from sentence_transformers.sentence_transformer.evaluation import (
        InformationRetrievalEvaluator,
        SequentialEvaluator,
    )

    from mpembed.embeddings import load_model
    from mpembed.params import TrainParams
    from mpembed.training.trainer import train

    transformers.set_seed(0)
    model = load_model(str(model_dir), max_seq_length=16)
    texts = ["awful", "broken", "terrible", "bad", "great", "perfect", "lovely", "good"]
    task = Task("polarity", "classification", [{"text": t, "label": i // 4} for i, t in enumerate(texts)],
                "label", {"text": "query"}, ["neg", "pos"])
    loss = make_loss(task, model)
    evaluator = SequentialEvaluator([InformationRetrievalEvaluator(
        {"q": "good"}, {"d1": "great", "d2": "awful"}, {"q": {"d1"}}, name="dev", write_csv=False)])
    params = TrainParams(lr=1e-4, head_lr=0.1, max_steps=4, batch_size=4, eval_steps=2, warmup_ratio=0.0,
                         freeze_layers=4, task_weights={"classification": 1.0})
    result = train(model, {"polarity": Dataset.from_list(task.rows)}, {"polarity": loss}, {"polarity": {}},
                   evaluator, params, 0, checkpoints, live_dir)
    return {"result": result, "head": loss.head.weight.detach().clone()}


def test_a_resumed_run_restores_its_heads_from_the_checkpoint(tmp_path: Path):
    import shutil

    model_dir = tmp_path / "minilm"
    build_base_model("all-minilm-l6-v2", model_dir)
    whole = _head_run(model_dir, tmp_path / "a", tmp_path / "live_a")
    assert (tmp_path / "a/checkpoint-2/heads.pt").exists()
    assert float(whole["head"].abs().sum()) > 0
    # A run killed after its first checkpoint: only checkpoint-2 (and a half-written checkpoint-4).
    shutil.copytree(tmp_path / "a/checkpoint-2", tmp_path / "b/checkpoint-2")
    (tmp_path / "b/checkpoint-4").mkdir()
    resumed = _head_run(model_dir, tmp_path / "b", tmp_path / "live_b")
    assert resumed["result"]["resumed_from"] == "checkpoint-2"
    torch.testing.assert_close(resumed["head"], whole["head"], rtol=0, atol=0)
    assert resumed["result"]["dev_history"] == whole["result"]["dev_history"]
    assert resumed["result"]["train_loss"] == whole["result"]["train_loss"]
    # The dvclive curves of the resumed run are the uninterrupted run's, at the trainer's global steps.
    curves = {}
    for name in ("live_a", "live_b"):
        folder = tmp_path / name / "plots/metrics"
        curves[name] = {str(f.relative_to(folder)): f.read_text() for f in folder.rglob("*.tsv")
                        if "runtime" not in f.name and "per_second" not in f.name}
    assert curves["live_b"] == curves["live_a"]
    assert [row.split("\t")[0] for row in curves["live_a"]["loss.tsv"].splitlines()] == ["step", "1", "2", "3", "4"]
    assert "train/loss.tsv" in curves["live_a"]


def test_blend_with_base_interpolates_trainable_weights_and_full_keep_restores_the_base(minilm):
    from mpembed.training.blend import blend_with_base, snapshot_trainable

    freeze(minilm, freeze_embeddings=True, n_layers=4)
    before = minilm.encode(["красные женские кроссовки"], convert_to_numpy=True)
    base = snapshot_trainable(minilm)
    assert base and all(p.requires_grad for n, p in minilm.named_parameters() if n in base)
    frozen = {n: p.detach().clone() for n, p in minilm.named_parameters() if n not in base}
    name = next(iter(base))
    with torch.no_grad():
        for n, p in minilm.named_parameters():
            if n in base:
                p.add_(0.05)  # "training": every trainable tensor moves
    assert not np.allclose(minilm.encode(["красные женские кроссовки"], convert_to_numpy=True), before, atol=1e-4)
    trained = dict(minilm.named_parameters())[name].detach().clone()

    assert blend_with_base(minilm, base, 0.25) == len(base)
    assert torch.allclose(dict(minilm.named_parameters())[name], 0.75 * trained + 0.25 * base[name], atol=1e-6)
    assert all(torch.equal(p, frozen[n]) for n, p in minilm.named_parameters() if n in frozen)

    blend_with_base(minilm, base, 1.0)  # all the way back: the base model's embeddings again
    assert np.allclose(minilm.encode(["красные женские кроссовки"], convert_to_numpy=True), before, atol=1e-5)
    with pytest.raises(ValueError, match="keep_base"):
        blend_with_base(minilm, base, 1.5)


def test_probe_init_starts_a_head_as_the_fitted_logistic_regression(minilm):
    good = ["great product, love it", "excellent quality, very happy", "works perfectly, recommend",
            "fantastic, exactly as described", "superb value, would buy again", "really nice and comfortable"]
    bad = ["terrible, broke after a day", "awful quality, waste of money", "does not work at all",
           "very disappointed, returned it", "cheap junk, fell apart", "horrible smell and wrong size"]
    emb = minilm.encode(good + bad, convert_to_numpy=True, normalize_embeddings=True)
    # labels 0 and 2 of three: the absent class keeps a zero row, the two-class probe maps to two rows
    y = np.array([2] * len(good) + [0] * len(bad))
    loss = ClassificationHeadLoss(minilm, ["bad", "unused", "good"])
    acc = loss.init_from_probe(emb, y, seed=0)
    with torch.no_grad():
        logits = loss.head(torch.from_numpy(emb))
    assert acc >= 0.9
    assert np.mean(logits.argmax(dim=1).numpy() == y) == pytest.approx(acc)
    assert torch.count_nonzero(loss.head.weight[1]) == 0
    zero_head_loss = float(np.log(3))
    assert float(torch.nn.functional.cross_entropy(logits, torch.from_numpy(y))) < zero_head_loss

    single = ClassificationHeadLoss(minilm, ["bad", "good"])
    assert single.init_from_probe(emb[:3], np.zeros(3, dtype=int), seed=0) == 1.0  # one class: head stays zero
    assert torch.count_nonzero(single.head.weight) == 0


def test_label_contrast_adds_a_term_that_pulls_same_label_texts_together(minilm):
    import copy

    minilm = copy.deepcopy(minilm)  # trained below; the module's other tests keep the original
    freeze(minilm, freeze_embeddings=True, n_layers=4)  # as in training: the top layers move
    texts = ["awful", "broken", "terrible", "great", "perfect", "lovely"]
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    features = [minilm.tokenize(texts)]
    plain = ClassificationHeadLoss(minilm, ["neg", "pos"])
    mixed = ClassificationHeadLoss(minilm, ["neg", "pos"], label_contrast=1.0, label_margin=1.0)
    minilm.eval()  # no dropout: both losses see the same embeddings
    ce = float(plain(features, labels).detach())
    assert ce == pytest.approx(np.log(2), abs=1e-6)  # a zero head predicts uniformly
    # with a margin of 1 every triplet is active, so the extra term is strictly positive
    assert float(mixed(features, labels).detach()) > ce + 1e-3

    def same_minus_other() -> float:
        with torch.no_grad():
            emb = torch.nn.functional.normalize(minilm(minilm.tokenize(texts))["sentence_embedding"], dim=1)
        cos = emb @ emb.T
        same = labels[:, None] == labels[None, :]
        off = ~torch.eye(len(texts), dtype=torch.bool)
        return float(cos[same & off].mean() - cos[~same].mean())

    before = same_minus_other()
    trainable = [p for p in minilm.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(trainable, lr=0.05)
    head_only = ClassificationHeadLoss(minilm, ["neg", "pos"], label_contrast=1.0, label_margin=1.0)
    for _ in range(5):
        optimizer.zero_grad()
        head_only.contrast.batch_all_triplet_loss(labels, minilm(minilm.tokenize(texts))["sentence_embedding"]).backward()
        optimizer.step()
    assert same_minus_other() > before + 0.01
