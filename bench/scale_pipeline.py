"""Time and peak memory of the data stages at 10k, 100k and 1M generated products.

    .venv/bin/python bench/scale_pipeline.py                                  # 10k, 100k, 1M
    .venv/bin/python bench/scale_pipeline.py --sizes 10000 --raw 100000=/tmp/raw100k

For each size a throw-away project is made under --work: the checkout's `mpembed/`, `stages/`,
`params.yaml` (with `sample.n_products` set to the size and `triplets.embedder` to --embedder),
`data/annotations/` copied, `models/base` linked. Each stage then runs as its own process
(`python -m stages.<stage>`), timed by wall clock and by its CPU time (user + system, all its
threads: on a shared machine the steadier figure); its peak RSS is the child's `ru_maxrss` from
`os.wait4`, so it is that stage alone. `--raw SIZE=DIR` links an already generated `data/raw`
instead of running `sample` (the generator is the slowest part at 1M and its output for a seed
and size never changes). The report gives the growth exponent log(t_big / t_small) / log(size
ratio) between consecutive sizes: 1.0 is linear; the table also gives what n log n growth would give
(1.079 between 100k and 1M). `--repeat N` runs each stage N times and reports the median times, which
matters for stages of a few seconds, where one noisy run moves the exponent by 0.05.
Never touches the checkout's data/, models/, metrics/ or dvc state.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from itertools import pairwise
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("sample", "prepare", "brand_candidates", "triplets")
# What the stage's main output holds, for the table: (file, what a row is)
OUTPUTS = {
    "sample": ("data/raw/products.csv", "products"),
    "prepare": ("data/prepared/products.csv", "products kept"),
    "brand_candidates": ("data/candidates/brand_candidates.csv", "brand candidate pairs"),
    "triplets": ("data/candidates/triplet_candidates.csv", "triplets"),
}

def make_project(work: Path, n: int, embedder: str, raw: Path | None, products: Path | None = None) -> Path:
    project = work / f"n{n}"
    if project.exists():
        shutil.rmtree(project)
    project.mkdir(parents=True)
    for folder in ("mpembed", "stages"):
        shutil.copytree(ROOT / folder, project / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "data" / "annotations", project / "data" / "annotations")
    (project / "models").mkdir()
    (project / "models" / "base").symlink_to((ROOT / "models" / "base").resolve())
    if raw is not None:
        (project / "data" / "raw").symlink_to(raw.resolve())
    if products is not None:
        (project / "data" / "prepared").mkdir(parents=True)
        (project / "data" / "prepared" / "products.csv").symlink_to(products.resolve())
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    params["sample"]["n_products"] = n
    params["triplets"]["embedder"] = embedder
    (project / "params.yaml").write_text(
        yaml.safe_dump(params, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    return project


def run_stage(project: Path, stage: str, log: Path) -> tuple[float, float, float, int]:
    """(wall seconds, CPU seconds, peak RSS MiB, exit code) of `python -m stages.<stage>` in `project`."""
    env = {
        **os.environ,
        "PYTHONPATH": str(project),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TQDM_DISABLE": "1",
    }
    with open(log, "w", encoding="utf-8") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", f"stages.{stage}"],
            cwd=project,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
    cpu = usage.ru_utime + usage.ru_stime
    return seconds, cpu, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def count_rows(path: Path) -> int:
    with open(path, "rb") as f:
        return max(sum(1 for _ in f) - 1, 0)


def markdown(rows: list[dict[str, object]]) -> str:
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(r[h]) for h in head) + " |" for r in rows]
    return "\n".join(lines)


def exponents(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    out = []
    by = {(r["products"], r["stage"]): r for r in rows if r["exit"] == 0}
    sizes = sorted({r["products"] for r in rows})
    for small, big in pairwise(sizes):
        for stage in STAGES:
            a, b = by.get((small, stage)), by.get((big, stage))
            if a and b and a["seconds"] > 0:
                ratio = math.log(big / small)
                out.append(
                    {
                        "stage": stage,
                        "sizes": f"{small} -> {big}",
                        "wall-time exponent": round(math.log(b["seconds"] / a["seconds"]) / ratio, 2),
                        "CPU-time exponent": round(math.log(b["CPU s"] / a["CPU s"]) / ratio, 2),
                        "memory exponent": round(math.log(b["peak RSS MiB"] / a["peak RSS MiB"]) / ratio, 2),
                        # what n log n would give between these sizes: 1 + log(log big / log small) / log ratio
                        "n log n exponent": round(1 + math.log(math.log(big) / math.log(small)) / ratio, 3),
                    }
                )
    return out


def write_report(path: Path, args: argparse.Namespace, rows: list[dict[str, object]]) -> None:
    load = os.getloadavg()
    parts = [
        "# Data stages at 10k, 100k and 1M generated products",
        f"`python bench/scale_pipeline.py --sizes {args.sizes} --embedder {args.embedder}"
        + "".join(f" --raw {r}" for r in args.raw or [])
        + "".join(f" --prepared-products {r}" for r in args.prepared_products or [])
        + (f" --stages {args.stages}" if args.stages != ",".join(STAGES) else "")
        + (f" --repeat {args.repeat}" if args.repeat > 1 else "")
        + f"` on {platform.machine()}, {os.cpu_count()} cores, load average {load[0]:.1f} at the end "
        "(other jobs on the machine inflate wall times; CPU time is the steadier figure). Method: see the "
        "script's docstring.",
        markdown(rows) if rows else "(no stage finished)",
    ]
    exp = exponents(rows)
    if exp:
        parts += [
            "Growth exponents, log(t_big / t_small) / log(size ratio) (1.0 = linear; the last column is "
            "what n log n growth would give):",
            markdown(exp),
        ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n".join(parts) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument(
        "--embedder",
        default="char_ngrams",
        choices=("char_ngrams", "model"),
        help="triplets.embedder for the timed runs (the e5 model needs hours at 1M on a CPU)",
    )
    parser.add_argument("--raw", action="append", help="SIZE=DIR: use this generated data/raw, skip `sample`")
    parser.add_argument(
        "--prepared-products",
        action="append",
        help="SIZE=FILE: a prepared products.csv for stages run without `prepare` (e.g. --stages triplets)",
    )
    parser.add_argument("--work", default="/tmp/mpembed-scale")
    parser.add_argument("--out", default="reports/scale.md")
    parser.add_argument("--keep", action="store_true", help="keep the projects under --work")
    parser.add_argument(
        "--repeat", type=int, default=1, help="run each stage this many times; the table gives median times"
    )
    args = parser.parse_args()
    raws = {int(k): Path(v) for k, v in (r.split("=", 1) for r in args.raw or [])}
    prepared = {int(k): Path(v) for k, v in (r.split("=", 1) for r in args.prepared_products or [])}
    stages = [s for s in STAGES if s in args.stages.split(",")]
    rows: list[dict[str, object]] = []
    for n in (int(s) for s in args.sizes.split(",")):
        project = make_project(Path(args.work), n, args.embedder, raws.get(n), prepared.get(n))
        for stage in stages:
            if stage == "sample" and n in raws:
                continue
            runs = [run_stage(project, stage, project / f"{stage}.log") for _ in range(max(1, args.repeat))]
            seconds, cpu = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
            peak, code = max(r[2] for r in runs), max((r[3] for r in runs), key=abs)
            file, what = OUTPUTS[stage]
            rows.append(
                {
                    "products": n,
                    "stage": stage,
                    "exit": code,
                    "runs": len(runs),
                    "seconds": round(seconds, 1),
                    "CPU s": round(cpu, 1),
                    "peak RSS MiB": round(peak),
                    "output rows": count_rows(project / file) if code == 0 else "-",
                    "rows are": what,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
            write_report(Path(args.out), args, rows)
            if code != 0:
                print((project / f"{stage}.log").read_text(encoding="utf-8")[-2000:], file=sys.stderr)
                break
        if not args.keep:
            shutil.rmtree(project, ignore_errors=True)
    write_report(Path(args.out), args, rows)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
