"""The fast extractor (pool/prescan.py) against the reference (one ast.parse per file).

Every case runs both and compares everything they hand on: the extracted functions field by
field (incl. docstring, lineno, end_lineno, imports, n_args), each one's filter verdict, and
the per-file outcome (snippets, signatures, rejection counts, skip reason). Most cases also
assert that the fast path handled the file itself rather than falling back to the reference.
"""

from __future__ import annotations

import ast
import textwrap
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from datasketch import MinHash

from scoder.bootstrap.pool import prescan
from scoder.bootstrap.pool.build import build_pool, process_source
from scoder.bootstrap.pool.config import DecontamConfig, FilterConfig, PoolConfig
from scoder.bootstrap.pool.dedup import MINHASH_SCHEME, MINHASH_SEED, crc32_hash, shingles, signature
from scoder.bootstrap.pool.extract import _inner_import_modules, _used_names, extract_functions, parse_module
from scoder.bootstrap.pool.filters import FunctionFilter, is_standalone, returns_value
from scoder.bootstrap.pool.prescan import extract_fast
from scoder.bootstrap.pool.sources import list_python_files

FAST, AST = PoolConfig(extractor="fast"), PoolConfig(extractor="ast")
FILTER = FunctionFilter(FilterConfig())


def record(fn) -> tuple:
    standalone = is_standalone(fn.code) if fn.standalone is None else fn.standalone
    return (fn.qualname, fn.lineno, fn.end_lineno, fn.code, fn.docstring, fn.imports, fn.imported_modules,
            fn.is_method, fn.is_async, fn.n_args, FILTER.first_rejection(fn), standalone if fn.is_method else None,
            returns_value(fn.node))


def reference(source: str):
    try:
        return [record(fn) for fn in extract_functions(source, "case.py", parse_module(source, "case.py"))]
    except SyntaxError:
        return "syntax_error"


def outcome(source: str, config: PoolConfig) -> tuple:
    out = process_source("case.py", source, config)
    return (out.skip_reason, out.functions_found, dict(out.rejected), out.snippets,
            [sig.tolist() for sig in out.signatures])


def check(source: str, fast: bool = True, whole: frozenset = frozenset()) -> list:
    """Assert the fast path equals the reference on `source`; `fast`: that it did not fall back
    to the reference, `whole`: why it parsed statements whole instead of function by function."""
    expected = reference(source)
    reasons: Counter = Counter()
    got = extract_fast(source, "case.py", reasons)
    if got is None:
        assert not fast, f"fell back to the reference: {dict(reasons)}"
    else:
        assert {r.removeprefix("(one statement parsed whole: ").removesuffix(")") for r in reasons} == whole
        assert expected != "syntax_error", "the fast path accepted a file the reference rejects"
        fast_records = [record(fn) for fn in got]
        for fn in got:  # the extractor's own is_standalone verdict must be the filter's
            assert fn.standalone is None or fn.standalone == is_standalone(fn.code)
        assert fast_records == expected
    assert outcome(source, FAST) == outcome(source, AST)
    return expected


def src(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


CASES = {
    "plain": '''
        import math

        def area(r, scale):
            """Area of a circle."""
            return math.pi * r * r * scale
        ''',
    "unicode identifiers and NFKC": '''
        import json as jsön

        def grüße(name, ﬁle):
            """Grüße ✓ — ünïcødé."""
            return jsön.dumps(name) + ﬁle

        class Ωmega:
            def ﬁx(self, x):
                """NFKC: the name is 'fix'."""
                return x
        ''',
    "def inside strings and comments": '''
        TEMPLATE = """
        def fake(x):
            """ + '"""Not a real docstring."""' + """
            return x
        """
        RAW = \'\'\'
        def also_fake(a, b):
            "no"
            return a
        \'\'\'
        # def commented(x):
        #     """Nope."""
        #     return x

        def real(x, y):
            """Real one."""
            text = """
        def inside(z):
            'still a string'
            return z
        """
            return text * x + y
        ''',
    "docstring-looking strings that are not first": '''
        def f(x, y):
            x = 1
            """Not a docstring."""
            return x + y

        def g(x):
            pass; "not first either"
            return x

        def h(a, b):
            # a comment first is fine
            """Docstring after a comment."""
            return a * b
        ''',
    "docstring kinds": '''
        def fstring(x):
            f"""Not a docstring {x}."""
            return x

        def bytes_doc(x):
            b"""Not a docstring."""
            return x

        def concatenated(x, y):
            "Implicitly " "concatenated."
            return x, y

        def parenthesized(x, y):
            ("Parenthesized "
             # with a comment in between
             "docstring.")
            return x + y

        def mixed(x, y):
            "plain " f"and f-string"
            return x

        def empty(x, y):
            """   """
            return x

        def raw(x, y):
            r"""Raw \\d+ docstring."""
            return x

        def uprefix(x, y):
            u"""Unicode prefix."""
            return x

        def one_line(x, y): "On the def line."; return x + y

        def folded(x, y):
            "a" + "b"
            return x

        def continued(x, y): \\
            """After a backslash, so on the def's line."""; return x

        def header_continued(x, \\
                y):
            """Header continued with a backslash."""
            return x
        ''',
    "decorators": '''
        import functools, unittest

        @functools.lru_cache(maxsize=None)
        def cached(x, y):
            """Single-line decorator with arguments."""
            return x + y

        @unittest.skipIf(
            1 == 2,
            "a reason with @ and ) inside",
        )
        def multiline(x, y):
            """Decorator over several lines, with a string."""
            return x * y

        @staticmethod

        # a comment between decorators
        @functools.wraps(cached)
        def spaced(x):
            """Blank line and comment between decorators."""
            return x

        def at_in_body(a, b):
            """Mail me@example.com, matrix a @ b."""
            return a @ b

        @functools.cache
        def after_at(a, b):
            """Follows a function with @ in its body."""
            return a

        class K:
            @property
            def p(self):
                """Property, no arguments."""
                return 1

            @p.setter
            def p(self, value):
                """Setter."""
                return value

            @staticmethod
            def s(a, b):
                """staticmethod keeps its first argument."""
                return a + b

            @classmethod
            def c(cls, a):
                """classmethod drops cls."""
                return cls(a)

            @unittest.skipUnless(True, "why")  # comment with a "quote"
            def q(self, a):
                """Decorator with quotes and a comment."""
                return a
        ''',
    "decorator-looking lines in strings": '''
        X = """
        @not_a_decorator
        """
        def f(x, y):
            """The line above the def is a string's end."""
            return x

        Y = (1,
        2)
        @real
        def g(x, y):
            """Decorated after a bracket continuation."""
            return y

        Z = 1 + \\
        2
        @real
        def h(x, y):
            """Decorated after a backslash continuation."""
            return y

        W = """
        @fake_decorator  # """
        def i(x, y):
            """The line above ends a string, and a comment hides its quotes."""
            return x

        V = a \\
        @ b
        def j(x, y):
            """The line above continues a matrix product."""
            return x

        U = (a
        @ b)
        def k(x, y):
            """The line above closes a bracket."""
            return x
        ''',
    "async": '''
        import asyncio

        async def fetch(url, timeout):
            """Fetch."""
            await asyncio.sleep(timeout)
            return url

        class Client:
            async def get(self, key):
                """Async method."""
                return await self.fetch(key)

            async  def spaced(self, key):
                """Two spaces after async."""
                return key
        ''',
    "class bodies with semicolons and one-liners": '''
        class A: x = 1; y = 2

        class B:
            a = 1; b = 2
            def m(self, x):
                """Doc"""; return x
            def n(self, x): "Doc."; return x * 2

        class C(A, B, metaclass=type): pass

        class D(
            A,  # comment in the bases
            B,
        ):
            """Class docstring."""

            def m(self, value):
                """Method of a class with a multi-line header."""
                return value
        ''',
    "lambda": '''
        square = lambda x: x * x
        doc = lambda x: "not a docstring"

        def uses_lambda(items, key=lambda item: (item, ":")):
            """Lambda with a colon in a default."""
            return sorted(items, key=key)
        ''',
    "headers": '''
        from typing import Dict, List

        def annotated(a: int, b: "str" = "x:y") -> Dict[str, List[int]]:
            """Annotated, with a string default holding a colon."""
            return {b: [a]}

        def commented(a,  # the first
                      b):  # the second
            """Comments in the signature."""
            return a, b

        def star(*args, key=None, **kwargs):
            """Star arguments."""
            return args, key, kwargs

        def posonly(a, /, b, *, c):
            """Positional-only and keyword-only."""
            return a + b + c

        def nested_parens(a=((1, 2), (3, (4,))), b={"k": (5,)}):
            """Nested brackets in defaults."""
            return a, b

        def returns_tuple(a, b) -> (int, int):
            """Parenthesized return annotation."""
            return a, b

        def multiline(
            a,
            b,
        ) -> int:
            """Signature over several lines."""
            return a + b
        ''',
    "guarded definitions at module level": '''
        import sys

        if sys.platform == "win32":
            def plat(a, b):
                """Windows."""
                return a
        else:
            def plat(a, b):
                """Elsewhere."""
                return b

        try:
            import json
        except ImportError:
            json = None

            def dumps(obj, indent):
                """Fallback."""
                return repr(obj)
        else:
            def dumps(obj, indent):
                """Else branch."""
                return json.dumps(obj, indent=indent)
        finally:
            def final(x, y):
                """Finally branch."""
                return x

        with open(__file__) as handle:
            def within(x, y):
                """In a with block."""
                return handle

        for _i in range(1):
            def looped(x, y):
                """In a for loop."""
                return x
        else:
            def loop_else(x, y):
                """For-else."""
                return y

        while False:
            def never(x, y):
                """In a while loop."""
                return x

        class Guarded:
            if True:
                def inner(self, x):
                    """Guarded method."""
                    return x

        def top(x, y):
            """Unindented."""
            return json.dumps(x) if json else y

        if __name__ == "__main__":
            import os

            def main(argv, env):
                """After the head."""
                return os.path.join(argv, env)
        ''',
    "match and async blocks are not walked": '''
        match command:
            case "go":
                def go(x, y):
                    """Inside a match case: not extracted."""
                    return x

        async with lock:
            def locked(x, y):
                """Inside async with: not extracted."""
                return x

        async for item in stream:
            def streamed(x, y):
                """Inside async for: not extracted."""
                return y

        def after(x, y):
            """After them."""
            return x

        match other:
            case _:
                def late(x, y):
                    """Not extracted either."""
                    return x

        class M:
            match value:
                case 1:
                    def m(self, x):
                        """Match in a class body."""
                        return x
        ''',
    "try handler order": '''
        try:
            def first(x, y):
                """Body."""
                return x
        except ValueError:
            def handler(x, y):
                """Handler: walked last."""
                return x
        else:
            def orelse(x, y):
                """Else."""
                return x
        finally:
            def fin(x, y):
                """Finally."""
                return x
        ''',
    "imports": '''
        """Module docstring."""
        from __future__ import annotations
        import os.path
        import collections.abc as cabc
        from . import sibling
        from .pkg import thing as other
        from json import *
        if True:
            from re import compile as rc
        with ctx:
            import csv
        for _ in ():
            import zlib

        def uses(a, b):
            """Uses module imports, incl. one in an if."""
            return os.path.join(a, b), cabc.Mapping, sibling, other, rc, csv, zlib

        def own(a, b):
            """Imports inside the function."""
            import os
            from xml import dom
            import itertools
            return os.sep, dom, itertools

        def later_user(a, b):
            """Uses a name imported further down."""
            return heapq.heappush(a, b)

        import heapq

        def after(a, b):
            """After a later import."""
            return heapq.nsmallest(a, b)

        class Holder:
            import bisect

            def meth(self, a):
                """bisect is a class attribute here, not a module import."""
                return bisect.bisect(a, 1)

        def lazy(a, b):
            """A function-level import of a module-level name."""
            import heapq
            return heapq.merge(a, b)

        def mention(a, b):
            """Says 'import heapq' in its docstring."""
            return heapq, a, b
        ''',
    "function-level imports": '''
        import heapq

        def user(a, b):
            """Uses heapq."""
            return heapq.merge(a, b)

        def lazy(a):
            import heapq
            return heapq.heapify(a)

        class C:
            def m(self):
                import heapq as hq
                return hq
        ''',
    "later import in parentheses": '''
        def first(a, b):
            """Uses a name imported below, after a comment holding parentheses."""
            return bisect_left(a, b)

        from bisect import (
            insort,  # a comment (with parentheses)
            bisect_left,
        )
        ''',
    "later import continued by a backslash": '''
        def second(a, b):
            """Uses a name imported below, on a continuation line."""
            return insort(a, b)

        from bisect import \\
            insort
        ''',
    "later import of a name spelt with a ligature": '''
        def third(a, b):
            """Uses 'file', imported below as 'ﬁle' (NFKC makes it 'file')."""
            return file(a, b)

        from os import ﬁle
        ''',
    "guarded function using a later import": '''
        if True:
            def guarded(a, b):
                """In the head, using a name imported after the head."""
                return heapq.merge(a, b)

        def top(a, b):
            """Unindented."""
            return a

        from heapq import merge as heapq
        ''',
    "banned imports and markers": '''
        import os
        import subprocess as sp

        def run(cmd, cwd):
            """Runs a command."""
            return sp.run(cmd, cwd=cwd)

        def path(a, b):
            """Joins."""
            return os.path.join(a, b)

        def todo(a, b):
            """TODO: finish."""
            return a

        def short(a):
            """Short."""
            return a
        ''',
    "methods whose dedented code does not compile": '''
        class Odd:
            def lower_string(self, x):
                """The string below has a line at column 0."""
                text = """
        unindented
        """
                return text + x

            def lower_docstring(self, x):
                """Docstring with a line
        at column 0."""
                return x

            def fine(self, x):
                """A normal method after them."""
                return x
        ''',
    "multi-line docstrings of methods": '''
        class Docs:
            def spaces(self, x):
                """Summary.

                    Indented more.
                          
                Whitespace-only line above, more than the margin.
                """
                return x

            def tabs(self, x):
                """Summary.

                Tab\tinside, and a trailing backslash \\
                continued line.
                """
                return x

            def escapes(self, x):
                """Escapes: \\n \\t \\x41 \\N{BULLET} ✓."""
                return x

            def single_quoted_continued(self, x):
                "Single-quoted \\
                continued across lines."
                return x
        ''',
    "end lines and trailing comments": '''
        class T:
            def a(self, x):
                """Followed by a comment at column 0."""
                return x
        # a comment at column 0 between methods

            def b(self, x):
                """Followed by deeper comments."""
                return x
                # trailing, deeper

            def c(self, x):
                """Last, followed by blank lines."""
                return x



        def d(x, y):
            """Ends the file without a newline."""
            return x''',
    "false cuts inside brackets and strings": '''
        def brackets(x, y):
            """A call whose arguments sit at column 0."""
            return max(
        x,
        y)

        def strings(x, y):
            """A string with lines at column 0."""
            s = """
        x = 1
        def fake(q):
            return q
        """ # """
            return s, x, y

        def continued(x, y):
            """A backslash continuation to column 0."""
            z = x + \\
        y
            return z
        ''',
    "nested classes and qualnames": '''
        class Outer:
            """Outer."""
            class Inner:
                class Deepest:
                    def deep(self, k):
                        """Deep method."""
                        return k

                def mid(self, k):
                    """Middle."""
                    return k

            def outer(self, k):
                """Outer method after a nested class."""
                return k

        def parent(n, m):
            """Nested def and class are part of it, not extracted."""
            def helper(m):
                """Nested helper."""
                return m * 2

            class Local:
                def method(self, a):
                    """A method of a class inside a function."""
                    return a
            return helper(n) + m
        ''',
    "very deep but valid nesting": "".join(
        "    " * i + f"class C{i}:\n" for i in range(40)
    ) + "    " * 40 + 'def leaf(self, x):\n' + "    " * 41 + '"""Deep leaf."""\n' + "    " * 41 + "return x\n"
    + "\n".join("    " * i + "if x:" for i in range(1, 60)).join(["def deep_if(x, y):\n    \"\"\"Nested ifs.\"\"\"\n", "\n" + "    " * 60 + "return y\n"]),
    "long expression": "def f(x, y):\n    \"\"\"Long.\"\"\"\n    return " + " + ".join(["x"] * 400) + "\n",
    "empty and comment-only": "# only a comment\n\n",
    "no functions": "X = 1\nY = [i for i in range(3)]\nclass A:\n    z = (lambda: 0)\n",
}


# the cases whose fast path parses some statements whole, and why
WHOLE = {
    "class bodies with semicolons and one-liners": {"class header"},  # a comment in the bases
    "guarded definitions at module level": {"guarded definition", "method inside a compound statement of a class body"},
    "match and async blocks are not walked": {"guarded definition", "method inside a compound statement of a class body"},
    "imports": {"an import that may bind a used name"},  # `import heapq` after functions using it
    "later import in parentheses": {"an import that may bind a used name"},
    "later import continued by a backslash": {"an import that may bind a used name"},
    "later import of a name spelt with a ligature": {"an import that may bind a used name"},
    "guarded function using a later import": {"an import that may bind a used name"},
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_fast_path_matches_reference(name):
    check(src(CASES[name]), whole=frozenset(WHOLE.get(name, ())))


@pytest.mark.parametrize("name, source", [
    ("crlf", "def f(x, y):\r\n    \"\"\"CRLF.\"\"\"\r\n    return x\r\n"),
    ("lone cr", "def f(x, y):\r    \"\"\"CR.\"\"\"\r    return x\r"),
    ("form feed", "\x0c\ndef f(x, y):\n    \"\"\"After a form feed.\"\"\"\n    return x\n"),
    ("form feed in a docstring", "def f(x, y):\n    \"\"\"Page\x0cbreak.\"\"\"\n    return x\n"),
    ("u2028 in a string", "def f(x, y):\n    \"\"\"Line\u2028separator.\"\"\"\n    return x\n"),
    ("bom", "\ufeffdef f(x, y):\n    \"\"\"BOM.\"\"\"\n    return x\n"),
    ("tabs", "class A:\n\tdef f(self, x):\n\t\t\"\"\"Tabs.\"\"\"\n\t\treturn x\n"),
    ("tab in a docstring line", "class A:\n    def f(self, x):\n        \"\"\"A\n\tb.\"\"\"\n        return x\n"),
    ("syntax error late", "def f(x, y):\n    \"\"\"Fine.\"\"\"\n    return x\n" * 50 + "def broken(:\n    pass\n"),
    ("syntax error in an undocumented body", "def f(x, y):\n    \"\"\"Fine.\"\"\"\n    return x\n\ndef g():\n    return )\n"),
    ("unterminated string at the end", "def f(x, y):\n    \"\"\"Fine.\"\"\"\n    return x\nS = '''never closed\n"),
    ("symbol-table-only errors", "def f(a, a):\n    \"\"\"Duplicate argument: ast accepts it.\"\"\"\n    return a\nnonlocal q\n"),
    ("null byte", "def f(x, y):\n    \"\"\"Nul.\"\"\"\n    return '\x00'\n"),
    # the line of only a backslash gives the def its indentation: inside the match, not walked
    ("blank line continued", "match x:\n    case 1:\n        \\\ndef f(a, b):\n            'Doc.'\n            return a\n"),
    ("blank line continued onto a decorator", "class A:\n    \\\n@staticmethod\n    def f(a, b):\n        'Doc.'\n        return a\n"),
])
def test_cases_the_fast_path_leaves_to_the_reference(name, source):
    assert extract_fast(source, "case.py") is None
    check(source, fast=False)


DOCUMENTED = 'def f(a, b):\n    """Documented."""\n    return a + b\n'


def deep(n: int, keywords: int = 0) -> str:
    """An expression n nodes deep; `keywords` levels of g(k=...), nodes for ast but not for the
    symbol table, widen the gap between their recursion limits."""
    return "g(k=" * keywords + "+".join(["a"] * (n - keywords)) + ")" * keywords


@pytest.mark.parametrize("place", ["module level", "undocumented function", "documented function"])
@pytest.mark.parametrize("keywords", [0, 199])
def test_recursion_limit_boundary(place, keywords):
    """Around the depth where ast.parse's conversion raises RecursionError (the reference then
    skips the file as syntax_error) the outcome must not change: the symbol table counts fewer
    nodes and accepts deeper code, so the fast path runs it with less headroom."""
    seen = set()
    for n in range(2300, 3200, 20):
        if place == "module level":
            source = DOCUMENTED + f"X = {deep(n, keywords)}\n"
        elif place == "undocumented function":
            source = DOCUMENTED + f"def g(a):\n    return {deep(n, keywords)}\n"
        else:
            source = f'def g(a, b):\n    """Deep."""\n    return {deep(n, keywords)}\n'
        expected = outcome(source, AST)
        assert outcome(source, FAST) == expected, n
        seen.add(expected[0])
    assert seen == {None, "syntax_error"}  # the range spans the boundary


def test_facts_match_the_reference_walks():
    source = src(CASES["imports"]) + src(CASES["headers"]) + src(CASES["nested classes and qualnames"])
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            assert prescan._facts(node) == (_used_names(node), _inner_import_modules(node))


def test_returns_value_matches_the_iter_child_nodes_walk():
    def walked(func):  # returns_value as it was, with ast.iter_child_nodes
        stack = list(ast.iter_child_nodes(func))
        while stack:
            node = stack.pop()
            if isinstance(node, ast.Return):
                value = node.value
                if value is not None and not (isinstance(value, ast.Constant) and value.value is None):
                    return True
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
                continue
            stack.extend(ast.iter_child_nodes(node))
        return False

    sources = [src(t) for t in CASES.values()] + [path.read_text("utf-8") for path in stdlib_slice(30)]
    checked = 0
    for text in sources:
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError, RecursionError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef, ast.Module)):
                assert returns_value(node) == walked(node)
                checked += 1
    assert checked > 500


def test_logical_starts():
    text = src('''
        x = (1,
        2)
        s = """
        y = 3
        """  # '
        z = 4 \\
        + 5
        # comment
        @deco
        def f(): pass
        ''')
    starts = prescan._logical_starts(text, 0, len(text))
    assert [text[i:i + 4] for i in starts] == ["x = ", "s = ", "z = ", "@dec", "def "]


@pytest.mark.parametrize("text, hit", [
    ("from x import a\n", True), ("from x import b\n", False), ("import b as c\nx = a\n", False),
    ("from x import (\n b,  # (note)\n a)\n", True), ("from x import \\\n (b,\n  a)\n", True),
    ("import b, \\\n  a\n", True), ("myimport a\n", False), ("import_a = a\n", False), ("from x import(a)", True),
])
def test_import_hits_cover_the_whole_statement(text, hit):
    assert bool(prescan._import_hits(text, 0, {"a"})) == hit


def test_fallback_reasons_are_counted():
    reasons: Counter = Counter()
    assert extract_fast("def f(:\n", "bad.py", reasons) is None
    assert extract_fast("x = 1\r\n", "crlf.py", reasons) is None
    assert set(reasons) == {"a symbol-table error or deep nesting", "a line break that splitlines and the tokenizer disagree on"}


def test_unknown_extractor_is_rejected():
    with pytest.raises(ValueError, match="pool.extractor"):
        PoolConfig(extractor="regex")


def stdlib_slice(count: int = 200) -> list[Path]:
    """`count` files spread evenly over the sorted standard library (tests and data files too)."""
    _, files = list_python_files(PoolConfig(source="stdlib"))
    step = max(1, len(files) // count)
    return files[::step][:count]


def test_stdlib_slice_matches_reference():
    """200 standard-library files spread over the tree (tests and data files included)."""
    handled = compared = 0
    for path in stdlib_slice():
        data = path.read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        expected = reference(text)
        got = extract_fast(text, str(path))
        if got is not None:
            handled += 1
            assert expected != "syntax_error", path
            assert [record(fn) for fn in got] == expected, path
            compared += len(expected)
        assert outcome(text, FAST) == outcome(text, AST), path
    assert handled >= 190 and compared > 500


def test_build_pool_fast_equals_ast(tmp_path):
    for name, text in CASES.items():
        (tmp_path / (name.replace(" ", "_") + ".py")).write_text(src(text), encoding="utf-8")
    (tmp_path / "crlf.py").write_bytes(b"def f(x, y):\r\n    \"\"\"CRLF.\"\"\"\r\n    return x\r\n")
    (tmp_path / "broken.py").write_text("def f(x, y):\n    \"\"\"Fine.\"\"\"\n    return x\ndef g(:\n")
    results = {}
    for extractor in ("ast", "fast"):
        config = PoolConfig(source=str(tmp_path), workers=1, extractor=extractor,
                            decontaminate=DecontamConfig(benchmarks=[]))
        result = build_pool(config, evaluated=())
        metrics = {k: v for k, v in result.metrics.items() if k not in ("seconds", "functions_per_second")}
        results[extractor] = (result.snippets, metrics, result.skipped_files, result.removed)
    assert results["fast"] == results["ast"]
    assert results["ast"][1]["functions_found"] > 50


def test_signature_equals_datasketch_minhash():
    texts = [src(t) for t in CASES.values()] + ["", "x", "a b c d e", "a b c d e f", "caf\u00e9 \udc80"]
    for text in texts:
        for num_perm, ngram in ((128, 5), (64, 3), (16, 1)):
            minhash = MinHash(num_perm=num_perm, seed=MINHASH_SEED, hashfunc=crc32_hash, scheme=MINHASH_SCHEME)
            minhash.update_batch(list(shingles(text, ngram)))
            got = signature(text, num_perm, ngram)
            assert got.dtype == minhash.hashvalues.dtype and np.array_equal(got, minhash.hashvalues)


def test_shingles_equal_the_windowed_definition():
    import re

    token = re.compile(r"\w+|[^\w\s]")
    for text in [src(t) for t in CASES.values()] + ["", "a", "a b", "x\udc80 y"]:
        tokens = token.findall(text)
        for ngram in (1, 2, 5):
            if len(tokens) <= ngram:
                expected = {" ".join(tokens).encode("utf-8", "surrogatepass")}
            else:
                expected = {" ".join(tokens[i:i + ngram]).encode("utf-8", "surrogatepass")
                            for i in range(len(tokens) - ngram + 1)}
            assert shingles(text, ngram) == expected
