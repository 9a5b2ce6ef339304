"""Which cells of a table stand out: the best and second-best marks, and Welch's t-test of every cell
against its column's best with Holm's correction (the † of the formatted tables, the CSV's ``p_value``)."""

from __future__ import annotations

from ._build import DECIMALS, Table
from ._stats import ALPHA, Summary, against_best

__all__ = ["significance", "not_distinguishable", "rank_marks"]


def _rank_groups(table: Table) -> list[list[tuple[str, str]]]:
    """Cells compared with each other: a column (or a row, for tables ranked along rows); ranked columns only."""
    cols = [c for c in table.columns if c.ranked]
    if table.spec.rank_axis == "row":
        return [[(r.key, c.key) for c in cols] for r in table.spec.rows]
    return [[(r.key, c.key) for r in table.spec.rows] for c in cols]


def significance(table: Table) -> tuple[set[tuple[str, str]], dict[tuple[str, str], float]]:
    """Best cell of each ranked group and the adjusted p-values of the others against it.

    Welch's t-test from (mean, unbiased std, n), Holm-corrected over the group's
    tests; cells with fewer than 2 seeds are not tested.  See :mod:`._stats`.
    """
    bests: set[tuple[str, str]] = set()
    out: dict[tuple[str, str], float] = {}
    for group in _rank_groups(table):
        cells = {}
        for k in group:
            c = table.cells.get(k)
            if c is not None and not c.empty and c.mean is not None:
                cells[k] = Summary(float(c.mean), c.std, c.n_seeds)
        best, ps = against_best(cells)
        if best is not None and ps:
            bests.add(best)  # type: ignore[arg-type]
        out.update(ps)  # type: ignore[arg-type]
    return bests, out


def not_distinguishable(table: Table) -> set[tuple[str, str]]:
    """Cells whose adjusted p-value against their group's best is ≥ :data:`ALPHA` (the † mark).

    Cells already printed as best (a tie in the printed digits, marked bold) are left out.
    """
    marks = table.marks()
    return {k for k, p in table.p_values().items() if p >= ALPHA and marks.get(k) != "best"}


def rank_marks(table: Table) -> dict[tuple[str, str], str]:
    """Best (lowest) and second-best printed values along the spec's rank axis.

    Ranks use the values as printed (rounded to :data:`DECIMALS`), so ties share a
    mark as in the paper (Table 1, benzene: two underlined 0.106).  A lone value gets
    no mark, "second" needs at least three values; unranked columns (TIME) get none.
    """
    groups = _rank_groups(table)
    out: dict[tuple[str, str], str] = {}
    for group in groups:
        vals = {k: round(v, DECIMALS) for k in group if (v := table.display(*k)) is not None}
        if len(vals) < 2:
            continue  # nothing to compare with
        distinct = sorted(set(vals.values()))
        for k, v in vals.items():
            if v == distinct[0]:
                out[k] = "best"
            elif len(vals) >= 3 and len(distinct) > 1 and v == distinct[1]:
                out[k] = "second"
    return out
