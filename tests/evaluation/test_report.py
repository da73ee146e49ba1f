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
