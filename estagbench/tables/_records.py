"""Stored result records as one table, with the settings that decide table cells.

:func:`estagbench.results.load_results` gives the leaderboard columns; a table also
needs the history length T, the model hyper-parameters (the L sweep), the time a
record was written (to pick the newest configuration) and its provenance.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from ..results import RESULT_COLUMNS, ResultStore, _flatten

__all__ = ["RECORD_COLUMNS", "load_records", "canonical_hparams"]

#: Columns of :func:`load_records`: the store's columns plus these.
RECORD_COLUMNS = RESULT_COLUMNS + [
    "history",
    "stride",
    "model_hparams",
    "data_params",
    "train_config",
    "finished_at",
    "wall_seconds",
    "trains",
    "command",
    "versions",
    "machine",
    "units",
    "leakage",
]


def canonical_hparams(hparams: dict[str, Any] | None, defaults: dict[str, Any]) -> str:
    """A JSON key of ``hparams`` without the entries equal to ``defaults``.

    ``{"layers": 2}`` and ``{}`` describe the same ESTAG, so both map to ``"{}"``.
    """
    clean = {k: v for k, v in (hparams or {}).items() if not (k in defaults and defaults[k] == v)}
    return json.dumps(clean, sort_keys=True, default=str)


def _trains(rec: dict[str, Any]) -> bool:
    """Whether the record's model learns anything (Pt-s/m/t do not)."""
    if rec.get("num_params") == 0:
        return False
    try:
        from ..registry import get_model_entry

        return bool(get_model_entry(str(rec.get("model"))).trains)
    except KeyError:
        return True


def _row(rec: dict[str, Any]) -> dict[str, Any]:
    base = _flatten(rec)
    dp = rec.get("data_params") or {}
    prov = rec.get("provenance") or {}
    return {
        **base,
        "history": dp.get("history"),
        "stride": dp.get("stride"),
        "model_hparams": dict((rec.get("config") or {}).get("model_hparams") or {}),
        "data_params": dict(dp),
        "train_config": dict(rec.get("config") or {}),
        "finished_at": rec.get("finished_at") or "",
        "wall_seconds": rec.get("wall_seconds"),
        "trains": _trains(rec),
        "command": rec.get("command") or "",
        "versions": prov.get("versions") or {},
        "machine": prov.get("machine") or {},
        "units": dict(rec.get("units") or {}),
        "leakage": dict(rec.get("leakage") or {}),
    }


def load_records(root: str | Path) -> pd.DataFrame:
    """Every stored record under ``root`` (``<root>/results/*.json``) as a table.

    Columns: :data:`RECORD_COLUMNS`.  An empty or missing store gives an empty table.
    ``attrs["skipped"]`` lists the notes of cells ``run`` skipped (:mod:`estagbench.skips`).
    """
    from ..skips import load_skips

    rows = [_row(r) for r in ResultStore(Path(root)).records()]
    df = pd.DataFrame(rows, columns=RECORD_COLUMNS)
    df.attrs["skipped"] = load_skips(root)  # (model, case) pairs `run` skipped, for the tables' footnotes
    return df
