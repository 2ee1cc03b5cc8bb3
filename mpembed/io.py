"""Atomic file and folder writes, and small JSON/JSONL/CSV helpers.

Every output is written to a temporary path first and renamed into place, so a stage killed at any
point (even by SIGKILL) leaves either the previous output or the new one, never half a file.

Temporaries live in `<project>/.dvc/tmp/mpembed/` when the output is inside a DVC project on the same
filesystem (so a killed stage leaves nothing next to its outputs), otherwise beside the output. Their
names carry the writer's pid; the next write sweeps those whose writer is gone. A folder replaces its
previous version in one `renameat2(RENAME_EXCHANGE)` where the kernel offers it; elsewhere in two
renames, between which a kill leaves the folder absent (never mixed).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

STAGING = Path(".dvc") / "tmp" / "mpembed"
_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read once: mkstemp/mkdtemp create owner-only modes, outputs get the usual ones
# .<output name>.<pid>.<random>.tmp|old, as made by mkstemp/mkdtemp below.
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[A-Za-z0-9_]+\.(?:tmp|old)$")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def staging_dir(path: str | Path) -> tuple[Path, bool]:
    """Where temporaries for `path` go, and whether that is the project's staging folder."""
    parent = Path(path).parent.resolve()
    parent.mkdir(parents=True, exist_ok=True)
    for folder in (parent, *parent.parents):
        if (folder / ".dvc").is_dir():
            staging = folder / STAGING
            try:
                staging.mkdir(parents=True, exist_ok=True)
                if staging.stat().st_dev == parent.stat().st_dev:
                    return staging, True
            except OSError:
                pass
            break
    return parent, False


def temp_files(folder: str | Path, name: str | None = None) -> list[Path]:
    """Temporaries of this module in `folder` (only those for output `name` when given)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    out = []
    for entry in folder.iterdir():
        m = _TEMP_NAME.match(entry.name)
        if m and (name is None or m["name"] == name):
            out.append(entry)
    return out


def _sweep(folder: Path, name: str | None) -> None:
    """Remove temporaries left by writers that no longer run (a killed stage)."""
    for entry in temp_files(folder, name):
        if _pid_alive(int(_TEMP_NAME.match(entry.name)["pid"])):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def _temp_place(path: Path) -> tuple[Path, str]:
    folder, shared = staging_dir(path)
    _sweep(folder, None if shared else path.name)
    return folder, f".{path.name}.{os.getpid()}."


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux renameat2); False where that is not available."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    fn.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EPERM):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary file path; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    folder, prefix = _temp_place(path)
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=folder)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_UMASK)
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder; swap it in for `path` (file or folder) only on success."""
    path = Path(path)
    folder, prefix = _temp_place(path)
    tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=folder))
    old = None
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_UMASK)
        if not (path.exists() or path.is_symlink()):
            os.replace(tmp, path)
        elif not _exchange(tmp, path):  # after an exchange `tmp` holds the previous version
            old = Path(tempfile.mkdtemp(prefix=prefix, suffix=".old", dir=folder))
            os.replace(path, old / "previous")
            os.replace(tmp, path)
    finally:
        _remove(tmp)
        if old is not None:
            _remove(old)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=False) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> int:
    n = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_csv(path: str | Path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
