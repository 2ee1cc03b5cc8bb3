"""Brand candidate sources, pair metrics / threshold choice, ANN recall, and triplet mining."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mpembed.candidates.ann import (
    annoy_neighbours,
    build_annoy,
    exact_neighbours,
    l2_normalise,
    recall_at_k,
)
from mpembed.candidates.brands import (
    MAX_BUCKET,
    abbreviation_of,
    choose_threshold,
    close_groups,
    find_brand_candidates,
    initials,
    pair_metrics,
)
from mpembed.candidates.translit import skeleton_key, translit_key
from mpembed.candidates.triplets import confidence, mine_triplets

NAMED_PAIRS = [
    ("Адидас", "adidas"),
    ("Самсунг", "Samsung"),
    ("Сяоми", "Xiaomi"),
    ("Ксиаоми", "Xiaomi"),
    ("Филипс", "Philips"),
    ("Бош", "Bosch"),
    ("Лореаль", "L'Oreal"),
    ("Найк", "Nike"),
    ("Нивея", "Nivea"),
    ("Тефаль", "Tefal"),
    ("Редмонд", "Redmond"),
    ("Зара", "Zara"),
    ("Лего", "Lego"),
    ("Лакоста", "Lacoste"),
    ("Конверсы", "Converse"),
    ("Концепт Клаб", "Concept Club"),
    ("Санлайт", "Sunlight"),
    ("Люксвизаж", "Luxvisage"),
]
DIFFERENT = [("Adidas", "Asics"), ("Samsung", "Sony"), ("Zara", "Lego"), ("Nike", "Nivea"), ("Nike", "Nokia")]
OTHER_BRANDS = [
    "Puma",
    "Reebok",
    "Huawei",
    "Lenovo",
    "Gucci",
    "Garnier",
    "Colgate",
    "Braun",
    "Sony",
    "Asics",
    "Nokia",
]


def _pairs(frame: pd.DataFrame) -> set[frozenset[str]]:
    return {frozenset(p) for p in zip(frame["a"], frame["b"], strict=True)}


def _names() -> list[str]:
    names = {n for pair in NAMED_PAIRS for n in pair} | {n for pair in DIFFERENT for n in pair}
    return sorted(names | set(OTHER_BRANDS))


@pytest.mark.parametrize(("cyrillic", "latin"), NAMED_PAIRS)
def test_translit_or_skeleton_keys_meet(cyrillic: str, latin: str) -> None:
    assert translit_key(cyrillic) == translit_key(latin) or skeleton_key(cyrillic) == skeleton_key(latin)


def test_translit_key_normalises_case_space_punctuation_and_yo() -> None:
    assert translit_key("L'Oréal Paris") == translit_key("Лореаль-Парис") == "lorealparis"
    assert translit_key("  ADI-DAS ") == translit_key("adidas") == "adidas"
    assert translit_key("Ёлка") == translit_key("елка")


def test_translit_source_alone_finds_named_pairs_and_keeps_brands_apart() -> None:
    cands = find_brand_candidates(_names(), None, use_translit=True, use_char_ngrams=False, use_annoy=False)
    found = _pairs(cands)
    for pair in NAMED_PAIRS:
        assert frozenset(pair) in found, pair
    for pair in DIFFERENT:
        assert frozenset(pair) not in found, pair
    assert set(cands["sources"]) == {"translit"}
    assert cands["sim_ngram"].isna().all() and cands["sim_embed"].isna().all()
    # an equal translit key outranks a skeleton-only match
    score = {frozenset((a, b)): s for a, b, s in zip(cands["a"], cands["b"], cands["score"], strict=True)}
    assert score[frozenset(("Адидас", "adidas"))] > score[frozenset(("Найк", "Nike"))]


def test_translit_source_alone_finds_adidas_and_samsung() -> None:
    names = ["Адидас", "adidas", "Самсунг", "Samsung", "Sony", "Asics"]
    cands = find_brand_candidates(names, None, use_translit=True, use_char_ngrams=False, use_annoy=False)
    found = _pairs(cands)
    assert frozenset(("Адидас", "adidas")) in found
    assert frozenset(("Самсунг", "Samsung")) in found
    assert found == {frozenset(("Адидас", "adidas")), frozenset(("Самсунг", "Samsung"))}
    assert (cands["sim_translit"] == 1.0).all()  # equal translit keys, not just skeletons


def test_abbreviations_meet_initials() -> None:
    assert initials("The North Face") == initials("TheNorthFace") == abbreviation_of("TNF") == "tnf"
    assert initials("Head & Shoulders") == abbreviation_of("H&S") == "hs"
    assert initials("Calvin Klein") == abbreviation_of("CK") == "ck"
    assert abbreviation_of("Nike") == "" and initials("Nike") == "" and initials("Норт Фейс") == ""
    names = ["TNF", "The North Face", "H&S", "Head & Shoulders", "CK", "Calvin Klein", "Nike", "Hugo"]
    cands = find_brand_candidates(names, None, use_translit=True, use_char_ngrams=False, use_annoy=False)
    assert _pairs(cands) == {
        frozenset(p) for p in (("TNF", "The North Face"), ("H&S", "Head & Shoulders"), ("CK", "Calvin Klein"))
    }
    assert np.allclose(cands["sim_translit"], 0.6)


def test_ngram_retrieval_sees_past_many_spellings_of_one_key() -> None:
    # more equal-key spellings than ngram_k: per-name top-k lists would hold only these copies
    copies = ["Samsung", "SAMSUNG", "samsung", "Самсунг", "самсунг", "SamSung", "SAMsung", "samSUNG"]
    names = [*copies, "Samsng", "Sony", "Asus"]
    cands = find_brand_candidates(
        names, None, use_translit=False, use_char_ngrams=True, use_annoy=False, ngram_k=3, ngram_min_sim=0.3
    )
    found = _pairs(cands)
    assert all(frozenset(("Samsng", c)) in found for c in copies)
    assert frozenset(("Samsung", "Самсунг")) in found  # equal keys are n-gram cosine 1
    assert frozenset(("Samsng", "Sony")) not in found


def test_ngram_source_finds_typos() -> None:
    names = [*_names(), "addidas", "samsng"]
    cands = find_brand_candidates(names, None, use_translit=False, use_char_ngrams=True, use_annoy=False)
    found = _pairs(cands)
    assert frozenset(("addidas", "adidas")) in found
    assert frozenset(("samsng", "Samsung")) in found
    assert frozenset(("Adidas", "Asics")) not in found
    assert (cands["sim_ngram"] >= 0.5).all() and set(cands["sources"]) == {"ngram"}


def test_output_shape_ordering_and_combined_score() -> None:
    rng = np.random.default_rng(0)
    names = [*_names(), "addidas", "samsng"]
    cands = find_brand_candidates(
        names,
        rng.standard_normal((len(names), 8)),
        use_translit=True,
        use_char_ngrams=True,
        use_annoy=True,
        annoy_min_cos=0.0,
    )
    assert list(cands.columns) == ["a", "b", "score", "sources", "sim_translit", "sim_ngram", "sim_embed"]
    assert (cands["a"] < cands["b"]).all()
    assert not cands.duplicated(["a", "b"]).any()
    assert cands["score"].between(0, 1).all()
    assert cands["score"].is_monotonic_decreasing
    assert cands["sources"].str.contains(r"\+").any()
    # the documented noisy-OR: evidence rescaled from each source's floor, weighted 1.0 / 0.9 / 0.9
    e_ngram = ((cands["sim_ngram"] - 0.5) / 0.5).clip(0, 1)
    e_embed = cands["sim_embed"].clip(0, 1)  # floor annoy_min_cos = 0 here
    want = 1 - (1 - cands["sim_translit"]) * (1 - 0.9 * e_ngram) * (1 - 0.9 * e_embed)
    assert np.allclose(cands["score"], want, atol=1e-5)


def test_annoy_source_finds_planted_near_vectors() -> None:
    rng = np.random.default_rng(1)
    base = rng.standard_normal((400, 16))
    planted = base[:5] + 0.01 * rng.standard_normal((5, 16))
    names = [f"brand{i:03d}" for i in range(400)] + [f"twin{i}" for i in range(5)]
    cands = find_brand_candidates(
        names, np.vstack([base, planted]), use_translit=False, use_char_ngrams=False, use_annoy=True, seed=3
    )
    found = _pairs(cands)
    for i in range(5):
        assert frozenset((f"brand{i:03d}", f"twin{i}")) in found
    assert (cands["sim_embed"] >= 0.8).all() and set(cands["sources"]) == {"embed"}
    with pytest.raises(ValueError, match="embeddings"):
        find_brand_candidates(names, None, use_translit=False, use_char_ngrams=False, use_annoy=True)


def test_exact_neighbours_match_full_sort() -> None:
    vectors = l2_normalise(np.random.default_rng(2).standard_normal((300, 8)))
    ids, cos = exact_neighbours(vectors, 5, chunk=64)
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    want = np.argsort(-sims, axis=1)[:, :5]
    assert np.array_equal(ids, want)
    assert np.allclose(cos, np.take_along_axis(sims, want, axis=1), atol=1e-5)


def test_annoy_recall_vs_exact_is_high() -> None:
    vectors = l2_normalise(np.random.default_rng(4).standard_normal((3000, 32)))
    exact, _ = exact_neighbours(vectors, 10)
    approx, cos = annoy_neighbours(build_annoy(vectors, 20, seed=0), np.arange(3000), 10, search_k=2000)
    assert recall_at_k(approx, exact) >= 0.95
    assert np.all(np.diff(cos, axis=1) <= 1e-6)  # best first


def test_annoy_is_deterministic_for_a_seed() -> None:
    vectors = l2_normalise(np.random.default_rng(5).standard_normal((2000, 16)))
    runs = [annoy_neighbours(build_annoy(vectors, 10, seed=7), np.arange(2000), 5)[0] for _ in range(2)]
    assert np.array_equal(*runs)


GOLD = {"A1": 1, "A2": 1, "A3": 1, "B1": 2, "B2": 2, "C": 3}
HAND = pd.DataFrame(
    {
        "a": ["C", "A1", "A1", "A1", "B1"],
        "b": ["X", "A2", "B1", "A3", "B2"],
        "score": [0.95, 0.9, 0.8, 0.7, 0.4],
    }
)


def test_pair_metrics_hand_computed() -> None:
    # gold pairs: A1-A2, A1-A3, A2-A3, B1-B2 = 4; C-X is unlabelled (X unknown)
    m = pair_metrics(HAND, GOLD, threshold=0.5)
    assert m["n_gold_pairs"] == 4
    assert m["n_candidates"] == 4 and m["n_labelled"] == 3
    assert (m["tp"], m["fp"]) == (2, 1)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 4)
    assert m["f1"] == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    all_in = pair_metrics(HAND, GOLD, threshold=0.0)
    assert (all_in["tp"], all_in["precision"], all_in["recall"]) == (3, 0.75, 0.75)


def test_choose_threshold_takes_lowest_cut_meeting_target_precision() -> None:
    # labelled cuts, best first: 0.9 (P=1), 0.8 (1/2), 0.7 (2/3), 0.4 (3/4)
    assert choose_threshold(HAND, GOLD, target_precision=0.9) == 0.9
    assert choose_threshold(HAND, GOLD, target_precision=0.7) == 0.4
    assert choose_threshold(HAND, GOLD, target_precision=0.6) == 0.4
    no_pos = HAND.assign(b=["X", "B2", "B2", "B2", "A2"])
    assert choose_threshold(no_pos, GOLD, target_precision=0.9) == 0.9  # none meets: best precision
    assert choose_threshold(HAND.iloc[:1], GOLD) == 1.0  # nothing labelled


def _angle(degrees: float) -> list[float]:
    return [np.cos(np.radians(degrees)), np.sin(np.radians(degrees))]


# nm_id, leaf, parent, model, angle of the 2-D unit embedding
CATALOGUE = [
    (1, "Кроссовки", "Обувь", 10, 0),
    (2, "Кроссовки", "Обувь", 10, 10),  # same model as 1: a colour variant
    (3, "Кроссовки", "Обувь", 11, 25),
    (4, "Ботинки", "Обувь", 20, 45),
    (5, "Ботинки", "Обувь", 20, 100),  # boots are all one model: positive falls back to it
    (6, "Телефоны", "Электроника", 30, 180),
    (7, "Телефоны", "Электроника", 31, 190),
    (8, "Наушники", "Электроника", 40, 3),  # next to sneaker 1 but another parent: never its negative
    (9, "Наушники", "Электроника", 41, 215),
]
EXPECTED = {1: (3, 4), 2: (3, 4), 3: (2, 4), 4: (5, 3), 5: (4, 3), 6: (7, 9), 7: (6, 9), 8: (9, 7), 9: (8, 7)}


def _catalogue() -> tuple[pd.DataFrame, np.ndarray]:
    products = pd.DataFrame(
        [(nm, leaf, parent, model, f"товар {nm}") for nm, leaf, parent, model, _ in CATALOGUE],
        columns=["nm_id", "category", "parentname", "model_id", "title"],
    )
    return products, np.array([_angle(a) for *_, a in CATALOGUE])


@pytest.mark.parametrize("exact_max", [10_000, 0])  # exact search, annoy everywhere
def test_triplets_hand_made_catalogue(exact_max: int) -> None:
    products, vectors = _catalogue()
    trip = mine_triplets(products, vectors, exact_max=exact_max)
    assert list(trip.columns) == [
        "anchor_id",
        "positive_id",
        "negative_id",
        "pos_sim",
        "neg_sim",
        "confidence",
    ]
    got = {
        a: (p, n) for a, p, n in zip(trip["anchor_id"], trip["positive_id"], trip["negative_id"], strict=True)
    }
    assert got == EXPECTED
    info = products.set_index("nm_id")
    for col in ("positive_id", "negative_id"):
        assert (
            info.loc[trip[col], "parentname"].to_numpy()
            == info.loc[trip["anchor_id"], "parentname"].to_numpy()
        ).all()
    same_leaf = (
        info.loc[trip["positive_id"], "category"].to_numpy()
        == info.loc[trip["anchor_id"], "category"].to_numpy()
    )
    other_leaf = (
        info.loc[trip["negative_id"], "category"].to_numpy()
        != info.loc[trip["anchor_id"], "category"].to_numpy()
    )
    assert same_leaf.all() and other_leaf.all()
    row = trip.set_index("anchor_id").loc[1]
    assert row["pos_sim"] == pytest.approx(np.cos(np.radians(25)), abs=1e-5)
    assert row["neg_sim"] == pytest.approx(np.cos(np.radians(45)), abs=1e-5)


def test_triplet_confidence_is_monotone_in_margin() -> None:
    products, vectors = _catalogue()
    trip = mine_triplets(products, vectors)
    ordered = trip.assign(margin=trip["pos_sim"] - trip["neg_sim"]).sort_values("margin")
    assert ordered["confidence"].is_monotonic_increasing
    assert trip["confidence"].between(0, 1).all()
    assert confidence(np.array([0.7]), np.array([0.7]), 0.05)[0] == pytest.approx(0.5)
    margins = np.linspace(-1, 1, 41)
    assert np.all(np.diff(confidence(margins, np.zeros_like(margins), 0.05)) > 0)


def test_triplets_several_per_anchor_are_distinct_and_deterministic() -> None:
    rng = np.random.default_rng(0)
    n = 240
    leaf = rng.integers(0, 6, n)
    centers = rng.standard_normal((6, 3))
    products = pd.DataFrame(
        {
            "nm_id": np.arange(n) + 100,
            "category": [f"leaf{x}" for x in leaf],
            "parentname": [f"parent{x // 3}" for x in leaf],
            "model_id": rng.integers(0, 60, n).astype(object),
            "title": "t",
        }
    )
    products.loc[::7, "model_id"] = ""  # unknown model: its own model
    vectors = l2_normalise(centers[leaf] + 0.3 * rng.standard_normal((n, 3)))
    runs = [mine_triplets(products, vectors, n_per_anchor=3, k=10, seed=1) for _ in range(2)]
    pd.testing.assert_frame_equal(runs[0], runs[1])
    trip = runs[0]
    assert not trip.duplicated(["anchor_id", "positive_id", "negative_id"]).any()
    assert (trip["anchor_id"] != trip["positive_id"]).all()
    assert trip.groupby("anchor_id").size().max() == 3
    annoy_runs = [
        mine_triplets(products, vectors, n_per_anchor=3, k=10, seed=1, exact_max=0) for _ in range(2)
    ]
    pd.testing.assert_frame_equal(annoy_runs[0], annoy_runs[1])
    sampled = mine_triplets(products, vectors, max_anchors=50, seed=1)
    assert sampled["anchor_id"].nunique() <= 50
    pd.testing.assert_frame_equal(sampled, mine_triplets(products, vectors, max_anchors=50, seed=1))


def test_triplet_negatives_come_from_a_bounded_seeded_pool_per_leaf() -> None:
    rng = np.random.default_rng(3)
    n = 400
    leaf = rng.integers(0, 4, n)  # one parent, four leaves of ~100 products
    products = pd.DataFrame(
        {
            "nm_id": np.arange(n),
            "category": [f"leaf{x}" for x in leaf],
            "parentname": "parent",
            "model_id": np.arange(n).astype(object),
            "title": "t",
        }
    )
    vectors = l2_normalise(rng.standard_normal((n, 8)))
    whole = mine_triplets(products, vectors)  # pools of 1000 hold every leaf: exhaustive search
    assert whole.equals(mine_triplets(products, vectors, neg_pool=n))
    pooled = mine_triplets(products, vectors, neg_pool=5, seed=7)
    pd.testing.assert_frame_equal(pooled, mine_triplets(products, vectors, neg_pool=5, seed=7))
    assert (pooled["positive_id"].to_numpy() == whole["positive_id"].to_numpy()).all()  # positives unchanged
    # every negative is one of the 5 pooled products of its leaf, and is the hardest of the pools searched
    negatives_per_leaf = pooled.assign(leaf=leaf[pooled["negative_id"]]).groupby("leaf")["negative_id"].nunique()
    assert negatives_per_leaf.max() <= 5
    assert (pooled["neg_sim"] <= whole["neg_sim"] + 1e-6).all()
    assert (pooled["neg_sim"] < whole["neg_sim"] - 1e-6).any()
    with pytest.raises(ValueError, match="neg_pool"):
        mine_triplets(products, vectors, neg_pool=0)


def test_triplets_reject_misaligned_input() -> None:
    products, vectors = _catalogue()
    with pytest.raises(ValueError, match="embeddings"):
        mine_triplets(products, vectors[:-1])
    with pytest.raises(ValueError, match="lack columns"):
        mine_triplets(products.drop(columns="model_id"), vectors)


def test_brand_candidates_degenerate_input() -> None:
    empty = find_brand_candidates(["Nike"], None, use_translit=True, use_char_ngrams=True, use_annoy=False)
    assert empty.empty and list(empty.columns)[:4] == ["a", "b", "score", "sources"]
    none = find_brand_candidates(
        ["!!!", "???"], None, use_translit=True, use_char_ngrams=True, use_annoy=False
    )
    assert none.empty
    with pytest.raises(ValueError, match="embeddings"):
        find_brand_candidates(
            ["a1", "b2"], np.ones((3, 4)), use_translit=False, use_char_ngrams=False, use_annoy=True
        )


def test_triplets_empty_and_single_leaf_catalogues() -> None:
    products, vectors = _catalogue()
    assert mine_triplets(products.iloc[:0], vectors[:0]).empty
    shoes = products["parentname"] == "Обувь"
    one_leaf = products[shoes].assign(category="Обувь")  # no other leaf: no negative
    assert mine_triplets(one_leaf, vectors[shoes.to_numpy()]).empty


def _frame(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["a", "b", "score"])
    return frame.assign(sources="ngram", sim_translit=np.nan, sim_ngram=frame["score"], sim_embed=np.nan)


def test_close_groups_single_linkage_gives_bottleneck_scores() -> None:
    cands = _frame(
        [("Nike", "Найк", 0.9), ("Найк", "Найки", 0.7), ("Nokia", "Нокиа", 0.95), ("Nike", "Nokia", 0.3)]
    )
    closed = close_groups(cands)
    score = {frozenset((a, b)): s for a, b, s in zip(closed["a"], closed["b"], closed["score"], strict=True)}
    assert score[frozenset(("Nike", "Найки"))] == pytest.approx(0.7)  # via Найк: min(0.9, 0.7)
    assert score[frozenset(("Nike", "Найк"))] == pytest.approx(0.9)
    assert score[frozenset(("Найки", "Нокиа"))] == pytest.approx(0.3)  # the groups join at 0.3
    assert len(closed) == 10 and (closed["a"] < closed["b"]).all() and closed["score"].is_monotonic_decreasing
    assert set(closed.loc[closed["sim_ngram"].isna(), "sources"]) == {"closure"}
    # accepting >= t accepts whole groups: the accepted pairs are transitive
    accepted = closed[closed["score"] >= 0.5]
    assert _pairs(accepted) == {
        frozenset(p) for p in (("Nike", "Найк"), ("Nike", "Найки"), ("Найк", "Найки"), ("Nokia", "Нокиа"))
    }


def test_close_groups_cap_and_average_linkage() -> None:
    chain = _frame([(f"n{i:02d}", f"n{i + 1:02d}", 0.9 - i * 0.01) for i in range(30)])
    capped = close_groups(chain, max_group=5)
    assert capped.groupby("a").size().max() <= 4
    assert len(close_groups(chain, max_group=100)) == 31 * 30 // 2
    cands = _frame([("a1", "a2", 0.9), ("b1", "b2", 0.9), ("a1", "b1", 0.8)])
    single = close_groups(cands)
    average = close_groups(cands, linkage="average")
    s = {frozenset((a, b)): x for a, b, x in zip(single["a"], single["b"], single["score"], strict=True)}
    m = {frozenset((a, b)): x for a, b, x in zip(average["a"], average["b"], average["score"], strict=True)}
    assert s[frozenset(("a2", "b2"))] == pytest.approx(0.8)
    assert m[frozenset(("a2", "b2"))] == pytest.approx(0.2)  # one pair of four across the groups
    assert m[frozenset(("a1", "b1"))] == pytest.approx(0.8)  # a direct pair keeps its own, higher score
    assert close_groups(cands.iloc[:0]).empty
    with pytest.raises(ValueError, match="linkage"):
        close_groups(cands, linkage="complete")
    assert MAX_BUCKET >= 2
