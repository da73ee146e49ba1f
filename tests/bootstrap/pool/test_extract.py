import textwrap

import pytest

from scoder.bootstrap.pool.build import decode_source, process_source
from scoder.bootstrap.pool.config import PoolConfig
from scoder.bootstrap.pool.extract import extract_functions, parse_module

SOURCE = textwrap.dedent(
    '''
    import math
    import json as j
    from collections import OrderedDict
    from typing import List

    square = lambda x: x * x


    def top(a, b):
        """Add two numbers."""
        return math.floor(a + b)


    def undocumented(a):
        return a


    @staticmethod
    @some.decorator(arg=1)
    def decorated(x):
        """Decorated function."""
        return x


    async def fetch(url):
        """Fetch something asynchronously."""
        return url


    class Outer:
        """A class."""

        def method(self, value):
            """Method doc."""
            return j.dumps(value)

        @classmethod
        def make(cls):
            """No arguments besides cls."""
            return cls()

        class Inner:
            def deep(self, k):
                """Method of a nested class."""
                return k


    def parent(n):
        """Has a nested helper."""
        def helper(m):
            """Nested helper is not extracted on its own."""
            return m * 2
        return helper(n)


    def grüße(name):
        """Unicode identifiers and text: ünïcødé ✓."""
        return "Grüße, " + name
    '''
)


def by_name(functions):
    return {f.qualname: f for f in functions}


def test_extracts_documented_functions_and_methods_only():
    found = by_name(extract_functions(SOURCE))
    assert set(found) == {
        "top", "decorated", "fetch", "Outer.method", "Outer.make", "Outer.Inner.deep", "parent", "grüße",
    }
    assert "undocumented" not in found and "helper" not in found and "square" not in found


def test_decorators_are_part_of_the_snippet():
    fn = by_name(extract_functions(SOURCE))["decorated"]
    assert fn.code.startswith("@staticmethod\n@some.decorator(arg=1)\ndef decorated(x):")


def test_methods_are_dedented_and_count_args_without_self():
    found = by_name(extract_functions(SOURCE))
    method = found["Outer.method"]
    assert method.code.startswith("def method(self, value):")
    assert method.is_method and method.n_args == 1
    assert found["Outer.make"].n_args == 0
    assert found["Outer.Inner.deep"].code.startswith("def deep(self, k):")


def test_async_and_nested():
    found = by_name(extract_functions(SOURCE))
    assert found["fetch"].is_async
    assert "def helper(m):" in found["parent"].code


def test_dependency_completion_keeps_only_used_imports():
    found = by_name(extract_functions(SOURCE))
    assert found["top"].imports == ["import math"]
    assert found["Outer.method"].imports == ["import json as j"]
    assert found["Outer.method"].imported_modules == ["json"]
    assert found["decorated"].imports == []


def test_unicode_source():
    fn = by_name(extract_functions(SOURCE))["grüße"]
    assert "ünïcødé ✓" in fn.docstring


def test_syntax_error_raises_with_file_name():
    with pytest.raises(SyntaxError):
        extract_functions("def broken(:\n    pass\n", "broken.py")


def test_pathologically_nested_code_is_a_syntax_error_not_a_crash():
    with pytest.raises(SyntaxError):
        parse_module("x = " + "(" * 100_000 + ")" * 100_000, "deep.py")


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"\x00\x01\x02binary", "binary"),
        ("def f(x):\n    return 'caf\u00e9'\n".encode("latin-1"), "non_utf8"),
        (b"x = 1\n" * 10, None),
        (b"a" * 2000, "too_large"),
    ],
)
def test_decode_source(data, reason):
    text, got = decode_source(data, max_bytes=1000)
    assert got == reason
    assert (text is None) == (reason is not None)


def test_process_source_counts_syntax_errors_per_file():
    outcome = process_source("bad.py", "def f(:\n", PoolConfig())
    assert outcome.skip_reason == "syntax_error" and outcome.snippets == []
