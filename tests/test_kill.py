"""SIGKILL every stage mid-run: each declared output stays the previous version, is absent, or is a
complete new version - never half-written - and no temporary file is left beside the outputs.

Runs in a temporary copy of the project with tiny params and the packaged MiniLM. Every stage first
runs to completion once (the "previous outputs"); then it is rerun and killed (process group,
SIGKILL) after a seeded random share of its first run's duration.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import ROOT
from mpembed.io import STAGING, temp_files

pytestmark = pytest.mark.slow

ORDER = ("sample", "base_model", "prepare", "brand_candidates", "triplets", "train", "reference", "evaluate", "export")
SEED = 20240611
TINY = {
    "sample": {"n_products": 150},
    "base_model": {"name": "all-minilm-l6-v2"},
    "prepare": {"max_eval_queries": 30, "max_eval_items": 40},
    "triplets": {"k": 5},
    "train": {"max_steps": 2, "batch_size": 8, "eval_steps": 2, "max_seq_length": 32, "freeze_layers": 4},
    "evaluate": {
        "classifier_runs": 1,
        "classifier_samples_per_label": 8,
        "classifier_max_train": 60,
        "max_seq_length": 32,
    },
}
# Not temporaries: train's resumable checkpoints are kept on purpose when it is killed (gitignored).
KEPT_ON_PURPOSE = {"models/.checkpoints"}


def declared_outs(stage: str) -> list[str]:
    """outs, metrics and plots of `stage` in dvc.yaml."""
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][stage]
    outs = []
    for key in ("outs", "metrics", "plots"):
        for item in spec.get(key, []):
            outs.append(next(iter(item)) if isinstance(item, dict) else item)
    return outs


def _state(path: Path) -> tuple | dict[str, tuple] | None:
    """(sha256, size, last 64 bytes) of a file, that per file of a folder, None when absent."""
    if path.is_file():
        data = path.read_bytes()
        return hashlib.sha256(data).hexdigest(), len(data), data[-64:]
    if path.is_dir():
        return {p.relative_to(path).as_posix(): _state(p) for p in sorted(path.rglob("*")) if p.is_file()}
    return None


def _complete(path: Path, prev) -> str | None:
    """Why `path` (changed since the previous run) is not a complete output; None if it is."""
    if path.is_dir():
        files = {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()}
        if files != set(prev):
            return f"files differ from the previous version: {sorted(files ^ set(prev))[:5]}"
        for rel in sorted(files):
            why = _complete_file(path / rel, prev[rel])
            if why:
                return f"{rel}: {why}"
        return None
    return _complete_file(path, prev)


def _complete_file(path: Path, prev: tuple) -> str | None:
    """A new version must parse (JSON, CSV with the previous header) or end as the previous one did."""
    _, prev_size, prev_tail = prev
    data = path.read_bytes()
    try:
        if path.suffix == ".json":
            json.loads(data)
            return None
        if path.suffix == ".csv":
            header = pd.read_csv(path, nrows=0).columns.tolist()
            return None if data.endswith(b"\n") and header else "cut off"
    except Exception as exc:
        return f"unreadable ({type(exc).__name__}: {exc})"
    if path.suffix == ".tsv":  # rows are appended; a cut row has no line end
        return None if data.endswith(b"\n") else "cut off"
    if path.suffix in (".md", ".txt"):
        return None if data[-16:] == prev_tail[-16:] else "ends differently from the previous version"
    return None if len(data) == prev_size else f"{len(data)} bytes, previous version {prev_size}"


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "DVC_NO_ANALYTICS": "1",
    }


def run_stage(root: Path, stage: str, kill_after: float | None = None) -> tuple[float, bool]:
    """Run `python -m stages.<stage>`; kill its process group after `kill_after` s. (elapsed, killed)."""
    log = root / f".{stage}.log"
    start = time.monotonic()
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", f"stages.{stage}"],
            cwd=root,
            env=_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            code = proc.wait(timeout=kill_after if kill_after is not None else 1800)
        except subprocess.TimeoutExpired:
            if kill_after is None:
                raise
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return time.monotonic() - start, True
    assert code == 0, f"{stage} failed ({code}):\n{log.read_text(errors='replace')[-3000:]}"
    return time.monotonic() - start, False


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, float]]:
    """A tiny copy of the project, every stage run once; returns it with each stage's duration."""
    root = tmp_path_factory.mktemp("kill") / "repo"
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for rel in files:
        if rel.startswith(("metrics/", "reports/", "dvclive/")) or rel == "dvc.lock":
            continue
        if (ROOT / rel).is_file():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, root / rel)
    (root / ".dvc").mkdir(exist_ok=True)  # a DVC project: temporaries go to .dvc/tmp/mpembed
    params = yaml.safe_load((root / "params.yaml").read_text())
    for group, values in TINY.items():
        params[group].update(values)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False, allow_unicode=True))
    durations = {stage: run_stage(root, stage)[0] for stage in ORDER}
    return root, durations


def _listing(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


@pytest.mark.parametrize("stage", ORDER)
def test_sigkill_leaves_previous_or_no_output(project, stage):
    root, durations = project
    outs = declared_outs(stage)
    assert outs, stage
    rng = random.Random(f"{SEED}-{stage}")
    cheap = durations[stage] < 10
    delays = [durations[stage] * rng.uniform(0.3, 1.0) for _ in range(3 if cheap else 1)]
    for delay in delays:
        previous = {out: _state(root / out) for out in outs}
        assert all(v is not None for v in previous.values()), previous
        parents = {(root / out).parent for out in outs}
        before = {p: _listing(p) for p in parents}
        _, killed = run_stage(root, stage, kill_after=delay)

        problems: list[str] = []
        for out in outs:
            path, now = root / out, _state(root / out)
            if now is None or now == previous[out] or not killed:
                continue  # absent, untouched, or the complete output of a run that finished first
            why = _complete(path, previous[out])
            if why:
                problems.append(f"{out}: half-written after SIGKILL at {delay:.1f}s ({why})")
        for parent in parents:
            new = _listing(parent) - before[parent] - {Path(out).name for out in outs}
            new -= {Path(k).name for k in KEPT_ON_PURPOSE if (root / k).parent == parent}
            stray = sorted(new | {p.name for p in temp_files(parent)})
            if stray:
                problems.append(f"{parent.relative_to(root)}: left behind {stray}")
        assert not problems, f"killed={killed}: " + "; ".join(problems)

        if any(_state(root / out) is None for out in outs):
            run_stage(root, stage)  # complete outputs again, for the next kill and downstream stages


def test_next_run_sweeps_temporaries_of_killed_runs(project):
    root, _ = project
    run_stage(root, "sample")  # every atomic write sweeps what killed writers left in the staging folder
    assert not temp_files(root / STAGING)
