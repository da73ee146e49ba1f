"""The Batch API teacher and the budget cap, against local fakes on 127.0.0.1: a kill after
submit, after partial completion or during download resumes without a second submission
(counted at the fake), failed requests are retried in a later batch, and the cap stops a
stage before the fake has billed more than the cap."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from fake_openai import FakeOpenAI
from fake_openai_batch import FakeBatchAPI
from scoder.core.budget import BudgetExceeded
from scoder.core.cache import ResponseCache
from scoder.models.llm.base import LLMConfig, SamplingParams
from scoder.models.llm.openai_backend import OpenAICompatibleLLM
from scoder.models.llm.openai_batch import OpenAIBatchLLM

GPT4O_BATCH = (1.25, 5.0)  # the price table's gpt-4o row at the batch rate
GPT4O_SYNC = (2.5, 10.0)


def prompts(n: int) -> list[list[dict]]:
    return [[{"role": "user", "content": f"Write a function number {i} that adds {i} to its argument."}] for i in range(n)]


def batch_config(url: str, **extra) -> LLMConfig:
    return LLMConfig(backend="openai-batch", model="gpt-4o", endpoint=url, api_key_env="SCODER_TEST_KEY",
                     batch_poll_s=0.01, max_retries=2, backoff_base_s=0.01, timeout_s=5, **extra)


def backend(tmp_path: Path, url: str, **extra) -> OpenAIBatchLLM:
    return OpenAIBatchLLM(batch_config(url, **extra), ResponseCache(tmp_path / "cache.sqlite"), state_dir=tmp_path / "batches")


PARAMS = SamplingParams(max_tokens=100)


def test_batch_answers_equal_synchronous_ones_and_share_the_cache(tmp_path):
    with FakeBatchAPI() as fake, FakeOpenAI() as sync_fake:
        llm = backend(tmp_path, fake.url)
        got = llm.generate(prompts(6), PARAMS)
        assert fake.created == 1 and sum(fake.billed.values()) == 6
        direct = OpenAICompatibleLLM(LLMConfig(backend="openai", model="gpt-4o", endpoint=sync_fake.url),
                                     ResponseCache(tmp_path / "sync.sqlite")).generate(prompts(6), PARAMS)
        assert [c.texts for c in got] == [c.texts for c in direct]
        # batch answers sit in the cache under the synchronous keys: the sync path serves them for free
        # (the endpoint is part of the key, so point the sync backend at the batch fake's URL)
        same_cache = OpenAICompatibleLLM(LLMConfig(backend="openai", model="gpt-4o", endpoint=fake.url), llm.cache)
        again = same_cache.generate(prompts(6), PARAMS)
        assert [c.texts for c in again] == [c.texts for c in got] and all(c.cached for c in again)
        assert same_cache.stats["requests"] == 0
        # and the ledger's price: batch answers cost half of the same tokens at the list rate
        assert abs(llm.budget.paid_usd - fake.billed_usd) < 1e-9


def test_a_lost_create_answer_does_not_create_a_second_batch(tmp_path):
    with FakeBatchAPI() as fake:
        fake.drop_create_answer = True
        out = backend(tmp_path, fake.url).generate(prompts(3), PARAMS)
        assert fake.created == 1 and all(out[i].texts[0] for i in range(3))
        assert max(fake.billed.values()) == 1


def test_a_kill_between_create_and_saving_the_id_adopts_the_batch(tmp_path):
    with FakeBatchAPI() as fake:
        first = backend(tmp_path, fake.url)
        real_create = first._create_once

        def die_after_create(tag, input_file_id):
            real_create(tag, input_file_id)
            raise KeyboardInterrupt("killed before the batch id was saved")

        first._create_once = die_after_create
        with pytest.raises(KeyboardInterrupt):
            first.generate(prompts(4), PARAMS)
        state = json.loads(next((tmp_path / "batches").glob("*.json")).read_text())
        assert state["batches"] == {} and len(state["submitting"]) == 1  # the id never reached the state file
        second = backend(tmp_path, fake.url)
        out = second.generate(prompts(4), PARAMS)
        assert fake.created == 1 and second.stats["batches_adopted"] == 1
        assert len(out) == 4 and max(fake.billed.values()) == 1


def test_failed_requests_are_counted_and_retried_in_a_later_batch(tmp_path):
    with FakeBatchAPI() as fake:
        llm = backend(tmp_path, fake.url)
        keys = [llm.chat_request(p, PARAMS, 0)[0] for p in prompts(5)]
        fake.fail_once = {keys[1], keys[3]}
        out = llm.generate(prompts(5), PARAMS)
        assert fake.created == 2  # the two failures went into a second batch
        assert llm.stats["request_errors"] == 2
        assert all(c.texts[0].startswith("[Problem Description]") for c in out)
        assert sum(fake.billed.values()) == 5  # failed attempts are not billed, each answer once


def test_a_request_failing_in_every_batch_is_an_error_naming_it(tmp_path):
    from scoder.models.llm.openai_backend import EndpointError

    with FakeBatchAPI() as fake:
        llm = backend(tmp_path, fake.url, batch_max_attempts=1)
        key = llm.chat_request(prompts(2)[0], PARAMS, 0)[0]
        fake.fail_once = {key}
        with pytest.raises(EndpointError, match=key):
            llm.generate(prompts(2), PARAMS)


def test_the_batch_cap_stops_before_the_fake_bills_more_than_it(tmp_path):
    with FakeBatchAPI(per_poll=2) as fake:
        n = 12
        # the worst case of one request: its prompt bytes and 100 answer tokens at the batch rate
        one = backend(tmp_path / "probe", fake.url).worst_case_usd(backend(tmp_path / "probe", fake.url).chat_request(prompts(1)[0], PARAMS, 0)[1])
        cap = 2.2 * one  # real answers cost about a quarter of their worst case: several batches fit
        llm = backend(tmp_path, fake.url, max_budget_usd=cap, batch_max_requests=3)
        with pytest.raises(BudgetExceeded, match="budget cap") as stopped:
            llm.generate(prompts(n), PARAMS)
        assert fake.billed_usd <= cap
        assert 0 < sum(fake.billed.values()) < n
        assert "not sent" in str(stopped.value)
        # raising the cap resumes: nothing answered before is billed again
        billed_before = dict(fake.billed)
        out = backend(tmp_path, fake.url, max_budget_usd=100 * one * n).generate(prompts(n), PARAMS)
        assert len(out) == n and all(fake.billed[k] == 1 for k in billed_before) and sum(fake.billed.values()) == n


def test_the_synchronous_cap_holds_with_concurrency_and_timeouts(tmp_path):
    with FakeOpenAI() as fake:
        fake.faults = ["slow", "500"]  # a timed-out request may be billed: it stays counted
        fake.slow_s = 1.5
        config = LLMConfig(backend="openai", model="gpt-4o", endpoint=fake.url, max_concurrency=4, timeout_s=0.5,
                           max_retries=3, backoff_base_s=0.01)
        probe = OpenAICompatibleLLM(config, None)
        one = probe.worst_case_usd(probe.chat_request(prompts(1)[0], PARAMS, 0)[1])
        cap = 2.5 * one
        llm = OpenAICompatibleLLM(LLMConfig(**{**config.__dict__, "max_budget_usd": cap}), ResponseCache(tmp_path / "c.sqlite"))
        with pytest.raises(BudgetExceeded):
            llm.generate(prompts(20), PARAMS)
        time.sleep(1.6)  # let the slow answer be served (and billed) too
        billed = sum(p / 1e6 * GPT4O_SYNC[0] + c / 1e6 * GPT4O_SYNC[1] for p, c in fake.billed_tokens)
        assert billed <= cap and 0 < len(fake.billed_tokens) < 20


def test_cached_answers_count_toward_the_cap(tmp_path):
    with FakeOpenAI() as fake:
        config = LLMConfig(backend="openai", model="gpt-4o", endpoint=fake.url)
        cache = ResponseCache(tmp_path / "c.sqlite")
        OpenAICompatibleLLM(config, cache).generate(prompts(4), PARAMS)
        paid = sum(p / 1e6 * GPT4O_SYNC[0] + c / 1e6 * GPT4O_SYNC[1] for p, c in fake.billed_tokens)
        # a rerun under a cap below what the cached answers cost: it may not pay for a fifth
        llm = OpenAICompatibleLLM(LLMConfig(**{**config.__dict__, "max_budget_usd": paid}), cache)
        assert len(llm.generate(prompts(4), PARAMS)) == 4  # the cached ones are served
        with pytest.raises(BudgetExceeded):
            llm.generate(prompts(5), PARAMS)
        assert len(fake.billed_tokens) == 4


# --- the distill stage, killed at each point of a batch's life ------------------------------

def seeds(n):
    return [{"id": f"s{i:03d}", "code": f'def f{i}(x):\n    """Add {i}."""\n    return x + {i}\n', "imports": "",
             "category": "Web Problems"} for i in range(n)]


def project(tmp_path: Path, url: str, n: int, **teacher) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "seeds.jsonl").write_text("".join(json.dumps(s) + "\n" for s in seeds(n)))
    params = {"distill": {"teacher": {"backend": "openai-batch", "model": "gpt-4o", "endpoint": url,
                                      "api_key_env": "SCODER_TEST_KEY", "batch_poll_s": 0.05, "max_retries": 2,
                                      "backoff_base_s": 0.05, **teacher},
                          "sampling": {"max_tokens": 100, "temperature": 0.0}, "chunk_size": 100}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return tmp_path


def distill(where: Path, repo_root: Path, popen=False):
    cmd = [sys.executable, str(repo_root / "stages/distill.py"), "--params", str(where / "params.yaml"),
           "--seeds", str(where / "seeds.jsonl"), "--recorded", str(repo_root / "data" / "teacher"), "--samples", str(where / "out" / "samples.jsonl"),
           "--metrics", str(where / "out" / "distill.json"), "--ledger", str(where / "out" / "cost.json")]
    env = {**os.environ, "SCODER_CACHE_DIR": str(where / "cache"), "MLFLOW_TRACKING_URI": f"sqlite:///{where / 'mlruns.db'}",
           "SCODER_TEST_KEY": "sk-test"}
    if popen:
        return subprocess.Popen(cmd, env=env, cwd=where, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
    return subprocess.run(cmd, env=env, cwd=where, capture_output=True, text=True, timeout=300)


def wait_for(condition, what: str, timeout_s: float = 120.0):
    deadline = time.time() + timeout_s
    while not condition():
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


N = 10


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, repo_root):
    where = tmp_path_factory.mktemp("clean")
    with FakeBatchAPI() as fake:
        done = distill(project(where, fake.url, N), repo_root)
        assert done.returncode == 0, done.stderr[-3000:]
        assert fake.created == 1
    return (where / "out" / "samples.jsonl").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("kill_point", ["after_submit", "after_partial_completion", "during_download"])
def test_a_killed_batch_stage_resumes_without_a_second_submission(tmp_path, repo_root, uninterrupted, kill_point):
    with FakeBatchAPI(per_poll=2) as fake:
        where = project(tmp_path, fake.url, N)
        if kill_point != "during_download":
            fake.release.clear()
            fake.hold_after = 0 if kill_point == "after_submit" else N // 2
        else:
            fake.download_delay_s = 30.0
        proc = distill(where, repo_root, popen=True)
        if kill_point == "after_submit":
            wait_for(lambda: fake.created == 1, "the batch to be created")
        elif kill_point == "after_partial_completion":
            wait_for(lambda: fake.batches and fake.batches["batch_1"]["request_counts"]["completed"] == N // 2,
                     "half of the batch to be answered")
        else:
            wait_for(fake.download_started.is_set, "the download to start")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        assert not (where / "out" / "samples.jsonl").exists()
        fake.release.set()
        fake.download_delay_s = 0.0
        rerun = distill(where, repo_root)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        assert fake.created == 1, f"a second batch was submitted after a kill {kill_point}"
        assert sum(fake.billed.values()) == N and max(fake.billed.values()) == 1
        if kill_point == "during_download":
            assert fake.downloads == 2  # downloaded again (free), never resubmitted
    assert (where / "out" / "samples.jsonl").read_text() == uninterrupted
    metrics = json.loads((where / "out" / "distill.json").read_text())
    ledger = json.loads((where / "out" / "cost.json").read_text())
    assert metrics["price"]["tier"] == "batch" and metrics["parse_rate"] == 1.0
    assert abs(ledger["cost_usd"] - (metrics["tokens_in"] * GPT4O_BATCH[0] + metrics["tokens_out"] * GPT4O_BATCH[1]) / 1e6) < 1e-6
    assert abs(ledger["cost_usd"] - fake.billed_usd) < 1e-6  # the ledger says what the fake billed


@pytest.mark.slow
def test_the_distill_stage_stops_cleanly_at_its_cap(tmp_path, repo_root):
    with FakeBatchAPI() as fake:
        probe = backend(tmp_path / "probe", fake.url)
        from scoder.bootstrap.prompts import synthesis_prompt

        # the worst case of the longest request (each answer really costs about a fifth of it)
        one = max(probe.worst_case_usd(probe.chat_request([{"role": "user", "content": synthesis_prompt(s["code"])}],
                                                          PARAMS, 0)[1]) for s in seeds(N))
        cap = round(1.6 * one, 8)
        where = project(tmp_path / "run", fake.url, N, max_budget_usd=cap, batch_max_requests=2)
        stopped = distill(where, repo_root)
        assert stopped.returncode == 3, stopped.stderr[-3000:]
        assert "stopped before exceeding its budget" in stopped.stderr and "answered request(s)" in stopped.stderr
        assert "Traceback" not in stopped.stderr
        assert fake.billed_usd <= cap and 0 < sum(fake.billed.values()) < N
        assert not (where / "out" / "samples.jsonl").exists()


def test_a_stages_chunks_go_into_one_batch_for_synthesis_and_for_judging(tmp_path):
    """distill and score call the backend chunk by chunk; with the Batch API every chunk is
    prefetched in one batch run (one 24 h wait, not one per chunk), answers unchanged."""
    from scoder.bootstrap.distill import DistillConfig, synthesize_samples
    from scoder.bootstrap.scoring import ScoreConfig, score_candidates

    with FakeBatchAPI(per_poll=50) as fake:
        llm = backend(tmp_path, fake.url)
        records, metrics = synthesize_samples(llm, seeds(7), DistillConfig(chunk_size=2, sampling=PARAMS), "gpt-4o")
        assert fake.created == 1 and metrics["parse_rate"] == 1.0 and len(records) == 7
        judge = ScoreConfig(scorer=llm.config, mode="generate", expected=False, execution="off", aggregate="mean",
                            chunk_size=2)
        scored, best, score_metrics = score_candidates(llm, records, judge)
        assert fake.created == 2 and score_metrics["score_parse_rate"] == 1.0
        assert sum(fake.billed.values()) == 14 and max(fake.billed.values()) == 1
        assert llm.usage["calls"] == 14  # each answer counted once, though prefetch and generate both served it


def test_a_rerun_at_its_cap_sends_nothing_whatever_the_concurrency(tmp_path):
    """Every cached answer is counted before the first request goes out: with the cache already
    at the cap, a rerun with more prompts sends nothing, in any order, at any concurrency."""
    with FakeOpenAI() as fake:
        config = LLMConfig(backend="openai", model="gpt-4o", endpoint=fake.url, max_concurrency=8)
        cache = ResponseCache(tmp_path / "c.sqlite")
        OpenAICompatibleLLM(config, cache).generate(prompts(12)[::2], PARAMS)  # every other prompt paid
        paid = sum(p / 1e6 * GPT4O_SYNC[0] + c / 1e6 * GPT4O_SYNC[1] for p, c in fake.billed_tokens)
        for order in (1, -1):
            llm = OpenAICompatibleLLM(LLMConfig(**{**config.__dict__, "max_budget_usd": paid}), cache)
            with pytest.raises(BudgetExceeded):
                llm.generate(prompts(12)[::order], PARAMS)
            assert len(fake.billed_tokens) == 6 and abs(llm.budget.cached_usd - paid) < 1e-12
