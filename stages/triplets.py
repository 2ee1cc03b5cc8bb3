"""Stage `triplets`: mine (anchor, similar, different) product triplets among training products."""

from pathlib import Path

import pandas as pd

from mpembed.candidates.decisions import DEFAULT_PATHS, apply_triplet_decisions, read_decisions
from mpembed.candidates.triplets import mine_triplets
from mpembed.cli import run_stage
from mpembed.embeddings import Embedder, load_model
from mpembed.io import write_csv, write_json
from mpembed.params import load_params


def main() -> None:
    params = load_params()
    p = params.triplets
    products = pd.read_csv("data/prepared/products.csv", keep_default_na=False)
    train = products[products["split"] == "train"].reset_index(drop=True)
    embed = Embedder(load_model("models/base"), batch_size=64)
    vectors = embed.encode(train["title"].tolist(), "query")
    trip = mine_triplets(train, vectors, n_per_anchor=p.n_per_anchor, k=p.k, annoy_n_trees=p.annoy_n_trees,
                         seed=params.base.seed, max_anchors=p.max_anchors)
    title = dict(zip(train["nm_id"], train["title"], strict=True))
    for col in ("anchor", "positive", "negative"):
        trip[col] = trip[f"{col}_id"].map(title)
    mined = len(trip)
    # Human decisions win over scores; decisions on items that are no longer candidates (after a
    # params change) are counted, not fatal, so experiments keep running.
    trip, counts = apply_triplet_decisions(trip, read_decisions(DEFAULT_PATHS["triplets"], "triplets"), strict=False)
    write_csv(Path("data/candidates/triplet_candidates.csv"), trip)
    metrics = {"anchors": int(trip["anchor_id"].nunique()), "mined": mined, "triplets": len(trip),
               "mean_confidence": round(float(trip["confidence"].mean()), 4) if len(trip) else 0.0,
               "annotations": counts}
    write_json("metrics/triplets.json", metrics)
    print(f"triplets: {metrics}")


if __name__ == "__main__":
    run_stage(main)
