"""A LaTeX-free structural check of a booktabs table (no TeX installation needed).

:func:`check_latex` tokenises the source enough to catch what breaks a build or a
table: unbalanced braces or environments, a row whose cell count differs from the
column specification, booktabs rules out of order, an unescaped ``_``/``&``/``%``
in text, and (for a standalone document) a missing preamble.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["LatexTableInfo", "check_latex"]


@dataclass(frozen=True)
class LatexTableInfo:
    """What the check found: column count, header cells and body rows (cell texts)."""

    n_columns: int
    header: list[str]
    rows: list[list[str]]
    standalone: bool


def _strip_comments(text: str) -> str:
    out = []
    for line in text.splitlines():
        m = re.search(r"(?<!\\)%", line)
        out.append(line[: m.start()] if m else line)
    return "\n".join(out)


def _tokens(text: str) -> Iterator[tuple[int, str, int]]:
    """``(offset, token, brace depth after it)``: a token is a backslash escape (two characters) or one character."""
    depth, i = 0, 0
    while i < len(text):
        tok = text[i : i + 2] if text[i] == "\\" else text[i]
        depth += (tok == "{") - (tok == "}")
        yield i, tok, depth
        i += len(tok)


def _split_cells(row: str) -> list[str]:
    parts: list[str] = []
    cur: list[str] = []
    for _, tok, depth in _tokens(row):
        if tok == "&" and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(tok)
    parts.append("".join(cur).strip())
    return parts


def check_latex(text: str) -> LatexTableInfo:
    """Check a booktabs table (snippet or standalone document); raise ``ValueError`` on a defect."""
    body = _strip_comments(text)
    depth = 0
    for i, tok, depth in _tokens(body):
        if depth < 0:
            raise ValueError(f"unbalanced '}}' at offset {i}")
        if tok in ("_", "^") and not _in_math(body, i):
            raise ValueError(f"unescaped {tok!r} outside math at offset {i}: {body[max(0, i - 20) : i + 20]!r}")
    if depth != 0:
        raise ValueError(f"{depth} unclosed '{{'")
    if len(re.findall(r"(?<!\\)\$", body)) % 2:
        raise ValueError("odd number of '$': unbalanced inline math")
    stack: list[str] = []
    for m in re.finditer(r"\\(begin|end)\{([^}]*)\}", body):
        kind, env = m.groups()
        if kind == "begin":
            stack.append(env)
        elif not stack or stack.pop() != env:
            raise ValueError(f"\\end{{{env}}} does not close the open environment {stack[-1:] or 'none'}")
    if stack:
        raise ValueError(f"unclosed environment(s): {stack}")
    standalone = r"\documentclass" in body
    if standalone:
        if not re.match(r"\s*\\documentclass", body):
            raise ValueError(r"\documentclass must come first in a standalone document")
        if not re.search(r"\\usepackage(\[[^\]]*\])?\{[^}]*booktabs[^}]*\}", body):
            raise ValueError(r"standalone document lacks \usepackage{booktabs}")
        if r"\begin{document}" not in body or r"\end{document}" not in body:
            raise ValueError("standalone document lacks a document environment")
    tabs = list(re.finditer(r"\\begin\{tabular\}\{([^}]*)\}(.*?)\\end\{tabular\}", body, re.S))
    if len(tabs) != 1:
        raise ValueError(f"expected exactly one tabular, found {len(tabs)}")
    colspec, inner = tabs[0].groups()
    n_cols = len(re.findall(r"[lcr]|p\{", colspec))
    if n_cols == 0:
        raise ValueError(f"tabular column specification {colspec!r} has no columns")
    pos = {rule: inner.find("\\" + rule) for rule in ("toprule", "midrule", "bottomrule")}
    if min(pos.values()) < 0:
        raise ValueError(f"booktabs rules missing: {[r for r, p in pos.items() if p < 0]}")
    if not pos["toprule"] < pos["midrule"] < pos["bottomrule"]:
        raise ValueError(r"booktabs rules out of order (want \toprule, \midrule, \bottomrule)")
    header_txt = inner[pos["toprule"] + len("\\toprule") : pos["midrule"]]
    body_txt = inner[pos["midrule"] + len("\\midrule") : pos["bottomrule"]]
    header_rows = [r for r in re.split(r"\\\\", header_txt) if r.strip()]
    body_rows = [r for r in re.split(r"\\\\", body_txt) if r.strip()]
    if len(header_rows) != 1:
        raise ValueError(f"expected one header row, found {len(header_rows)}")
    rows = []
    for k, r in enumerate(header_rows + body_rows):
        cells = _split_cells(r)
        if len(cells) != n_cols:
            raise ValueError(
                f"row {k} has {len(cells)} cells, the column specification {colspec!r} has {n_cols}: {r.strip()!r}"
            )
        rows.append(cells)
    return LatexTableInfo(n_cols, rows[0], rows[1:], standalone)


def _in_math(text: str, i: int) -> bool:
    """Whether offset ``i`` lies inside ``$...$`` (counting unescaped dollars before it)."""
    n = len(re.findall(r"(?<!\\)\$", text[:i]))
    return n % 2 == 1
