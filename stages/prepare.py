"""Stage `prepare`: validate the raw tables, split by group, build the 13 benchmarks, drop leaks."""

from mpembed.cli import run_stage
from mpembed.data.prepare import run_prepare
from mpembed.params import load_params


def main() -> None:
    params = load_params()
    metrics = run_prepare(params, "data/prepared", "metrics/prepare.json")
    for name, m in metrics["benchmarks"].items():
        print(f"{name:40s} train={m['train']:6d} dev={m['dev']:5d} test={m['test']:5d} leaks dropped={m['dropped_leak']}")


if __name__ == "__main__":
    run_stage(main)
