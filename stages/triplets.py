"""Stage `triplets`: mine (anchor, similar, different) product triplets among training products."""

from pathlib import Path

import pandas as pd

from mpembed.candidates.char_embed import char_ngram_embeddings
from mpembed.candidates.decisions import (
    DEFAULT_PATHS,
    apply_triplet_decisions,
    check_known_ids,
    id_strings,
    read_decisions,
)
from mpembed.candidates.triplets import mine_triplets
from mpembed.cli import run_stage
from mpembed.embeddings import Embedder, load_model
from mpembed.io import write_csv, write_json
from mpembed.params import load_params


def main() -> None:
    params = load_params()
    p = params.triplets
    products = pd.read_csv("data/prepared/products.csv", keep_default_na=False)
    # decisions naming products that do not exist are an error (before any output is written);
    # decisions on products that are simply no longer candidates are counted below
    decisions = check_known_ids(
        read_decisions(DEFAULT_PATHS["triplets"], "triplets"), "triplets", set(id_strings(products["nm_id"]))
    )
    train = products[products["split"] == "train"].reset_index(drop=True)
    # `triplets.embedder`: "model" (models/base, e5 query prompt) or "char_ngrams" (hashed char n-gram
    # TF-IDF + SVD, minutes instead of hours at 1M titles on a CPU; see mpembed/candidates/char_embed.py)
    embedder = p.embedder
    if embedder == "char_ngrams":
        vectors = char_ngram_embeddings(train["title"].tolist(), seed=params.base.seed)
    else:
        vectors = Embedder(load_model("models/base"), batch_size=64).encode(train["title"].tolist(), "query")
    trip = mine_triplets(
        train,
        vectors,
        n_per_anchor=p.n_per_anchor,
        k=p.k,
        annoy_n_trees=p.annoy_n_trees,
        seed=params.base.seed,
        max_anchors=p.max_anchors,
        neg_pool=p.neg_pool,
    )
    title = dict(zip(train["nm_id"], train["title"], strict=True))
    for col in ("anchor", "positive", "negative"):
        trip[col] = trip[f"{col}_id"].map(title)
    mined = len(trip)
    # Human decisions win over scores; decisions on items that are no longer candidates (after a
    # params change) are counted, not fatal, so experiments keep running.
    trip, counts = apply_triplet_decisions(trip, decisions, strict=False)
    write_csv(Path("data/candidates/triplet_candidates.csv"), trip)
    metrics = {
        "embedder": embedder,
        "anchors": int(trip["anchor_id"].nunique()),
        "mined": mined,
        "triplets": len(trip),
        "mean_confidence": round(float(trip["confidence"].mean()), 4) if len(trip) else 0.0,
        "annotations": counts,
    }
    write_json("metrics/triplets.json", metrics)
    print(f"triplets: {metrics}")


if __name__ == "__main__":
    run_stage(main)
