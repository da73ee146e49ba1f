"""The execution check: does a generated program run, and do its own assertions hold?

The verdict is the parent's. Before anything runs, the program is parsed here and cut into
steps: runs of statements, and its top-level `assert`s (also those directly under an
`if __name__ == "__main__":`), each assertion's comparison split into operands. The
isolated harness (`scoder.execution.harness`) executes the statements and evaluates the
operands; it reports, step by step, `ok` or the exception's type, and the operands' values as
plain data. This process then compares the operands itself (literal operands taken from the
source, never from the report). The program passes when every step reported `ok`, every
assertion held and the harness finished; its exit status, atexit handlers, a replaced
sys.exit, an early `os._exit(0)` or an object whose `__eq__` always says True change nothing.

What this cannot rule out: a program that deliberately writes the harness' report itself
can claim its *own* assertions held, which is no stronger than not writing them. Benchmark
verdicts (`scoder.execution.judge`) do not have that gap: their expected outputs never enter
the sandbox.
"""

from __future__ import annotations

import ast
import json
import operator
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from scoder.execution import harness
from scoder.execution.isolation import SandboxConfig, SandboxUnavailable, isolation_level, run_isolated  # noqa: F401

HARNESS = Path(harness.__file__)

_OPERATORS = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
              ast.Gt: operator.gt, ast.GtE: operator.ge, ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
              ast.Is: operator.is_, ast.IsNot: operator.is_not}
_NO_LITERAL = object()
_SYMBOLS = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.In: "in",
            ast.NotIn: "not in"}


class _PlainComparisons(ast.NodeTransformer):
    """Inside an assertion, every comparison (but identity) becomes the harness'
    `__scoder_compare__(op, a, b)`, which compares plain copies: `assert bool(x == 5)` or
    `assert all([x == 5])` cannot be won by an object whose `__eq__` lies."""

    def visit_Compare(self, node):
        self.generic_visit(node)
        if any(type(op) not in _SYMBOLS for op in node.ops):
            return node
        operands = [node.left, *node.comparators]
        calls = [ast.Call(ast.Name("__scoder_compare__", ast.Load()), [ast.Constant(_SYMBOLS[type(op)]), a, b], [])
                 for op, a, b in zip(node.ops, operands, operands[1:])]
        # a chain evaluates a middle operand twice here; acceptable in an assertion
        return calls[0] if len(calls) == 1 else ast.BoolOp(ast.And(), calls)


def _plain_source(node: ast.expr) -> str:
    return ast.unparse(ast.fix_missing_locations(_PlainComparisons().visit(node)))


@dataclass
class ExecResult:
    exec_ok: bool
    reason: str  # ok | syntax_error | error:<type> | check_failed:<line> | check_error:<line> | timeout | output_limit | incomplete | protocol
    returncode: int | None
    timed_out: bool
    seconds: float
    stdout: str
    stderr: str
    isolation: str  # bwrap | unshare | none

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Check:
    line: int
    operands: list[str]  # sources, evaluated in the sandbox
    literals: list  # the operands' values where they are literals (_NO_LITERAL otherwise)
    ops: list  # ast comparison operators between operands; empty: the single operand must be truthy
    negate: bool


def _is_main_guard(node: ast.stmt) -> bool:
    return (isinstance(node, ast.If) and not node.orelse and isinstance(node.test, ast.Compare)
            and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__" and len(node.test.ops) == 1
            and isinstance(node.test.ops[0], ast.Eq) and isinstance(node.test.comparators[0], ast.Constant)
            and node.test.comparators[0].value == "__main__")


def _literal(node: ast.expr):
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _NO_LITERAL


def _check(node: ast.Assert) -> Check:
    test, negate = node.test, False
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        test, negate = test.operand, True
    if isinstance(test, ast.Compare) and all(type(op) in _SYMBOLS for op in test.ops):
        nodes = [test.left, *test.comparators]
        return Check(node.lineno, [_plain_source(n) for n in nodes], [_literal(n) for n in nodes], list(test.ops), negate)
    # identity (`is`) cannot be overridden, but it does not survive the crossing either: the
    # whole expression is evaluated inside and must come back as the bool True
    return Check(node.lineno, [_plain_source(test)], [_literal(test)], [], negate)


def program_steps(code: str) -> list:
    """The program as steps: str (statements to execute) or Check. Raises SyntaxError."""
    compile(code, "<candidate>", "exec", dont_inherit=True)  # Python's own errors (a misplaced __future__, ...)
    module = ast.parse(code)
    future = []
    for n in module.body[(1 if ast.get_docstring(module) is not None else 0):]:
        if not (isinstance(n, ast.ImportFrom) and n.module == "__future__"):
            break
        future.append(n)
    preamble = "".join(ast.unparse(n) + "\n" for n in future)
    steps: list = []
    pending: list[ast.stmt] = []

    def flush() -> None:
        if pending:
            steps.append(preamble + ast.unparse(ast.Module(body=list(pending), type_ignores=[])) + "\n")
            pending.clear()

    def walk(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Assert):
                flush()
                steps.append(_check(node))
            elif _is_main_guard(node):
                walk(node.body)
            elif node not in future:
                pending.append(node)

    walk(module.body)
    flush()
    return steps


def _holds(check: Check, values: list) -> bool:
    if check.ops:
        result = all(_OPERATORS[type(op)](a, b) for op, a, b in zip(check.ops, values, values[1:]))
    else:
        (value,) = values
        if isinstance(value, (harness.Opaque, harness.Digest)):
            return False  # an object whose truth only its own __bool__ knows
        result = bool(value)
    if not isinstance(result, bool):  # numpy arrays and the like: Python's assert would raise
        result = bool(result)
    return result != check.negate


def judge_program(steps: list, token: str, lines: list[bytes]) -> tuple[str | None, bool]:
    """(reason, complete): the first reason the report shows the program failing (None: no
    failure seen), and whether the report is complete (every step, then done)."""
    expected = 0
    for raw in lines:
        try:
            event = json.loads(raw)
        except (ValueError, RecursionError):
            return "protocol", False
        if not isinstance(event, list) or len(event) < 2 or event[0] != token:
            return "protocol", False
        kind = event[1]
        if kind == "done":
            return (None, True) if expected == len(steps) else ("incomplete", False)
        if len(event) < 4 or event[2] != expected or expected >= len(steps):
            return "protocol", False
        step = steps[expected]
        if kind == "step" and isinstance(step, str):
            if event[3] == "exit":  # SystemExit(0): a clean end, unless assertions were still to come
                later = steps[expected + 1:]
                return ("exited_before_checks", False) if any(isinstance(s, Check) for s in later) else (None, True)
            if event[3] != "ok":
                return f"error:{harness.clean_name(event[4] if len(event) > 4 else '?')}", False
        elif kind == "check" and isinstance(step, Check):
            try:
                values = []
                for reported, literal in zip(event[3], step.literals, strict=True):
                    if reported[0] != "value":
                        return f"check_error:{step.line}", False
                    # a literal's value comes from the source, not from the report
                    values.append(harness.decode(reported[1]) if literal is _NO_LITERAL else literal)
                if not _holds(step, values):
                    return f"check_failed:{step.line}", False
            except Exception:  # noqa: BLE001 - malformed or incomparable values fail the check
                return f"check_failed:{step.line}", False
        else:
            return "protocol", False
        expected += 1
    return None, False


def _docstring(code: str) -> str | None:
    try:
        return ast.get_docstring(ast.parse(code), clean=False)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def run_untrusted(code: str, config: SandboxConfig | None = None) -> ExecResult:
    """Run a generated program contained and judge it here (see the module docstring)."""
    config = config or SandboxConfig()
    level = isolation_level(config)
    try:
        steps = program_steps(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
        return ExecResult(False, "syntax_error", None, False, 0.0, "", f"{type(error).__name__}: {error}"[-2000:], level)
    token = secrets.token_hex(16)
    job = {"mode": "program", "token": token, "source": code, "doc": _docstring(code),
           "steps": [{"kind": "code", "source": s} if isinstance(s, str) else {"kind": "check", "operands": s.operands}
                     for s in steps]}
    done = run_isolated(HARNESS, job, config)
    reason, complete = judge_program(steps, token, done.lines)
    if reason is None:
        if done.output_exceeded:
            reason = "output_limit"
        elif done.timed_out:
            reason = "timeout"
        elif not complete:
            reason = "incomplete"
    return ExecResult(exec_ok=reason is None and complete, reason=reason or "ok", returncode=done.returncode,
                      timed_out=done.timed_out, seconds=done.seconds,
                      stdout=done.stdout.decode("utf-8", "replace")[-2000:],
                      stderr=done.stderr.decode("utf-8", "replace")[-2000:], isolation=done.isolation)
