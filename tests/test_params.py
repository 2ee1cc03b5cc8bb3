from pathlib import Path

import pytest
import yaml

from mpembed.benchmarks.registry import BENCHMARKS
from mpembed.errors import ParamsError
from mpembed.params import Params, load_params

ROOT = Path(__file__).resolve().parents[1]


def _write(tmp_path: Path, patch: dict) -> Path:
    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    for dotted, value in patch.items():
        group, key = dotted.split(".")
        data[group][key] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


def test_repo_params_are_valid_and_match_schema_defaults():
    params = load_params(ROOT / "params.yaml")
    assert params.base_model.name == "multilingual-e5-small"
    families = set(Params().train.task_weights)
    weights = set(params.train.task_weights)
    assert families <= weights  # every task family has an explicit weight
    # the rest are classification benchmarks weighted inside their family
    assert weights - families <= {b.name for b in BENCHMARKS if b.task == "classification"}


@pytest.mark.parametrize(
    ("patch", "key"),
    [
        ({"train.batch_size": -4}, "train.batch_size"),
        ({"train.lr": "fast"}, "train.lr"),
        ({"evaluate.benchmarks": ["WBNoSuchBench"]}, "evaluate.benchmarks"),
        ({"train.task_weights": {"dance": 1.0}}, "train.task_weights"),
        ({"train.unknown_knob": 1}, "train.unknown_knob"),
    ],
)
def test_bad_params_name_the_key(tmp_path, patch, key):
    with pytest.raises(ParamsError) as err:
        load_params(_write(tmp_path, patch))
    assert key in str(err.value)


def test_missing_params_file(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "nope.yaml")
