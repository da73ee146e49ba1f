"""`scoder cost estimate`: requests from the profile, prompt tokens measured, answers assumed,
priced at list and batch rates; no model is called."""

import json
import subprocess
import sys

from scoder.bootstrap.cost_estimate import estimate
from scoder.core.profile import load_profile


def test_the_paper_profile_prices_10k_gpt4o_teacher_samples(repo_root, tmp_path):
    rows, measured = estimate(load_profile(repo_root / "params.yaml", repo_root / "configs/paper.yaml"),
                              tmp_path / "no-pool.jsonl")
    teacher = next(r for r in rows if r.stage == "distill")
    assert teacher.requests == 10_000 and teacher.price_row == "gpt-4o" and teacher.backend == "openai-batch"
    assert teacher.answer_tokens == 600 * 10_000  # assumed, below max_tokens 2048
    assert 200 < measured["synthesis_prompt_tokens_mean"] < 1000  # the template alone is ~300 tokens
    assert abs(teacher.batch_usd - teacher.list_usd / 2) < 0.02 and teacher.billed_usd == teacher.batch_usd
    expected = (teacher.prompt_tokens * 2.5 + teacher.answer_tokens * 10.0) / 1e6
    assert abs(teacher.list_usd - expected) < 0.01
    assert not any(r.stage.startswith("score@") for r in rows)  # the paper's scorer is a local model


def test_an_api_scorer_adds_a_row_per_round_and_answers_are_capped_at_max_tokens(repo_root, tmp_path):
    params = load_profile(repo_root / "params.yaml", None)
    params["score"]["scorer"].update(backend="openai", model="gpt-4o-mini")
    params["score"]["sampling"]["max_tokens"] = 100
    rows, _ = estimate(params, tmp_path / "none.jsonl", {"scorer": 250})
    scores = [r for r in rows if r.stage.startswith("score@")]
    assert [r.stage for r in scores] == ["score@1", "score@2"]
    assert scores[0].requests == 3 * 2 * 2  # snippets x M checkpoints x N samples
    assert scores[0].answer_tokens == 100 * scores[0].requests  # capped at max_tokens


def test_the_command_prints_a_table_and_json(repo_root):
    out = subprocess.run([sys.executable, "-m", "scoder.cli", "cost", "estimate", "--profile", "configs/paper.yaml"],
                         cwd=repo_root, capture_output=True, text=True, check=True).stdout
    assert "distill" in out and "batch USD" in out and "measured" in out and "assumed" in out
    data = json.loads(subprocess.run([sys.executable, "-m", "scoder.cli", "cost", "estimate", "--json",
                                      "--answer-tokens", "teacher=350"], cwd=repo_root, capture_output=True,
                                     text=True, check=True).stdout)
    assert data["rows"][0]["answer_tokens"] == 20 * 256  # capped at the tiny profile's max_tokens
    bad = subprocess.run([sys.executable, "-m", "scoder.cli", "cost", "estimate", "--answer-tokens", "judge=x"],
                         cwd=repo_root, capture_output=True, text=True)
    assert bad.returncode == 1 and "expected teacher=N" in bad.stderr
