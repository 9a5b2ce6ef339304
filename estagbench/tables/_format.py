"""Table writers (CSV, Markdown, LaTeX) and the CSV reader that rebuilds a table.

The CSV is the source of truth: one line per cell with the raw mean, std, seeds and
configuration hash, preceded by ``# key: value`` header lines (caption, budget,
provenance).  :func:`read_table_csv` turns it back into a :class:`Table`, from
which Markdown and LaTeX are rendered again, so committed leaderboards can be
checked for agreement.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from ._build import DECIMALS, Cell, Table
from ._specs import get_table_spec

__all__ = ["FORMATS", "EXTENSIONS", "to_csv", "to_markdown", "to_latex", "render", "read_table_csv", "latex_escape"]

EXTENSIONS = {"csv": "csv", "markdown": "md", "latex": "tex"}
MISSING = "–"
CSV_COLUMNS = [
    "table",
    "variant",
    "row",
    "label",
    "model",
    "column",
    "column_label",
    "dataset",
    "case",
    "metric",
    "mean",
    "std",
    "n_seeds",
    "seeds",
    "epochs",
    "config_hash",
    "n_configs",
    "display_factor",
    "display_mean",
    "display_std",
    "paper",
    "rel_diff",
    "mark",
]


def _num(v: float | None) -> str:
    return f"{v:.{DECIMALS}f}"


def _value_text(table: Table, rk: str, ck: str, pm: str) -> str | None:
    mean = table.display(rk, ck)
    if mean is None:
        return None
    std = table.display(rk, ck, "std")
    return _num(mean) if std is None else f"{_num(mean)}{pm}{_num(std)}"


def _rel(table: Table, rk: str, ck: str) -> str:
    d = table.rel_diff(rk, ck)
    return "" if d is None else f"{d * 100:+.1f}%"


# --------------------------------------------------------------------------- CSV
def to_csv(table: Table) -> str:
    """The table as header comments plus one CSV line per cell (raw and printed values)."""
    marks = table.marks()
    rows = []
    for ck in table.column_keys:
        col = table.spec.column(ck)
        for r in table.spec.rows:
            c = table.cells.get((r.key, ck), Cell())
            factor = table.spec.display_factor if col.metric == "test_mse" else 1.0
            rows.append(
                {
                    "table": table.spec.number,
                    "variant": table.variant,
                    "row": r.key,
                    "label": r.label,
                    "model": r.model,
                    "column": ck,
                    "column_label": col.label,
                    "dataset": table.datasets[ck],
                    "case": col.case or c.case,
                    "metric": col.metric,
                    "mean": c.mean,
                    "std": c.std,
                    "n_seeds": c.n_seeds,
                    "seeds": c.seeds,
                    "epochs": c.epochs,
                    "config_hash": c.config_hash,
                    "n_configs": c.n_configs,
                    "display_factor": factor,
                    "display_mean": table.display(r.key, ck),
                    "display_std": table.display(r.key, ck, "std"),
                    "paper": table.paper(r.key, ck),
                    "rel_diff": table.rel_diff(r.key, ck),
                    "mark": marks.get((r.key, ck), ""),
                }
            )
    buf = io.StringIO()
    for k, v in {**table.meta, "compare_paper": "yes" if table.compare_paper else "no"}.items():
        buf.write(f"# {k}: {v}\n")
    pd.DataFrame(rows, columns=CSV_COLUMNS).to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue()


def read_table_csv(source: str | Path) -> Table:
    """Rebuild a :class:`Table` from :func:`to_csv` output (a path or the text itself)."""
    text = Path(source).read_text() if isinstance(source, Path) or "\n" not in str(source) else str(source)
    meta: dict[str, str] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines) and lines[i].startswith("#"):
        key, sep, val = lines[i][1:].strip().partition(": ")
        if not sep:
            key, val = key.rstrip(":"), ""
        meta[key] = val
        i += 1
    df = pd.read_csv(
        io.StringIO("\n".join(lines[i:])),
        dtype={"seeds": str, "config_hash": str, "variant": str, "row": str, "column": str, "case": str},
        keep_default_na=False,
        na_values={"mean": [""], "std": [""], "epochs": [""]},
    )
    if df.empty:
        raise ValueError(f"{source}: no table cells")
    numbers = set(df["table"].astype(int))
    if len(numbers) != 1:
        raise ValueError(f"{source}: cells of several tables {sorted(numbers)}")
    spec = get_table_spec(numbers.pop())
    col_keys = list(dict.fromkeys(df["column"]))
    datasets = {c.key: c.datasets[0] for c in spec.columns}
    cells: dict[tuple[str, str], Cell] = {}
    for rec in df.to_dict("records"):
        datasets[rec["column"]] = rec["dataset"]
        cells[(rec["row"], rec["column"])] = Cell(
            mean=None if _nan(rec["mean"]) else float(rec["mean"]),
            std=None if _nan(rec["std"]) else float(rec["std"]),
            n_seeds=int(rec["n_seeds"]),
            seeds=str(rec["seeds"]),
            epochs=None if _nan(rec["epochs"]) else int(rec["epochs"]),
            config_hash=str(rec["config_hash"]),
            n_configs=int(rec["n_configs"]),
            dataset=str(rec["dataset"]),
            case=str(rec["case"]),
        )
    compare = meta.pop("compare_paper", "no") == "yes"
    return Table(spec, datasets, cells, meta=meta, compare_paper=compare, column_keys=col_keys)


def _nan(v: object) -> bool:
    return v is None or v == "" or (isinstance(v, float) and math.isnan(v))


# --------------------------------------------------------------------------- Markdown
_HIDDEN_META = ("table", "title", "caption")


def _budget_line(table: Table) -> str:
    """``Data: md17 (ethanol); epochs 500; seeds 1,2,3.`` from the header."""
    m = table.meta
    parts = [f"Data: {m.get('datasets', '')}"]
    parts += [f"{k} {m[k]}" for k in ("epochs", "seeds") if m.get(k, "–") != "–"]
    return "; ".join(parts) + "."


def to_markdown(table: Table) -> str:
    """GitHub Markdown: title, the table (bold best, underlined second), then the header list."""
    spec = table.spec
    marks = table.marks()
    title = f"Table {spec.number}." if spec.number else f"{spec.title}."  # number 0: a dataset's own table
    out = [f"**{title}** {spec.caption}. {_budget_line(table)}", ""]
    head = [spec.corner or " "] + [c.label for c in table.columns]
    out.append("| " + " | ".join(head) + " |")
    out.append("|:--|" + "--:|" * len(table.columns))
    for r in spec.rows:
        cells = [r.label]
        for c in table.columns:
            v = _value_text(table, r.key, c.key, " ± ")
            if v is None:
                text = MISSING
            else:
                mark = marks.get((r.key, c.key))
                text = f"**{v}**" if mark == "best" else f"<u>{v}</u>" if mark == "second" else v
            if table.compare_paper:
                p = table.paper(r.key, c.key)
                if p is not None:
                    rel = _rel(table, r.key, c.key)
                    text += f" (paper {_num(p)}" + (f", {rel}" if rel else "") + ")"
            cells.append(text)
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    legend = "Cells: mean ± std over seeds (one seed: no ±); **bold** best, <u>underlined</u> second; – not stored."
    if table.compare_paper:
        legend += " In parentheses: the paper's number and our relative difference."
    out.append(legend)
    out.append("")
    for k, v in table.meta.items():
        if k not in _HIDDEN_META:
            out.append(f"- {k}: {v}")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- LaTeX
_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "×": r"$\times$",
    "–": "--",
    "—": "---",
}


def latex_escape(text: str) -> str:
    """Escape LaTeX specials (``ST_EGNN`` -> ``ST\\_EGNN``); ± and × become math."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _latex_caption(table: Table) -> str:
    spec = table.spec
    cap = spec.caption
    if spec.scale_label:
        head, _, tail = cap.partition(spec.scale_label)
        cap = latex_escape(head) + spec.scale_latex + latex_escape(tail) if _ else latex_escape(cap)
    else:
        cap = latex_escape(cap)
    m = table.meta
    bits = [f"{cap}.", f"Data: {latex_escape(m.get('datasets', ''))}."]
    if m.get("epochs", "–") != "–":
        bits.append(
            f"{latex_escape(m['epochs'])} epochs, seeds {latex_escape(m.get('seeds', ''))}; mean $\\pm$ std over seeds."
        )
    bits.append("Bold: best; underlined: second; -- not stored.")
    if table.compare_paper:
        bits.append("In parentheses: the paper's number and the relative difference.")
    return " ".join(bits)


def to_latex(table: Table, standalone: bool = False) -> str:
    """A booktabs ``table`` (``standalone=True``: a complete, compilable document).

    Header entries go into ``%`` comment lines; the caption carries the data
    variant and the budget.
    """
    spec = table.spec
    marks = table.marks()
    lines = [f"% {k}: {v}" for k, v in {**table.meta, "compare_paper": "yes" if table.compare_paper else "no"}.items()]
    if standalone:
        lines += [
            r"\documentclass{article}",
            r"\usepackage{booktabs}",
            r"\usepackage{graphicx}",
            r"\begin{document}",
            r"\pagestyle{empty}",
        ]
    wide = len(table.columns) > 4 or table.compare_paper
    lines += [
        r"\begin{table}[t]",
        r"\centering",
        r"\caption{" + _latex_caption(table) + "}",
        r"\label{tab:estagbench-" + table.stem + "}",
    ]
    if wide:
        lines.append(r"\resizebox{\linewidth}{!}{%")
    lines.append(r"\begin{tabular}{l" + "r" * len(table.columns) + "}")
    lines.append(r"\toprule")
    lines.append(" & ".join([latex_escape(spec.corner)] + [latex_escape(c.label) for c in table.columns]) + r" \\")
    lines.append(r"\midrule")
    for r in spec.rows:
        cells = [latex_escape(r.label)]
        for c in table.columns:
            v = _value_text(table, r.key, c.key, r" $\pm$ ")
            if v is None:
                text = "--"
            else:
                mark = marks.get((r.key, c.key))
                text = r"\textbf{" + v + "}" if mark == "best" else r"\underline{" + v + "}" if mark == "second" else v
            if table.compare_paper:
                p = table.paper(r.key, c.key)
                if p is not None:
                    rel = _rel(table, r.key, c.key).replace("%", r"\%")
                    text += r" {\scriptsize(" + _num(p) + (f", {rel}" if rel else "") + ")}"
            cells.append(text)
        lines.append(" & ".join(cells) + r" \\")
    lines.append(r"\bottomrule")
    lines.append(r"\end{tabular}" + ("}" if wide else ""))
    lines.append(r"\end{table}")
    if standalone:
        lines.append(r"\end{document}")
    return "\n".join(lines) + "\n"


FORMATS: dict[str, Callable[[Table], str]] = {"csv": to_csv, "markdown": to_markdown, "latex": to_latex}


def render(table: Table, fmt: str, standalone: bool = False) -> str:
    """Render ``table`` as ``csv``, ``markdown`` or ``latex``."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown table format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "latex":
        return to_latex(table, standalone=standalone)
    return FORMATS[fmt](table)
