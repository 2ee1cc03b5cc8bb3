"""sample: the generated raw data follows the schema, is reproducible, varied and carries learnable signal."""

from __future__ import annotations

import random
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from mpembed.data import sample_vocab as V
from mpembed.data.sample import accusative, agree, generate_sample, inflect, plural, support_short_rows
from mpembed.data.schema import TABLES, check_refs, read_table
from mpembed.data.splits import normalize_text

N_PRODUCTS = 200


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    out = tmp_path_factory.mktemp("sample") / "raw"
    counts = generate_sample(out, seed=3, n_products=N_PRODUCTS)
    return out, counts


@pytest.fixture(scope="module")
def tables(raw: tuple[Path, dict[str, int]]) -> dict[str, pd.DataFrame]:
    return {t.name: read_table(raw[0], t) for t in TABLES}


def _holdout_accuracy(texts: list[str], labels: list) -> tuple[float, float]:
    """Bag-of-words logistic regression trained on the first 70%, scored on the rest; and the majority rate."""
    y = np.asarray(labels)
    cut = int(len(texts) * 0.7)
    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    clf = LogisticRegression(max_iter=2000, C=3).fit(vec.fit_transform(texts[:cut]), y[:cut])
    acc = float((clf.predict(vec.transform(texts[cut:])) == y[cut:]).mean())
    majority = float(pd.Series(y[cut:]).value_counts(normalize=True).iloc[0])
    return acc, majority


def _distinct(values: pd.Series) -> float:
    norm = values.map(normalize_text)
    return norm.nunique() / len(norm)


# --- contract ------------------------------------------------------------------------------------


def test_output_validates_against_schema_and_counts_match(raw, tables):
    out, counts = raw
    assert sorted(p.name for p in out.iterdir()) == sorted(t.file for t in TABLES)
    check_refs(tables)
    assert counts == {name: len(frame) for name, frame in tables.items()}
    assert counts["products"] == N_PRODUCTS
    for name, frame in tables.items():
        assert len(frame) > 0, name
        for col in frame.columns:  # optional columns are filled too
            assert not frame[col].astype(str).str.strip().eq("").any(), (name, col)
    assert not list(out.parent.glob(".raw.*")), "temporary folder left behind"


def test_tiny_sample_still_valid(tmp_path):
    counts = generate_sample(tmp_path / "raw", seed=11, n_products=50)
    check_refs({t.name: read_table(tmp_path / "raw", t) for t in TABLES})
    assert counts["products"] == 50 and counts["support_short"] == 50 and counts["users"] >= 20


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate_sample(a, seed=5, n_products=60)
    generate_sample(b, seed=5, n_products=60)
    generate_sample(c, seed=6, n_products=60)
    for t in TABLES:
        assert (a / t.file).read_bytes() == (b / t.file).read_bytes(), t.file
    for name in ("products.csv", "reviews.csv", "search_relevance.csv", "purchases.csv", "support_short.csv"):
        assert (a / name).read_bytes() != (c / name).read_bytes(), name


def test_regenerating_replaces_the_folder(tmp_path):
    out = tmp_path / "raw"
    generate_sample(out, seed=1, n_products=40)
    (out / "stale.csv").write_text("x\n", encoding="utf-8")
    generate_sample(out, seed=1, n_products=40)
    assert not (out / "stale.csv").exists()


# --- products and brands --------------------------------------------------------------------------


def test_brand_groups_are_gold_synonym_sets(tables):
    brands, products = tables["brands"], tables["products"]
    sizes = brands.groupby("brand_id").size()
    assert sizes.min() >= 2 and len(sizes) >= 60
    assert (brands.groupby("brand_id")["is_canonical"].sum() == 1).all()
    cyr = brands["spelling"].str.contains("[А-Яа-яЁё]", regex=True)
    lat = brands["spelling"].str.contains("[A-Za-z]", regex=True)
    both = (cyr.groupby(brands["brand_id"]).any() & lat.groupby(brands["brand_id"]).any()).mean()
    assert both > 0.75
    adidas = brands[brands["spelling"].str.lower() == "adidas"]["brand_id"].iloc[0]
    spellings = set(brands[brands["brand_id"] == adidas]["spelling"])
    assert "Адидас" in spellings and len(spellings) >= 4
    # every card names a spelling of its own group, mostly the canonical one
    pairs = set(zip(brands["brand_id"], brands["spelling"], strict=True))
    assert all((b, s) in pairs for b, s in zip(products["brand_id"], products["brand"], strict=True))
    canonical = set(brands[brands["is_canonical"] == 1]["spelling"])
    assert 0.6 < products["brand"].isin(canonical).mean() < 0.97


def test_catalogue_is_varied_and_variants_differ_only_in_colour_or_size(tables):
    p = tables["products"]
    assert _distinct(p["title"]) == 1.0
    assert p["category"].nunique() >= 30 and p["parentname"].nunique() >= 10
    assert p["isdeleted"].mean() < 0.08
    groups = p.groupby("model_id")
    assert groups.size().max() <= 4 and (groups.size() > 1).sum() >= 20
    for _, g in groups:
        if len(g) > 1:
            assert g["category"].nunique() == 1 and g["brand_id"].nunique() == 1
            assert g[["color", "size"]].drop_duplicates().shape[0] == len(g)
    assert any(re.search("[A-Za-z]", t) for t in p["title"]) and p["query"].str.len().min() > 2


def test_product_questions_are_varied_and_answered_by_the_card(tables):
    q = tables["product_questions"].merge(tables["products"][["nm_id", "model_id"]], on="nm_id")
    assert 0.6 < len(q) / N_PRODUCTS < 1.5
    assert _distinct(q["question"]) > 0.85 and _distinct(q["answer"]) > 0.85
    openings = q["question"].map(lambda s: " ".join(normalize_text(s).split()[:3]))
    assert openings.nunique() > 60
    # the fact a seller states is in the description of the product (or of its variant group)
    desc = tables["products"].groupby("model_id")["description"].apply(" ".join).map(normalize_text)
    stop = {"здравствуйте", "спасибо", "покупок", "приятных", "будем", "рады", "вашему", "заказу", "уважением",
            "команда", "хорошего", "остались", "вопросы", "пишите", "ждем", "отзыв", "благодарим", "интерес",
            "доброго", "времени", "суток", "добрый", "вопрос", "только", "подробности", "описании", "модель",
            "страна", "производства", "производство", "изготовлено", "произведен", "товар", "материал", "состав",
            "этого", "данная", "рекомендуем", "можно", "лучше", "размер", "размера"}
    found = 0
    for row in q.itertuples():
        words = [w for w in normalize_text(row.answer).split() if w not in stop and (len(w) >= 4 or w.isdigit())]
        found += any(w[:5] in desc[row.model_id] for w in words)
    assert found / len(q) > 0.9


def test_template_vocabulary_is_large():
    question_templates = (len(V.FIT_QUESTIONS) + len(V.SHOE_FIT_QUESTIONS) + len(V.DIM_QUESTIONS)
                          + sum(map(len, V.MATERIAL_QUESTIONS.values())) + sum(map(len, V.CARE_QUESTIONS.values()))
                          + len(V.COUNTRY_QUESTIONS_OPEN) + len(V.COUNTRY_QUESTIONS_POLAR) + len(V.WARRANTY_QUESTIONS)
                          + len(V.KIT_QUESTIONS_OPEN) + len(V.KIT_QUESTIONS_POLAR) + len(V.USE_QUESTIONS_POLAR)
                          + len(V.USE_QUESTIONS_OPEN) + len(V.COMPAT_QUESTIONS) + len(V.OS_QUESTIONS)
                          + sum(len(s[1]) for specs in V.SPECS.values() for s in specs))
    assert question_templates >= 150
    assert len(V.TITLE_TEMPLATES) >= 30 and len(V.DESC_INTROS) >= 10
    clauses = sum(len(a.pos) + len(a.neg) for asp in V.ASPECTS.values() for a in asp)
    assert clauses >= 250
    assert len(V.LEAVES) >= 40 and len({leaf.parent for leaf in V.LEAVES}) >= 10
    assert len(V.BRANDS) >= 60


# --- reviews and summaries -------------------------------------------------------------------------


def test_review_wording_follows_rating_but_not_trivially(tables):
    r = tables["reviews"]
    assert set(r["rating"]) == {1, 2, 3, 4, 5}
    assert _distinct(r["text"]) > 0.85
    lengths = r["text"].str.split().str.len()
    assert lengths.min() <= 3 and lengths.max() >= 20
    polar = r[r["rating"] != 3]
    acc, majority = _holdout_accuracy(polar["text"].tolist(), (polar["rating"] >= 4).tolist())
    assert majority + 0.08 < acc < 0.995


def test_summaries_are_labelled_and_balanced(tables):
    s = tables["review_summaries"]
    assert 0.35 < len(s) / N_PRODUCTS < 0.65
    assert 0.35 < (s["label"] == "good").mean() < 0.7
    assert _distinct(s["text"]) > 0.9


# --- help centre -------------------------------------------------------------------------------------


def test_every_support_fact_has_several_paraphrased_questions(tables):
    facts, questions = tables["support_facts"], tables["support_questions"]
    assert 40 <= len(facts) <= 60 and facts["topic"].nunique() >= 8
    per_fact = questions.groupby("fact_id").size().reindex(facts["fact_id"], fill_value=0)
    assert per_fact.min() >= 3 and per_fact.max() <= 8
    assert facts["text"].str.contains(r"\d").mean() > 0.5  # concrete facts
    assert _distinct(questions["question"]) > 0.95


def test_support_short_is_balanced_and_decided_by_context(tables):
    s = tables["support_short"]
    assert len(s) == max(20, N_PRODUCTS)  # one item per product
    assert abs((s["label"] == "yes").mean() - 0.5) < 0.03
    assert _distinct(s["context"] + " " + s["question"]) == 1.0
    # on a larger draw: the question alone does not give the answer away, context and question do
    big = pd.DataFrame(support_short_rows(random.Random(0), 600), columns=["item_id", "context", "question", "label"])
    both = big.groupby(big["question"].map(normalize_text))["label"].nunique()
    assert (both == 2).sum() >= 20
    question_only, _ = _holdout_accuracy(big["question"].tolist(), big["label"].tolist())
    assert question_only < 0.7


# --- users and search --------------------------------------------------------------------------------


def test_purchase_history_leans_by_gender(tables):
    users, purchases, products = tables["users"], tables["purchases"], tables["products"]
    assert 0.4 < (users["gender"] == "female").mean() < 0.7
    per_user = purchases.groupby("user_id").size()
    assert per_user.min() >= 3 and per_user.max() <= 12 and set(per_user.index) == set(users["user_id"])
    bought = purchases.merge(products[["nm_id", "title", "isdeleted"]], on="nm_id").merge(users, on="user_id")
    assert bought["isdeleted"].sum() == 0
    womens = bought["title"].str.contains("женск|для женщин|для девочки", case=False, regex=True)
    mens = bought["title"].str.contains("мужск|для мужчин|для мальчика", case=False, regex=True)
    by_gender = pd.DataFrame({"w": womens, "m": mens, "g": bought["gender"]}).groupby("g").mean()
    assert by_gender.loc["female", "w"] > by_gender.loc["male", "w"]
    assert by_gender.loc["male", "m"] > by_gender.loc["female", "m"]
    assert by_gender.loc["male", "w"] > 0  # noisy: gifts and shared household items


def test_search_queries_are_judged_on_a_graded_scale(tables):
    sr = tables["search_relevance"]
    per_query = sr.groupby("query_id")
    assert per_query.ngroups >= N_PRODUCTS // 4
    assert per_query.size().between(8, 15).all()
    assert (per_query["relevance"].max() == 3).all()
    assert set(sr["relevance"]) == {0, 1, 2, 3}
    queries = sr.drop_duplicates("query_id")["query"]
    assert _distinct(queries) == 1.0
    assert queries.str.contains("[А-Яа-яЁё]", regex=True).all()


# --- grammar helpers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "g", "expected"),
    [("мужской", "p", "мужские"), ("синий", "f", "синяя"), ("летний", "n", "летнее"), ("мягкий", "p", "мягкие"),
     ("большой", "n", "большое"), ("хороший", "f", "хорошая"), ("кожаный", "m", "кожаный"), ("хаки", "f", "хаки"),
     ("с капюшоном", "p", "с капюшоном")],
)
def test_adjectives_agree_with_the_noun(word, g, expected):
    assert agree(word, g) == expected


def test_templates_inflect_for_noun_and_author():
    assert inflect("{N} сел{v} как влит{g:ой|ая|ое|ые}", "p") == "{N} сели как влитые"
    assert inflect("Брал{b:|а} {size}, {a:удобный}", "f", "f") == "Брала {size}, удобная"
    assert inflect("{sg:подходит|подходят}, создан{p}", "p") == "подходят, созданы"
    assert accusative("электрическая зубная щётка", "f") == "электрическую зубную щётку"
    assert accusative("маска для лица", "f") == "маску для лица"
    assert [plural(n, ("день", "дня", "дней")) for n in (1, 3, 5, 11, 21, 22)] == ["день", "дня", "дней", "дней",
                                                                                  "день", "дня"]
