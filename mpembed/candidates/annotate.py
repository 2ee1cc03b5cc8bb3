"""Confirm or reject the least certain training candidates by hand.

    python -m mpembed.candidates.annotate {triplets,brands} [-n N] [--candidates PATH]
        [--annotations PATH] [--threshold T] [--split SPLIT]

Shows the N undecided candidates nearest the decision boundary (triplets: confidence nearest
0.5; brand pairs: score nearest the accept threshold) one at a time and reads one letter per
item: a(ccept), r(eject), s(kip), q(uit); end of input quits too. Each accept/reject is appended
to the annotations log at once (see `decisions`), so a killed session loses at most the item on
screen and the next one resumes after the last decision. Skips are not logged: a skipped item
comes back in the next session. The candidate stages apply the log with `apply_*_decisions`.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np
import pandas as pd

from mpembed.candidates.decisions import (
    DEFAULT_PATHS,
    Kind,
    append_decision,
    candidate_keys,
    decided_keys,
    read_decisions,
)
from mpembed.cli import run_stage
from mpembed.errors import DataError

DEFAULT_CANDIDATES: dict[str, Path] = {
    "triplets": Path("data/candidates/triplet_candidates.csv"),
    "brands": Path("data/candidates/brand_candidates.csv"),
}
STAGES = {"triplets": "triplets", "brands": "brand_candidates"}
REQUIRED: dict[str, tuple[str, ...]] = {
    "triplets": ("anchor_id", "positive_id", "negative_id", "confidence"),
    "brands": ("a", "b", "score", "accepted"),
}
ANSWERS = {"a": "accept", "r": "reject", "s": "skip", "q": "quit"}
PROMPT = "[a]ccept / [r]eject / [s]kip / [q]uit > "


@dataclass
class Summary:
    shown: int = 0
    accepted: int = 0
    rejected: int = 0
    skipped: int = 0
    remaining: int = 0

    def line(self) -> str:
        return (f"summary: shown {self.shown}, accepted {self.accepted}, rejected {self.rejected}, "
                f"skipped {self.skipped}, remaining uncertain {self.remaining}")


def load_candidates(path: str | Path, kind: Kind) -> pd.DataFrame:
    """The candidate CSV a stage wrote, checked for the columns the annotator shows and sorts by."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, f"candidates file not found (run the `{STAGES[kind]}` stage or `dvc pull`)")
    text_cols = ("a", "b", "sources", "split") if kind == "brands" else ("anchor", "positive", "negative")
    frame = pd.read_csv(path, dtype=dict.fromkeys(text_cols, str), keep_default_na=False)
    for col in REQUIRED[kind]:
        if col not in frame.columns:
            raise DataError(path, f"missing required column (has: {', '.join(frame.columns)})", column=col)
    for col in ("confidence",) if kind == "triplets" else ("score", "accepted"):
        values = pd.to_numeric(frame[col], errors="coerce")
        bad = np.flatnonzero(values.isna().to_numpy())
        if len(bad):
            raise DataError(path, f"not a number: {frame[col].iloc[bad[0]]!r}", row=int(bad[0]) + 1, column=col)
        frame[col] = values
    return frame


def brand_threshold(candidates: pd.DataFrame, source: str | Path = "brand candidates") -> float:
    """The accept threshold the stage used: the lowest score it accepted by itself (rows a person
    accepted, marked in a `human` column, do not count)."""
    auto = candidates["accepted"] == 1
    if "human" in candidates.columns:
        auto &= candidates["human"].astype(str) != "accepted"
    if not auto.any():
        raise DataError(source, "no pair is accepted, so the threshold is unknown; pass --threshold")
    return float(candidates.loc[auto, "score"].min())


def uncertain_first(candidates: pd.DataFrame, kind: Kind, threshold: float | None = None) -> pd.DataFrame:
    """Candidates ordered from least to most certain (file order on ties, missing scores last)."""
    if kind == "triplets":
        distance = (candidates["confidence"] - 0.5).abs()
    else:
        if threshold is None:
            raise ValueError("brand candidates need a threshold")
        distance = (candidates["score"] - threshold).abs()
    order = np.argsort(distance.fillna(np.inf).to_numpy(), kind="stable")
    return candidates.iloc[order]


def describe(row: dict[str, object], kind: Kind, number: int, total: int, threshold: float | None) -> str:
    """What a person needs to decide one item: the texts and the model's score."""
    if kind == "triplets":
        sims = ""
        if "pos_sim" in row and "neg_sim" in row:
            sims = f"  (pos_sim {row['pos_sim']}, neg_sim {row['neg_sim']})"
        return (
            f"\n[{number}/{total}] triplet, confidence {row['confidence']:.4f}{sims}\n"
            f"  anchor   {row['anchor_id']}: {row.get('anchor', '')}\n"
            f"  positive {row['positive_id']}: {row.get('positive', '')}\n"
            f"  negative {row['negative_id']}: {row.get('negative', '')}\n"
            "Is the positive a closer match to the anchor than the negative?\n"
        )
    state = "accepted" if int(row["accepted"]) == 1 else "rejected"
    extra = f", sources {row['sources']}" if "sources" in row else ""
    split = f", {row['split']}" if "split" in row else ""
    return (
        f"\n[{number}/{total}] brand pair, score {row['score']:.4f} (threshold {threshold:.4f}: {state}{extra}{split})\n"
        f"  a  {row['a']}\n"
        f"  b  {row['b']}\n"
        "Are a and b spellings of the same brand?\n"
    )


def ask(stdin: TextIO, stdout: TextIO) -> str:
    """One answer: accept / reject / skip / quit; anything else asks again, end of input quits."""
    while True:
        stdout.write(PROMPT)
        stdout.flush()
        line = stdin.readline()
        if not line:
            stdout.write("\n")
            return "quit"
        answer = line.strip().lower()
        if answer in ANSWERS:
            return ANSWERS[answer]
        stdout.write(f"  {line.strip()!r} is not an answer: type a, r, s or q\n")


def annotate(
    kind: Kind,
    n: int,
    candidates_path: str | Path,
    annotations_path: str | Path,
    *,
    threshold: float | None = None,
    split: str = "train",
    stdin: TextIO = sys.stdin,
    stdout: TextIO = sys.stdout,
) -> Summary:
    """Run one session; every accept/reject is in `annotations_path` before the next item shows."""
    candidates = load_candidates(candidates_path, kind)
    if kind == "brands":
        if threshold is None:
            threshold = brand_threshold(candidates, candidates_path)
        if split != "all" and "split" in candidates.columns:
            candidates = candidates[candidates["split"] == split]
    decided = decided_keys(read_decisions(annotations_path, kind), kind)
    keys = candidate_keys(candidates, kind)
    undecided = candidates.loc[np.array([k not in decided for k in keys], dtype=bool)]
    queue = uncertain_first(undecided, kind, threshold).head(n)
    summary = Summary(remaining=len(undecided))
    if queue.empty:
        stdout.write(f"nothing to annotate: all {len(candidates)} {kind} candidates are decided\n")
    items = zip(queue.to_dict("records"), candidate_keys(queue, kind), strict=True)
    for number, (row, item) in enumerate(items, start=1):
        stdout.write(describe(row, kind, number, len(queue), threshold))
        summary.shown += 1
        try:
            answer = ask(stdin, stdout)
        except KeyboardInterrupt:
            stdout.write("\n")
            answer = "quit"
        if answer == "quit":
            break
        if answer == "skip":
            summary.skipped += 1
            continue
        append_decision(annotations_path, kind, item, answer)
        summary.remaining -= 1
        if answer == "accept":
            summary.accepted += 1
        else:
            summary.rejected += 1
    stdout.write(summary.line() + "\n")
    stdout.write(f"decisions: {annotations_path}\n")
    stdout.flush()
    return summary


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mpembed.candidates.annotate",
        description="Accept or reject the least certain triplet / brand-pair candidates; answers go to "
                    "data/annotations/<kind>.csv at once, a rerun resumes.",
    )
    parser.add_argument("kind", choices=("triplets", "brands"))
    parser.add_argument("-n", type=int, default=20, help="how many items to show (default 20)")
    parser.add_argument("--candidates", type=Path, help="candidates CSV (default data/candidates/...)")
    parser.add_argument("--annotations", type=Path, help="decisions log (default data/annotations/<kind>.csv)")
    parser.add_argument("--threshold", type=float,
                        help="brands: the accept threshold (default: the lowest score the stage accepted)")
    parser.add_argument("--split", default="train",
                        help="brands: annotate pairs of this split only, or 'all' (default train: only "
                             "train pairs become training data)")
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("-n must be at least 1")
    if args.kind == "triplets" and args.threshold is not None:
        parser.error("--threshold applies to brands only")
    run_stage(lambda: annotate(
        args.kind, args.n,
        args.candidates or DEFAULT_CANDIDATES[args.kind],
        args.annotations or DEFAULT_PATHS[args.kind],
        threshold=args.threshold, split=args.split,
    ))


if __name__ == "__main__":
    main()
