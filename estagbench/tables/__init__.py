"""The paper's Tables 1–9 rebuilt from stored results, beside the paper's numbers.

``estagbench tables`` (build from a results store), ``estagbench reproduce`` (run
exactly the cells a table needs, then write it) and ``estagbench plot`` (figures,
:mod:`estagbench.plots`) are added to the command line by :mod:`.cli`.

Typical use::

    from estagbench.tables import get_table_spec, load_records, build_tables, render
    df = load_records("estagbench-results")
    for table in build_tables(get_table_spec(1), df, compare_paper=True):
        print(render(table, "markdown"))
"""

from ._build import (
    Cell,
    Table,
    build_table,
    build_tables,
    stored_variants,
)
from ._format import EXTENSIONS, latex_escape, read_table_csv, render, to_csv, to_latex, to_markdown
from ._latex import LatexTableInfo, check_latex
from ._marks import not_distinguishable, rank_marks, significance
from ._paper import paper_results, paper_value
from ._records import load_records
from ._specs import TABLES, Column, Row, TableSpec, get_table_spec, parse_table_selector

__all__ = [
    "Cell",
    "Column",
    "EXTENSIONS",
    "LatexTableInfo",
    "Row",
    "TABLES",
    "Table",
    "TableSpec",
    "build_table",
    "build_tables",
    "check_latex",
    "get_table_spec",
    "latex_escape",
    "load_records",
    "paper_results",
    "paper_value",
    "parse_table_selector",
    "not_distinguishable",
    "rank_marks",
    "significance",
    "read_table_csv",
    "render",
    "stored_variants",
    "to_csv",
    "to_latex",
    "to_markdown",
]
