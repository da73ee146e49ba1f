"""The run report and the data behind `dvc plots`."""

import csv
import json

from scoder.evaluation.report import evaluation_rows, histogram_rows, render_html, round_values, write_plot_data

EVALUATE = {
    "meta": {"evalplus_version": "0.3.1", "decoding": {"mode": "greedy", "n": 1, "max_tokens": 256}, "cpu_count": 2},
    "humaneval": {"source": "override", "file": "HumanEvalPlus-v0.1.10.jsonl.gz", "tasks": 5, "plus_tests": True,
                  "base": {"base_pass@1": 0.2, "plus_pass@1": 0.0, "canonical_nll": 0.9},
                  "scoder": {"base_pass@1": 0.4, "plus_pass@1": 0.2, "canonical_nll": 0.8}},
    "mbpp": {"skipped": "no MBPP_OVERRIDE_PATH and evaluate.download is false"},
}


def test_histograms_share_their_bins_across_rounds():
    rows = histogram_rows({"1": [0.0, 1.0, 1.0], "2": [2.0]}, bins=4)
    assert [r["value"] for r in rows["1"]] == [r["value"] for r in rows["2"]]
    assert [r["count"] for r in rows["1"]] == [1, 0, 2, 0] and [r["count"] for r in rows["2"]] == [0, 0, 0, 1]
    assert histogram_rows({}) == {}


def test_report_page_and_plot_files(tmp_path):
    rounds = tmp_path / "rounds"
    for key, scores in (("1", [1.0, 2.0]), ("10", [3.0]), ("2", [1.5])):
        (rounds / key).mkdir(parents=True)
        (rounds / key / "scored.jsonl").write_text("".join(json.dumps({"score": s}) + "\n" for s in scores) + '{"score": null}\n')
    scores = round_values(rounds, "scored.jsonl", "score")
    assert list(scores) == ["1", "2", "10"] and scores["1"] == [1.0, 2.0]  # numeric order, unscored left out
    evaluation = evaluation_rows(EVALUATE)
    assert [r["label"] for r in evaluation] == ["humaneval/base", "humaneval/scoder"]  # the skipped dataset has no row
    written = write_plot_data(tmp_path / "plots", scores, {}, evaluation)
    assert sorted(p.name for p in written) == ["evaluate.csv", "round_1.csv", "round_10.csv", "round_2.csv"]
    with open(tmp_path / "plots" / "evaluate.csv") as handle:
        assert next(csv.DictReader(handle))["canonical_nll"] == "0.9"
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    (metrics / "synthesize.json").write_text(json.dumps({"dataset_size": 6, "samples": 8, "parse_rate": 0.9,
                                                         "execution": "filter", "exec_ok": 6}))
    page = render_html(metrics, scores, {}, EVALUATE)
    assert page.count("<img") == 2  # score histogram and evaluation; no influence data, no influence figure
    assert "6 of 8 samples kept" in page and "humaneval/scoder" in page and "mbpp: skipped" in page
    assert "http" not in page.replace("http-equiv", "")  # self-contained: nothing fetched from elsewhere


def _cost_metrics(folder, parse_ok, synthesizer_usd=None):
    folder.mkdir()
    (folder / "distill.json").write_text(json.dumps({"samples": 20, "parse_ok": parse_ok, "cost_usd": 0.05}))
    (folder / "synthesize.json").write_text(json.dumps({"dataset_size": 10, "samples": 12, "parse_rate": 1.0,
                                                        "execution": "filter", "exec_ok": 10}))
    by_role = {"teacher": {"samples": 20, "tokens_in": 7000, "tokens_out": 4000, "cost_usd": 0.05}}
    if synthesizer_usd is not None:
        by_role["synthesizer"] = {"samples": 12, "tokens_in": 900, "tokens_out": 800, "cost_usd": synthesizer_usd}
    (folder / "cost.json").write_text(json.dumps({"by_role": by_role, "stages": {},
                                                  "total_cost_usd": 0.05 + (synthesizer_usd or 0.0)}))
    return folder


def test_the_bill_per_accepted_sample_by_source(tmp_path):
    from scoder.evaluation.report import cost_figure
    from scoder.evaluation.summary import accepted_cost, summary

    metrics = _cost_metrics(tmp_path / "metrics", parse_ok=5, synthesizer_usd=0.002)
    cost = accepted_cost(metrics)
    assert cost["teacher_usd_per_accepted"] == 0.01 and cost["synthesizer_usd_per_accepted"] == 0.0002
    assert cost["teacher_samples_saved"] == 10 and cost["teacher_equivalent_usd"] == 0.1 and cost["saved_usd"] == 0.098
    assert cost["notes"] == [] and cost["synthesizer_in_ledger"]
    # metrics/summary.json: cost.<key> in `dvc metrics show`
    block = summary(metrics)["cost"]
    assert block["teacher_usd_per_accepted"] == 0.01 and block["synthesizer_usd_per_accepted"] == 0.0002
    assert block["teacher_samples_saved"] == 10 and block["saved_usd"] == 0.098 and "notes" not in block
    # plots/cost.csv
    written = write_plot_data(tmp_path / "plots", {}, {}, [], cost)
    assert [p.name for p in written] == ["cost.csv"]
    with open(tmp_path / "plots" / "cost.csv") as handle:
        rows = {r["source"]: r for r in csv.DictReader(handle)}
    assert rows["teacher"]["usd_per_accepted"] == "0.01" and rows["synthesizer"]["usd_per_accepted"] == "0.0002"
    assert rows["saved_at_teacher_price"]["accepted_samples"] == "10" and rows["saved_at_teacher_price"]["cost_usd"] == "0.1"
    # the figure: USD on both axes, from zero, one bar per source
    figure = cost_figure(cost)
    left, right = figure.axes
    assert left.get_ylabel() == "USD per accepted sample" and right.get_ylabel() == "USD"
    assert left.get_ylim()[0] == 0 and right.get_ylim()[0] == 0
    assert [round(b.get_height(), 6) for b in left.patches] == [0.01, 0.0002]
    assert [round(b.get_height(), 6) for b in right.patches] == [0.05, 0.002, 0.1]
    # the page: the figure with its table beside it
    page = render_html(metrics, {}, {}, None)
    assert "<h2>Cost per accepted sample</h2><div class='side'><img" in page
    assert "<td>teacher USD per accepted sample</td><td>0.01</td>" in page
    assert "<td>synthesizer USD per accepted sample</td><td>0.0002</td>" in page
    assert "<td>saved, less the synthesizer&#x27;s cost (USD)</td><td>0.098</td>" in page


def test_a_teacher_with_nothing_accepted_has_no_price_and_says_so(tmp_path):
    import math

    from scoder.evaluation.report import cost_figure
    from scoder.evaluation.summary import accepted_cost, summary

    metrics = _cost_metrics(tmp_path / "metrics", parse_ok=0)  # and no synthesizer in the ledger
    cost = accepted_cost(metrics)
    assert cost["teacher_usd_per_accepted"] is None and cost["teacher_equivalent_usd"] is None and cost["saved_usd"] is None
    assert cost["synthesizer_usd"] == 0.0 and cost["synthesizer_usd_per_accepted"] == 0.0 and not cost["synthesizer_in_ledger"]
    assert cost["teacher_samples_saved"] == 10
    assert any(n.startswith("the teacher accepted 0 of 20 samples") for n in cost["notes"])
    assert any("no synthesizer entry" in n for n in cost["notes"])
    assert summary(metrics)["cost"]["teacher_usd_per_accepted"] is None
    write_plot_data(tmp_path / "plots", {}, {}, [], cost)
    with open(tmp_path / "plots" / "cost.csv") as handle:
        rows = {r["source"]: r for r in csv.DictReader(handle)}
    assert rows["teacher"]["usd_per_accepted"] == "" and rows["saved_at_teacher_price"]["cost_usd"] == ""
    figure = cost_figure(cost)
    left = figure.axes[0]
    assert math.isnan(left.patches[0].get_height())  # no bar, not a bar at zero
    assert any("0 of 20 accepted" in t.get_text() for t in left.texts)
    page = render_html(metrics, {}, {}, None)
    assert "<td>teacher USD per accepted sample</td><td>n/a</td>" in page
    assert "the teacher accepted 0 of 20 samples (for 0.05 USD): it has no price per accepted sample" in page
