"""The annotation CLI (driven through stdin as a person would) and applying its decisions."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from mpembed.candidates.annotate import PROMPT
from mpembed.candidates.decisions import (
    COLUMNS,
    append_decision,
    apply_brand_decisions,
    apply_triplet_decisions,
    check_known_ids,
    read_decisions,
)
from mpembed.errors import DataError

ROOT = Path(__file__).resolve().parents[1]

# confidence order (nearest 0.5 first): 5, 2, 3, 4, then 1 and 6 tied (file order)
TRIPLETS = pd.DataFrame(
    {
        "anchor_id": [1, 2, 3, 4, 5, 6],
        "positive_id": [11, 12, 13, 14, 15, 16],
        "negative_id": [21, 22, 23, 24, 25, 26],
        "pos_sim": [0.9, 0.8, 0.8, 0.8, 0.8, 0.7],
        "neg_sim": [0.5, 0.79, 0.81, 0.7, 0.8, 0.9],
        "confidence": [0.9, 0.52, 0.45, 0.7, 0.5, 0.1],
        "anchor": [f"Товар {i}, синий" for i in range(1, 7)],
        "positive": [f"Похожий {i}" for i in range(1, 7)],
        "negative": [f"Другой {i}" for i in range(1, 7)],
    }
)
# threshold = lowest accepted score = 0.6 (the dev pair); train order: Nike/Nokia, Puma/Пума, adidas, Samsung
BRANDS = pd.DataFrame(
    {
        "a": ["adidas", "Nike", "Puma", "Samsung", "Zara"],
        "b": ["Адидас", "Nokia", "Пума", "Sony", "Зара"],
        "score": [1.0, 0.62, 0.55, 0.2, 0.6],
        "sources": ["translit", "ngram", "translit+embed", "embed", "translit"],
        "sim_translit": [1.0, 0.0, 0.8, 0.0, 1.0],
        "sim_ngram": [1.0, 0.6, 0.0, 0.0, 0.0],
        "sim_embed": [0.9, 0.85, 0.82, 0.8, 0.9],
        "split": ["train", "train", "train", "train", "dev"],
        "accepted": [1, 1, 0, 0, 1],
    }
)


def run_cli(cwd: Path, stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "mpembed.candidates.annotate", *args],
        input=stdin,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "data" / "candidates").mkdir(parents=True)
    TRIPLETS.to_csv(tmp_path / "data" / "candidates" / "triplet_candidates.csv", index=False)
    BRANDS.to_csv(tmp_path / "data" / "candidates" / "brand_candidates.csv", index=False)
    return tmp_path


def test_triplet_session_records_reasks_and_resumes(workdir: Path) -> None:
    first = run_cli(workdir, "a\nr\nx\ns\nq\n", "triplets", "-n", "5")
    assert first.returncode == 0, first.stderr
    out = first.stdout
    assert out.count(PROMPT) == 5  # four items, the third asked twice
    assert "'x' is not an answer" in out
    assert out.index("Товар 5,") < out.index("Товар 2,") < out.index("Товар 3,") < out.index("Товар 4,")
    assert "Товар 1," not in out
    assert "summary: shown 4, accepted 1, rejected 1, skipped 1, remaining uncertain 4" in out

    log = pd.read_csv(workdir / "data" / "annotations" / "triplets.csv", dtype=str)
    assert list(log.columns) == COLUMNS["triplets"]
    assert log[["anchor_id", "positive_id", "negative_id", "decision"]].values.tolist() == [
        ["5", "15", "25", "accept"],
        ["2", "12", "22", "reject"],
    ]
    assert log["annotated_at"].str.match(r"\d{4}-\d\d-\d\dT").all()

    second = run_cli(workdir, "a\n", "triplets", "-n", "10")
    assert second.returncode == 0, second.stderr
    out = second.stdout
    assert "Товар 5," not in out and "Товар 2," not in out
    assert out.index("Товар 3,") < out.index("Товар 4,")  # the skipped item comes back first
    assert "summary: shown 2, accepted 1, rejected 0, skipped 0, remaining uncertain 3" in out
    log = read_decisions(workdir / "data" / "annotations" / "triplets.csv", "triplets")
    assert log["anchor_id"].tolist() == ["5", "2", "3"]


def test_brand_session_orders_by_distance_to_threshold(workdir: Path) -> None:
    result = run_cli(workdir, "r\na\n", "brands", "-n", "2")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "threshold 0.6000" in out
    assert out.index("Nokia") < out.index("Пума")
    assert "Зара" not in out and "Адидас" not in out  # dev pairs are not shown; -n 2
    assert "summary: shown 2, accepted 1, rejected 1, skipped 0, remaining uncertain 2" in out
    log = read_decisions(workdir / "data" / "annotations" / "brands.csv", "brands")
    assert log[["a", "b", "decision"]].values.tolist() == [
        ["Nike", "Nokia", "reject"],
        ["Puma", "Пума", "accept"],
    ]

    applied, counts = apply_brand_decisions(BRANDS, log)
    assert applied["accepted"].tolist() == [1, 0, 1, 0, 1]
    assert applied["human"].tolist() == ["", "rejected", "accepted", "", ""]
    assert counts == {"auto_accepted": 2, "human_accepted": 1, "human_rejected": 1, "unknown_ids": 0}


def test_brand_cli_without_accepted_pairs_asks_for_threshold(workdir: Path) -> None:
    BRANDS.assign(accepted=0).to_csv(workdir / "none.csv", index=False)
    result = run_cli(workdir, "", "brands", "--candidates", "none.csv")
    assert result.returncode == 2
    assert "none.csv" in result.stderr and "--threshold" in result.stderr
    assert (
        "Пума"
        in run_cli(workdir, "", "brands", "--candidates", "none.csv", "--threshold", "0.5", "-n", "1").stdout
    )


def test_apply_triplet_decisions_removes_rejected_and_last_line_wins(tmp_path: Path) -> None:
    path = tmp_path / "triplets.csv"
    append_decision(path, "triplets", (1, 11, 21), "reject")
    append_decision(path, "triplets", (3, 13, 23), "accept")
    append_decision(path, "triplets", (4, 14, 24), "reject")
    append_decision(path, "triplets", (4, 14, 24), "accept")  # a correction
    kept, counts = apply_triplet_decisions(TRIPLETS, read_decisions(path, "triplets"))
    assert kept["anchor_id"].tolist() == [2, 3, 4, 5, 6]
    assert kept["human"].tolist() == ["", "accepted", "accepted", "", ""]
    assert counts == {"auto_accepted": 3, "human_accepted": 2, "human_rejected": 1, "unknown_ids": 0}
    assert len(TRIPLETS) == 6 and "human" not in TRIPLETS.columns


def test_apply_brand_decisions_overrides_score_for_either_order(tmp_path: Path) -> None:
    path = tmp_path / "brands.csv"
    append_decision(path, "brands", ("Адидас", "adidas"), "reject")  # b, a order
    append_decision(path, "brands", ("Samsung", "Sony"), "accept")
    applied, counts = apply_brand_decisions(BRANDS, read_decisions(path, "brands"))
    assert applied["accepted"].tolist() == [0, 1, 0, 1, 1]
    assert counts == {"auto_accepted": 2, "human_accepted": 1, "human_rejected": 1, "unknown_ids": 0}


@pytest.mark.parametrize(
    ("line", "column"),
    [("9,11,21", "anchor_id"), ("1,12,21", "positive_id"), ("1,11,22", "negative_id")],
)
def test_unknown_triplet_names_file_row_and_column(tmp_path: Path, line: str, column: str) -> None:
    path = tmp_path / "triplets.csv"
    path.write_text(
        f"anchor_id,positive_id,negative_id,decision,annotated_at\n2,12,22,accept,\n{line},reject,\n"
    )
    decisions = read_decisions(path, "triplets")
    with pytest.raises(DataError) as err:
        apply_triplet_decisions(TRIPLETS, decisions)
    assert str(err.value).startswith(f"{path}, row 2, column '{column}': ")
    kept, counts = apply_triplet_decisions(TRIPLETS, decisions, strict=False)
    assert counts["unknown_ids"] == 1 and len(kept) == 6


def test_unknown_brand_pair_names_file_row_and_column(tmp_path: Path) -> None:
    path = tmp_path / "brands.csv"
    path.write_text("a,b,decision,annotated_at\nNike,Puma,accept,\n")
    with pytest.raises(
        DataError, match=r"brands\.csv, row 1, column 'b': 'Nike' / 'Puma' is not a candidate pair"
    ):
        apply_brand_decisions(BRANDS, read_decisions(path, "brands"))


def test_read_decisions_validates(tmp_path: Path) -> None:
    absent = read_decisions(tmp_path / "missing.csv", "brands")
    assert absent.empty and list(absent.columns) == COLUMNS["brands"]
    path = tmp_path / "brands.csv"
    path.write_text("a,b,decision,annotated_at\nNike,Nokia, Accept ,\nPuma,Пума,maybe,\n")
    with pytest.raises(DataError, match=r"row 2, column 'decision': unknown decision 'maybe'"):
        read_decisions(path, "brands")
    path.write_text("a,decision,annotated_at\nNike,accept,\n")
    with pytest.raises(DataError, match=r"column 'b': missing required column"):
        read_decisions(path, "brands")
    path.write_text("a,b,decision,annotated_at\nNike,Nokia,Accept,\n")
    assert read_decisions(path, "brands")["decision"].tolist() == ["accept"]


def test_append_never_joins_lines_and_follows_the_header(tmp_path: Path) -> None:
    path = tmp_path / "brands.csv"
    path.write_text("decision,a,b,annotated_at\nreject,Nike,Nokia,x")  # hand-edited: no final newline
    append_decision(path, "brands", ("L'Oreal, Paris", "Лореаль"), "accept", annotated_at="t")
    assert path.read_text().endswith('x\naccept,"L\'Oreal, Paris",Лореаль,t\n')
    log = read_decisions(path, "brands")
    assert log[["a", "b", "decision"]].values.tolist() == [
        ["Nike", "Nokia", "reject"],
        ["L'Oreal, Paris", "Лореаль", "accept"],
    ]


def test_check_known_ids_names_file_row_and_column(tmp_path: Path) -> None:
    path = tmp_path / "triplets.csv"
    path.write_text(
        "anchor_id,positive_id,negative_id,decision,annotated_at\n1,11,21,accept,\n2,999,22,reject,\n"
    )
    decisions = read_decisions(path, "triplets")
    known = {"1", "2", "11", "12", "21", "22"}
    with pytest.raises(DataError) as err:
        check_known_ids(decisions, "triplets", known)
    assert (
        str(err.value)
        == f"{path}, row 2, column 'positive_id': '999' is not a known product id (nm_id); fix or remove the line"
    )
    assert check_known_ids(decisions, "triplets", known | {"999"}) is decisions
    brands = tmp_path / "brands.csv"
    brands.write_text("a,b,decision,annotated_at\nNike,Nokia,reject,\nNike,Nikke,accept,\n")
    with pytest.raises(
        DataError, match=r"brands\.csv, row 2, column 'b': 'Nikke' is not a known brand spelling"
    ):
        check_known_ids(read_decisions(brands, "brands"), "brands", {"Nike", "Nokia"})


def test_known_ids_no_longer_candidates_are_counted_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "brands.csv"
    path.write_text("a,b,decision,annotated_at\nNike,Puma,accept,\nadidas,Адидас,reject,\n")
    decisions = check_known_ids(read_decisions(path, "brands"), "brands", set(BRANDS["a"]) | set(BRANDS["b"]))
    applied, counts = apply_brand_decisions(BRANDS, decisions, strict=False)
    assert counts["unknown_ids"] == 1 and counts["human_rejected"] == 1
    assert applied["accepted"].tolist() == [0, 1, 0, 0, 1]


def _stage_project(tmp_path: Path, kind: str, line: str) -> Path:
    (tmp_path / "data" / "prepared").mkdir(parents=True)
    (tmp_path / "data" / "annotations").mkdir(parents=True)
    (tmp_path / "params.yaml").write_text("base:\n  seed: 1\n")
    pd.DataFrame(
        {
            "brand_id": [1, 1],
            "spelling": ["Nike", "Найк"],
            "is_canonical": [1, 0],
            "split": ["train", "train"],
        }
    ).to_csv(tmp_path / "data" / "prepared" / "brands.csv", index=False)
    pd.DataFrame(
        {
            "nm_id": [1, 2, 3],
            "title": ["a", "b", "c"],
            "category": "x",
            "parentname": "y",
            "model_id": [1, 2, 3],
            "split": "train",
        }
    ).to_csv(tmp_path / "data" / "prepared" / "products.csv", index=False)
    header = "a,b" if kind == "brands" else "anchor_id,positive_id,negative_id"
    (tmp_path / "data" / "annotations" / f"{kind}.csv").write_text(
        f"{header},decision,annotated_at\n{line}\n"
    )
    return tmp_path


@pytest.mark.parametrize(
    ("stage", "kind", "line", "where"),
    [
        (
            "brand_candidates",
            "brands",
            "Nike,Адидас,accept,",
            "row 1, column 'b': 'Адидас' is not a known brand spelling",
        ),
        (
            "triplets",
            "triplets",
            "1,2,77,reject,",
            "row 1, column 'negative_id': '77' is not a known product id",
        ),
    ],
)
def test_stage_fails_on_annotations_naming_unknown_ids(
    tmp_path: Path, stage: str, kind: str, line: str, where: str
) -> None:
    """Checked before the model loads: no models/base is needed, and nothing is written."""
    project = _stage_project(tmp_path, kind, line)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", f"stages.{stage}"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: data/annotations/")
    assert f"{kind}.csv, {where}" in lines[0]
    assert not (project / "data" / "candidates").exists() and not (project / "metrics").exists()
