"""Fault injection over the real pipeline (micro profile, `tests/micro_profile.py`).

A clean project runs every stage with `dvc repro -s <stage>`, timing when each stage's work
starts (its MLflow run is opened, after imports) and ends (the run is closed, before dvc caches
the outputs). A second project then runs the same stages, but each long stage is first started
and SIGKILLed (dvc and the stage, the whole process group) at three seeded random points
inside its work window, then rerun to completion.
After every kill:
- every output that dvc.lock records has the clean run's hash (DVC never records half of one);
- no process of the killed stage (generated code included) is left running.
At the end:
- every output of the faulted project equals the clean project's, bit for bit (both runs
  start from clean: this is also the reproducibility check of the micro profile);
- no teacher answer that reached the client before a kill was paid for again, and at most
  the requests in flight at each kill were sent twice (counted at the fake endpoint);
- the teacher's API key (from the environment) appears in no file of the project (params,
  dvc.yaml, dvc.lock, data, the DVC cache, metrics, MLflow's store and artifacts) and in
  no log line, and in no MLflow param or tag;
- every metrics file maps to a finished MLflow run tagged with the git commit and dvc.lock hash.
- every run a kill left RUNNING was closed as KILLED by the stage's next attempt (and no other).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fake_openai import FakeOpenAI, answered_tags
from scoder.cli import lock_outputs as cli_lock_outputs
from micro_profile import STAGES, build_micro_model, make_project, project_env

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
# derived, not written out: this file is itself copied into the projects that are searched for it
TEACHER_KEY = "sk-" + hashlib.sha256(b"fault-injection teacher key canary").hexdigest()[:32]
# stages that take minutes in the tiny profile; the others (pool, cost, subset, select@R,
# semantic_dedup, dataset_metrics, report) take seconds
LONG_STAGES = ["categorize", "distill", "train@0", "reference", "dp_features", "sample@1", "score@1", "influence@1",
               "train@1", "synthesize", "scoder_train", "evaluate", "specialists", "specialist_evaluate"]
KILLS_PER_STAGE = 3
WORK_STARTED = "MLflow run "  # scoder.tracking logs it when the stage's run opens
WORK_ENDED = "finished its work; run "  # and this when the run is closed
SEED = 20261124


class StageProcess:
    """`dvc repro -s <stage>` in its own process group, with its output collected."""

    def __init__(self, project: Path, env: dict, stage: str, force: bool = False):
        cmd = [str(BIN / "dvc"), "repro", "-s", *(["-f"] if force else []), stage]
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(cmd, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, start_new_session=True)
        self.lines: list[str] = []
        self.work_started = threading.Event()
        self.work_started_at: float | None = None
        self.work_ended_at: float | None = None
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)
            if WORK_STARTED in line and not self.work_started.is_set():
                self.work_started_at = time.perf_counter()
                self.work_started.set()
            if WORK_ENDED in line and self.work_ended_at is None:
                self.work_ended_at = time.perf_counter()

    def wait(self, timeout: float = 900) -> int:
        code = self.proc.wait(timeout)
        self.reader.join(10)
        return code

    def kill(self) -> bool:
        """SIGKILL dvc and the stage together; False if it had already finished."""
        if self.proc.poll() is not None:
            return False
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.wait()
        return True

    @property
    def output(self) -> str:
        return "".join(self.lines)


def lock_outputs(project: Path) -> dict[str, str]:
    lock_file = project / "dvc.lock"
    return cli_lock_outputs(lock_file) if lock_file.exists() else {}


def compared(outputs: dict[str, str]) -> dict[str, str]:
    """Outputs that must be bit-identical across runs: all but the metrics files, which carry
    wall-clock seconds, and the exported dataset, whose card names the git commit (the clean and
    the faulty project are two repositories)."""
    return {path: md5 for path, md5 in outputs.items() if not path.startswith(("metrics/", "data/export"))}


def leftover_processes(project: Path) -> list[str]:
    out = subprocess.run(["pgrep", "-af", f"{project}|scoder-sandbox-|harness.py"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "pgrep" not in line]


def logged_runs(project: Path, filter_string: str = "") -> list:
    """The MLflow runs in a project's store, in every experiment."""
    import mlflow

    client = mlflow.tracking.MlflowClient(f"sqlite:///{project / 'mlruns.db'}")
    return client.search_runs([e.experiment_id for e in client.search_experiments()], filter_string)


@pytest.fixture(scope="module")
def runs(repo_root, tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    model = build_micro_model(root / "micro-llama")
    report = {"kills": {}, "after_work": {}, "missed": {}, "logs": [], "orphaned": set()}
    with FakeOpenAI(delay_s=0.4) as teacher:
        env = project_env(dict(os.environ), BIN, TEACHER_KEY)
        clean = make_project(repo_root, root / "clean", model, teacher.url)
        windows = {}
        for stage in STAGES:
            run = StageProcess(clean, env, stage)
            code = run.wait()
            report["logs"].append(run.output)
            assert code == 0, f"clean run of {stage} failed:\n{run.output[-4000:]}"
            if stage in LONG_STAGES:
                assert run.work_started_at and run.work_ended_at, f"{stage} never logged its MLflow run"
                windows[stage] = run.work_ended_at - run.work_started_at
        clean_paid = sum(teacher.paid.values())
        teacher.paid.clear()

        faulty = make_project(repo_root, root / "faulty", model, teacher.url)
        rng = random.Random(SEED)
        distill_kills: list[tuple[set[str], dict]] = []  # (answers cached by then, paid counts by then)
        for stage in STAGES:
            if stage in LONG_STAGES:
                report["kills"][stage], report["after_work"][stage], report["missed"][stage] = [], [], 0
                while len(report["kills"][stage]) < KILLS_PER_STAGE:
                    point = rng.uniform(0.05, 0.9) * windows[stage]
                    late = report["missed"][stage] + len(report["after_work"][stage])
                    if late:  # a rerun can be quicker than the clean run (warm caches): aim earlier
                        point *= 0.5 ** late
                    run = StageProcess(faulty, env, stage, force=True)
                    assert run.work_started.wait(600), f"{stage} never started its work:\n{run.output[-3000:]}"
                    time.sleep(max(0.0, point - (time.perf_counter() - run.work_started_at)))
                    if run.kill():
                        # a kill inside the stage's work leaves its run RUNNING; one that lands
                        # after the run ended (while dvc caches the outputs) leaves it FINISHED and
                        # is kept as an extra fault, not counted among the stage's three
                        running = {r.info.run_id for r in logged_runs(faulty, "attributes.status = 'RUNNING'")}
                        orphaned = running - report["orphaned"]
                        report["kills" if orphaned else "after_work"][stage].append(round(point, 2))
                        report["orphaned"] |= orphaned
                    else:
                        report["missed"][stage] += 1
                    # the stages with sub-second work in the micro profile (distill with its answers
                    # cached, dp_features, influence) can need several tries, each aimed earlier
                    assert report["missed"][stage] + len(report["after_work"][stage]) <= 12, \
                        f"{stage} kept finishing its work before the kill point"
                    report["logs"].append(run.output)
                    if stage == "distill":
                        distill_kills.append((answered_tags(faulty / ".cache/scoder/responses.sqlite"), dict(teacher.paid)))
                    # DVC never records a half-written output: whatever the lock holds is the clean run's
                    recorded = compared(lock_outputs(faulty))
                    expected = compared(lock_outputs(clean))
                    assert {p: m for p, m in recorded.items() if expected.get(p) != m} == {}, f"after a kill in {stage}"
                    deadline = time.time() + 15
                    while leftover_processes(faulty) and time.time() < deadline:
                        time.sleep(0.3)
                    assert leftover_processes(faulty) == [], f"processes outlived the kill in {stage}"
            run = StageProcess(faulty, env, stage)
            code = run.wait()
            report["logs"].append(run.output)
            assert code == 0, f"rerun of {stage} after its kills failed:\n{run.output[-4000:]}"
        final = StageProcess(faulty, env, "report")
        final.wait()
        report["logs"].append(final.output)
        report.update(clean=clean, faulty=faulty, paid=dict(teacher.paid), clean_paid=clean_paid,
                      distill_kills=distill_kills, auth=set(teacher.seen_auth), windows=windows)
    return report


def test_every_long_stage_survives_three_kills_with_identical_outputs(runs):
    assert set(runs["kills"]) == set(LONG_STAGES)
    assert all(len(points) == KILLS_PER_STAGE for points in runs["kills"].values())
    clean, faulty = lock_outputs(runs["clean"]), lock_outputs(runs["faulty"])
    assert set(clean) == set(faulty) and len(clean) > 30
    differ = sorted(p for p in compared(clean) if clean[p] != faulty[p])
    assert differ == [], f"outputs that differ from the uninterrupted run: {differ}"
    extra = sum(map(len, runs["after_work"].values()))
    print(f"\nfaults injected and survived: {sum(map(len, runs['kills'].values())) + extra} over {len(LONG_STAGES)} "
          f"stages, {extra} of them after the stage's work ended (while dvc cached its outputs); "
          f"kill points (s into the work window): {runs['kills']}; after the work: {runs['after_work']}; windows: "
          f"{ {s: round(w, 1) for s, w in runs['windows'].items()} }; finished before the point: {runs['missed']}")
    # the main pipeline (experiments/*/dvc.yaml are pipelines of their own, not run here)
    out = subprocess.run([str(BIN / "dvc"), "status", "dvc.yaml"], cwd=runs["faulty"], capture_output=True, text=True).stdout
    assert "up to date" in out


def test_no_teacher_answer_is_paid_twice(runs):
    paid = runs["paid"]
    seeds = len((runs["faulty"] / "data/categorize/seeds.jsonl").read_text().splitlines())
    assert len(paid) == seeds and runs["clean_paid"] == seeds
    assert any(received for received, _ in runs["distill_kills"]), "no answer had been received before the kills"
    # an answer in the client's cache at a kill is never requested again: its paid count stays
    # what it was then (requests in flight at a kill were paid but never received: they repeat)
    for received, paid_then in runs["distill_kills"]:
        for prompt_hash, count in paid.items():
            if prompt_hash[:8] in received:
                assert count == paid_then[prompt_hash], f"answer {prompt_hash[:8]} was received before a kill and paid for again"
    # only requests in flight at a kill (max_concurrency = 2) can have been sent twice
    assert sum(paid.values()) - seeds <= 2 * KILLS_PER_STAGE


def test_the_api_key_appears_in_no_file_log_or_mlflow_record(runs):
    assert runs["auth"] == {f"Bearer {TEACHER_KEY}"}  # the key was used, from the environment
    needle = TEACHER_KEY.encode()
    for project in (runs["clean"], runs["faulty"]):
        assert TEACHER_KEY not in (project / "params.yaml").read_text()
        leaked = [str(p.relative_to(project)) for p in project.rglob("*")
                  if p.is_file() and not p.is_symlink() and needle in p.read_bytes()]
        assert leaked == []
        runs_logged = logged_runs(project)
        assert len(runs_logged) >= len(STAGES) - 1  # every stage but report (no metrics, no run) opens one
        for run in runs_logged:
            assert TEACHER_KEY not in json.dumps({**run.data.params, **run.data.tags})
    assert all(TEACHER_KEY not in log for log in runs["logs"])


def test_every_metrics_file_maps_to_a_tagged_mlflow_run(runs):
    from scoder.core.tracking import provenance

    for project in (runs["clean"], runs["faulty"]):
        cwd = os.getcwd()
        os.chdir(project)
        try:
            rows = provenance("metrics", f"sqlite:///{project / 'mlruns.db'}")
        finally:
            os.chdir(cwd)
        assert len(rows) >= len(STAGES)
        unmapped = [r["metrics_file"] for r in rows if not r["run_id"]]
        assert unmapped == []
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True).stdout.strip()
        # the first stage of a clean project starts before any dvc.lock exists ("none")
        assert all(r["git_commit"] == commit and r["dvc_lock_hash"] for r in rows)
        assert sum(len(r["dvc_lock_hash"]) == 16 for r in rows) >= len(rows) - 3
    # every run a kill left RUNNING was closed as KILLED by the stage's next attempt, and no
    # other run was
    logged = logged_runs(runs["faulty"])
    assert [r.info.run_id for r in logged if r.info.status == "RUNNING"] == []
    assert len(runs["orphaned"]) == KILLS_PER_STAGE * len(LONG_STAGES)
    assert {r.info.run_id for r in logged if r.info.status == "KILLED"} == runs["orphaned"]
