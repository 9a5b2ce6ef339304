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
from ._marks import not_distinguishable
from ._specs import get_table_spec

__all__ = ["DAGGER", "significance_legend", "FORMATS", "EXTENSIONS", "to_csv", "to_markdown", "to_latex", "render", "read_table_csv", "latex_escape"]

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
    "num_params",
    "skipped",
    "ci_low",
    "ci_high",
    "p_value",
]
#: The mark of a cell not distinguishable from its column's best (Welch + Holm, 5 %).
DAGGER = "†"


def significance_legend(table: Table) -> str:
    """What † means, naming the axis the table is ranked along (column, or row for the sweeps)."""
    axis = table.spec.rank_axis
    return (
        f"† not distinguishable from the best of its {axis} at 5 % (Welch's t-test, Holm-corrected over the "
        f"{axis}; cells with ≥ 2 seeds)."
    )


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
    pvals = table.p_values()
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
                    "num_params": c.num_params,
                    "skipped": c.skipped,
                    "ci_low": None if (ci := table.interval(r.key, ck)) is None else ci.low,
                    "ci_high": None if ci is None else ci.high,
                    "p_value": pvals.get((r.key, ck)),
                }
            )
    buf = io.StringIO()
    interval = "95% percentile bootstrap over seeds" if table.interval_method == "bootstrap" else "95% Student-t"
    for k, v in {**table.meta, "compare_paper": "yes" if table.compare_paper else "no",
                 "interval": f"{interval} of the mean (ci_low, ci_high); p_value: Welch's t-test against the best of "
                             f"its {table.spec.rank_axis}, Holm-corrected over the {table.spec.rank_axis} (cells with "
                             "≥ 2 seeds; † where ≥ 0.05)"}.items():
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
            num_params=None if _nan(rec.get("num_params")) else int(float(rec["num_params"])),
            skipped=str(rec.get("skipped") or ""),
        )
    compare = meta.pop("compare_paper", "no") == "yes"
    meta.pop("interval", None)  # written by to_csv from the table itself, like compare_paper
    return Table(spec, datasets, cells, meta=meta, compare_paper=compare, column_keys=col_keys)


def _nan(v: object) -> bool:
    return v is None or v == "" or (isinstance(v, float) and math.isnan(v))


def _params_text(table: Table, row_key: str) -> str:
    """The row's parameter count over the shown columns: one number, a range, or "–"."""
    counts = sorted({c.num_params for (rk, ck), c in table.cells.items()
                     if rk == row_key and ck in table.column_keys and c.num_params is not None})
    if not counts:
        return MISSING
    return f"{counts[0]:,}" if len(counts) == 1 else f"{counts[0]:,}–{counts[-1]:,}"


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
    tied = not_distinguishable(table)
    title = f"Table {spec.number}." if spec.number else f"{spec.title}."  # number 0: a dataset's own table
    out = [f"**{title}** {spec.caption}. {_budget_line(table)}", ""]
    with_params = any(c.num_params is not None for c in table.cells.values())  # tables made before 2026-12: none
    footnotes: list[str] = []  # reasons of skipped cells, numbered in order of appearance
    head = [spec.corner or " "] + [c.label for c in table.columns] + (["#params"] if with_params else [])
    out.append("| " + " | ".join(head) + " |")
    out.append("|:--|" + "--:|" * (len(table.columns) + with_params))
    for r in spec.rows:
        cells = [r.label]
        for c in table.columns:
            v = _value_text(table, r.key, c.key, " ± ")
            skipped = table.cells.get((r.key, c.key), Cell()).skipped
            if v is None and skipped:
                if skipped not in footnotes:
                    footnotes.append(skipped)
                text = f"{MISSING}<sup>{footnotes.index(skipped) + 1}</sup>"
            elif v is None:
                text = MISSING
            else:
                mark = marks.get((r.key, c.key))
                text = f"**{v}**" if mark == "best" else f"<u>{v}</u>" if mark == "second" else v
                if (r.key, c.key) in tied:
                    text += DAGGER
            if table.compare_paper:
                p = table.paper(r.key, c.key)
                if p is not None:
                    rel = _rel(table, r.key, c.key)
                    text += f" (paper {_num(p)}" + (f", {rel}" if rel else "") + ")"
            cells.append(text)
        if with_params:
            cells.append(_params_text(table, r.key))
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    legend = "Cells: mean ± std over seeds (one seed: no ±); **bold** best, <u>underlined</u> second; – not stored."
    if table.p_values():
        legend += " " + significance_legend(table)
    if table.compare_paper:
        legend += " In parentheses: the paper's number and our relative difference."
    if with_params:
        legend += " #params: trainable parameters of the row's model (a range where they differ between columns)."
    out.append(legend)
    for i, why in enumerate(footnotes, start=1):
        out.append(f"<sup>{i}</sup> skipped by `estagbench run`, the model cannot run this case: {why}")
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
    if table.p_values():
        bits.append(
            latex_escape(significance_legend(table)).replace("†", r"$^\dagger$").replace("≥", r"$\geq$")
        )
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
    tied = not_distinguishable(table)
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
                if (r.key, c.key) in tied:
                    text += r"$^\dagger$"
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
