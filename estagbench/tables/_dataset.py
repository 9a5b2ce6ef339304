"""A model × case table for any dataset, built by the paper tables' machinery.

``estagbench tables --dataset NAME|PATH`` for a dataset that no paper table has (a user's
``.npz``, ``motion-walk-35_01``, the peptides …): the rows are the models stored for it (in
the paper's row order where the paper has them), the columns its stored cases (one per
history T when several are stored).  The table is a :class:`~estagbench.tables.Table` of a
generated :class:`~estagbench.tables.TableSpec` (number 0), so cells, statistics, marks,
formats and the provenance header are exactly those of the paper tables.  A file is found
by content: only records computed on a file with the same SHA-256 fill the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..results import ResultStore
from ._build import Table, build_table
from ._specs import TABLES, Column, Row, TableSpec

__all__ = ["is_paper_dataset", "DatasetTable", "dataset_table"]


def is_paper_dataset(name: str) -> bool:
    """Whether some paper table has a column for dataset ``name``."""
    return any(name in spec.datasets() for spec in TABLES.values())


@dataclass
class DatasetTable(Table):
    """A dataset's own table: files are named ``dataset-<label>.<ext>``."""

    label: str = ""

    @property
    def stem(self) -> str:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(self.label).stem or self.label)
        return f"dataset-{safe}"


def _paper_labels() -> dict[str, str]:
    labels: dict[str, str] = {}
    for spec in TABLES.values():
        for row in spec.rows:
            labels.setdefault(row.model, row.label)
    return labels


def _matching_hashes(root: Path, label: str, sha256: str | None) -> set[str] | None:
    """Configuration hashes of the records on the file with ``sha256`` (None: no file to compare)."""
    if sha256 is None:
        return None
    out = set()
    for rec in ResultStore(root).records():
        if rec.get("dataset") != label and Path(str(rec.get("dataset"))).name != label:
            continue
        shas = {rec.get("data_sha256")} | {f.get("sha256") for f in rec.get("data_files") or []}
        if sha256 in shas:
            out.add(str(rec.get("config_hash")))
    return out


def dataset_table(
    name: str, df: pd.DataFrame, results: Path, *, meta: dict[str, str] | None = None, **filters: Any
) -> DatasetTable:
    """The model × case table of dataset ``name`` (a catalog name or a file path) from records ``df``."""
    from ..data.catalog import DATASETS
    from ..data.identity import dataset_identity

    label, sha = dataset_identity(name)
    hashes = _matching_hashes(Path(results), label, sha)
    # records name a file by its name; those stored before content ids by the path as typed
    m = df[df["dataset"].astype(str).map(lambda d: d == label or Path(d).name == label).astype(bool)] if not df.empty else df
    if hashes is not None and not m.empty:
        m = m[m["config_hash"].isin(hashes)]
    if m.empty:
        what = f"records on {name} with SHA-256 {sha[:12]}…" if sha else f"records for dataset {label!r}"
        stored = sorted(set(df["dataset"])) if not df.empty else []
        raise ValueError(f"no {what} under {results}/results; stored datasets: {', '.join(stored) or 'none'}. "
                         f"Run `estagbench run --dataset {name}` first")
    labels = _paper_labels()
    order = list(labels)
    models = sorted(set(m["model"]), key=lambda n: (order.index(n) if n in order else len(order), n))
    rows = tuple(Row(n, labels.get(n, n), n) for n in models)
    pairs = sorted({(str(c), int(h)) for c, h in zip(m["case"], m["history"].fillna(10), strict=True)})
    several = len({h for _, h in pairs}) > 1
    columns = tuple(Column(f"{c}-T{h}" if several else c, f"{c} (T={h})" if several else c, (label,), case=c, history=h)
                    for c, h in pairs)
    exponents = [int(u.get("exponent", 0)) for u in m["units"] if isinstance(u, dict) and u]
    if label in DATASETS:
        from ..data.units import units_for_family

        exponent = units_for_family(DATASETS[label].family, DATASETS[label].scale).exponent
    else:
        exponent = max(set(exponents), key=exponents.count) if exponents else 0
    from ..data.units import scale_label

    scale = scale_label(exponent)
    spec = TableSpec(0, f"Dataset {label}", f"Prediction error{f' ({scale})' if scale else ''} on {label}", rows,
                     columns, exponent=exponent)
    built = build_table(spec, m, {(label,): label}, config_hashes=hashes, meta=meta, **filters)
    table = DatasetTable(spec, built.datasets, built.cells, built.meta, built.compare_paper, built.column_keys,
                         label=label)
    table.meta["table"] = f"dataset {label}"
    if sha:
        table.meta["data_sha256"] = sha
    return table
