"""Stage `base_model`: materialise the base encoder named by `base_model.name` in models/base."""

from pathlib import Path

from mpembed.cli import run_stage
from mpembed.models.resolve import build_base_model
from mpembed.params import load_params


def main() -> None:
    params = load_params()
    info = build_base_model(params.base_model.name, Path("models/base"))
    print(f"base model {params.base_model.name!r} -> models/base {info}")


if __name__ == "__main__":
    run_stage(main)
