"""The results report: paired differences on the same tasks, intervals, refusal of arms
measured on different tasks, and a plot whose NLL axis starts at zero."""

from __future__ import annotations

import json

import pytest

from scoder.core.io import write_jsonl
from scoder.validity.kspecialist import KSpecialistConfig
from scoder.validity.report import downstream_table, markdown, write_report


def _arm(folder, name, values, dataset="humaneval"):
    (folder / name).mkdir(parents=True, exist_ok=True)
    write_jsonl(folder / name / f"nll-{dataset}.jsonl", [{"task_id": f"t{i}", "nll": v} for i, v in enumerate(values)])


def test_paired_differences_and_intervals(tmp_path):
    _arm(tmp_path, "base", [1.0, 2.0, 3.0, 4.0])
    _arm(tmp_path, "random", [0.9, 1.9, 2.9, 3.9])
    _arm(tmp_path, "weighted", [0.8, 1.8, 2.8, 3.8])
    table = downstream_table(tmp_path, ["base", "random", "weighted"], 500, 0)
    assert table["weighted"]["humaneval"]["minus_base"] == {"mean": -0.2, "low": -0.2, "high": -0.2}
    assert table["weighted"]["humaneval"]["minus_random"]["mean"] == pytest.approx(-0.1)
    entry = table["base"]["humaneval"]
    assert entry["low"] < entry["nll"] == 2.5 < entry["high"] and "minus_base" not in entry


def test_arms_on_different_tasks_are_refused(tmp_path):
    _arm(tmp_path, "base", [1.0, 2.0])
    _arm(tmp_path, "random", [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="different humaneval tasks"):
        downstream_table(tmp_path, ["base", "random"], 100, 0)


def test_write_report_markdown_and_plot(tmp_path):
    auc = {"candidates": 4, "real": 2, "signals": {
        "weighted": {"auc": 0.7, "auc_low": 0.6, "auc_high": 0.8, "top_k": 2, "top_k_degraded": 1, "unscored": 0,
                     "by_corruption": {"swapped": {"auc": 0.9, "low": 0.8, "high": 1.0}}}}}
    (tmp_path / "auc.json").write_text(json.dumps(auc))
    down, meta, kdir, kmeta = (tmp_path / n for n in ("down", "meta", "k", "kmeta"))
    for folder in (meta, kmeta):
        folder.mkdir()
    _arm(down, "base", [1.0, 2.0, 3.0])
    _arm(down, "weighted", [0.9, 2.0, 2.9])
    (meta / "base.json").write_text(json.dumps({"arm": "base", "signal": None}))
    (meta / "weighted.json").write_text(json.dumps({"arm": "weighted", "signal": "weighted", "selected": 2,
                                                    "selected_degraded": 1}))
    _arm(kdir, "1", [1.0, 2.0, 3.0])
    _arm(kdir, "4", [1.1, 2.0, 3.0])
    for k in ("1", "4"):
        (kmeta / f"{k}.json").write_text(json.dumps({"k": int(k), "cluster_sizes": [3], "steps": 2,
                                                     "humaneval_routed": [3]}))
    out = write_report(tmp_path / "auc.json", down, meta, ["base", "weighted"], kdir, kmeta, ["1", "4"],
                       tmp_path / "results.md", tmp_path / "results.png", 200, 0)
    text = (tmp_path / "results.md").read_text()
    assert "| weighted | 0.700 [0.600, 0.800] | - | 0.90 [0.80, 1.00] | - | 1/2 | 0 |" in text
    assert "| weighted (weighted) | 1/2 |" in text and "K-Specialist" in text
    assert out["kspecialist"]["4"]["humaneval"]["minus_1"]["mean"] == pytest.approx(0.1 / 3, abs=1e-5)
    assert (tmp_path / "results.png").read_bytes()[:4] == b"\x89PNG"


def test_kspecialist_config_checks_its_ks():
    config = KSpecialistConfig(ks={"1": {"k": 1}, "3": {"k": 3}})
    assert config.specialists_for("3").k == 3
    with pytest.raises(ValueError, match=r"kspecialist.ks.bad"):
        KSpecialistConfig(ks={"bad": {"k": 0}})
    with pytest.raises(KeyError):
        config.specialists_for("2")


def _fine_tune(folder, name, signal, mbpp_values):
    _arm(folder, name, mbpp_values, dataset="mbpp")
    (folder / name / "model.json").write_text(json.dumps({"base_model": "smollm2", "method": "lora", "adapter": None,
                                                          "arm": name, "signal": signal}))


def test_best_arm_is_the_lowest_nll_signal_arm_on_the_named_benchmark(tmp_path):
    from scoder.validity.experiment import best_arm

    _fine_tune(tmp_path, "base", None, [0.1, 0.1])       # not a signal, however low
    _fine_tune(tmp_path, "random", "random", [0.2, 0.2])  # not a signal
    _fine_tune(tmp_path, "weighted", "weighted", [1.0, 1.0])
    _fine_tune(tmp_path, "ifd", "ifd", [0.5, 0.7])
    _fine_tune(tmp_path, "ppl_low", "ppl_low", [0.6, 0.6])   # tie with ifd: the first name wins
    _fine_tune(tmp_path, "stale", "stale", [0.0, 0.0])    # an arm since removed from params: ignored
    arms = ["base", "random", "weighted", "ifd", "ppl_low"]
    assert best_arm(tmp_path, "mbpp", arms) == ("ifd", pytest.approx(0.6))
    with pytest.raises(SystemExit, match=r"no canonical NLL on 'mbpp\+'.*choose_by must be one of \['mbpp'\]"):
        best_arm(tmp_path, "mbpp+", arms)
    with pytest.raises(SystemExit, match=r"arms \['execution'\] have no model"):
        best_arm(tmp_path, "mbpp", arms + ["execution"])
    _fine_tune(tmp_path, "composite", "composite", [float("nan"), 0.1])
    with pytest.raises(SystemExit, match="composite: mean canonical NLL on mbpp is nan"):
        best_arm(tmp_path, "mbpp", arms + ["composite"])
    with pytest.raises(SystemExit, match="no signal arm"):
        best_arm(tmp_path, "mbpp", ["base", "random"])


def _passed(folder, name, base, plus, kind="arm", **extra):
    (folder / "data" / name).mkdir(parents=True, exist_ok=True)
    (folder / "metrics").mkdir(exist_ok=True)
    write_jsonl(folder / "data" / name / "passed.jsonl",
                [{"task_id": f"HumanEval/{i}", "base": b, "plus": p} for i, (b, p) in enumerate(zip(base, plus))])
    (folder / "metrics" / f"{name}.json").write_text(json.dumps({"model": name, "kind": kind, "dataset": "humaneval",
                                                                 **extra}))


def test_pass_at_1_table_pairs_models_on_the_same_tasks(tmp_path):
    from scoder.validity.report import pass_at_1_markdown, pass_at_1_table

    _passed(tmp_path, "base", [1, 0, 0, 0], [1, 0, 0, 0], arm="base")
    _passed(tmp_path, "kspecialist_4", [1, 1, 0, 0], [1, 0, 0, 0], kind="kspecialist", k=4)
    table = pass_at_1_table(tmp_path / "metrics", tmp_path / "data", ["base", "kspecialist_4"], 300, 0)
    assert table["base"]["base"]["pass@1"] == 0.25 and "minus_base" not in table["base"]["base"]
    assert table["kspecialist_4"]["base"]["minus_base"]["mean"] == 0.25
    assert table["kspecialist_4"]["plus"]["minus_base"] == {"mean": 0.0, "low": 0.0, "high": 0.0}
    text = pass_at_1_markdown(table)
    assert "all 4 humaneval tasks" in text and "| kspecialist_4 | kspecialist | K=4 | 0.500 [" in text
    _passed(tmp_path, "random", [1, 0, 0], [1, 0, 0], arm="random")
    with pytest.raises(ValueError, match="random and base are on different tasks"):
        pass_at_1_table(tmp_path / "metrics", tmp_path / "data", ["base", "random"], 100, 0)
    write_jsonl(tmp_path / "data" / "random" / "passed.jsonl",
                [{"task_id": "HumanEval/0", "base": True, "plus": True}] * 2)
    with pytest.raises(ValueError, match="more than one answer"):
        pass_at_1_table(tmp_path / "metrics", tmp_path / "data", ["base", "random"], 100, 0)
