"""Per-function filters of the snippet pool (SCoder appendix A), each with a named reason.

`first_rejection` returns the name of the first filter a function fails, or None; the pool
counts rejections per reason so every dropped function is accounted for.
"""

from __future__ import annotations

import ast
import re

from scoder.bootstrap.pool.config import FilterConfig
from scoder.bootstrap.pool.extract import ExtractedFunction

REASONS = (
    "syntax_error",
    "no_arguments",
    "no_return_value",
    "banned_import",
    "marker",
    "too_short",
    "too_long",
)

_SCOPE_NODES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
_AST, _RETURN, _CONSTANT = ast.AST, ast.Return, ast.Constant


def returns_value(func: ast.AST) -> bool:
    """True when the function itself (not a nested def/lambda/class) has `return <value>`.

    Walks the children as ast.iter_child_nodes lists them, without its generators (2x faster)."""
    stack = [func]
    child = False  # `func` itself is a scope node whose children are searched
    while stack:
        node = stack.pop()
        if child:
            if isinstance(node, _RETURN):
                value = node.value
                if value is not None and not (isinstance(value, _CONSTANT) and value.value is None):
                    return True
            if isinstance(node, _SCOPE_NODES):
                continue
        child = True
        for name in node._fields:
            value = getattr(node, name, None)
            if type(value) is list:
                for item in value:
                    if isinstance(item, _AST):
                        stack.append(item)
            elif isinstance(value, _AST):
                stack.append(value)
    return False


def is_standalone(code: str) -> bool:
    """The sliced (and dedented) code must compile on its own."""
    try:
        compile(code, "<snippet>", "exec", flags=ast.PyCF_ONLY_AST, dont_inherit=True)
        return True
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False


class FunctionFilter:
    def __init__(self, config: FilterConfig):
        self.config = config
        self.banned = set(config.banned_imports)
        markers = [re.escape(m) for m in config.banned_markers]
        self.marker_re = re.compile(r"\b(" + "|".join(markers) + r")\b") if markers else None

    def first_rejection(self, fn: ExtractedFunction) -> str | None:
        cfg = self.config
        # Methods are dedented from their class; re-check that the slice stands alone (the fast
        # extractor parsed exactly that text already and says so in `standalone`).
        if fn.is_method and not (fn.standalone if fn.standalone is not None else is_standalone(fn.code)):
            return "syntax_error"
        if cfg.require_args and fn.n_args == 0:
            return "no_arguments"
        if cfg.require_return_value and not returns_value(fn.node):
            return "no_return_value"
        if self.banned.intersection(fn.imported_modules):
            return "banned_import"
        if self.marker_re is not None and self.marker_re.search(fn.code):
            return "marker"
        n_lines = fn.code.count("\n")
        if n_lines < cfg.min_lines:
            return "too_short"
        if n_lines > cfg.max_lines or len(fn.code) > cfg.max_chars:
            return "too_long"
        return None
