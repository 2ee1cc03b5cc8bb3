"""The shared entry point of stage scripts: known errors become one line and exit code 2."""

from __future__ import annotations

import sys
from collections.abc import Callable

from mpembed.errors import MpembedError


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's `main`; a user-fixable error prints `error: <file, row, column>: <what>`.

    The message is always one line (a wrapped library error's own line breaks are folded to `; `).
    """
    try:
        main()
    except MpembedError as err:
        print(f"error: {one_line(str(err))}", file=sys.stderr)
        raise SystemExit(2) from None


def one_line(text: str) -> str:
    return "; ".join(part.strip() for part in text.splitlines() if part.strip())
