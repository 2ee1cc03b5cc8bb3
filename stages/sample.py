"""Stage `sample`: write the generated marketplace sample to data/raw (replace it with real data via DVC)."""

from mpembed.cli import run_stage
from mpembed.data.sample import generate_sample
from mpembed.params import load_params


def main() -> None:
    params = load_params()
    counts = generate_sample("data/raw", seed=params.base.seed, n_products=params.sample.n_products)
    print("sample:", ", ".join(f"{k}={v}" for k, v in counts.items()))


if __name__ == "__main__":
    run_stage(main)
