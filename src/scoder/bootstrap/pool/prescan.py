"""The fast extractor (`pool.extractor: fast`): the reference's records without an
`ast.parse` of every file.

The reference (`extract.extract_functions`, `pool.extractor: ast`) builds each file's whole
AST, though most of it is the bodies of functions without a docstring. Here:

1. The symbol-table builder (`_symtable.symtable`) checks the file: it runs the parser that
   `ast.parse` runs but does not turn the tree into Python objects (60% of `ast.parse`'s time;
   the floor of any exact check, since a file that does not parse must still be skipped as
   syntax_error). Its scope tree lists every def and class with the line of its keyword: the
   first token of a logical line, so a line known to begin one ("certain" lines below).
2. Which functions `_walk_definitions` would yield comes from that tree: the defs of the
   module and of classes (at any depth of classes), not of functions. One whose header matches
   `_DEF_HEAD` (no quote, comment or backslash in it, so the colon the regex finds is the
   header's) and whose body does not begin with a string or a parenthesis has no docstring:
   skipped without parsing. That is most of them.
3. Each remaining function is parsed on its own, from its first decorator (`first_line`) to
   the first later line indented no deeper than its def that begins with code. A slice cut
   inside a string, a bracket or a backslash continuation ends unterminated and does not
   parse, so the next such line is tried; the first slice that parses ends where the function
   ends, and has the same tokens, so the same subtree, as the file's parse. A method's slice is
   parsed dedented, as the filters' `is_standalone` compiles it (so it is parsed once, not
   twice), when dedenting removes exactly its indentation; dedenting also strips the lines of
   strings that span lines, so such a docstring is re-read from the file (`_restore_docstring`).
   The record is built by the reference's own `build_function`, line numbers shifted.
4. Module-level imports come from the "head" (the statements before the first unindented
   def/class, where imports and if/try-guarded definitions usually are), parsed whole when a
   function uses a name the module imports or a guarded definition is there, through the
   reference's `_import_statements` / `_walk_definitions`.
5. The rest of the file is split at the first lines of its unindented def/class statements
   into regions (one such statement and the module-level statements after it). A region is
   parsed whole, and walked as the reference walks it, when the pieces cannot be exact: a
   definition that may have a docstring inside a compound statement (if/try/with/for/while/
   match), of the module or of a class body; a class header `_CLASS_HEAD` does not match; an
   `import` in the region, outside its def/class body, whose words include a name a documented
   function uses (`_import_hits`: it may be a module-level import the reference would list);
   a slice that does not parse as expected. Imports of the head and of whole regions, in file
   order, are the imports list; the ones left out bind no name any function uses.

Decorators (`first_line`): a line above the def with only blank lines between, `@`, no quote
and no backslash, balanced brackets, and no continuation from the line above, is one (its end
begins a logical line, so its start does); the logical line above the first such is not one
when no `@` lies between it and the closest certain line above. Otherwise the logical lines
from that certain line on are found with an exact scanner of strings, comments, brackets and
continuations (`_logical_starts`).

The whole file takes the reference path (`extract_fast` returns None) on: a character
`str.splitlines` breaks lines at and the tokenizer does not (\r, \v, \f, \x1c-\x1e, \x85,
\u2028, \u2029) or a byte-order mark; a tab in any line's indentation (widths here count
spaces); a line of only spaces and a backslash (it lends its indentation to the next line's
tokens); any error of the symbol table (a syntax error, which the reference then counts; a
symbol-table-only error such as a duplicate argument, which ast accepts; nesting deeper than
SYMTABLE_DEPTH: `ast.parse`'s conversion to objects has its own recursion limit, and near it
only `ast.parse` itself can tell); a head or region that does not parse. Of the standard
library's 1,786 UTF-8 files, 14 take the reference path (8 symbol-table errors: 4 syntax
errors for ast too, 4 misplaced `from __future__` imports that only the symbol table checks;
4 with odd line breaks, 3 of them syntax errors; test_ast.py and test_syntax.py, which hold a
backslash-only line) and ~100 regions are parsed whole. tests/bootstrap/pool/test_prescan.py
compares both paths on tricky sources and on 200 stdlib files.
"""

from __future__ import annotations

import _symtable
import ast
import bisect
import re
import sys
import textwrap
import unicodedata
from itertools import accumulate

from scoder.bootstrap.pool.extract import (
    FunctionNode,
    ExtractedFunction,
    _import_statements,
    _walk_definitions,
    build_function,
)

# characters `str.splitlines` breaks lines at besides \n; \r is a line end for the tokenizer too,
# but the regexes here only know \n
_ODD_LINE_BREAKS = "\r\v\f\x1c\x1d\x1e\x85\u2028\u2029\ufeff"
_TAB_START = re.compile(r" *\t")
_TAB_INDENT = re.compile(r"\n *\t")
_BLANK_CONTINUED = re.compile(r" *\\\n")
_BLANK_CONTINUED_LINE = re.compile(r"\n *\\\n")

# a def header without quote, comment or backslash, up to the first character of its body
_PARAMS = r"""\((?:[^'"#\\()]|\((?:[^'"#\\()]|\([^'"#\\()]*\))*\))*\)"""
_ANNOTATION = r"""->(?:[^'"#\\()\[\]{}:\n]|\[(?:[^'"#\\()\[\]{}:]|\[[^'"#\\()\[\]{}:]*\])*\])*"""
_AFTER_COLON = r"""(?:[ ]*(?:\#[^\n]*)?\n)*[ ]*"""
_DEF_HEAD = re.compile(rf"""[ ]*(?:async[ ]+)?def[ ]+\w+[ ]*{_PARAMS}[ ]*(?:{_ANNOTATION})?:{_AFTER_COLON}""")
# what can begin a docstring statement: a string (with prefix), a parenthesis, or a continuation
_DOC_START = re.compile(r"""[rRbBuUfF]{0,2}['"]|[(\\]""")
# a class header, then blank/comment lines, then the indentation of the body's first statement
_CLASS_HEAD = re.compile(rf"""[ ]*class[ ]+\w+[ ]*(?:{_PARAMS})?[ ]*:[ ]*(?:\#[^\n]*)?\n(?:[ ]*(?:\#[^\n]*)?\n)*([ ]*)(?=[^ \n#])""")
# a decorator on one line: no quote, no backslash (brackets are checked by _balanced)
_DECORATOR_LINE = re.compile(r"""[ ]*@[^'"\\\n]*\n?""")
_UNINDENTED = re.compile(r"\n(?=[^ \n#])")  # a newline, then a line that begins with code in column 0
_WORD = re.compile(r"\w+")
_CUTS: dict[int, re.Pattern] = {}

# frames the symbol table may recurse through (times 3, CPython's scale for compiler depth):
# 750 levels, against the ~2,950 `ast.parse` allows before its conversion raises
# RecursionError; the nodes the symbol table does not count (keywords, arguments,
# comprehensions, handlers...) need brackets, indentation or lambdas, which the tokenizer and
# parser cap at 200, 100 and ~750 levels, so a file within this limit is within ast's
SYMTABLE_DEPTH = 250
MIN_HEADROOM = 800  # with less recursion headroom than this (default: ~990), always take the reference path
MAX_CUTS = 16  # slices tried per function (1 almost always) before its statement is parsed whole


def _cut_pattern(width: int) -> re.Pattern:
    """A newline, then a line indented by at most `width` spaces that begins with code (not
    blank, not #); the literal newline lets the regex engine skip ahead quickly."""
    pattern = _CUTS.get(width)
    if pattern is None:
        pattern = _CUTS[width] = re.compile(r"\n {0,%d}(?=[^ \n#])" % width)
    return pattern


def _balanced(line: str) -> bool:
    depth = 0
    for char in line.split("#", 1)[0]:
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


# what can hide a line break or a bracket from a line-by-line view: strings (any prefix, which
# does not change where a string ends), comments, continuations; then brackets and newlines
_SCAN = re.compile(r"""[rRbBuUfF]{0,2}(?:\'\'\'(?:[^'\\]|\\.|'(?!''))*\'\'\'|\"\"\"(?:[^"\\]|\\.|"(?!""))*\"\"\"|'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")|\#[^\n]*|\\\n|[(\[{)\]}\n]""", re.S)


def _logical_starts(text: str, begin: int, end: int) -> list[int]:
    """Offsets of the first character of each logical line in text[begin:end]; `begin` must be
    the start of a line that begins a logical line (or a blank/comment line before one), `end`
    the start of a line."""
    starts: list[int] = []
    depth = 0
    at = begin
    while True:  # at: the start of a physical line at bracket depth 0, not continued
        while at < end and text[at] == " ":
            at += 1
        if at < end and text[at] not in "#\n":
            starts.append(at)
        for match in _SCAN.finditer(text, at, end):
            token = match.group()
            if token == "\n":
                if depth == 0:
                    at = match.end()
                    break
            elif token in "([{":
                depth += 1
            elif token in ")]}":
                depth -= 1
        else:
            return starts


def _facts(func: ast.AST) -> tuple[set[str], set[str]]:
    """(`_used_names`, `_inner_import_modules`) of a node in one walk (ast.walk's generators cost
    four times as much; the sets are the same, tests/bootstrap/pool/test_prescan.py)."""
    names: set[str] = set()
    modules: set[str] = set()
    stack = [func]
    pop, push = stack.pop, stack.append
    Name, Import, ImportFrom, AST = ast.Name, ast.Import, ast.ImportFrom, ast.AST
    while stack:
        node = pop()
        cls = type(node)
        if cls is Name:
            names.add(node.id)
            continue
        if cls is Import:
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif cls is ImportFrom and node.level == 0 and node.module:
            modules.add(node.module.split(".")[0])
        for name in cls._fields:
            value = getattr(node, name, None)
            if type(value) is list:
                for item in value:
                    if isinstance(item, AST):
                        push(item)
            elif isinstance(value, AST):
                push(value)
    return names, modules


def _frame_depth() -> int:
    frame, depth = sys._getframe(), 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1
    return depth


def _symbol_table(text: str, filename: str):
    """The symbol table, or None when the reference path must decide (see the module doc)."""
    limit = sys.getrecursionlimit()
    depth = _frame_depth()
    if limit - depth < MIN_HEADROOM:
        return None
    try:
        sys.setrecursionlimit(depth + SYMTABLE_DEPTH)
        return _symtable.symtable(text, filename, "exec")
    except Exception:  # noqa: BLE001 - SyntaxError, RecursionError, MemoryError, ValueError: ast decides
        return None
    finally:
        sys.setrecursionlimit(limit)


class _Fallback(Exception):
    """This file takes the reference path."""


def _is_def(entry) -> bool:
    if entry.type != _symtable.TYPE_FUNCTION or entry.name == "lambda":
        return False
    # comprehensions are function scopes whose first parameter is the implicit ".0"
    return not (entry.varnames and entry.varnames[0] == ".0")


class _File:
    def __init__(self, text: str, top):
        self.text = text
        self.lines = text.splitlines(keepends=True)
        self.starts = [0, *accumulate(map(len, self.lines))]  # offset of line n at [n - 1]
        self.certain: list[int] = []  # lines known to begin a logical line, sorted
        self._collect_certain(top)
        self.certain.sort()

    def _collect_certain(self, entry) -> None:
        for child in entry.children:
            if child.type == _symtable.TYPE_CLASS or _is_def(child):
                self.certain.append(child.lineno)
            self._collect_certain(child)

    def line(self, number: int) -> str:
        return self.lines[number - 1] if 0 < number <= len(self.lines) else ""

    def width(self, number: int) -> int:
        line = self.line(number)
        return len(line) - len(line.lstrip(" "))

    def may_have_docstring(self, lineno: int) -> bool:
        match = _DEF_HEAD.match(self.text, self.starts[lineno - 1])
        return match is None or _DOC_START.match(self.text, match.end()) is not None

    def body_width(self, lineno: int) -> int | None:
        match = _CLASS_HEAD.match(self.text, self.starts[lineno - 1])
        return None if match is None else len(match.group(1))

    def first_line(self, lineno: int) -> int:
        """The line of the first decorator of the def/class at `lineno` (itself if none)."""
        index = bisect.bisect_left(self.certain, lineno) - 1
        floor = self.certain[index] if index >= 0 else 1  # the closest line above known to begin a logical line
        start = lineno
        while True:
            above = start - 1
            while above > floor and not self.line(above).strip(" \n"):
                above -= 1
            line = self.line(above)
            if (above <= floor or not _DECORATOR_LINE.fullmatch(line) or not _balanced(line)
                    or self.line(above - 1).endswith("\\\n")):
                break
            # no quote on the line and its end begins a logical line (only blank lines below it),
            # so it began one too: a decorator
            start = above
        # the logical line before `start` is no decorator when no `@` lies between it and
        # `floor`: it begins at or after `floor`
        if self.text.find("@", self.starts[floor - 1], self.starts[start - 1]) == -1:
            return start
        # otherwise find the logical lines from `floor` on, exactly
        first = lineno
        for at in reversed(_logical_starts(self.text, self.starts[floor - 1], self.starts[lineno - 1])):
            if self.text[at] != "@":
                break
            first = bisect.bisect_right(self.starts, at)
        return first

    def parse_definition(self, lineno: int, width: int) -> tuple[ast.AST, int, int, int, bool | None]:
        """(node, offset to add to its line numbers, start and end offsets of its slice,
        whether its dedented code compiles (None: not known)) of the def at `lineno`, indented
        by `width`.

        An indented slice is first parsed dedented, as the filters' `is_standalone` would: when
        dedenting removes exactly `width` spaces from every line, it parses exactly when the
        wrapped slice does, and its tree differs from the file's only in the text of strings
        that span lines, of which the docstring is restored from the file (`_restore_docstring`).
        """
        first = self.first_line(lineno)
        cut = _cut_pattern(width)
        begin = self.starts[first - 1]
        position = self.starts[lineno] - 1  # the newline before the line after the def keyword
        for _ in range(MAX_CUTS):
            match = cut.search(self.text, position)
            end = match.start() + 1 if match else len(self.text)
            chunk = self.text[begin:end]
            standalone = None
            try:
                if not width:
                    module, offset = ast.parse(chunk), first - 1
                    body = module.body
                else:
                    dedented = textwrap.dedent(chunk)
                    if dedented[:1] != " ":  # the margin is `width`: parse it as is_standalone would
                        module, offset = ast.parse(dedented), first - 1
                        body, standalone = module.body, True
                    else:
                        module, offset = ast.parse("if 1:\n" + chunk), first - 2
                        if len(module.body) != 1 or not isinstance(module.body[0], ast.If):
                            raise _Fallback("unexpected slice")
                        body = module.body[0].body
            except (SyntaxError, ValueError, RecursionError, MemoryError):
                if match is None:
                    raise _Fallback("no slice parses") from None
                position = end  # the slice ended inside a string, a bracket or a continuation
                continue
            if len(body) != 1 or not isinstance(body[0], FunctionNode):
                raise _Fallback("unexpected slice")
            node = body[0]
            if (node.lineno + offset != lineno
                    or min([node.lineno] + [d.lineno for d in node.decorator_list]) + offset != first):
                raise _Fallback("unexpected slice")
            if standalone:
                self._restore_docstring(node, offset, width)
            return node, offset, begin, end, standalone
        raise _Fallback("no slice parses")

    def _restore_docstring(self, node: ast.AST, offset: int, width: int) -> None:
        """Put the file's text back into a docstring of a dedented slice that spans lines
        (dedenting also strips the string's own lines)."""
        first = node.body[0] if node.body else None
        if not (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)):
            return  # no docstring, as in the file's tree
        value = first.value
        if value.end_lineno == value.lineno:
            return  # one line: dedenting only removed spaces before it
        top, bottom = value.lineno + offset, value.end_lineno + offset
        head = self.lines[top - 1].encode("utf-8")[value.col_offset + width:].decode("utf-8")
        tail = self.lines[bottom - 1].encode("utf-8")[:value.end_col_offset + width].decode("utf-8")
        literal = head + "".join(self.lines[top:bottom - 1]) + tail
        try:
            value.value = ast.literal_eval("(" + literal + "\n)")
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            raise _Fallback("docstring does not parse alone") from None


def _has_candidate(file: _File, entry) -> bool:
    """Whether a def inside class `entry` (at any depth of classes) may have a docstring."""
    for child in entry.children:
        if child.type == _symtable.TYPE_CLASS:
            if _has_candidate(file, child):
                return True
        elif _is_def(child) and file.may_have_docstring(child.lineno):
            return True
    return False


def extract_fast(source: str, filename: str = "<source>", reasons=None) -> list[ExtractedFunction] | None:
    """`extract_functions(source)`'s result, or None where the reference path must run;
    `reasons` (a Counter), when given, counts why files took the reference path."""
    reason = None
    if any(char in source for char in _ODD_LINE_BREAKS):
        reason = "a line break that splitlines and the tokenizer disagree on"
    elif "\t" in source and (source.startswith((" ", "\t")) and _TAB_START.match(source) or _TAB_INDENT.search(source)):
        reason = "a tab in indentation"
    elif "\\\n" in source and (_BLANK_CONTINUED.match(source) or _BLANK_CONTINUED_LINE.search(source)):
        # a line of only spaces and a backslash gives its indentation to the next line's tokens
        reason = "a line continued from a blank line"
    else:
        top = _symbol_table(source, filename)
        if top is None:
            reason = "a symbol-table error or deep nesting"
        else:
            try:
                return _extract(source, top, reasons)
            except _Fallback as exc:
                reason = exc.args[0] if exc.args else "unknown"
    if reasons is not None:
        reasons[reason] += 1
    return None


def _parse_chunk(text: str) -> ast.Module:
    try:
        return ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise _Fallback("a chunk between known statement starts does not parse") from None


class _Region:
    """One unindented def/class statement and the module-level statements after it, up to the
    next one: parsed piecewise (its candidate functions) or, when that cannot be exact, whole."""

    def __init__(self, entry):
        self.entry = entry
        self.found: list[tuple[str, ast.AST, bool, int, bool | None]] = []  # qualname, node, is_method, offset, standalone
        self.spans: list[tuple[int, int]] = []  # character ranges of the parsed functions
        self.whole: ast.Module | None = None  # the region's own parse, when taken whole
        self.offset = 0  # added to the line numbers of `whole`
        self.needs_whole: str | bool = False  # why it is parsed whole


def _extract(source: str, top, reasons=None) -> list[ExtractedFunction]:
    children = [c for c in top.children if c.type == _symtable.TYPE_CLASS or _is_def(c)]
    if not children:
        return []
    file = _File(source, top)
    regions = [_Region(c) for c in children if file.width(c.lineno) == 0]
    keyword_lines = [r.entry.lineno for r in regions]
    bounds: dict[int, int] = {}  # region index -> its first line (decorators included)

    def first_of(index: int) -> int:  # where region `index` starts; len(regions): end of file
        if index >= len(regions):
            return len(file.lines) + 1
        if index not in bounds:
            bounds[index] = file.first_line(regions[index].entry.lineno)
        return bounds[index]

    def offset_of(line: int) -> int:
        return file.starts[line - 1] if line <= len(file.lines) else len(source)

    def region_at(line: int) -> int:
        return max(bisect.bisect_right(keyword_lines, line) - 1, 0)

    # 1. unindented functions, and methods of unindented classes, one slice each
    for region in regions:
        entry = region.entry
        try:
            if entry.type == _symtable.TYPE_CLASS:
                _visit_class(file, region, entry, "")
            elif file.may_have_docstring(entry.lineno):
                _take(file, region, entry, "", False, 0)
        except _Fallback as exc:
            region.needs_whole = exc.args[0]
    # 2. definitions inside module-level compound statements: in the head (parsed whole when
    # needed), or in a region, which is then parsed whole if they may have a docstring
    head_end = first_of(0)
    head_guarded = False
    for entry in children:
        if file.width(entry.lineno) == 0:
            continue
        if entry.lineno < head_end:
            head_guarded = True
        elif _has_candidate(file, entry) if entry.type == _symtable.TYPE_CLASS else file.may_have_docstring(entry.lineno):
            regions[region_at(entry.lineno)].needs_whole = regions[region_at(entry.lineno)].needs_whole or "guarded definition"
    # 3. the module's imports, as far as documented functions use them: from the head and the
    # regions parsed whole; an import elsewhere that may bind a used name makes its region whole
    imported = {name for name, flags in top.symbols.items() if flags & _symtable.DEF_IMPORT}
    head: ast.Module | None = None
    head_stop = offset_of(head_end)
    facts: dict[int, tuple[set[str], set[str]]] = {}  # id(node) -> _facts(node)

    def facts_of(node, offset: int) -> tuple[set[str], set[str]]:
        key = id(node)
        if key not in facts:
            # the names only matter where they are imported names, the modules where the function
            # imports: when its (ASCII, so not NFKC-normalised) text has neither, both are empty
            first = min([node.lineno] + [d.lineno for d in node.decorator_list]) + offset
            text = source[file.starts[first - 1]:file.starts[node.end_lineno + offset]]
            if text.isascii() and "import" not in text and not any(name in text for name in imported):
                facts[key] = (set(), set())
            else:
                facts[key] = _facts(node)
        return facts[key]

    def uses(node, offset: int) -> set[str]:
        return imported.intersection(facts_of(node, offset)[0])

    while True:
        for index, region in enumerate(regions):
            if region.needs_whole and region.whole is None:
                region.whole = _parse_chunk(source[offset_of(first_of(index)):offset_of(first_of(index + 1))])
                region.offset = first_of(index) - 1
        need: set[str] = set()
        if imported:
            for region in regions:
                if region.whole is not None:
                    for _, node, _ in _walk_definitions(region.whole.body, "", False):
                        need |= uses(node, region.offset)
                else:
                    for _, node, _, offset, _ in region.found:
                        need |= uses(node, offset)
        if (head_guarded or need) and head is None:
            head = _parse_chunk(source[:head_stop])
        if head is not None and imported:
            for _, node, _ in _walk_definitions(head.body, "", False):
                need |= uses(node, 0)
        added = False
        if need:
            for at in _import_hits(source, head_stop, need):
                line = bisect.bisect_right(file.starts, at)
                region = regions[region_at(line)]
                if region.whole is not None or region.needs_whole or any(b <= at < e for b, e in region.spans):
                    continue
                # indented, with no unindented code line since the region's def/class keyword:
                # inside that function or class body, whose imports are not the module's
                if (file.width(line) > 0 and line > region.entry.lineno
                        and _UNINDENTED.search(source, file.starts[region.entry.lineno] - 1, file.starts[line - 1] + 1) is None):
                    continue
                region.needs_whole = "an import that may bind a used name"
                added = True
        if not added:
            break
    if reasons is not None:
        for region in regions:
            if region.needs_whole:
                reasons[f"(one statement parsed whole: {region.needs_whole})"] += 1
    # the module's imports in file order (those left out bind no name a function uses)
    imports: list[tuple[str, str, str]] = _import_statements(head) if head is not None else []
    for region in regions:
        if region.whole is not None:
            imports += _import_statements(region.whole)
    results: list[ExtractedFunction] = []
    if head is not None:
        for qualname, node, is_method in _walk_definitions(head.body, "", False):
            fn = build_function(qualname, node, is_method, file.lines, imports, 0, facts_of(node, 0))
            if fn is not None:
                results.append(fn)
    for region in regions:
        if region.whole is not None:
            for qualname, node, is_method in _walk_definitions(region.whole.body, "", False):
                fn = build_function(qualname, node, is_method, file.lines, imports, region.offset, facts_of(node, region.offset))
                if fn is not None:
                    results.append(fn)
        else:
            for qualname, node, is_method, offset, standalone in region.found:
                fn = build_function(qualname, node, is_method, file.lines, imports, offset, facts_of(node, offset))
                if fn is not None:
                    fn.standalone = standalone
                    results.append(fn)
    return results


def _take(file: _File, region: _Region, entry, prefix: str, is_method: bool, width: int) -> None:
    node, offset, begin, end, standalone = file.parse_definition(entry.lineno, width)
    region.found.append((f"{prefix}{node.name}", node, is_method, offset, standalone))
    region.spans.append((begin, end))


def _visit_class(file: _File, region: _Region, entry, prefix: str) -> None:
    """Slice the candidate methods of class `entry` (and of the classes in its body)."""
    if not _has_candidate(file, entry):
        return
    body = file.body_width(entry.lineno)
    if body is None:
        raise _Fallback("class header")
    prefix = f"{prefix}{entry.name}."
    for child in entry.children:
        if child.type == _symtable.TYPE_CLASS:
            if file.width(child.lineno) == body:
                _visit_class(file, region, child, prefix)
            elif _has_candidate(file, child):
                raise _Fallback("class inside a compound statement of a class body")
        elif _is_def(child) and file.may_have_docstring(child.lineno):
            if file.width(child.lineno) != body:
                raise _Fallback("method inside a compound statement of a class body")
            _take(file, region, child, prefix, True, body)


_AFTER_IMPORT = re.compile(r"(?:[ ]|\\\n)*")  # spaces and continuations before an import's names


def _import_hits(source: str, start: int, need: set[str]) -> list[int]:
    """Offsets of the `import` words after `start` whose statement may bind a name in `need`:
    a word in `need` follows before the statement can have ended. That is the closing
    parenthesis of `import (...)` (the first `)` with no `#` before it on its line: names hold
    none, a comment may), else the end of the line and of lines continued by a backslash."""
    size = len(source)
    hits = []
    at = source.find("import", start)
    while at != -1:
        after = at + 6
        if (at == 0 or not (source[at - 1].isalnum() or source[at - 1] == "_")) and not (
                after < size and (source[after].isalnum() or source[after] == "_")):
            names = _AFTER_IMPORT.match(source, after).end()
            if source.startswith("(", names):
                stop = names
                while True:
                    stop = source.find(")", stop + 1)
                    if stop == -1:
                        stop = size
                        break
                    if "#" not in source[source.rfind("\n", 0, stop) + 1:stop]:
                        break
            else:
                stop = source.find("\n", names)
                while stop != -1 and source[stop - 1] == "\\":
                    stop = source.find("\n", stop + 1)
                stop = size if stop == -1 else stop
            words = _WORD.findall(source, after, stop)
            if not all(word.isascii() for word in words):  # identifiers are NFKC-normalised
                words = [unicodedata.normalize("NFKC", word) for word in words]
            if need.intersection(words):
                hits.append(at)
        at = source.find("import", after)
    return hits
