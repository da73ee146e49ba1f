"""Generation on a local Ray cluster (127.0.0.1, 2 workers) against the in-process path with the
shipped SmolLM2: distill, multi-checkpoint sampling (LoRA adapters switched on the workers) and
scoring give identical records; a worker killed mid-call is restarted and its batch retried; a
driver killed mid-stage leaves its finished batches cached, and the rerun computes only the rest.

Every engine here runs one torch thread, in-process and on the workers: the thread count
decides floating-point reduction order (docs/scale-out.md)."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import replace

import pytest
import torch

from scoder.core.cache import ResponseCache
from scoder.distributed.runtime import RayConfig, connect
from scoder.models.llm.base import LLMConfig, SamplingParams, load_llm

pytestmark = pytest.mark.slow

ray = pytest.importorskip("ray")

SNIPPETS = [{"id": f"s{i}", "code": f"def scale_{i}(values):\n    \"\"\"Multiply each value by {i}.\"\"\"\n"
             f"    return [v * {i} for v in values]\n"} for i in range(6)]
ENGINE = LLMConfig(batch_size=2, threads=1)
ON_RAY = RayConfig(workers=2, threads=1)


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    connect(ON_RAY)
    yield
    ray.shutdown()
    torch.set_num_threads(threads)


def strip_timing(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if "second" not in k}


def test_distill_on_two_workers_equals_one_process(tmp_path):
    from scoder.bootstrap.distill import DistillConfig, synthesize_samples

    config = DistillConfig(sampling=SamplingParams(n=2, temperature=0.7, max_tokens=24, seed=3), chunk_size=2)
    local = synthesize_samples(load_llm(ENGINE, ResponseCache(tmp_path / "a.sqlite")), SNIPPETS, config, "teacher")
    on_ray = load_llm(replace(ENGINE, ray=ON_RAY), ResponseCache(tmp_path / "b.sqlite"))
    assert len(set(on_ray.worker_pids)) == 2 and os.getpid() not in on_ray.worker_pids
    distributed = synthesize_samples(on_ray, SNIPPETS, config, "teacher")
    assert distributed[0] == local[0]
    assert strip_timing(distributed[1]) == strip_timing(local[1])
    assert on_ray.usage["completion_tokens"] == local[1]["tokens_out"]


def test_scoring_generate_and_forced_on_two_workers_equal_one_process(tmp_path):
    from scoder.bootstrap.aspects import SCORING_ASPECTS
    from scoder.bootstrap.scoring import ScoreConfig, score_candidates

    weights = tmp_path / "w.json"
    weights.write_text(json.dumps({"weights": {a: 0.1 for a in SCORING_ASPECTS}}))
    candidates = [{"id": f"c{i}", "snippet_id": f"s{i // 2}", "checkpoint": 0, "sample_idx": i % 2,
                   "problem": f"Return the list scaled by {i}.", "solution": f"```python\ndef f(v):\n    return [x * {i} for x in v]\n```",
                   "code": f"def f(v):\n    return [x * {i} for x in v]\n", "raw": "", "parse_ok": True, "reason": None}
                  for i in range(4)]
    for mode in ("generate", "forced"):
        config = ScoreConfig(mode=mode, weights_file=str(weights), execution="off", chunk_size=4,
                             sampling=SamplingParams(max_tokens=32))
        local = score_candidates(load_llm(ENGINE, ResponseCache(tmp_path / f"{mode}-a.sqlite")), candidates, config)
        distributed = score_candidates(load_llm(replace(ENGINE, ray=ON_RAY), ResponseCache(tmp_path / f"{mode}-b.sqlite")),
                                       candidates, config)
        assert distributed == local, mode


def test_multi_checkpoint_sampling_switches_adapters_on_the_workers(tmp_path):
    from scoder.bootstrap.sample import SampleConfig, sample_candidates
    from tiny_models import train_synthesizer

    synthesizer = train_synthesizer(tmp_path / "synth")
    sampling = SamplingParams(n=2, temperature=0.2, max_tokens=16, seed=5)
    outputs = {}
    for name, engine in (("local", replace(ENGINE, model="")), ("ray", replace(ENGINE, model="", ray=ON_RAY))):
        os.environ["SCODER_CACHE_DIR"] = str(tmp_path / f"cache-{name}")
        try:
            outputs[name] = sample_candidates(synthesizer, SNIPPETS[:4], SampleConfig(engine=engine, sampling=sampling), "1")
        finally:
            del os.environ["SCODER_CACHE_DIR"]
    records, metrics = outputs["ray"]
    assert records == outputs["local"][0] and strip_timing(metrics) == strip_timing(outputs["local"][1])
    # the two checkpoints really differ (the adapter was switched, not kept)
    by_checkpoint = {c: [r["raw"] for r in records if r["checkpoint"] == c] for c in (0, 1)}
    assert by_checkpoint[0] != by_checkpoint[1]


PROMPTS = [[{"role": "user", "content": f"Write a Python function that returns {i} times its argument."}] for i in range(12)]
PARAMS = SamplingParams(n=1, temperature=0.0, max_tokens=40)


@pytest.fixture(scope="module")
def reference():
    return [c.texts for c in load_llm(replace(ENGINE, use_cache=False)).generate(PROMPTS, PARAMS)]


def test_a_killed_worker_is_restarted_and_nothing_cached_is_computed_again(tmp_path, reference):
    cache = ResponseCache(tmp_path / "cache.sqlite")
    llm = load_llm(replace(ENGINE, ray=ON_RAY), cache)
    victim = llm.worker_pids[1]
    killed = threading.Event()

    def kill_once_a_batch_is_stored():
        deadline = time.time() + 300
        while len(cache) < 1 and time.time() < deadline:
            time.sleep(0.05)
        os.kill(victim, signal.SIGKILL)
        killed.set()

    threading.Thread(target=kill_once_a_batch_is_stored, daemon=True).start()
    assert [c.texts for c in llm.generate(PROMPTS, PARAMS)] == reference
    assert killed.is_set() and len(cache) == len(PROMPTS) // ENGINE.batch_size
    # the restarted worker is a new process
    assert victim not in [d["pid"] for d in ray.get([w.describe.remote() for w in llm.workers])]
    again = load_llm(replace(ENGINE, ray=ON_RAY), cache)
    completions = again.generate(PROMPTS, PARAMS)
    assert all(c.cached for c in completions) and again.usage["calls"] == 0
    assert [c.texts for c in completions] == reference


DRIVER = textwrap.dedent("""
    import sys, torch
    torch.set_num_threads(1)
    from dataclasses import replace
    from scoder.core.cache import ResponseCache
    from scoder.distributed.runtime import RayConfig
    from scoder.models.llm.base import LLMConfig, SamplingParams, load_llm
    prompts = [[{"role": "user", "content": f"Write a Python function that returns {i} times its argument."}] for i in range(12)]
    llm = load_llm(LLMConfig(batch_size=2, threads=1, ray=RayConfig(workers=2, threads=1)), ResponseCache(sys.argv[1]))
    llm.generate(prompts, SamplingParams(n=1, temperature=0.0, max_tokens=40))
""")


def test_a_driver_killed_mid_stage_leaves_finished_batches_and_the_rerun_computes_only_the_rest(tmp_path, reference):
    path = tmp_path / "cache.sqlite"
    ResponseCache(path).close()
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    # the killed driver runs its own local Ray (a separate process group, stopped with it)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    driver = subprocess.Popen([sys.executable, str(script), str(path)], env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cache = ResponseCache(path)
    deadline = time.time() + 300
    while len(cache) < 2 and time.time() < deadline and driver.poll() is None:
        time.sleep(0.05)
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    finished = len(cache)
    assert 2 <= finished < len(PROMPTS) // ENGINE.batch_size, "the driver was not killed mid-stage"
    rerun = load_llm(replace(ENGINE, ray=ON_RAY), cache)
    completions = rerun.generate(PROMPTS, PARAMS)
    assert [c.texts for c in completions] == reference
    assert sum(c.cached for c in completions) == finished * ENGINE.batch_size
    assert rerun.usage["calls"] == len(PROMPTS) - finished * ENGINE.batch_size


def test_remote_backends_are_refused_on_ray():
    with pytest.raises(ValueError, match="local backends"):
        load_llm(LLMConfig(backend="openai", ray=RayConfig(workers=2)))


def test_the_private_local_cluster_is_bound_to_loopback():
    assert ray.get_runtime_context().gcs_address.startswith("127.0.0.1:")
    assert {node["NodeManagerAddress"] for node in ray.nodes()} == {"127.0.0.1"}


def test_canonical_solution_nll_on_two_workers_equals_one_process():
    from scoder.evaluation.benchmarks import solution_nll

    problems = [{"prompt": f"def times_{i}(x):\n    \"\"\"Return x times {i}.\"\"\"\n", "canonical_solution": f"    return x * {i}\n"}
                for i in range(5)]
    local = solution_nll(load_llm(replace(ENGINE, use_cache=False)), problems, batch_size=2)
    distributed = solution_nll(load_llm(replace(ENGINE, use_cache=False, ray=ON_RAY)), problems, batch_size=2)
    assert distributed == local and all(v > 0 for v in local)
