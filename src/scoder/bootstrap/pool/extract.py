"""Extract documented functions and methods from Python source with `ast`.

Functions are sliced from the source by `lineno`/`end_lineno` (decorators included), which
is linear in file size; `ast.get_source_segment` re-scans the file per call and is
quadratic on big files. Top-level functions and methods (of classes at any depth of class
nesting) are extracted; a function nested inside another function is not extracted on its
own, because it usually depends on its enclosing scope; it stays part of its parent's code.
Lambdas are expressions, not definitions, and are never extracted.

Dependency completion: the module-level imports whose bound names the function uses are
kept in a separate field, so a snippet can be executed or shown with its imports.
"""

from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass, field

FunctionNode = (ast.FunctionDef, ast.AsyncFunctionDef)


@dataclass
class ExtractedFunction:
    qualname: str
    lineno: int
    end_lineno: int
    code: str  # dedented source, decorators included
    docstring: str
    imports: list[str]  # module-level import statements the function uses
    imported_modules: list[str]  # top-level module names of those imports and of imports inside
    is_method: bool
    is_async: bool
    n_args: int  # excluding self/cls of methods
    node: ast.AST = field(repr=False, compare=False)
    # whether `code` compiles on its own (filters.is_standalone), when the extractor already knows
    standalone: bool | None = field(default=None, repr=False, compare=False)


def _import_statements(module: ast.Module) -> list[tuple[str, str, str]]:
    """(bound name, statement, top-level module) for module-level imports, incl. in if/try."""
    found: list[tuple[str, str, str]] = []

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    bound = alias.asname or alias.name.split(".")[0]
                    stmt = f"import {alias.name}" + (f" as {alias.asname}" if alias.asname else "")
                    found.append((bound, stmt, alias.name.split(".")[0]))
            elif isinstance(node, ast.ImportFrom):
                module_name = "." * node.level + (node.module or "")
                root = (node.module or "").split(".")[0] if node.level == 0 else ""
                for alias in node.names:
                    if alias.name == "*":
                        continue
                    bound = alias.asname or alias.name
                    stmt = f"from {module_name} import {alias.name}" + (
                        f" as {alias.asname}" if alias.asname else ""
                    )
                    found.append((bound, stmt, root))
            elif isinstance(node, (ast.If, ast.Try, ast.TryStar)):
                visit(node.body)
                visit(getattr(node, "orelse", []))
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)
                visit(getattr(node, "finalbody", []))

    visit(module.body)
    return found


def _used_names(func: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(func) if isinstance(n, ast.Name)}


def _inner_import_modules(func: ast.AST) -> set[str]:
    modules = set()
    for node in ast.walk(func):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module.split(".")[0])
    return modules


def _count_args(func: ast.FunctionDef | ast.AsyncFunctionDef, is_method: bool) -> int:
    args = func.args
    names = [a.arg for a in args.posonlyargs + args.args]
    decorators = {d.id for d in func.decorator_list if isinstance(d, ast.Name)}
    if is_method and names and "staticmethod" not in decorators:
        names = names[1:]  # self / cls
    count = len(names) + len(args.kwonlyargs)
    count += int(args.vararg is not None) + int(args.kwarg is not None)
    return count


def _walk_definitions(body, prefix: str, in_class: bool):
    """Yield (qualname, node, is_method) for functions at module level and in classes."""
    for node in body:
        if isinstance(node, FunctionNode):
            yield f"{prefix}{node.name}", node, in_class
        elif isinstance(node, ast.ClassDef):
            yield from _walk_definitions(node.body, f"{prefix}{node.name}.", True)
        elif isinstance(node, (ast.If, ast.Try, ast.TryStar, ast.With, ast.For, ast.While)):
            # definitions guarded by `if`/`try` at module or class level are still top-level
            for attr in ("body", "orelse", "finalbody"):
                yield from _walk_definitions(getattr(node, attr, []) or [], prefix, in_class)
            for handler in getattr(node, "handlers", []):
                yield from _walk_definitions(handler.body, prefix, in_class)


def parse_module(source: str | bytes, filename: str = "<source>") -> ast.Module:
    """Parse source; SyntaxError, ValueError (NUL bytes) and RecursionError/MemoryError
    (pathologically nested code) all surface as SyntaxError with the file name."""
    try:
        return ast.parse(source, filename=filename)
    except SyntaxError:
        raise
    except (ValueError, RecursionError, MemoryError) as exc:
        raise SyntaxError(f"{filename}: cannot parse ({type(exc).__name__}: {exc})") from exc


def build_function(qualname: str, node, is_method: bool, lines: list[str],
                   imports: list[tuple[str, str, str]], offset: int = 0,
                   facts: tuple[set[str], set[str]] | None = None) -> ExtractedFunction | None:
    """The ExtractedFunction of one definition node, or None when it has no docstring.

    `lines` are the file's `splitlines(keepends=True)`, `imports` its `_import_statements`;
    `offset` is added to the node's line numbers (0 for a node of the whole file's parse; the
    fast path (prescan.py) parses a function's own lines and passes where they start), `facts`
    the node's (`_used_names`, `_inner_import_modules`) when already known."""
    docstring = ast.get_docstring(node, clean=True)
    if not docstring:
        return None
    start = min([node.lineno] + [d.lineno for d in node.decorator_list]) + offset
    end = node.end_lineno + offset
    segment = "".join(lines[start - 1 : end])
    code = textwrap.dedent(segment) if segment[:1] in (" ", "\t") else segment
    used, inner = facts if facts is not None else (_used_names(node), _inner_import_modules(node))
    kept = [(stmt, mod) for bound, stmt, mod in imports if bound in used]
    modules = {mod for _, mod in kept if mod} | inner
    return ExtractedFunction(
        qualname=qualname,
        lineno=start,
        end_lineno=end,
        code=code.rstrip() + "\n",
        docstring=docstring,
        imports=list(dict.fromkeys(stmt for stmt, _ in kept)),
        imported_modules=sorted(modules),
        is_method=is_method,
        is_async=isinstance(node, ast.AsyncFunctionDef),
        n_args=_count_args(node, is_method),
        node=node,
    )


def extract_functions(source: str, filename: str = "<source>", module: ast.Module | None = None) -> list[ExtractedFunction]:
    """All documented top-level functions and methods of `source`, in source order (the
    reference path: one `ast.parse` of the whole file)."""
    module = module or parse_module(source, filename)
    lines = source.splitlines(keepends=True)
    imports = _import_statements(module)
    results = []
    for qualname, node, is_method in _walk_definitions(module.body, "", False):
        fn = build_function(qualname, node, is_method, lines, imports)
        if fn is not None:
            results.append(fn)
    return results
