"""Human decisions on uncertain candidates: the annotations log and how the stages apply it.

`data/annotations/triplets.csv` and `data/annotations/brands.csv` are append-only logs kept in
git, so a rerun of a candidate stage reproduces the same training signal. One line per decision
(`accept` or `reject`; a skip is not a decision); when one item has several lines the last one
wins, so a correction is simply a new line.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import pandas as pd

from mpembed.errors import DataError

Kind = Literal["triplets", "brands"]
DECISIONS = ("accept", "reject")
KEYS: dict[str, tuple[str, ...]] = {
    "triplets": ("anchor_id", "positive_id", "negative_id"),
    "brands": ("a", "b"),
}
COLUMNS: dict[str, list[str]] = {kind: [*key, "decision", "annotated_at"] for kind, key in KEYS.items()}
DEFAULT_PATHS: dict[str, Path] = {
    "triplets": Path("data/annotations/triplets.csv"),
    "brands": Path("data/annotations/brands.csv"),
}
HUMAN = {"accept": "accepted", "reject": "rejected"}

Key = tuple[str, ...]


def _kind_columns(kind: str) -> list[str]:
    if kind not in COLUMNS:
        raise ValueError(f"kind must be one of {', '.join(COLUMNS)}, not {kind!r}")
    return COLUMNS[kind]


def _empty(kind: str, path: Path) -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype=object) for c in _kind_columns(kind)})
    frame.attrs["path"] = str(path)
    return frame


def decision_key(kind: str, values: Sequence[object]) -> Key:
    """The identity of a decided item: the three ids of a triplet, or the brand pair sorted so
    that (a, b) and (b, a) are one item, matching the candidates' a < b order."""
    if kind == "brands":
        a, b = (str(v) for v in values)
        return (a, b) if a <= b else (b, a)
    _kind_columns(kind)
    return tuple(str(v).strip() for v in values)


def id_strings(values: pd.Series) -> list[str]:
    """Ids as the strings a CSV holds them ("123", not "123.0"), so that candidates read as numbers
    match decisions read as text."""
    if pd.api.types.is_float_dtype(values) and values.notna().all() and bool((values % 1 == 0).all()):
        values = values.astype("int64")
    return values.astype(str).str.strip().tolist()


def candidate_keys(candidates: pd.DataFrame, kind: str) -> list[Key]:
    """One decision key per candidate row (see `decision_key`)."""
    cols = KEYS[kind]
    missing = [c for c in cols if c not in candidates.columns]
    if missing:
        raise ValueError(f"{kind} candidates lack columns {missing}")
    if kind == "brands":
        return [
            decision_key(kind, pair)
            for pair in zip(candidates["a"].astype(str), candidates["b"].astype(str), strict=True)
        ]
    return list(zip(*(id_strings(candidates[c]) for c in cols), strict=True))


def read_decisions(path: str | Path, kind: Kind) -> pd.DataFrame:
    """The decisions logged in `path` (columns `COLUMNS[kind]`, all text, decision normalised to
    accept/reject); an empty frame when the file does not exist yet.

    The index is the 0-based data row in the file, so an error found later (an unknown id) can
    still name the row. `attrs["path"]` holds the file name for the same reason.
    """
    columns = _kind_columns(kind)
    path = Path(path)
    if not path.exists():
        return _empty(kind, path)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise DataError(
            path, f"not valid UTF-8 (byte 0x{data[err.start]:02x} at line {line})", row=line - 1 or None
        ) from None
    if not text.strip():
        return _empty(kind, path)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        records = list(reader)
    except csv.Error as err:
        raise DataError(
            path, f"malformed CSV ({err}); is the file truncated?", row=max(reader.line_num - 1, 1)
        ) from None
    header = [h.strip() for h in records[0]]
    for col in columns:
        if col not in header:
            raise DataError(path, f"missing required column (has: {', '.join(header)})", column=col)
    where = {c: header.index(c) for c in columns}
    rows, index = [], []
    for i, record in enumerate(records[1:], start=1):
        if not record:
            continue
        if len(record) != len(header):
            raise DataError(path, f"has {len(record)} fields, header has {len(header)}", row=i)
        rows.append(_validated_row(path, kind, i, {c: record[where[c]] for c in columns}))
        index.append(i - 1)
    frame = pd.DataFrame(rows, columns=columns, index=pd.Index(index, dtype="int64"), dtype=object)
    if not rows:
        frame = _empty(kind, path)
    frame.attrs["path"] = str(path)
    return frame


def _validated_row(path: Path, kind: str, row: int, values: dict[str, str]) -> dict[str, str]:
    for col in KEYS[kind]:
        if kind == "triplets":
            values[col] = values[col].strip()
        if not values[col].strip():
            raise DataError(path, "empty value; every decision names its item", row=row, column=col)
    if kind == "brands" and values["a"] == values["b"]:
        raise DataError(path, f"a and b are the same spelling {values['a']!r}", row=row, column="b")
    decision = values["decision"].strip().lower()
    if decision not in DECISIONS:
        raise DataError(
            path,
            f"unknown decision {values['decision']!r}; expected one of {', '.join(DECISIONS)}",
            row=row,
            column="decision",
        )
    values["decision"] = decision
    return values


def decided_keys(decisions: pd.DataFrame, kind: Kind) -> set[Key]:
    """Items that have at least one accept/reject line: the annotator does not show them again."""
    return {decision_key(kind, v) for v in zip(*(decisions[c] for c in KEYS[kind]), strict=True)}


def append_decision(
    path: str | Path, kind: Kind, item: Sequence[object], decision: str, annotated_at: str | None = None
) -> None:
    """Append one decision line (creating the file with its header) in a single write, then fsync:
    a session killed at any moment leaves each line either whole or absent."""
    columns = _kind_columns(kind)
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {DECISIONS}, not {decision!r}")
    if len(item) != len(KEYS[kind]):
        raise ValueError(f"a {kind} decision names {len(KEYS[kind])} values, got {len(item)}")
    stamp = annotated_at or datetime.now(timezone.utc).isoformat(timespec="seconds")
    values = dict(zip(columns, [*(str(v) for v in item), decision, stamp], strict=True))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        header = _file_header(path, columns) if size else None
        prefix = _csv_line(columns) if header is None else ""
        if size and os.pread(fd, 1, size - 1) != b"\n":
            prefix = "\n" + prefix
        order = header or columns
        data = (prefix + _csv_line([values.get(c, "") for c in order])).encode("utf-8")
        try:
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(f"{path}: short write ({written} of {len(data)} bytes)")
            os.fsync(fd)
        except OSError:
            os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)
    if not size:
        _fsync_dir(path.parent)


def _file_header(path: Path, columns: list[str]) -> list[str] | None:
    """The existing header, so a line goes in the file's own column order; None if the file is blank."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        first = f.readline()
    if not first.strip():
        return None
    header = [h.strip() for h in next(csv.reader([first]))]
    for col in columns:
        if col not in header:
            raise DataError(path, f"missing required column (has: {', '.join(header)})", column=col)
    return header


def _csv_line(values: Sequence[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(values)
    return buf.getvalue()


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def check_known_ids(decisions: pd.DataFrame, kind: Kind, known: set[str]) -> pd.DataFrame:
    """`decisions` unchanged if every id it names exists (a product `nm_id` for triplets, a brand
    spelling for brands); otherwise a `DataError` naming the file, the first such row and column.

    This is the fatal case: a decision about something that is not in the data at all (a typo, a
    log from another dataset). A decision about a known item that is no longer a *candidate* (after
    a params change) is not checked here; the `apply_*_decisions(strict=False)` counts it.
    """
    what = "product id (nm_id)" if kind == "triplets" else "brand spelling"
    for idx, row in zip(decisions.index, decisions[list(KEYS[kind])].itertuples(index=False), strict=True):
        for col, value in zip(KEYS[kind], row, strict=True):
            if str(value).strip() not in known and str(value) not in known:
                raise DataError(
                    decisions.attrs.get("path", f"{kind} decisions"),
                    f"{value!r} is not a known {what}; fix or remove the line",
                    row=int(idx) + 1,
                    column=col,
                )
    return decisions


def _latest_known(
    decisions: pd.DataFrame, kind: Kind, keys: list[Key], strict: bool
) -> tuple[dict[Key, str], int]:
    """Last decision per candidate item, and the number of distinct decided items that are not
    candidates; with `strict` the first such line is a `DataError` (file, row, column)."""
    missing = [c for c in COLUMNS[kind] if c not in decisions.columns and c != "annotated_at"]
    if missing:
        raise ValueError(f"{kind} decisions lack columns {missing}")
    known = set(keys)
    latest: dict[Key, str] = {}
    unknown: dict[Key, tuple[int, tuple[str, ...]]] = {}
    raw = zip(*(decisions[c].astype(str) for c in KEYS[kind]), strict=True)
    for idx, values, decision in zip(decisions.index, raw, decisions["decision"], strict=True):
        key = decision_key(kind, values)
        if key in known:
            latest[key] = str(decision).strip().lower()
        else:
            unknown.setdefault(key, (int(idx), values))
    if unknown and strict:
        idx, values = next(iter(unknown.values()))
        column, what = _unknown_reason(
            kind, tuple(str(v).strip() for v in values) if kind == "triplets" else values, known
        )
        raise DataError(
            decisions.attrs.get("path", f"{kind} decisions"),
            f"{what}; {len(unknown)} decided item(s) are not among the current candidates "
            "(decided on other candidate data? fix or remove those lines)",
            row=idx + 1,
            column=column,
        )
    return latest, len(unknown)


def _unknown_reason(kind: str, values: tuple[str, ...], known: set[Key]) -> tuple[str, str]:
    """The first column whose value breaks the match, read left to right, and why."""
    if kind == "brands":
        a, b = values
        partners = {n for pair in known if a in pair for n in pair if n != a}
        if not partners:
            return "a", f"brand {a!r} is in no candidate pair"
        return "b", f"{a!r} / {b!r} is not a candidate pair"
    anchor, positive, negative = values
    if anchor not in {k[0] for k in known}:
        return "anchor_id", f"anchor_id {anchor} is not the anchor of any triplet candidate"
    if (anchor, positive) not in {k[:2] for k in known}:
        return "positive_id", f"no triplet candidate pairs anchor_id {anchor} with positive_id {positive}"
    return "negative_id", f"no triplet candidate is ({anchor}, {positive}, {negative})"


def _counts(human: pd.Series, auto_accepted: int, unknown: int) -> dict[str, int]:
    return {
        "auto_accepted": int(auto_accepted),
        "human_accepted": int((human == "accepted").sum()),
        "human_rejected": int((human == "rejected").sum()),
        "unknown_ids": int(unknown),
    }


def apply_triplet_decisions(
    candidates: pd.DataFrame, decisions: pd.DataFrame, *, strict: bool = True
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Candidates without the human-rejected triplets, with a `human` column ("accepted" /
    "rejected" / ""), and counts {auto_accepted, human_accepted, human_rejected, unknown_ids}.

    human_rejected counts the removed rows; auto_accepted the kept rows nobody decided. Decisions
    naming a triplet that is not a candidate raise `DataError` (file, row, column) unless
    `strict=False`, which only counts them.
    """
    keys = candidate_keys(candidates, "triplets")
    latest, unknown = _latest_known(decisions, "triplets", keys, strict)
    human = pd.Series([HUMAN.get(latest.get(k, ""), "") for k in keys], index=candidates.index, dtype=object)
    counts = _counts(human, int((human == "").sum()), unknown)
    kept = candidates.assign(human=human)[human != "rejected"].reset_index(drop=True)
    return kept, counts


def apply_brand_decisions(
    candidates: pd.DataFrame, decisions: pd.DataFrame, *, strict: bool = True
) -> tuple[pd.DataFrame, dict[str, int]]:
    """All candidates, `accepted` overridden by people (accept -> 1, reject -> 0, whatever the
    score) and a `human` column, plus the counts of `apply_triplet_decisions`.

    auto_accepted counts the pairs accepted by the threshold that nobody decided. Pairs are
    unordered: a decision on (b, a) applies to the candidate (a, b).
    """
    if "accepted" not in candidates.columns:
        raise ValueError("brand candidates lack the 'accepted' column")
    keys = candidate_keys(candidates, "brands")
    latest, unknown = _latest_known(decisions, "brands", keys, strict)
    human = pd.Series([HUMAN.get(latest.get(k, ""), "") for k in keys], index=candidates.index, dtype=object)
    accepted = pd.to_numeric(candidates["accepted"]).astype(int)
    accepted = accepted.mask(human == "accepted", 1).mask(human == "rejected", 0)
    counts = _counts(human, int(((human == "") & (accepted == 1)).sum()), unknown)
    return candidates.assign(accepted=accepted, human=human), counts
