"""The distill stage against the fault-injecting endpoint: resumable after SIGKILL, never
paying twice, with parse metrics and the cost ledger."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from fake_openai import FakeOpenAI, answered_tags
from scoder.core.cost import summarize
from scoder.bootstrap.distill import DistillConfig, synthesize_samples
from scoder.models.llm import LLMConfig, SamplingParams
from scoder.models.llm.openai_backend import OpenAICompatibleLLM


def seeds(n):
    return [
        {"id": f"s{i:03d}", "code": f'def f{i}(x):\n    """Add {i}."""\n    return x + {i}\n', "imports": "import math" if i % 2 else "", "category": "Web Problems"}
        for i in range(n)
    ]


def write_project(tmp_path: Path, url: str, n: int) -> Path:
    (tmp_path / "seeds.jsonl").write_text("".join(json.dumps(s) + "\n" for s in seeds(n)))
    params = {
        "distill": {
            "teacher": {"backend": "openai", "model": "gpt-test", "endpoint": url, "api_key_env": "SCODER_TEST_KEY",
                        "max_concurrency": 2, "timeout_s": 5, "max_retries": 3, "price_as": "gpt-4o"},
            "sampling": {"max_tokens": 100, "temperature": 0.0},
            "chunk_size": 4,
        }
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return tmp_path


def stage_cmd(project: Path, repo_root: Path, out_name: str):
    return [sys.executable, str(repo_root / "stages/distill.py"), "--params", str(project / "params.yaml"),
            "--seeds", str(project / "seeds.jsonl"), "--recorded", str(repo_root / "data" / "teacher"), "--samples", str(project / out_name / "samples.jsonl"),
            "--metrics", str(project / out_name / "distill.json"), "--ledger", str(project / out_name / "cost.json")]


def env_for(project: Path, cache: str):
    env = dict(os.environ)
    env.update(SCODER_CACHE_DIR=str(project / cache), MLFLOW_TRACKING_URI=f"sqlite:///{project / 'mlruns.db'}")
    return env


def test_distill_stage_resumes_after_sigkill_without_paying_twice(tmp_path, repo_root):
    n = 24
    with FakeOpenAI(delay_s=0.15) as server:
        project = write_project(tmp_path, server.url, n)
        # reference: one uninterrupted run with its own cache
        subprocess.run(stage_cmd(project, repo_root, "clean"), env=env_for(project, "cache-clean"), check=True, capture_output=True, cwd=project)
        reference = (project / "clean" / "samples.jsonl").read_text()
        server.paid.clear()

        # interrupted run: SIGKILL once some answers were paid for
        proc = subprocess.Popen(stage_cmd(project, repo_root, "run"), env=env_for(project, "cache"), cwd=project,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while sum(server.paid.values()) < 8 and time.time() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        paid_at_kill = sum(server.paid.values())
        assert 8 <= paid_at_kill < n
        assert not (project / "run" / "samples.jsonl").exists()  # no half-written output

        # answers the client had received (and committed) before it was killed
        received = answered_tags(project / "cache" / "responses.sqlite")
        assert len(received) >= paid_at_kill - 2  # at most max_concurrency answers were in flight

        subprocess.run(stage_cmd(project, repo_root, "run"), env=env_for(project, "cache"), check=True, capture_output=True, cwd=project)
        assert sum(server.paid.values()) >= n and len(server.paid) == n
        for prompt_hash, count in server.paid.items():
            if prompt_hash[:8] in received:
                assert count == 1  # nothing received before the crash was paid for again
        # only requests in flight at the kill (never received) can have been sent twice
        assert sum(server.paid.values()) - n <= 2
        assert (project / "run" / "samples.jsonl").read_text() == reference  # same as uninterrupted

    metrics = json.loads((project / "run" / "distill.json").read_text())
    assert metrics["samples"] == n and metrics["parse_rate"] == 1.0
    assert metrics["cached_samples"] >= paid_at_kill - 2  # what was paid before the kill came back from the cache
    ledger = json.loads((project / "run" / "cost.json").read_text())
    assert ledger["role"] == "teacher" and ledger["tokens_out"] == metrics["tokens_out"] > 0
    assert abs(ledger["cost_usd"] - (metrics["tokens_in"] * 2.5 + metrics["tokens_out"] * 10) / 1e6) < 1e-6


def test_unparsable_answers_are_counted_not_dropped(tmp_path):
    class Echo:
        def generate(self, prompts, params):
            from scoder.models.llm.base import Completion
            texts = ["", "I'm sorry, I can't.", "[Problem Description]\nP\n[Solution]\n```python\nx = 1\n```"]
            return [Completion(texts=[texts[i % 3]], prompt_tokens=5, completion_tokens=[3], finish_reasons=["stop"]) for i, _ in enumerate(prompts)]

    records, metrics = synthesize_samples(Echo(), seeds(3), DistillConfig(chunk_size=8), "echo")
    assert len(records) == 3
    assert metrics["reasons"] == {"empty_output": 1, "ok": 1, "refusal": 1}
    assert metrics["parse_ok"] == 1 and abs(metrics["parse_rate"] - 1 / 3) < 1e-5
    assert [r["reason"] for r in records] == ["empty_output", "refusal", None]


def test_cost_summary_reports_savings():
    teacher = {"stage": "distill", "role": "teacher", "model": "gpt-4o", "backend": "openai", "samples": 10, "tokens_in": 1000, "tokens_out": 2000, "cost_usd": 0.1}
    synth = {"stage": "sample@1", "role": "synthesizer", "model": "small", "backend": "vllm", "samples": 90, "tokens_in": 0, "tokens_out": 0, "cost_usd": 0.0}
    classifier = {"stage": "categorize", "role": "quality_classifier", "model": "smollm2", "backend": "transformers", "samples": 50, "tokens_in": 9000, "tokens_out": 0, "cost_usd": 0.0}
    summary = summarize([teacher, synth, classifier])
    assert summary["synthesized_samples"] == 90  # classifier calls are not synthesized samples
    assert summary["all_from_teacher_cost_usd"] == 1.0 and summary["saved_vs_all_from_teacher_usd"] == 0.9
    assert summary["by_role"]["quality_classifier"]["tokens_in"] == 9000


def test_guided_generation_assembles_the_two_section_format():
    """Template-guided synthesis: a problem continued from the prefilled header (cut at a
    solution header the model writes itself), then code continued from the prefilled fence."""
    from scoder.models.llm.base import Completion

    class Scripted:
        def __init__(self):
            self.calls = []

        def generate(self, prompts, params):
            self.calls.append((prompts, params))
            if len(self.calls) == 1:  # problems: n per prompt
                assert all(p[-1]["content"] == "[Problem Description]\nWrite a Python function" for p in prompts)
                texts = [[" that adds one.\n\n**Solution**\nblah", " that doubles. It must"], [" that halves."] * 2]
                return [Completion(texts=t, prompt_tokens=10, completion_tokens=[4, 6], finish_reasons=["stop", "length"])
                        for t in texts[: len(prompts)]]
            assert params.n == 1 and params.stop == ["```"] and len(prompts) == 4
            return [Completion(texts=[f"def f(x):\n    return x + {i}\n"], prompt_tokens=20, completion_tokens=[8],
                               finish_reasons=["stop" if i else "length"]) for i in range(len(prompts))]

    llm = Scripted()
    config = DistillConfig(sampling=SamplingParams(n=2, max_tokens=64), guided_problem_tokens=32)
    records, metrics = synthesize_samples(llm, seeds(2), config, "guided")
    first_prompt = llm.calls[1][0][0]
    assert first_prompt[-1]["content"] == "[Problem Description]\nWrite a Python function that adds one.\n\n[Solution]\n```python\n"
    assert records[1]["problem"] == "Write a Python function that doubles."  # cut by its budget: last whole sentence
    assert records[1]["parse_ok"] and records[1]["code"] == "def f(x):\n    return x + 1"
    assert records[0]["reason"] == "truncated" and records[0]["finish_reason"] == "length"  # the code hit max_tokens
    assert metrics["parse_ok"] == 3 and records[0]["tokens"] == {"prompt": 50, "completion": 12}  # 10 + two code prompts of 20
