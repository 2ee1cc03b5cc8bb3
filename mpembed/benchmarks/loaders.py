"""Loaders: turn validated raw tables (with a `split` column) into one benchmark's splits.

Each loader is pure: tables in, `BenchmarkData` out. Splits come from the group-level assignment in
`prepare`, so test items never share a product, brand group, fact or user with training items.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from mpembed.benchmarks.data import BenchmarkData, ClassificationSplit, RetrievalSplit

Tables = dict[str, pd.DataFrame]


def _cap(keys: list[str], limit: int, seed: int) -> list[str]:
    """A seeded subsample of at most `limit` keys, in their original order (bounds evaluation time)."""
    if len(keys) <= limit:
        return keys
    keep = set(np.random.default_rng(seed).choice(len(keys), size=limit, replace=False).tolist())
    return [k for i, k in enumerate(keys) if i in keep]


def _retrieval(
    queries: pd.DataFrame, corpus: dict[str, str], relevant: dict[str, dict[str, int]], limit: int, seed: int
) -> tuple[RetrievalSplit, int]:
    """Keep queries with at least one relevant doc besides themselves; return the split and the drop count."""
    ok = [q for q in queries["qid"] if any(d != q for d in relevant.get(q, {}))]
    dropped = len(queries) - len(ok)
    keep = _cap(ok, limit, seed)
    text = dict(zip(queries["qid"], queries["text"], strict=True))
    return RetrievalSplit({q: text[q] for q in keep}, corpus, {q: relevant[q] for q in keep}), dropped


def _classification(frame: pd.DataFrame, limit: int, seed: int) -> ClassificationSplit:
    rows = frame[["id", "text", "label"]].to_dict("records")
    keep = set(_cap([r["id"] for r in rows], limit, seed))
    return ClassificationSplit([r for r in rows if r["id"] in keep])


def _eval_splits(build: Callable[[str, int], object], lim_q: int, seed: int) -> dict:
    return {"dev": build("dev", max(10, lim_q // 2)), "test": build("test", lim_q)}


# --- question -> answer / description ---------------------------------------------------------


def _qa_frame(t: Tables) -> pd.DataFrame:
    q = t["product_questions"].merge(
        t["products"][["nm_id", "description", "model_id", "split"]], on="nm_id", how="inner"
    )
    q["qid"] = "q" + q["question_id"].astype(str)
    q["text"] = q["question"]
    return q


def _qa_relevant(q: pd.DataFrame, products: pd.DataFrame, answers: bool, descriptions: bool) -> tuple[dict, dict]:
    corpus: dict[str, str] = {}
    relevant: dict[str, dict[str, int]] = {}
    if answers:
        corpus.update({f"a{i}": a for i, a in zip(q["question_id"], q["answer"], strict=True)})
    if descriptions:
        corpus.update({f"d{n}": d for n, d in zip(products["nm_id"], products["description"], strict=True)})
    by_model = products.groupby("model_id")["nm_id"].apply(list).to_dict()
    for row in q.itertuples():
        rel: dict[str, int] = {}
        if descriptions:
            for n in by_model.get(row.model_id, []):
                rel[f"d{n}"] = 1
            rel[f"d{row.nm_id}"] = 2
        if answers:
            rel[f"a{row.question_id}"] = 2
        relevant[row.qid] = rel
    return corpus, relevant


def _qa_loader(answers: bool, descriptions: bool, train_cols: tuple[str, ...]) -> Callable[..., BenchmarkData]:
    def load(t: Tables, lim_q: int, lim_items: int, seed: int) -> BenchmarkData:
        q = _qa_frame(t)
        dropped = {"no_relevant": 0}

        def build(split: str, limit: int) -> RetrievalSplit:
            qs = q[q["split"] == split]
            prods = t["products"][t["products"]["split"] == split]
            corpus, rel = _qa_relevant(qs, prods, answers, descriptions)
            out, n = _retrieval(qs, corpus, rel, limit, seed)
            dropped["no_relevant"] += n
            return out

        tr = q[q["split"] == "train"]
        train = [{"anchor": a, "positive": p} for col in train_cols for a, p in zip(tr["question"], tr[col], strict=True)]
        return BenchmarkData(train=train, dropped=dropped, **_eval_splits(build, lim_q, seed))

    return load


load_qa_all = _qa_loader(answers=True, descriptions=True, train_cols=())
load_qa_answer = _qa_loader(answers=True, descriptions=False, train_cols=("answer",))
load_qa_description = _qa_loader(answers=False, descriptions=True, train_cols=("description",))


# --- support question -> fact ------------------------------------------------------------------


def load_support_facts(t: Tables, lim_q: int, lim_items: int, seed: int) -> BenchmarkData:
    facts, questions = t["support_facts"], t["support_questions"]
    q = questions.merge(facts[["fact_id", "text", "split"]].rename(columns={"text": "fact"}), on="fact_id")
    q["qid"] = "s" + q["question_id"].astype(str)
    q["text"] = q["question"]
    corpus = {f"f{i}": x for i, x in zip(facts["fact_id"], facts["text"], strict=True)}
    dropped = {"no_relevant": 0}

    def build(split: str, limit: int) -> RetrievalSplit:
        qs = q[q["split"] == split]
        rel = {qid: {f"f{f}": 1} for qid, f in zip(qs["qid"], qs["fact_id"], strict=True)}
        out, n = _retrieval(qs, corpus, rel, limit, seed)
        dropped["no_relevant"] += n
        return out

    tr = q[q["split"] == "train"]
    train = [{"anchor": a, "positive": p} for a, p in zip(tr["question"], tr["fact"], strict=True)]
    return BenchmarkData(train=train, dropped=dropped, **_eval_splits(build, lim_q, seed))


# --- search query -> product title, graded ------------------------------------------------------


def load_search(t: Tables, lim_q: int, lim_items: int, seed: int) -> BenchmarkData:
    products = t["products"][["nm_id", "title", "split"]]
    j = t["search_relevance"].merge(products, on="nm_id")
    # A query belongs to the split of its most relevant product; judgments on other splits are cut,
    # so no test query is judged against a training product.
    top = j.sort_values(["query_id", "relevance", "nm_id"], ascending=[True, False, True]).drop_duplicates("query_id")
    j = j.merge(top[["query_id", "split"]].rename(columns={"split": "qsplit"}), on="query_id")
    cut = int((j["split"] != j["qsplit"]).sum())
    j = j[j["split"] == j["qsplit"]]
    j["qid"] = "sq" + j["query_id"].astype(str)
    dropped = {"judgments_cut_across_splits": cut, "no_relevant": 0}

    def build(split: str, limit: int) -> RetrievalSplit:
        js = j[j["split"] == split]
        corpus = {f"p{n}": title for n, title in zip(js["nm_id"], js["title"], strict=True)}
        rel: dict[str, dict[str, int]] = {}
        for row in js[js["relevance"] > 0].itertuples():
            rel.setdefault(row.qid, {})[f"p{row.nm_id}"] = int(row.relevance)
        qs = js.drop_duplicates("qid").rename(columns={"query": "text"})[["qid", "text"]]
        out, n = _retrieval(qs, corpus, rel, limit, seed)
        dropped["no_relevant"] += n
        return out

    return BenchmarkData(train=_search_train(j[j["split"] == "train"]), dropped=dropped,
                         **_eval_splits(build, lim_q, seed))


def _search_train(tr: pd.DataFrame) -> list[dict[str, str]]:
    """(query, relevant title, weakly relevant title) rows: each query's i-th positive (relevance
    >= 2) is paired with its (i mod n)-th negative (<= 1), both in (relevance desc, nm_id) order.

    Vectorised (one sort and one merge) rather than a loop over query groups: the per-group pandas
    calls cost ~1 ms each, which made this the slowest part of `prepare` at 100k+ products.
    """
    order = tr.sort_values(["query_id", "relevance", "nm_id"], ascending=[True, False, True], kind="stable")
    anchors = tr.groupby("query_id", sort=False)["query"].first()
    pos = order[order["relevance"] >= 2].copy()
    neg = order[order["relevance"] <= 1].copy()
    neg["k"] = neg.groupby("query_id").cumcount()
    n_neg = pos["query_id"].map(neg.groupby("query_id").size())
    pos["k"] = pos.groupby("query_id").cumcount() % n_neg.fillna(1).astype(int)
    pairs = pos.merge(neg[["query_id", "k", "title"]].rename(columns={"title": "negative"}),
                      on=["query_id", "k"], how="left")
    pairs["anchor"] = pairs["query_id"].map(anchors)
    pairs = pairs[pairs["negative"].notna()]  # one column set per dataset: a query without negatives adds none
    return [{"anchor": a, "positive": p, "negative": n}
            for a, p, n in zip(pairs["anchor"], pairs["title"], pairs["negative"], strict=True)]


# --- product -> similar products -----------------------------------------------------------------


def load_sim_goods(t: Tables, lim_q: int, lim_items: int, seed: int) -> BenchmarkData:
    """Anchor product vs the split's catalogue: same item in another variant = 2, same leaf = 1.

    Training triplets come from the `triplets` stage (mined on train products), not from here.
    """
    p = t["products"].copy()
    p["qid"] = "p" + p["nm_id"].astype(str)
    p["text"] = p["title"]
    dropped = {"no_relevant": 0}

    def build(split: str, limit: int) -> RetrievalSplit:
        ps = p[p["split"] == split]
        corpus = dict(zip(ps["qid"], ps["title"], strict=True))
        # A product has something to retrieve when its leaf or its model holds another product.
        # Queries are capped before relevance lists are built: a leaf holds ~n/leaves products, so
        # lists for every product would grow as n² (gigabytes at 1M products).
        has_rel = (ps.groupby("category")["qid"].transform("size") > 1) | (
            ps.groupby("model_id")["qid"].transform("size") > 1
        )
        dropped["no_relevant"] += int((~has_rel).sum())
        queries = ps[ps["qid"].isin(set(_cap(ps.loc[has_rel, "qid"].tolist(), limit, seed)))]
        by_leaf = ps.groupby("category")["qid"].apply(list).to_dict()
        by_model = ps.groupby("model_id")["qid"].apply(list).to_dict()
        rel = {}
        for row in queries.itertuples():
            r = dict.fromkeys(by_leaf[row.category], 1) | dict.fromkeys(by_model[row.model_id], 2)
            r.pop(row.qid)
            rel[row.qid] = r
        out, _ = _retrieval(queries[["qid", "text"]], corpus, rel, limit, seed)
        return out

    return BenchmarkData(train=[], dropped=dropped, **_eval_splits(build, lim_q, seed))


# --- brand spelling -> other spellings of the same brand ----------------------------------------


def load_brand_syns(t: Tables, lim_q: int, lim_items: int, seed: int) -> BenchmarkData:
    """Training pairs come from the `brand_candidates` stage (train brand groups only)."""
    b = t["brands"].reset_index(drop=True)
    b["qid"] = "b" + b.index.astype(str)
    b["text"] = b["spelling"]
    dropped = {"no_relevant": 0}

    # Every known spelling is a candidate answer, as in a real brand lookup; only spellings of
    # the split's own brand groups are queries and relevant documents.
    corpus = dict(zip(b["qid"], b["spelling"], strict=True))

    def build(split: str, limit: int) -> RetrievalSplit:
        bs = b[b["split"] == split]
        groups = bs.groupby("brand_id")["qid"].apply(list).to_dict()
        rel = {q: {d: 1 for d in groups[g] if d != q} for q, g in zip(bs["qid"], bs["brand_id"], strict=True)}
        out, n = _retrieval(bs[["qid", "text"]], corpus, rel, limit, seed)
        dropped["no_relevant"] += n
        return out

    # A brand with one spelling has nothing to retrieve: valid input, its queries are dropped and counted.
    single = int(b.groupby("brand_id").size().eq(1).sum())
    return BenchmarkData(train=[], dropped=dropped, counts={"single_spelling_brands": single},
                         **_eval_splits(build, lim_q, seed))


# --- classification ------------------------------------------------------------------------------


def _cls_loader(frame_fn: Callable[[Tables], pd.DataFrame]) -> Callable[..., BenchmarkData]:
    def load(t: Tables, lim_q: int, lim_items: int, seed: int) -> BenchmarkData:
        f = frame_fn(t)
        f["label"] = f["label"].astype(str)
        train = f[f["split"] == "train"][["id", "text", "label"]].to_dict("records")
        dev = _classification(f[f["split"] == "dev"], max(10, lim_items // 2), seed)
        test = _classification(f[f["split"] == "test"], lim_items, seed)
        # A label with one example (e.g. a category with a single product) is valid but cannot be
        # learnt from and tested on at once; counted so a report can say so.
        single = int(f["label"].value_counts().eq(1).sum())
        return BenchmarkData(train=train, dev=dev, test=test, counts={"single_item_labels": single})

    return load


def _reviews(t: Tables) -> pd.DataFrame:
    r = t["reviews"].merge(t["products"][["nm_id", "split"]], on="nm_id")
    return r.assign(id="r" + r["review_id"].astype(str), label=r["rating"].astype(str))


def _polarity(t: Tables) -> pd.DataFrame:
    r = _reviews(t)
    r = r[r["rating"] != 3].copy()
    r["label"] = np.where(r["rating"] >= 4, "positive", "negative")
    return r


def _summaries(t: Tables) -> pd.DataFrame:
    s = t["review_summaries"].merge(t["products"][["nm_id", "split"]], on="nm_id")
    return s.assign(id="rs" + s["summary_id"].astype(str))


def _categories(t: Tables) -> pd.DataFrame:
    p = t["products"]
    return p.assign(id="c" + p["nm_id"].astype(str), text=p["title"], label=p["category"])


def _gender(t: Tables) -> pd.DataFrame:
    bought = t["purchases"].merge(t["products"][["nm_id", "title"]], on="nm_id")
    history = bought.groupby("user_id")["title"].apply(lambda s: "; ".join(s)).rename("text").reset_index()
    u = t["users"].merge(history, on="user_id")
    return u.assign(id="u" + u["user_id"].astype(str), label=u["gender"])


def _support_short(t: Tables) -> pd.DataFrame:
    s = t["support_short"]
    return s.assign(id="ss" + s["item_id"].astype(str), text=s["context"] + " Вопрос: " + s["question"])


load_reviews = _cls_loader(_reviews)
load_polarity = _cls_loader(_polarity)
load_summaries = _cls_loader(_summaries)
load_categories = _cls_loader(_categories)
load_gender = _cls_loader(_gender)
load_support_short = _cls_loader(_support_short)
