"""Candidate mining for the `brand_candidates` and `triplets` stages.

`translit` turns a brand spelling (Latin or Cyrillic) into comparison keys, `brands` proposes
synonym pairs from three switchable sources (translit keys, char n-grams, embedding ANN) and
picks a decision threshold on a dev set, `triplets` mines (anchor, positive, hard negative)
products from the category tree and the embedding space; `ann` holds the annoy / exact
nearest-neighbour helpers both share (and `bench/ann_vs_exact.py` measures).
"""
