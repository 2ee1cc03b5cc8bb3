"""Errors that a user fixes by editing their data or params, so they print as one line."""

from __future__ import annotations


class MpembedError(Exception):
    """Base class: stage scripts print these as one line and exit non-zero, without a traceback."""


class DataError(MpembedError):
    """Bad input data; names the file, the row (1-based data row, header excluded) and the column."""

    def __init__(self, file: str, message: str, row: int | None = None, column: str | None = None):
        self.file, self.row, self.column = str(file), row, column
        where = self.file
        if row is not None:
            where += f", row {row}"
        if column is not None:
            where += f", column '{column}'"
        super().__init__(f"{where}: {message}")


class ParamsError(MpembedError):
    """Invalid params.yaml; names the offending key."""


class LeakageError(MpembedError):
    """A benchmark test text (or its near-duplicate) occurs in training data."""


class ModelError(MpembedError):
    """A base model that cannot be resolved, read or converted; names the file or model."""
