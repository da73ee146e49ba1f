"""The snippet pool on Ray tasks (scoder.distributed.pool) gives exactly the local run's outputs:
the same snippets in the same order, the same removed records, skipped files and metrics (all
but the timings), on the standard library, on bad files and on a streamed text source."""

import json
import time
from dataclasses import replace

import pytest

from scoder.bootstrap.pool import build
from scoder.bootstrap.pool.build import build_pool
from scoder.bootstrap.pool.config import DecontamConfig, PoolConfig
from scoder.bootstrap.pool.sources import list_python_files, stdlib_root
from scoder.core.io import read_jsonl
from scoder.distributed.runtime import RayConfig, connect
from scoder.evaluation.benchmark_files import humaneval_path

pytestmark = pytest.mark.slow  # a local Ray and two passes over the standard library: ~1 min

TIMING_KEYS = ("seconds", "functions_per_second")
GOOD = 'def f{n}(x, y):\n    """Combine {n}."""\n    z = x * {n} + y\n    w = z - {n}\n    return w * w\n'


@pytest.fixture(scope="module")
def ray():
    ray = connect(RayConfig(workers=2))
    yield ray
    ray.shutdown()


def build_both(config: PoolConfig):
    local = build_pool(replace(config, workers=1, ray=RayConfig()))
    on_ray = build_pool(replace(config, ray=RayConfig(workers=2)))
    return local, on_ray


def assert_same(local, on_ray):
    assert on_ray.snippets == local.snippets
    assert on_ray.removed == local.removed
    assert on_ray.skipped_files == local.skipped_files
    untimed = lambda m: {k: v for k, v in m.items() if k not in TIMING_KEYS}  # noqa: E731
    assert untimed(on_ray.metrics) == untimed(local.metrics)


def test_stdlib_on_two_ray_workers_equals_the_local_run(ray, tmp_path):
    config = PoolConfig(source="stdlib", max_files=2500)
    _, files = list_python_files(config)
    assert len(files) > 1000
    # plant contamination: three stdlib modules' text as benchmark tasks, so the Ray
    # decontamination check has hits to agree on
    planted = [stdlib_root() / name for name in ("textwrap.py", "statistics.py", "fractions.py")]
    bench = tmp_path / "planted.jsonl"
    bench.write_text("".join(json.dumps({"task_id": f"planted/{p.stem}", "prompt": p.read_text()}) + "\n"
                             for p in planted))
    config = replace(config, decontaminate=DecontamConfig(extra_files=[str(bench)]))
    local, on_ray = build_both(config)
    assert_same(local, on_ray)
    m = local.metrics
    assert m["files_seen"] == len(files) and m["functions_found"] > 5000 and m["snippets"] > 1000
    assert m["near_duplicates"] > 0 and m["exact_duplicates"] > 0 and m["files_skipped"]
    assert m["contamination_hits"] > 0
    assert {r["reason"] for r in on_ray.removed} == {"near_duplicate", "contaminated"}


def test_bad_files_get_the_same_skip_reason_on_ray(ray, tmp_path):
    (tmp_path / "good.py").write_text("".join(GOOD.format(n=n) + "\n" for n in (3, 7)))
    (tmp_path / "binary.py").write_bytes(b"\x00\x01\x02\x03")
    (tmp_path / "latin1.py").write_bytes('def f(x):\n    """caf\xe9"""\n    return x\n'.encode("latin-1"))
    (tmp_path / "huge.py").write_text("x = 1\n" * 50_000)
    (tmp_path / "broken.py").write_text("def broken(:\n")
    (tmp_path / "dangling.py").symlink_to(tmp_path / "nowhere.py")
    task = next(r for r in read_jsonl(humaneval_path()) if r["task_id"] == "HumanEval/0")
    (tmp_path / "planted.py").write_text(task["prompt"] + task["canonical_solution"])
    local, on_ray = build_both(PoolConfig(source=str(tmp_path), max_file_bytes=100_000))
    assert_same(local, on_ray)
    assert {r["path"]: r["reason"] for r in on_ray.skipped_files} == {
        "binary.py": "binary", "broken.py": "syntax_error", "dangling.py": "unreadable",
        "huge.py": "too_large", "latin1.py": "non_utf8"}
    assert [s["meta"]["qualname"] for s in on_ray.snippets] == ["f3", "f7"]
    assert on_ray.metrics["contaminated_benchmark_ids"] == ["HumanEval/0", "HumanEval/20"]


def test_a_streamed_text_source_ships_text_batches(ray, monkeypatch):
    _, files = list_python_files(PoolConfig(source="stdlib", max_files=300))
    texts = [(f"repo/{p.name}", p.read_text(encoding="utf-8", errors="surrogateescape")) for p in files]
    texts += [("repo/huge.py", "x = 1\n" * 50_000), ("repo/broken.py", "def broken(:\n")]
    # what iter_hf_files yields for an `hf:` source, without the network
    monkeypatch.setattr(build, "iter_hf_files", lambda config: iter(texts))
    local, on_ray = build_both(PoolConfig(source="hf:example/python", max_file_bytes=100_000))
    assert_same(local, on_ray)
    assert local.metrics["files_seen"] == len(texts) and local.snippets
    assert {"repo/huge.py": "too_large", "repo/broken.py": "syntax_error"}.items() <= \
        {r["path"]: r["reason"] for r in local.skipped_files}.items()


def test_results_come_in_batch_order_with_bounded_work_in_flight(ray):
    from scoder.distributed.pool import ordered_results

    @ray.remote(num_cpus=1)
    def late_first(i):  # later batches end first
        start = time.time()
        time.sleep((8 - i) * 0.05)
        return i, start, time.time()

    pulled = submitted = 0

    def batches():
        nonlocal pulled
        for i in range(8):
            pulled += 1
            yield i

    def submit(i):
        nonlocal submitted
        submitted += 1
        return late_first.remote(i)

    results, outstanding, pulled_by_first = [], [], None
    for result in ordered_results(ray, submit, batches(), workers=2, window=3):
        pulled_by_first = pulled_by_first or pulled
        outstanding.append(submitted - len(results))
        results.append(result)
    assert [i for i, _, _ in results] == list(range(8))
    # batches are pulled as the window frees, not all at once
    assert max(outstanding) <= 3 and pulled_by_first <= 3
    # two tasks compute at once (the cluster has more slots), never three
    events = sorted([(start, 1) for _, start, _ in results] + [(end, -1) for _, _, end in results])
    running = [sum(step for _, step in events[: k + 1]) for k in range(len(events))]
    assert max(running) == 2
