"""Shared fixtures: a small generated sample and the params that go with it."""

from __future__ import annotations

import os

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs two pytest workers on a 2-core machine: one thread each (inherited by the
    # dvc stages a test launches), or each worker's two OpenMP threads fight the other's for the cores.
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import shutil
from pathlib import Path

import pytest

from mpembed.data.sample import generate_sample
from mpembed.params import Params

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("raw") / "raw"
    generate_sample(out, seed=7, n_products=240)
    return out


@pytest.fixture
def raw_copy(sample_dir: Path, tmp_path: Path) -> Path:
    """A writable copy of the sample for tests that corrupt it."""
    dst = tmp_path / "raw"
    shutil.copytree(sample_dir, dst)
    return dst


def small_params(raw_dir: Path, **prepare: object) -> Params:
    return Params.model_validate({
        "base": {"seed": 7},
        "prepare": {"raw_dir": str(raw_dir), "max_eval_queries": 60, "max_eval_items": 80, **prepare},
    })
