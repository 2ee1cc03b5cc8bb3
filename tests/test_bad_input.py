"""Bad input, driven as users drive it: a stage run in its own working folder (params.yaml + data/raw).

Every error case asserts one `error: ...` line naming the file (and the row and column where they
apply), exit code 2, and a working folder left exactly as it was: the previous outputs unchanged and
nothing new (no partial output, no temporary file). Inputs that are unusual but valid (an unknown
extra column, a `;`-separated export with a BOM, a brand with one spelling, a category with one
product, a 10,000-character description) must succeed and be reported.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import ROOT
from mpembed.cli import run_stage

PARAMS = {
    "base": {"seed": 7},
    "prepare": {"raw_dir": "data/raw", "max_eval_queries": 60, "max_eval_items": 80},
}
PREVIOUS = {
    "data/prepared/products.csv": "previous\n",
    "metrics/prepare.json": '{"previous": true}\n',
    "models/base/modules.json": "[]\n",
}


@pytest.fixture
def project(sample_dir: Path, tmp_path: Path) -> Path:
    """A stage working folder: params.yaml, data/raw (the sample), previous outputs, a DVC marker."""
    root = tmp_path / "project"
    shutil.copytree(sample_dir, root / "data" / "raw")
    (root / ".dvc").mkdir()
    (root / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    for rel, text in PREVIOUS.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def _snapshot(root: Path) -> dict[str, str]:
    """Checksums of every file except the inputs a case edits (raw data, params.yaml)."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and not rel.startswith("data/raw/") and rel != "params.yaml":
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _run(
    root: Path, stage: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> tuple[int, str]:
    """`python -m stages.<stage>` in-process: the same `run_stage` wrapper, its exit code and stderr."""
    monkeypatch.chdir(root)
    module = importlib.import_module(f"stages.{stage}")
    capsys.readouterr()
    try:
        run_stage(module.main)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


# --- editing helpers ------------------------------------------------------------------------------


def _table(root: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(root / "data/raw" / f"{name}.csv", dtype=str, keep_default_na=False)


def _edit(name: str, fn: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        fn(_table(root, name)).to_csv(root / "data/raw" / f"{name}.csv", index=False)

    return apply


def _cell(name: str, column: str, row: int, value: str) -> Callable[[Path], None]:
    """Set one cell; `row` is the 1-based data row the error message must name."""
    return _edit(name, lambda f: f.assign(**{column: f[column].mask(f.index == row - 1, value)}))


def _params(patch: dict) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        data = yaml.safe_load((root / "params.yaml").read_text())
        for dotted, value in patch.items():
            group, key = dotted.split(".")
            data.setdefault(group, {})[key] = value
        (root / "params.yaml").write_text(yaml.safe_dump(data, allow_unicode=True))

    return apply


def _raw_text(name: str, fn: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        path = root / "data/raw" / f"{name}.csv"
        path.write_bytes(fn(path.read_bytes()))

    return apply


def _cut_inside_last_quote(data: bytes) -> bytes:
    """The last line cut a few bytes into its quoted `text` field."""
    body = data.rstrip(b"\n")
    last = body.rfind(b"\n") + 1
    return body[:last] + b",".join(body[last:].split(b",")[:2]) + ',"Отли'.encode()


def _cut_last_row_after_two_fields(data: bytes) -> bytes:
    body = data.rstrip(b"\n")
    last = body.rfind(b"\n") + 1
    return body[:last] + b",".join(body[last:].split(b",")[:2])


def _bad_byte_in_row3_text(data: bytes) -> bytes:
    lines = data.split(b"\n")
    lines[3] = lines[3].replace(b',"', b',"\xff\xfe', 1)  # line 4 = data row 3, inside the text field
    return b"\n".join(lines)


def _delete(name: str) -> Callable[[Path], None]:
    return lambda root: (root / "data/raw" / f"{name}.csv").unlink()


def _extra_field_in_row2(data: bytes) -> bytes:
    lines = data.split(b"\n")
    lines[2] += b",x"
    return b"\n".join(lines)


def _dup_product(f: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([f, f.iloc[[3]].assign(title="другой товар")], ignore_index=True)


# id, stage, setup, must-appear fragments (file, row, column, what)
ERRORS = [
    ("missing-file", "prepare", _delete("reviews"), ["data/raw/reviews.csv: file not found"]),
    (
        "missing-raw-dir",
        "prepare",
        _params({"prepare.raw_dir": "data/nope"}),
        ["data/nope: raw data folder not found"],
    ),
    (
        "missing-column",
        "prepare",
        _edit("products", lambda f: f.drop(columns=["title"])),
        ["products.csv, column 'title': missing required column"],
    ),
    (
        "empty-text",
        "prepare",
        _cell("products", "title", 5, ""),
        ["products.csv, row 5, column 'title': empty or whitespace-only text"],
    ),
    (
        "whitespace-text",
        "prepare",
        _cell("reviews", "text", 3, "  \t  "),
        ["reviews.csv, row 3, column 'text': empty or whitespace-only text"],
    ),
    (
        "nan-label",
        "prepare",
        _cell("review_summaries", "label", 2, ""),
        ["review_summaries.csv, row 2, column 'label': missing label; expected one of bad, good"],
    ),
    (
        "unknown-label",
        "prepare",
        _cell("users", "gender", 2, "unknown"),
        ["users.csv, row 2, column 'gender': unknown label 'unknown'"],
    ),
    (
        "rating-above-5",
        "prepare",
        _cell("reviews", "rating", 3, "7"),
        ["reviews.csv, row 3, column 'rating': value '7' outside 1..5"],
    ),
    (
        "rating-zero",
        "prepare",
        _cell("reviews", "rating", 4, "0"),
        ["reviews.csv, row 4, column 'rating': value '0' outside 1..5"],
    ),
    (
        "rating-not-a-number",
        "prepare",
        _cell("reviews", "rating", 1, "five"),
        ["reviews.csv, row 1, column 'rating': expected a number, got 'five'"],
    ),
    (
        "rating-missing",
        "prepare",
        _cell("reviews", "rating", 6, ""),
        ["reviews.csv, row 6, column 'rating': missing value"],
    ),
    (
        "rating-fractional",
        "prepare",
        _cell("reviews", "rating", 2, "4.5"),
        ["reviews.csv, row 2, column 'rating': expected an integer"],
    ),
    (
        "isdeleted-not-0-1",
        "prepare",
        _cell("products", "isdeleted", 7, "2"),
        ["products.csv, row 7, column 'isdeleted': expected 0 or 1"],
    ),
    (
        "negative-price",
        "prepare",
        _cell("products", "price", 8, "-10"),
        ["products.csv, row 8, column 'price': value '-10' below 0"],
    ),
    (
        "duplicate-id-different-content",
        "prepare",
        _edit("products", _dup_product),
        ["products.csv, row 241, column 'nm_id': duplicate nm_id", "(first at row 4, with different title)"],
    ),
    (
        "unknown-foreign-id",
        "prepare",
        _cell("reviews", "nm_id", 1, "99999999"),
        ["reviews.csv, row 1, column 'nm_id': nm_id 99999999 not in products.csv"],
    ),
    (
        "broken-utf8",
        "prepare",
        _raw_text("reviews", _bad_byte_in_row3_text),
        ["reviews.csv, row 3, column 'text': not valid UTF-8 (byte 0xff at line 4"],
    ),
    (
        "truncated-inside-quotes",
        "prepare",
        _raw_text("reviews", _cut_inside_last_quote),
        ["reviews.csv, row 499, column 'text': malformed CSV", "truncated"],
    ),
    (
        "truncated-mid-row",
        "prepare",
        _raw_text("reviews", _cut_last_row_after_two_fields),
        ["reviews.csv, row 499, column 'text': has 2 fields, header has 4", "truncated"],
    ),
    (
        "extra-field-in-a-row",
        "prepare",
        _raw_text("users", _extra_field_in_row2),
        ["users.csv, row 2: has 3 fields, header has 2 (extra fields)"],
    ),
    (
        "empty-dataset",
        "prepare",
        _raw_text("products", lambda d: d.split(b"\n", 1)[0] + b"\n"),
        ["products.csv: no products (the dataset is empty)"],
    ),
    (
        "empty-file",
        "prepare",
        _raw_text("products", lambda d: b""),
        ["products.csv: file is empty (no header)"],
    ),
    (
        "no-test-items-after-dedup",
        "prepare",
        _edit("reviews", lambda f: f.assign(text="Хороший товар, рекомендую.")),
        [
            "reviews.csv, column 'text': benchmark WBReviewsClassification has no test items after splitting and dedup",
            "dropped as leak",
        ],
    ),
    (
        "params-wrong-type",
        "prepare",
        _params({"train.lr": "fast"}),
        ["params.yaml: train.lr: Input should be a valid number"],
    ),
    (
        "params-negative-batch-size",
        "prepare",
        _params({"train.batch_size": -4}),
        ["params.yaml: train.batch_size: Input should be greater than or equal to 2 (got -4)"],
    ),
    (
        "params-negative-eval-batch-size",
        "prepare",
        _params({"evaluate.batch_size": -1}),
        ["params.yaml: evaluate.batch_size: Input should be greater than or equal to 1 (got -1)"],
    ),
    (
        "params-unknown-benchmark",
        "prepare",
        _params({"evaluate.benchmarks": ["WBNoSuchBench"]}),
        ["params.yaml: evaluate.benchmarks: Value error, unknown benchmark(s) ['WBNoSuchBench']"],
    ),
    (
        "params-unknown-key",
        "prepare",
        _params({"prepare.max_eval": 5}),
        ["params.yaml: prepare.max_eval: Extra inputs"],
    ),
    (
        "params-broken-yaml",
        "prepare",
        lambda root: (root / "params.yaml").write_text("prepare: [unclosed\n"),
        ["params.yaml: not valid YAML", "line 2"],
    ),
    (
        "unknown-base-model-path",
        "base_model",
        _params({"base_model.name": "./models/no-such-model"}),
        ["./models/no-such-model: base_model.name looks like a local path but the folder not found"],
    ),
    (
        "unknown-base-model-name",
        "base_model",
        _params({"base_model.name": "no-such-model"}),
        ["unknown base_model.name 'no-such-model'"],
    ),
]


@pytest.mark.parametrize(("stage", "setup", "fragments"), [c[1:] for c in ERRORS], ids=[c[0] for c in ERRORS])
def test_bad_input_one_line_exit_2_and_outputs_untouched(
    project, monkeypatch, capsys, stage, setup, fragments
):
    setup(project)
    before = _snapshot(project)
    code, err = _run(project, stage, monkeypatch, capsys)
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in lines[0]
    assert _snapshot(project) == before  # previous outputs unchanged, nothing new, no temporaries


def test_stage_cli_subprocess_prints_one_line_and_exits_2(project):
    """The same contract through a real `python -m stages.prepare`, as dvc runs it."""
    _cell("products", "title", 10, "")(project)
    before = _snapshot(project)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "stages.prepare"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "products.csv, row 10, column 'title'" in lines[0]
    assert _snapshot(project) == before


# --- valid but unusual input: succeeds, warns or counts ---------------------------------------------


def _prepare_ok(project, monkeypatch, capsys) -> tuple[dict, str]:
    code, err = _run(project, "prepare", monkeypatch, capsys)
    assert code == 0, err
    assert not any(line.startswith("error") for line in err.splitlines())
    return json.loads((project / "metrics/prepare.json").read_text()), err


def _semicolon_bom(data: bytes) -> bytes:
    frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    return frame.to_csv(index=False, sep=";").encode("utf-8-sig")


def test_extra_unknown_column_warns_and_continues(project, monkeypatch, capsys):
    _edit("products", lambda f: f.assign(promo_code="SALE"))(project)
    metrics, err = _prepare_ok(project, monkeypatch, capsys)
    assert "warning: data/raw/products.csv, column 'promo_code': unknown column ignored" in err
    assert metrics["products"]["raw"] == 240
    assert "promo_code" not in pd.read_csv(project / "data/prepared/products.csv", nrows=1).columns


def test_semicolon_separated_export_with_bom_is_accepted(project, monkeypatch, capsys):
    """Decision: a Russian-locale Excel export (BOM, `;`) is read as is, with a warning."""
    _raw_text("products", _semicolon_bom)(project)
    metrics, err = _prepare_ok(project, monkeypatch, capsys)
    assert "warning: data/raw/products.csv: read as ';'-separated" in err
    assert metrics["products"]["raw"] == 240
    assert (
        "nm_id" in pd.read_csv(project / "data/prepared/products.csv", nrows=1).columns
    )  # BOM not in the name


def test_brand_with_one_spelling_is_counted(project, monkeypatch, capsys):
    brands = _table(project, "brands")
    assert brands.groupby("brand_id").size().min() > 1  # the sample has none
    new_id = str(int(brands["brand_id"].astype(int).max()) + 1)
    extra = pd.DataFrame([{"brand_id": new_id, "spelling": "Единственный Бренд", "is_canonical": "1"}])
    pd.concat([brands, extra]).to_csv(project / "data/raw/brands.csv", index=False)
    metrics, _ = _prepare_ok(project, monkeypatch, capsys)
    assert metrics["benchmarks"]["WBBrandSyns"]["single_spelling_brands"] == 1


def test_category_with_a_single_product_is_counted(project, monkeypatch, capsys):
    products = _table(project, "products")
    before = int(products["category"].value_counts().eq(1).sum())
    _cell("products", "category", 3, "Единственная категория")(project)
    metrics, _ = _prepare_ok(project, monkeypatch, capsys)
    got = metrics["benchmarks"]["WBGoodsCategoriesClassification"]["single_item_labels"]
    assert got >= before + 1 and got >= 1
    assert metrics["benchmarks"]["WBSimGoods-triplets"]["test"] > 0


def test_10000_character_description_is_truncated_by_the_tokenizer(project, monkeypatch, capsys):
    from mpembed.embeddings import Embedder, load_model
    from mpembed.models.resolve import minilm_dir

    long = ("Очень длинное описание товара из натуральных материалов. " * 200)[:10_000]
    _cell("products", "description", 1, long)(project)
    _prepare_ok(project, monkeypatch, capsys)
    prepared = pd.read_csv(project / "data/prepared/products.csv", keep_default_na=False)
    assert (prepared["description"].str.len() == 10_000).sum() == 1  # kept whole; the model truncates
    model = load_model(str(minilm_dir()), max_seq_length=64)
    assert model.tokenize([long])["input_ids"].shape[1] == 64
    vec = Embedder(model, batch_size=2, progress=False).encode([long, "короткий текст"], "passage")
    assert vec.shape == (2, 384) and np.isfinite(vec).all()
    assert abs(float(np.linalg.norm(vec[0])) - 1.0) < 1e-4


def test_every_benchmark_names_its_source_table_in_errors():
    from mpembed.benchmarks.registry import BENCHMARKS
    from mpembed.data.prepare import _SOURCES
    from mpembed.data.schema import TABLES_BY_NAME

    assert set(_SOURCES) == {b.name for b in BENCHMARKS}
    for table, column in _SOURCES.values():
        assert TABLES_BY_NAME[table].column(column)
