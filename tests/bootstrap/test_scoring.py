"""Scoring candidates: generate and forced modes, aggregation, execution check, best per snippet.

`ScriptedJudge` is a test double for the scorer (a unit test of the selection logic); the
real model is exercised in test_forced_scoring_with_the_shipped_model and in the e2e test.
"""

import json

import pytest

from scoder.bootstrap.scoring import DIGITS, ScoreConfig, pick_best, score_candidates, template_parts
from scoder.models.llm.base import Completion
from scoder.bootstrap.prompts import SCORING_ASPECTS
from scoder.execution.sandbox import SandboxConfig
from scoder.bootstrap.aspects import parse_scores

FAST = SandboxConfig(timeout_s=3.0, memory_mb=256, cpu_s=5)


def judge_answer(scores: dict) -> str:
    block = ",\n".join(f'  "{a}": {scores[a]}' for a in SCORING_ASPECTS)
    return f"[Reason]\nfine\n[Score]\n{{\n{block}\n}}\n[End]"


class ScriptedJudge:
    """Answers each scoring prompt from a table keyed by a marker in the instruction."""

    def __init__(self, answers: dict[str, str], slot_digit: dict[str, int] | None = None):
        self.answers, self.slot_digit, self.calls = answers, slot_digit or {}, 0

    def _marker(self, messages):
        text = messages[0]["content"]
        return next(m for m in {**self.answers, **self.slot_digit} if m in text)

    def generate(self, prompts, params):
        self.calls += len(prompts)
        return [Completion(texts=[self.answers[self._marker(p)]], prompt_tokens=1, completion_tokens=[1]) for p in prompts]

    def fill_choices(self, prompts, parts, choices):
        assert choices == DIGITS and len(parts) == 10
        rows = []
        for p in prompts:
            digit = self.slot_digit[self._marker(p)]
            probs = [0.0] * 10
            probs[digit], probs[min(9, digit + 1)] = 0.5, 0.5
            if digit == 9:
                probs = [0.0] * 9 + [1.0]
            rows.append([probs] * 10)
        return rows


def candidate(snippet, checkpoint, idx, marker, code="def f(x):\n    return x\n", parse_ok=True):
    return {"id": f"{snippet}-{checkpoint}-{idx}", "snippet_id": snippet, "checkpoint": checkpoint, "sample_idx": idx,
            "problem": f"Problem {marker}", "solution": f"```python\n{code}```", "code": code, "raw": "raw " + marker,
            "parse_ok": parse_ok, "reason": None if parse_ok else "truncated"}


@pytest.fixture()
def uniform_weights(tmp_path):
    path = tmp_path / "w.json"
    path.write_text(json.dumps({"weights": {a: 0.1 for a in SCORING_ASPECTS}}))
    return str(path)


def test_template_filled_with_digits_is_a_valid_score_block():
    parts = template_parts("because")
    text = "".join(p + str(i % 10) for i, p in enumerate(parts)) + "\n}\n[End]"
    parsed = parse_scores(text)
    assert parsed.parse_ok and parsed.judge_reason == "because"
    assert [parsed.aspects[a] for a in SCORING_ASPECTS] == list(range(10))


def test_generate_mode_counts_failures_and_keeps_the_best(uniform_weights):
    high = judge_answer({a: 8 for a in SCORING_ASPECTS})
    low = judge_answer({a: 3 for a in SCORING_ASPECTS})
    judge = ScriptedJudge({"HIGH": high, "LOW": low, "BROKEN": "[Reason] ok [Score] {\"Consistency\": 11}", "PROSE": "Looks good!"})
    candidates = [candidate("a", 0, 0, "LOW"), candidate("a", 1, 0, "HIGH"), candidate("a", 1, 1, "BROKEN"),
                  candidate("b", 0, 0, "PROSE"), candidate("b", 0, 1, "LOW"), candidate("c", 0, 0, "HIGH", parse_ok=False)]
    config = ScoreConfig(mode="generate", weights_file=uniform_weights, execution="off")
    scored, best, metrics = score_candidates(judge, candidates, config)
    by_id = {r["id"]: r for r in scored}
    assert by_id["a-1-1"]["score"] is None and by_id["a-1-1"]["score_reason"] == "out_of_range:Consistency"
    assert by_id["b-0-0"]["score"] is None and by_id["b-0-0"]["score_reason"] == "missing_score_block"
    assert by_id["c-0-0"]["score"] is None and by_id["c-0-0"]["score_reason"] == "not_scored:synthesis_unparsed"
    assert by_id["a-1-0"]["score"] == pytest.approx(8.0) and by_id["a-0-0"]["score"] == pytest.approx(3.0)
    assert [r["id"] for r in best] == ["a-1-0", "b-0-1"]
    assert metrics["scored"] == 5 and metrics["score_parse_ok"] == 3 and metrics["not_scored_unparsed"] == 1
    assert metrics["score_failures"] == {"missing_score_block": 1, "out_of_range:Consistency": 1}
    assert metrics["best_share_by_checkpoint"] == {"0": 0.5, "1": 0.5}
    assert metrics["score_by_checkpoint"]["1"]["count"] == 1
    assert judge.calls == 5


def test_aggregation_modes_differ(uniform_weights, tmp_path):
    scores = {a: 5 for a in SCORING_ASPECTS} | {"Composite Score": 9, "Difficulty": 0}
    judge = ScriptedJudge({"X": judge_answer(scores)})
    weights = tmp_path / "skewed.json"
    weights.write_text(json.dumps({"weights": [1.0] + [0.0] * 9}))
    results = {}
    for method, path in (("weighted", str(weights)), ("composite", uniform_weights), ("mean", uniform_weights)):
        config = ScoreConfig(mode="generate", aggregate=method, weights_file=path, execution="off")
        results[method] = score_candidates(judge, [candidate("a", 0, 0, "X")], config)[0][0]["score"]
    assert results == {"weighted": 5.0, "composite": 9.0, "mean": pytest.approx((5 * 8 + 9 + 0) / 10)}


def test_forced_mode_expected_scores_and_unparsed_candidates(uniform_weights):
    judge = ScriptedJudge({}, slot_digit={"GOOD": 7, "MEH": 2})
    candidates = [candidate("a", 0, 0, "MEH"), candidate("a", 1, 0, "GOOD", parse_ok=False)]
    config = ScoreConfig(mode="forced", expected=True, include_unparsed=True, weights_file=uniform_weights, execution="off")
    scored, best, metrics = score_candidates(judge, candidates, config)
    assert scored[0]["aspects"]["Consistency"] == pytest.approx(2.5)  # half on 2, half on 3
    assert scored[1]["score"] == pytest.approx(7.5)
    assert best[0]["id"] == "a-1-0" and metrics["best_unparsed"] == 1
    argmax = score_candidates(judge, candidates, ScoreConfig(mode="forced", expected=False, include_unparsed=True,
                                                             weights_file=uniform_weights, execution="off"))[0]
    assert argmax[0]["aspects"]["Consistency"] == 2.0


def test_execution_filter_and_aspect(uniform_weights):
    judge = ScriptedJudge({}, slot_digit={"RUNS": 4, "CRASHES": 8, "NOCODE": 9})
    candidates = [candidate("a", 0, 0, "RUNS"), candidate("a", 0, 1, "CRASHES", code="raise SystemExit(3)\n"),
                  candidate("b", 0, 0, "NOCODE", code="")]
    config = ScoreConfig(mode="forced", weights_file=uniform_weights, execution="filter", sandbox=FAST)
    scored, best, metrics = score_candidates(judge, candidates, config)
    assert [r["exec_reason"] for r in scored] == ["ok", "error:SystemExit", "no_code"]
    assert [r["id"] for r in best] == ["a-0-0"]  # the higher-scored crashing candidate is filtered out
    assert metrics["exec_ok"] == 1 and metrics["exec_rate"] == pytest.approx(1 / 3)
    config = ScoreConfig(mode="forced", weights_file=uniform_weights, execution="aspect", execution_weight=1.0, sandbox=FAST)
    scored, best, _ = score_candidates(judge, candidates, config)
    assert scored[0]["score"] == pytest.approx(4.0 + 9)  # argmax of the tie 4|5, plus 9 and [r["id"] for r in best] == ["a-0-0", "b-0-0"]


HOSTILE = {
    "infinite_loop": "while True:\n    pass\n",
    "fork_bomb": "import os\nwhile True:\n    os.fork()\n",
    "memory_bomb": "x = []\nwhile True:\n    x.append(bytearray(64 * 1024 * 1024))\n",
    "network": "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=2)\n",
    "delete_outside": "import shutil\nshutil.rmtree('{victim}')\n",
    "write_outside": "open('{victim}/owned.txt', 'w').write('x')\n",
    "os_system": "import os\nos.system('touch {victim}/system.txt')\n",
    "subprocess": "import subprocess\nsubprocess.run(['rm', '-rf', '{victim}'])\n",
    "kill_parent": "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n",
    "env_secret": "import os\nassert os.environ.get('SCODER_TEST_SECRET') is None\nraise SystemExit(os.environ.get('SCODER_TEST_SECRET', 'absent'))\n",
    "ctypes": "import ctypes\nassert ctypes.CDLL(None).system(b'touch {victim}/ctypes.txt') == 0\n",
    "signal_ignore_sleep": "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(60)\n",
}


def test_hostile_candidates_are_contained_and_scoring_finishes(tmp_path, uniform_weights, monkeypatch):
    monkeypatch.setenv("SCODER_TEST_SECRET", "hunter2")
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("precious")
    judge = ScriptedJudge({}, slot_digit={f"H{i}": 9 for i in range(len(HOSTILE))} | {"BENIGN": 1})
    candidates = [candidate(f"s{i}", 0, 0, f"H{i}", code=code.replace("{victim}", str(victim)))
                  for i, code in enumerate(HOSTILE.values())] + [candidate("benign", 0, 0, "BENIGN")]
    config = ScoreConfig(mode="forced", weights_file=uniform_weights, execution="filter", sandbox=FAST)
    scored, best, metrics = score_candidates(judge, candidates, config)
    verdicts = {name: r["exec_reason"] for name, r in zip(HOSTILE, scored)}
    assert all(reason != "ok" for reason in verdicts.values()), verdicts
    assert [r["snippet_id"] for r in best] == ["benign"]
    assert sorted(p.name for p in victim.iterdir()) == ["keep.txt"] and (victim / "keep.txt").read_text() == "precious"
    assert all("hunter2" not in (r.get("exec_stderr_tail") or "") for r in scored)
    assert metrics["candidates"] == len(HOSTILE) + 1 and metrics["exec_ok"] == 1


def test_best_tie_goes_to_the_earlier_checkpoint():
    rows = [{"snippet_id": "a", "checkpoint": 1, "sample_idx": 0, "score": 5.0},
            {"snippet_id": "a", "checkpoint": 0, "sample_idx": 1, "score": 5.0},
            {"snippet_id": "a", "checkpoint": 0, "sample_idx": 0, "score": 5.0}]
    assert pick_best(rows, require_exec_ok=False)[0] is rows[2]


def test_unknown_modes_are_refused(uniform_weights):
    with pytest.raises(ValueError, match="score.mode"):
        score_candidates(ScriptedJudge({}), [], ScoreConfig(mode="vibes", weights_file=uniform_weights))
    with pytest.raises(ValueError, match="score.execution"):
        score_candidates(ScriptedJudge({}), [], ScoreConfig(execution="sometimes", weights_file=uniform_weights))


@pytest.mark.slow
def test_forced_scoring_with_the_shipped_model(tmp_path):
    from scoder.core.cache import ResponseCache
    from scoder.models.llm.base import LLMConfig, load_llm

    cache = ResponseCache(tmp_path / "cache.sqlite")
    llm = load_llm(LLMConfig(model="smollm2", batch_size=2), cache=cache)
    messages = [{"role": "user", "content": "Rate this: [Instruction] add two numbers [Response] def add(a, b): return a + b"}]
    slots = llm.fill_choices([messages], template_parts(), DIGITS)[0]
    assert len(slots) == 10 and all(abs(sum(row) - 1) < 1e-4 for row in slots)
    assert len({tuple(row) for row in slots}) > 1  # each slot has its own distribution
    computed = llm.usage["prompt_tokens"]
    assert llm.fill_choices([messages], template_parts(), DIGITS)[0] == slots  # from the cache
    assert llm.usage["prompt_tokens"] == computed
    with pytest.raises(ValueError, match="one"):
        llm.fill_choices([messages], template_parts(), ["10"])
