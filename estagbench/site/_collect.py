"""Everything the site shows, gathered into one JSON-ready structure.

Sources: the committed leaderboard CSVs (``leaderboards/table*.csv``), their figures,
the model registry, the dataset catalog and the data modules' cards and checksums,
and, when given, a results store (per-model parameter counts and seconds per epoch,
per-dataset split sizes and file checksums, and tables rebuilt from the records).
Problems with one input (an unreadable CSV, an empty store) become warnings naming
the file and the fix; what is valid still builds.
"""

from __future__ import annotations

import importlib
import inspect
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["SiteData", "collect", "table_payload"]

#: The data module holding the card (docstring), checksums and protocol defaults of a dataset family.
FAMILY_MODULES = {
    "md17": "estagbench.data.md17",
    "adk": "estagbench.data.adk",
    "motion": "estagbench.data.mocap",
    "peptide": "estagbench.simulate.dataset",
}
#: Table metadata shown beside each table (budget, provenance), in this order.
TABLE_META = ("datasets", "epochs", "seeds", "budget", "commit", "machine", "versions", "wall_time", "official_data",
              "settings", "notes", "command")


@dataclass
class SiteData:
    """What the site shows; :meth:`as_json` is written as ``data.json``."""

    tables: list[dict[str, Any]] = field(default_factory=list)
    models: list[dict[str, Any]] = field(default_factory=list)
    datasets: list[dict[str, Any]] = field(default_factory=list)
    figures: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"sources": self.sources, "warnings": self.warnings, "tables": self.tables, "models": self.models,
                "datasets": self.datasets, "figures": self.figures}


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def table_payload(table: Any, source: str) -> dict[str, Any]:
    """A built :class:`~estagbench.tables.Table` as plain data: columns, rows, every cell's numbers."""
    from ..tables import not_distinguishable

    marks = table.marks()
    pvals = table.p_values()
    tied = not_distinguishable(table)
    rows = []
    for r in table.spec.rows:
        cells = {}
        for c in table.columns:
            cell = table.cells.get((r.key, c.key))
            ci = None
            if cell is not None and not cell.empty:
                try:
                    ci = table.interval(r.key, c.key)
                except ValueError:
                    ci = None
            factor = table.spec.display_factor if c.metric == "test_mse" else 1.0
            cells[c.key] = {
                "mean": table.display(r.key, c.key),
                "std": table.display(r.key, c.key, "std"),
                "n": 0 if cell is None else cell.n_seeds,
                "seeds": "" if cell is None else cell.seeds,
                "ci_low": None if ci is None else ci.low * factor,
                "ci_high": None if ci is None else ci.high * factor,
                "p_value": pvals.get((r.key, c.key)),
                "not_distinguishable": (r.key, c.key) in tied,
                "mark": marks.get((r.key, c.key), ""),
                "paper": table.paper(r.key, c.key),
                "rel_diff": table.rel_diff(r.key, c.key),
                "config_hash": "" if cell is None else cell.config_hash,
            }
        rows.append({"key": r.key, "label": r.label, "model": r.model, "cells": cells})
    return {
        "id": f"{source.split(':')[0]}-{table.stem}",
        "number": table.spec.number,
        "stem": table.stem,
        "title": table.spec.title,
        "caption": table.spec.caption,
        "corner": table.spec.corner,
        "rank_axis": table.spec.rank_axis,
        "source": source,
        "columns": [{"key": c.key, "label": c.label, "metric": c.metric, "dataset": table.datasets[c.key],
                     "case": c.case or ""} for c in table.columns],
        "rows": rows,
        "meta": {k: table.meta[k] for k in TABLE_META if table.meta.get(k)},
    }


def _leaderboard_tables(folder: Path, warn: Callable[[str], None]) -> list[dict[str, Any]]:
    from ..tables import read_table_csv

    out = []
    for path in sorted(folder.glob("table*.csv")):
        try:
            table = read_table_csv(path)
        except (ValueError, KeyError, pd.errors.ParserError, OSError) as exc:
            msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            warn(f"{path}: not a leaderboard table, left out ({msg}); regenerate it with the command in its "
                 "header or delete it")
            continue
        out.append(table_payload(table, f"leaderboards:{path.name}"))
    return out


def _store_tables(df: pd.DataFrame, root: Path) -> list[dict[str, Any]]:
    from ..tables import TABLES, build_tables

    out = []
    for spec in TABLES.values():
        for table in build_tables(spec, df, compare_paper=True, drop_empty=True):
            if any(not c.empty for c in table.cells.values()):
                out.append(table_payload(table, f"results:{root}"))
    return out


def _figures(folder: Path, tables: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each PNG under ``folder/figures`` with the models it shows (from leaderboards/README.md's file table)."""
    figdir = folder / "figures"
    if not figdir.is_dir():
        return []
    readme = (folder / "README.md").read_text() if (folder / "README.md").is_file() else ""
    from ..registry import list_models

    names = list_models()
    labels = {row["label"]: row["model"] for t in tables for row in t["rows"]}
    out = []
    for png in sorted(figdir.glob("*.png")):
        stem = png.stem
        line = next((x for x in readme.splitlines() if x.startswith("|") and f"figures/{stem.split('-')[0]}" in x), "")
        models = {n for n in names if re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", stem)}
        models |= {n for n in names if f"`{n}`" in line}
        models |= {m for lab, m in labels.items() if re.search(rf"(?<![\w(]){re.escape(lab)}(?![\w)])", line)}
        m = re.search(r"the Table (\d+) runs", line)
        if m:
            models |= {row["model"] for t in tables if t["number"] == int(m.group(1)) for row in t["rows"]
                       if any(c["mean"] is not None for c in row["cells"].values())}
        desc = line.split("|")[3].strip() if line.count("|") >= 4 else ""
        out.append({"file": f"figures/{png.name}", "stem": stem, "models": sorted(models), "description": desc})
    return out


def _models(df: pd.DataFrame, tables: list[dict[str, Any]], figures: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from ..registry import get_model_entry, list_models

    out = []
    for name in list_models():
        e = get_model_entry(name)
        mod = importlib.import_module(e.module) if e.module else None
        doc = inspect.getdoc(mod) if mod is not None else ""
        params: dict[str, Any] = {}
        secs: dict[str, Any] = {}
        if not df.empty:
            for (ds, case), g in df[df["model"] == name].groupby(["dataset", "case"]):
                n = g["num_params"].dropna()
                if len(n):
                    params[f"{ds}/{case}"] = int(n.iloc[-1])
                s = pd.to_numeric(g["train_seconds_per_epoch"], errors="coerce").dropna()
                if len(s) and e.trains:
                    secs[f"{ds}/{case}"] = {"mean": float(s.mean()), "n": int(len(s))}
        for t in tables:  # seconds per epoch printed in a table (Table 2's TIME column)
            for row in t["rows"]:
                if row["model"] != name:
                    continue
                for col in t["columns"]:
                    cell = row["cells"][col["key"]]
                    if col["metric"] == "train_seconds_per_epoch" and cell["mean"] is not None:
                        secs.setdefault(col["dataset"] + (f"/{col['case']}" if col["case"] else ""),
                                        {"mean": cell["mean"], "n": cell["n"], "table": t["number"]})
        results = [{"table": t["id"], "number": t["number"], "stem": t["stem"], "column": col["label"],
                    "dataset": col["dataset"], "case": col["case"], **row["cells"][col["key"]]}
                   for t in tables for row in t["rows"] if row["model"] == name for col in t["columns"]
                   if row["cells"][col["key"]]["mean"] is not None]
        out.append({
            "name": name, "symmetry": e.symmetry, "multichannel": e.multichannel, "trains": e.trains,
            "datasets": list(e.datasets) if e.datasets else "all", "module": e.module, "paper": e.paper,
            "description": e.description, "defaults": {k: str(v) for k, v in e.defaults.items()},
            "docstring": doc or "", "num_params": params, "seconds_per_epoch": secs, "results": results,
            "figures": [f["file"] for f in figures if name in f["models"]],
        })
    return out


def _checksums(mod: Any) -> dict[str, str]:
    """Known SHA-256 values a data module declares (file name -> hex digest)."""
    out: dict[str, str] = {}
    for attr, val in vars(mod).items():
        if not attr.isupper() or not isinstance(val, dict):
            continue
        for k, v in val.items():
            if isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v):
                out[str(k)] = v
            elif isinstance(k, str) and re.fullmatch(r"[0-9a-f]{64}", k):
                out[str(v)] = k
            elif hasattr(v, "sha256") and hasattr(v, "filename"):
                out[v.filename] = v.sha256
    return out


def _defaults(mod: Any) -> dict[str, str]:
    out = {}
    for attr in ("DEFAULTS", "CASE_DEFAULTS"):
        val = getattr(mod, attr, None)
        if isinstance(val, dict):
            out[attr.lower()] = str(val)
    return out


def _datasets(df: pd.DataFrame, tables: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from ..data.catalog import DATASETS

    cards: dict[str, tuple[str, dict[str, str], dict[str, str]]] = {}
    out = []
    for spec in DATASETS.values():
        modname = FAMILY_MODULES.get(spec.family)
        if modname and modname not in cards:
            mod = importlib.import_module(modname)
            cards[modname] = (inspect.getdoc(mod) or "", _checksums(mod), _defaults(mod))
        doc, sums, defaults = cards.get(modname or "", ("", {}, {}))
        stored: list[dict[str, Any]] = []
        if not df.empty and "split_sizes" in df:
            for (case, chash), g in df[df["dataset"] == spec.name].groupby(["case", "split_hash"]):
                sizes = next((s for s in g["split_sizes"] if isinstance(s, dict) and s), None)
                files = next((f for f in g["data_files"] if isinstance(f, list) and f), [])
                leak = next((x for x in g["leakage"] if isinstance(x, dict) and x), None) if "leakage" in g else None
                stored.append({"case": case, "split_hash": chash, "split_sizes": sizes, "data_files": files,
                               "leakage": leak,
                               "official_data": bool(g["official_data"].iloc[-1]) if len(g) else None})
        in_tables = [{"id": t["id"], "stem": t["stem"]} for t in tables
                     if any(c["dataset"] == spec.name for c in t["columns"])]
        out.append({
            "name": spec.name, "family": spec.family, "cases": list(spec.cases), "description": spec.description,
            "paper_table": spec.table, "offline": spec.offline, "lr": spec.lr, "display_scale": spec.scale,
            "card": doc, "known_sha256": sums, "protocol_defaults": defaults, "stored": stored,
            "settings": sorted({t["meta"].get("settings", "") for t in tables
                                if any(t["id"] == u["id"] for u in in_tables)} - {""}),
            "tables": in_tables,
        })
    return out


def _records(root: Path, warn: Callable[[str], None]) -> pd.DataFrame:
    import json

    from ..tables import load_records

    rdir = root / "results"
    if not rdir.is_dir():
        raise FileNotFoundError(f"--results {root}: no results store there (expected {rdir}/*.json); "
                                "run `estagbench run ... --out DIR` first or leave --results out")
    files = sorted(rdir.glob("*.json"))
    if not files:
        warn(f"--results {root}: the store holds no records ({rdir} is empty); the site shows the leaderboards only")
        return pd.DataFrame()
    df = load_records(root)
    extra = []
    for p in files:
        try:
            rec = json.loads(p.read_text())
        except (json.JSONDecodeError, OSError):
            continue  # load_records has warned already
        extra.append({"config_hash": rec.get("config_hash"), "seed": rec.get("seed"), "model": rec.get("model"),
                      "split_sizes": rec.get("split_sizes"), "data_files": rec.get("data_files")})
    if len(df) != len(files):
        warn(f"--results {root}: {len(files) - len(df)} unreadable record(s) left out; delete them and rerun the "
             "command that made them")
    if extra:
        ex = pd.DataFrame(extra).drop_duplicates(["model", "config_hash", "seed"])
        df = df.merge(ex, on=["model", "config_hash", "seed"], how="left")
    return df


def collect(leaderboards: Path | None, results: Path | None, warn: Callable[[str], None]) -> SiteData:
    """Gather the site's content; ``warn`` receives one line per input problem that was skipped."""
    data = SiteData()

    def note(msg: str) -> None:
        data.warnings.append(msg)
        warn(msg)

    tables: list[dict[str, Any]] = []
    if leaderboards is not None:
        if not Path(leaderboards).is_dir():
            raise FileNotFoundError(f"--leaderboards {leaderboards}: no such folder")
        tables += _leaderboard_tables(Path(leaderboards), note)
        data.sources["leaderboards"] = str(leaderboards)
    df = pd.DataFrame()
    if results is not None:
        df = _records(Path(results), note)
        data.sources["results"] = str(results)
        if not df.empty:
            tables += _store_tables(df, Path(results))
    if not tables:
        where = " and ".join(f"{k} {v}" for k, v in data.sources.items()) or "no source"
        raise ValueError(f"nothing to show: no readable table in {where}; pass --leaderboards DIR (table*.csv) "
                         "or --results DIR (a results store)")
    data.tables = tables
    data.figures = _figures(Path(leaderboards), tables) if leaderboards is not None else []
    data.models = _models(df, tables, data.figures)
    data.datasets = _datasets(df, tables)
    return data
