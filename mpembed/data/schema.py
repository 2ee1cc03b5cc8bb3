"""The raw-data contract: one CSV per table in the raw folder, UTF-8, comma-separated, with a header.

A UTF-8 byte-order mark is ignored, and a file whose header has `;` and no `,` (a Russian-locale Excel
export) is read as `;`-separated, with a warning.

This module is the single documented place for the schema (README links here). Real marketplace
exports in this schema replace the generated sample. `products.csv` keeps the column names of the
public `data_sampled_30.csv` (`title`, `description`, `query`, `isdeleted`, `parentname`) as a subset.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from mpembed.errors import DataError


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # "int" | "float" | "str" | "text" (str that must not be blank) | "bool" (0/1)
    doc: str
    required: bool = True
    choices: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class Table:
    name: str
    doc: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()  # columns whose values identify a row (duplicates are an error)
    optional: bool = False  # benchmarks built from this table are skipped when the file is absent
    refs: dict[str, str] = field(default_factory=dict)  # column -> "table.column" it must exist in

    @property
    def file(self) -> str:
        return f"{self.name}.csv"

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


GENDERS = ("female", "male")
SUMMARY_LABELS = ("bad", "good")
YES_NO = ("no", "yes")

TABLES: tuple[Table, ...] = (
    Table(
        "products",
        "One row per product card (nm). Products sharing a `model_id` are variants of one item.",
        (
            Column("nm_id", "int", "product id, unique (default: row number)", required=False),
            Column("title", "text", "product title as shown on the card"),
            Column("description", "text", "seller's description"),
            Column("brand", "str", "brand as spelled on the card (may be a variant spelling)", required=False),
            Column("brand_id", "int", "canonical brand group id (brands.csv)", required=False),
            Column("category", "text", "leaf category (default: parentname)", required=False),
            Column("parentname", "text", "parent category"),
            Column("model_id", "int", "variant group: same item in another colour/size", required=False),
            Column("color", "str", "colour attribute", required=False),
            Column("size", "str", "size attribute", required=False),
            Column("material", "str", "material attribute", required=False),
            Column("price", "float", "price, roubles", required=False, min=0),
            Column("query", "str", "a search query that led to the product", required=False),
            Column("isdeleted", "bool", "1 if the card was removed (excluded from benchmarks)", required=False),
        ),
        key=("nm_id",),
    ),
    Table(
        "brands",
        "Gold brand synonym groups: every spelling of a brand seen on the marketplace.",
        (
            Column("brand_id", "int", "brand group id"),
            Column("spelling", "text", "one spelling (Latin, Cyrillic, typo, case, spacing)"),
            Column("is_canonical", "bool", "1 for the official spelling of the group"),
        ),
        key=("spelling",),
    ),
    Table(
        "reviews",
        "Buyer reviews; the wording follows the rating.",
        (
            Column("review_id", "int", "review id, unique"),
            Column("nm_id", "int", "reviewed product"),
            Column("text", "text", "review text"),
            Column("rating", "int", "stars", min=1, max=5),
        ),
        key=("review_id",),
        refs={"nm_id": "products.nm_id"},
    ),
    Table(
        "review_summaries",
        "A summary of a product's review set, labelled good or bad.",
        (
            Column("summary_id", "int", "summary id, unique"),
            Column("nm_id", "int", "summarised product"),
            Column("text", "text", "summary text"),
            Column("label", "str", "overall verdict", choices=SUMMARY_LABELS),
        ),
        key=("summary_id",),
        refs={"nm_id": "products.nm_id"},
    ),
    Table(
        "product_questions",
        "Buyer questions on a product card with the seller's answer.",
        (
            Column("question_id", "int", "question id, unique"),
            Column("nm_id", "int", "product asked about"),
            Column("question", "text", "buyer's question"),
            Column("answer", "text", "seller's answer"),
        ),
        key=("question_id",),
        refs={"nm_id": "products.nm_id"},
    ),
    Table(
        "support_facts",
        "Help-centre facts (delivery, returns, payment, ...).",
        (
            Column("fact_id", "int", "fact id, unique"),
            Column("topic", "text", "topic of the fact"),
            Column("text", "text", "the fact"),
        ),
        key=("fact_id",),
    ),
    Table(
        "support_questions",
        "Questions to support, each answered by one fact.",
        (
            Column("question_id", "int", "question id, unique"),
            Column("fact_id", "int", "fact that answers it"),
            Column("question", "text", "the question"),
        ),
        key=("question_id",),
        refs={"fact_id": "support_facts.fact_id"},
    ),
    Table(
        "support_short",
        "Yes/no support questions with the context that decides the answer.",
        (
            Column("item_id", "int", "item id, unique"),
            Column("context", "text", "support context"),
            Column("question", "text", "yes/no question"),
            Column("label", "str", "answer", choices=YES_NO),
        ),
        key=("item_id",),
    ),
    Table(
        "users",
        "Buyers with a known gender.",
        (
            Column("user_id", "int", "user id, unique"),
            Column("gender", "str", "gender", choices=GENDERS),
        ),
        key=("user_id",),
    ),
    Table(
        "purchases",
        "Purchase history: one row per (user, product) purchase.",
        (
            Column("user_id", "int", "buyer"),
            Column("nm_id", "int", "product bought"),
        ),
        refs={"user_id": "users.user_id", "nm_id": "products.nm_id"},
    ),
    Table(
        "search_relevance",
        "Search queries with graded relevance of products (0 = irrelevant .. 3 = exact).",
        (
            Column("query_id", "int", "query id"),
            Column("query", "text", "search query as typed"),
            Column("nm_id", "int", "judged product"),
            Column("relevance", "int", "graded relevance", min=0, max=3),
        ),
        key=("query_id", "nm_id"),
        refs={"nm_id": "products.nm_id"},
    ),
)

TABLES_BY_NAME = {t.name: t for t in TABLES}


def schema_markdown() -> str:
    """The schema as a markdown section (README and docs are generated from this, not retyped)."""
    out = []
    for t in TABLES:
        out.append(f"### `{t.file}`\n\n{t.doc}\n\n| column | type | required | meaning |\n|---|---|---|---|")
        for c in t.columns:
            kind = c.kind + (f" in {{{', '.join(c.choices)}}}" if c.choices else "")
            if c.min is not None or c.max is not None:
                lo = "" if c.min is None else f"{c.min:g}"
                hi = "" if c.max is None else f"{c.max:g}"
                kind += f" [{lo}..{hi}]"
            out.append(f"| `{c.name}` | {kind} | {'yes' if c.required else 'no'} | {c.doc} |")
        out.append("")
    return "\n".join(out)


def _column_at(line_prefix: str, names: list[str], delimiter: str) -> str | None:
    """The header name of the field that `line_prefix` (the start of a data line) ends in."""
    fields = next(csv.reader([line_prefix], delimiter=delimiter, strict=False), [""])
    i = max(len(fields) - 1, 0)
    return names[i] if i < len(names) else None


def _delimiter(header: str) -> str:
    """`;` for a Russian-locale Excel export (a header with `;` and no `,`), else `,`."""
    return ";" if ";" in header and "," not in header else ","


def _read_raw_csv(path: Path) -> pd.DataFrame:
    """Read a CSV as strings, naming file, row and column on undecodable bytes or a cut-off last line.

    Arrow's CSV reader reads a well-formed file: at 1M products the csv module's list per row was
    most of `prepare`'s time and memory. It checks UTF-8 and the field count of every row, but it
    takes an unterminated quote at the end of the file as the end of the field; so any Arrow error,
    an odd number of quote characters (a file cut inside a quoted field), or a repeated header name
    sends the file to the strict reader, which stops at the first bad row and names it.
    """
    data = path.read_bytes()
    head = data.split(b"\n", 1)[0].decode("utf-8-sig", errors="replace").rstrip("\r")
    delimiter = _delimiter(head)
    names = next(csv.reader([head], delimiter=delimiter), [])
    if not data.strip() or data.count(b'"') % 2 or len(set(names)) != len(names) or "" in names:
        return _read_raw_csv_strict(path)
    try:
        table = pacsv.read_csv(
            pa.py_buffer(data),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()),
                                                 strings_can_be_null=False, quoted_strings_can_be_null=False),
        )
    except pa.ArrowInvalid:
        return _read_raw_csv_strict(path)
    if table.column_names != names:
        return _read_raw_csv_strict(path)
    frame = pd.DataFrame({n: table.column(n).to_pylist() for n in names}, columns=names, dtype=str)
    frame.attrs["delimiter"] = delimiter
    return frame


def _read_raw_csv_strict(path: Path) -> pd.DataFrame:
    """The csv module with strict=True: slow, but it stops at the first bad row and says where."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        start = data.rfind(b"\n", 0, err.start) + 1
        line = data[: err.start].count(b"\n") + 1
        header = data.split(b"\n", 1)[0].decode("utf-8-sig", errors="replace").rstrip("\r")
        delim = _delimiter(header)
        names = next(csv.reader([header], delimiter=delim))
        column = _column_at(data[start : err.start].decode("utf-8", errors="replace"), names, delim)
        raise DataError(path, f"not valid UTF-8 (byte 0x{data[err.start]:02x} at line {line}; re-save as UTF-8)",
                        row=line - 1 if line > 1 else None, column=column if line > 1 else None) from None
    if not text.strip():
        raise DataError(path, "file is empty (no header)")
    header = text.split("\n", 1)[0]
    delimiter = _delimiter(header)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    rows: list[list[str]] = []
    try:
        rows.extend(reader)
    except csv.Error as err:
        names = rows[0] if rows else []
        loose = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=False))
        bad = loose[len(rows)] if len(loose) > len(rows) else []
        column = names[len(bad) - 1] if 0 < len(bad) <= len(names) else None
        raise DataError(path, f"malformed CSV ({err}); is the file truncated?", row=max(len(rows), 1),
                        column=column) from None
    names = rows[0]
    width = len(names)
    for i, r in enumerate(rows[1:], start=1):
        if len(r) != width and r:
            column = names[len(r)] if len(r) < width else None
            what = "missing from here on" if len(r) < width else "extra fields"
            raise DataError(path, f"has {len(r)} fields, header has {width} ({what}); is the file truncated?",
                            row=i, column=column)
    body = [r for r in rows[1:] if r]
    frame = pd.DataFrame(body, columns=names, dtype=str)
    frame.attrs["delimiter"] = delimiter
    return frame


def _convert(table: Table, col: Column, values: pd.Series, path: Path) -> pd.Series:
    def fail(idx: int, msg: str) -> DataError:
        return DataError(path, msg, row=int(idx) + 1, column=col.name)

    stripped = values.str.strip()
    if col.kind in ("str",):
        return values.fillna("")
    if col.kind == "text":
        blank = stripped.eq("") | values.isna()
        if blank.any():
            raise fail(blank.idxmax(), "empty or whitespace-only text")
        return values
    if col.kind in ("int", "bool", "float"):
        nums = pd.to_numeric(stripped, errors="coerce")
        bad = nums.isna()
        if bad.any():
            i = bad.idxmax()
            if not str(stripped[i]):
                raise fail(i, "missing value (expected a number)")
            raise fail(i, f"expected a number, got {values[i]!r}")
        if col.kind in ("int", "bool"):
            frac = nums != nums.round()
            if frac.any():
                raise fail(frac.idxmax(), f"expected an integer, got {values[frac.idxmax()]!r}")
            nums = nums.astype("int64")
        if col.kind == "bool":
            wrong = ~nums.isin([0, 1])
            if wrong.any():
                raise fail(wrong.idxmax(), f"expected 0 or 1, got {values[wrong.idxmax()]!r}")
        lo = col.min if col.min is not None else float("-inf")
        hi = col.max if col.max is not None else float("inf")
        out = (nums < lo) | (nums > hi)
        if out.any():
            raise fail(out.idxmax(), f"value {values[out.idxmax()]!r} outside {col.min:g}..{col.max:g}"
                       if col.max is not None else f"value {values[out.idxmax()]!r} below {col.min:g}")
        return nums
    raise ValueError(f"unknown column kind {col.kind}")


def read_table(raw_dir: str | Path, table: Table | str, allowed_extra: Sequence[str] = ()) -> pd.DataFrame | None:
    """Read and validate one raw table; None when an optional table's file is absent.

    Unknown extra columns are kept out of the result (a warning is printed by the caller's
    `warnings` list). Every failure names file, row and column.
    """
    table = TABLES_BY_NAME[table] if isinstance(table, str) else table
    path = Path(raw_dir) / table.file
    if not path.exists():
        if table.optional:
            return None
        raise DataError(path, "file not found")
    frame = _read_raw_csv(path)
    if table.name == "products" and "nm_id" not in frame.columns:
        frame.insert(0, "nm_id", [str(i) for i in range(1, len(frame) + 1)])
    for col in table.columns:
        if col.required and col.name not in frame.columns:
            raise DataError(path, f"missing required column (has: {', '.join(frame.columns)})", column=col.name)
    out = {}
    for col in table.columns:
        if col.name not in frame.columns:
            continue
        values = _convert(table, col, frame[col.name], path)
        if col.choices:
            bad = ~values.isin(col.choices)
            if bad.any():
                i = bad.idxmax()
                what = "missing label" if not str(values[i]).strip() else f"unknown label {values[i]!r}"
                raise DataError(path, f"{what}; expected one of {', '.join(col.choices)}",
                                row=int(i) + 1, column=col.name)
        out[col.name] = values
    result = pd.DataFrame(out)
    if table.key and len(result):
        dup = result.duplicated(list(table.key), keep="first")
        if dup.any():
            i = int(dup.idxmax())
            key = list(table.key)
            value = result.loc[i, key].tolist()
            first = int(result.index[(result[key] == value).all(axis=1)][0])
            differs = [c for c in frame.columns if frame.at[first, c] != frame.at[i, c]]
            what = f"different {', '.join(differs)}" if differs else "an identical row"
            shown = value[0] if len(value) == 1 else tuple(value)
            raise DataError(path, f"duplicate {'/'.join(key)} {shown} (first at row {first + 1}, with {what})",
                            row=i + 1, column=table.key[0])
    result.attrs["extra_columns"] = [c for c in frame.columns if c not in {col.name for col in table.columns}]
    result.attrs["delimiter"] = frame.attrs.get("delimiter", ",")
    result.attrs["path"] = str(path)
    return result


def check_refs(tables: dict[str, pd.DataFrame]) -> None:
    """Every foreign id (e.g. reviews.nm_id) must exist in the table it points to."""
    for name, frame in tables.items():
        table = TABLES_BY_NAME[name]
        for col, target in table.refs.items():
            t_name, t_col = target.split(".")
            if t_name not in tables or col not in frame.columns:
                continue
            known = set(tables[t_name][t_col])
            bad = ~frame[col].isin(known)
            if bad.any():
                i = int(bad.idxmax())
                raise DataError(frame.attrs.get("path", table.file), f"{col} {frame[col][i]} not in {t_name}.csv",
                                row=i + 1, column=col)
