from mpembed.benchmarks.registry import BENCHMARKS_BY_NAME
from mpembed.report import markdown_report, metrics_json

BENCHES = (BENCHMARKS_BY_NAME["WBQASupportFacts"], BENCHMARKS_BY_NAME["WBGenderClassification"])


def _results(ndcg: float, acc: float, full: float) -> dict:
    return {
        "WBQASupportFacts": {"metrics": {"ndcg@1": ndcg, "ndcg@10": ndcg}},
        "WBGenderClassification": {"metrics": {"accuracy": acc, "f1": acc},
                                   "full_fit": {"accuracy": full, "f1": full - 0.01}},
    }


def test_report_table_and_full_fit_section():
    models = {"base": _results(0.5, 0.6, 0.8), "finetuned": _results(0.7, 0.75, 0.85),
              "baseline": _results(0.3, 0.55, 0.9)}
    text = markdown_report(models, BENCHES, ["note"])
    assert "| WBGenderClassification | accuracy | 0.600 | 0.750 | 0.550 | +0.150 | finetuned |" in text
    section = text.split("## Classification with more training examples", 1)[1]
    # the full fit is a separate table: the baseline leads there, and retrieval is not in it
    assert "| WBGenderClassification | accuracy | 0.800 | 0.850 | 0.900 | baseline |" in section
    assert "WBQASupportFacts" not in section.split("## Error analysis", 1)[0]
    # the main metric (and so `dvc exp show`) stays the few-shot protocol
    assert metrics_json(models, BENCHES)["finetuned"]["WBGenderClassification"]["accuracy"] == 0.75


def test_report_without_full_fit_has_no_section():
    models = {"base": _results(0.5, 0.6, 0.8)}
    del models["base"]["WBGenderClassification"]["full_fit"]
    assert "more training examples" not in markdown_report(models, BENCHES, [])
