import textwrap

import pytest

from scoder.bootstrap.pool.config import FilterConfig
from scoder.bootstrap.pool.extract import extract_functions
from scoder.bootstrap.pool.filters import FunctionFilter, returns_value

GOOD = '''
def mean(values, weights):
    """Weighted mean of values."""
    total = sum(v * w for v, w in zip(values, weights))
    return total / sum(weights)
'''


def reject(source: str, **overrides) -> str | None:
    (fn,) = extract_functions(textwrap.dedent(source))
    return FunctionFilter(FilterConfig(**overrides)).first_rejection(fn)


def test_good_function_passes():
    assert reject(GOOD) is None


def test_no_arguments():
    assert reject('''
    def answer():
        """The answer."""
        x = 40
        return x + 2
    ''') == "no_arguments"


@pytest.mark.parametrize(
    "body",
    [
        "    print(x)\n    x += 1\n    x += 2\n",  # no return at all
        "    if x:\n        return\n    return None\n",  # bare return / return None
        "    def inner():\n        return 1\n    inner()\n",  # only a nested function returns
        "    f = lambda: 1\n    f()\n    f()\n",  # only a lambda "returns"
    ],
)
def test_no_return_value(body):
    source = 'def f(x):\n    """Doc."""\n' + body
    assert reject(source) == "no_return_value"


def test_returns_value_ignores_nested_scopes_but_sees_branches():
    (fn,) = extract_functions('def f(x):\n    """D."""\n    for i in x:\n        if i:\n            return i\n')
    assert returns_value(fn.node)


@pytest.mark.parametrize(
    "imports, body_import",
    [("import os\n", ""), ("from subprocess import run\n", ""), ("", "    import socket\n")],
)
def test_banned_imports_module_level_and_inside(imports, body_import):
    used = "os.getcwd()" if "os" in imports else ("run(x)" if "run" in imports else "socket.gethostname()")
    source = imports + 'def f(x):\n    """Doc."""\n' + body_import + f"    y = {used}\n    return y\n"
    assert reject(source) == "banned_import"


def test_unused_banned_import_does_not_reject():
    source = 'import os\ndef f(x):\n    """Doc."""\n    y = x + 1\n    return y\n'
    assert reject(source) is None


@pytest.mark.parametrize("marker", ["TODO", "FIXME", "BUG", "XXX"])
def test_markers(marker):
    source = f'def f(x):\n    """Doc."""\n    # {marker}: handle negatives\n    return x\n'
    assert reject(source) == "marker"


def test_marker_must_be_a_word():
    source = 'def f(x):\n    """Doc."""\n    debugging = x\n    return debugging\n'
    assert reject(source) is None


def test_too_short_and_too_long():
    assert reject('def f(x):\n    """Doc."""\n    return x\n') == "too_short"
    long_body = "".join(f"    x = x + {i}\n" for i in range(200))
    assert reject('def f(x):\n    """Doc."""\n' + long_body + "    return x\n") == "too_long"
    assert reject(GOOD, max_chars=50) == "too_long"


def test_method_that_cannot_stand_alone_is_a_syntax_error():
    # the docstring's continuation line sits at column 0, so the method cannot be dedented
    source = 'class C:\n    def m(self, x):\n        """Doc\nat column zero."""\n        y = x\n        return y\n'
    (fn,) = extract_functions(source)
    assert FunctionFilter(FilterConfig()).first_rejection(fn) == "syntax_error"
