"""The paper's own numbers (``estagbench/paper_results.csv``), for ``--compare-paper``.

The CSV is a transcription of Tables 1–9 of Wu et al. (NeurIPS 2023) from
``shared/paper/estag-paper.md``; ``tests/test_tables.py`` parses the paper's text
and checks every number and every bold/underline mark against it.  Values are
stored as printed (e.g. ``0.099`` in the ×10⁻³ Table 1).
"""

from __future__ import annotations

from functools import cache, lru_cache
from importlib import resources

import pandas as pd

__all__ = ["paper_results", "paper_value"]


@lru_cache(maxsize=1)
def paper_results() -> pd.DataFrame:
    """The transcription: columns table, row, column, value (as printed), exponent, mark."""
    path = resources.files("estagbench").joinpath("paper_results.csv")
    with path.open("r") as fh:
        df = pd.read_csv(fh, comment="#", dtype={"row": str, "column": str, "mark": str}, keep_default_na=False)
    df["table"] = df["table"].astype(int)
    df["value"] = df["value"].astype(float)
    df["exponent"] = df["exponent"].astype(int)
    return df


@cache
def _index() -> dict[tuple[int, str, str], float]:
    df = paper_results()
    return {
        (int(t), str(r), str(c)): float(v)
        for t, r, c, v in zip(df["table"], df["row"], df["column"], df["value"], strict=False)
    }


def paper_value(table: int, row: str, column: str) -> float | None:
    """The paper's printed number for (table, row key, column key), or ``None`` (not in the paper)."""
    return _index().get((int(table), row, column))
