"""Stage `brand_candidates`: propose brand synonym pairs (translit + char n-grams + annoy on embeddings),
pick the decision threshold on dev brands, and write the accepted train pairs for `train`."""

from pathlib import Path

import pandas as pd

from mpembed.candidates.brands import (
    MAX_GROUP,
    choose_threshold,
    close_groups,
    find_brand_candidates,
    pair_metrics,
)
from mpembed.candidates.decisions import DEFAULT_PATHS, apply_brand_decisions, check_known_ids, read_decisions
from mpembed.cli import run_stage
from mpembed.embeddings import Embedder, load_model
from mpembed.io import write_csv, write_json
from mpembed.params import load_params

OUT = Path("data/candidates")


def main() -> None:
    params = load_params()
    p = params.brand_candidates
    brands = pd.read_csv("data/prepared/brands.csv", dtype={"spelling": str}, keep_default_na=False)
    # decisions naming spellings that are no brand at all are an error (before any output is written);
    # decisions on spellings that are simply no longer candidates are counted below
    decisions = check_known_ids(
        read_decisions(DEFAULT_PATHS["brands"], "brands"), "brands", set(brands["spelling"])
    )
    embed = Embedder(load_model("models/base"), batch_size=64)
    frames, gold = [], {}
    for split in ("train", "dev"):
        part = brands[brands["split"] == split]
        spellings = part["spelling"].tolist()
        gold[split] = dict(zip(part["spelling"], part["brand_id"], strict=True))
        cands = find_brand_candidates(
            spellings,
            embed.encode(spellings, "query") if p.use_annoy else None,
            use_translit=p.use_translit,
            use_char_ngrams=p.use_char_ngrams,
            use_annoy=p.use_annoy,
            ngram_k=p.ngram_k,
            ngram_min_sim=p.ngram_min_sim,
            annoy_n_trees=p.annoy_n_trees,
            annoy_search_k=p.annoy_search_k,
            annoy_k=p.annoy_k,
            annoy_min_cos=p.annoy_min_cos,
            seed=params.base.seed,
        )
        # single-linkage groups capped at MAX_GROUP spellings: accepted pairs become whole groups
        frames.append(close_groups(cands, MAX_GROUP).assign(split=split))
    threshold = choose_threshold(frames[1], gold["dev"], target_precision=p.target_precision)
    cands = pd.concat(frames, ignore_index=True)
    cands["accepted"] = (cands["score"] >= threshold).astype(int)
    cands, counts = apply_brand_decisions(cands, decisions, strict=False)
    write_csv(OUT / "brand_candidates.csv", cands)
    train = cands[(cands["split"] == "train") & (cands["accepted"] == 1)]
    write_csv(
        OUT / "brand_pairs.csv",
        train.rename(columns={"a": "anchor", "b": "positive"})[["anchor", "positive"]],
    )
    metrics = {
        "threshold": round(float(threshold), 4),
        "max_group": MAX_GROUP,
        "train": pair_metrics(frames[0], gold["train"], threshold),
        "dev": pair_metrics(frames[1], gold["dev"], threshold),
        "annotations": counts,
    }
    write_json("metrics/brand_candidates.json", metrics)
    print(f"brand candidates: threshold {threshold:.3f}, train {metrics['train']}, dev {metrics['dev']}")


if __name__ == "__main__":
    run_stage(main)
