import json

import numpy as np
import pytest

from scoder.cli import main
from scoder.bootstrap.prompts import SCORING_ASPECTS
from scoder.bootstrap.aspects import read_weights


def test_fit_weights_cli_recovers_weights_and_the_scorer_reads_them(tmp_path):
    rng = np.random.default_rng(1)
    true_w = rng.uniform(0, 1, size=10)
    rows = []
    for _ in range(40):
        x = rng.uniform(3, 9, size=10)
        rows.append({"aspects": dict(zip(SCORING_ASPECTS, x.tolist())), "outcome": float(x @ true_w)})
    table = tmp_path / "experiments.jsonl"
    table.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "weights.json"
    assert main(["fit-weights", str(table), "--ridge-lambda", "0.0001", "--out", str(out)]) == 0
    assert np.allclose(read_weights(out), true_w, atol=1e-3)


def test_fit_weights_cli_names_the_bad_experiment(tmp_path):
    table = tmp_path / "experiments.jsonl"
    table.write_text(json.dumps({"aspects": {}, "outcome": 1}) + "\n" + json.dumps({"aspects": {}, "outcome": 2}) + "\n")
    with pytest.raises(SystemExit, match="experiment 1 lacks"):
        main(["fit-weights", str(table), "--out", str(tmp_path / "w.json")])


def test_resolve_model(capsys):
    assert main(["resolve-model", "smollm2"]) == 0
    assert "SmolLM2-135M-Instruct.Q4_1.gguf" in capsys.readouterr().out


@pytest.mark.slow
def test_fit_weights_runs_as_a_dvc_stage(tmp_path):
    """The documented recipe: a `fit_weights` stage whose output the scorer's weights_file names."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    rng = np.random.default_rng(2)
    true_w = rng.uniform(0, 1, size=10)
    xs = rng.uniform(3, 9, size=(30, 10))
    (tmp_path / "experiments.jsonl").write_text(
        "".join(json.dumps({"aspects": dict(zip(SCORING_ASPECTS, x.tolist())), "outcome": float(x @ true_w)}) + "\n" for x in xs))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    commands = [
        ["git", "init", "-q"], ["dvc", "init", "-q"],
        ["dvc", "stage", "add", "-q", "-n", "fit_weights", "-d", "experiments.jsonl", "-o", "weights.json",
         "scoder fit-weights experiments.jsonl --ridge-lambda 0.0001 --out weights.json"],
        ["dvc", "repro", "fit_weights"],
    ]
    for command in commands:
        result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    assert np.allclose(read_weights(tmp_path / "weights.json"), true_w, atol=1e-3)
    assert "fit_weights" in (tmp_path / "dvc.lock").read_text()
