"""Build a paper table from stored records: cell selection, mean ± std, best/second marks.

A cell (row, column) takes the records of the row's model on the column's dataset
case whose history T and model hyper-parameters match the column, optionally
filtered by epochs, seeds or configuration hashes.  When several configurations
(different epochs, splits, learning rates ...) are stored for one cell, the newest
one (latest ``finished_at``) is used and the table's notes say so.  The value is the
mean and the unbiased standard deviation over the seeds of that configuration
(OGB's leaderboard rule; one seed prints without ±).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ._paper import paper_value
from ._records import canonical_hparams
from ._specs import ESTAG_DEFAULT_HPARAMS, Column, TableSpec
from ._stats import Interval, bootstrap_interval, t_interval

__all__ = [
    "Cell",
    "Table",
    "build_table",
    "build_tables",
    "stored_variants",
    "DECIMALS",
]

#: Printed decimals, as in the paper's tables.
DECIMALS = 3


@dataclass
class Cell:
    """One table cell: statistics over the seeds of one stored configuration.

    ``mean``/``std`` are in stored units (Å², seconds); ``None`` when nothing is stored.
    """

    mean: float | None = None
    std: float | None = None
    n_seeds: int = 0
    seeds: str = ""
    epochs: int | None = None
    config_hash: str = ""
    n_configs: int = 0
    dataset: str = ""
    case: str = ""
    official: bool | None = None
    settings: str = ""
    #: The implementation the records ran (``"fused"``/``"torch"`` for ESTAG; "" for models with one).
    implementation: str = ""
    #: Trainable parameters of the model in this cell's configuration (``None``: not recorded).
    num_params: int | None = None
    #: Why ``run`` skipped this cell (the model cannot run the case); ``""`` when it did not.
    skipped: str = ""
    #: the per-seed values (stored units) when built from records; ``()`` when read from a CSV
    values: tuple[float, ...] = ()
    #: the record's length unit (``Å``), and its leakage line (``dataset/case: leakage: …``); "" for older records
    length_unit: str = ""
    leakage: str = ""

    @property
    def empty(self) -> bool:
        return self.mean is None or (isinstance(self.mean, float) and math.isnan(self.mean))


@dataclass
class Table:
    """A built table: spec, the dataset chosen for each column, cells and metadata.

    ``meta`` is an ordered ``str -> str`` mapping written as the header of every
    format (caption, budget, provenance); ``columns`` may be a subset of the spec's.
    """

    spec: TableSpec
    datasets: dict[str, str]
    cells: dict[tuple[str, str], Cell]
    meta: dict[str, str] = field(default_factory=dict)
    compare_paper: bool = False
    column_keys: list[str] = field(default_factory=list)
    #: how :meth:`interval` is computed: ``"t"`` (default) or ``"bootstrap"`` (needs per-seed values)
    interval_method: str = "t"

    def __post_init__(self) -> None:
        if not self.column_keys:
            self.column_keys = [c.key for c in self.spec.columns]

    @property
    def columns(self) -> list[Column]:
        return [self.spec.column(k) for k in self.column_keys]

    @property
    def variant(self) -> str:
        """Datasets chosen for columns that had alternatives, joined by ``+`` (``""`` if none)."""
        chosen: list[str] = []
        for group in self.spec.variant_groups():
            if len(group) > 1:
                cols = [c for c in self.spec.columns if c.datasets == group]
                d = self.datasets.get(cols[0].key, group[0])
                if d not in chosen:
                    chosen.append(d)
        return "+".join(chosen)

    @property
    def stem(self) -> str:
        """File name stem: ``table2-adk-mini`` (variant tag only where columns had alternatives)."""
        v = self.variant
        return f"table{self.spec.number}" + (f"-{v}" if v else "")

    def display(self, row_key: str, col_key: str, which: str = "mean") -> float | None:
        """The printed (scaled) value of a cell's mean or std; ``None`` for "–"."""
        c = self.cells.get((row_key, col_key))
        if c is None or c.empty:
            return None
        v = c.mean if which == "mean" else c.std
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return None
        col = self.spec.column(col_key)
        return v * (self.spec.display_factor if col.metric == "test_mse" else 1.0)

    def paper(self, row_key: str, col_key: str) -> float | None:
        """The paper's printed value for this cell, if the paper has one."""
        return paper_value(self.spec.number, row_key, col_key)

    def rel_diff(self, row_key: str, col_key: str) -> float | None:
        """(ours − paper) / paper on printed values; ``None`` without both."""
        ours, theirs = self.display(row_key, col_key), self.paper(row_key, col_key)
        if ours is None or theirs is None or theirs == 0:
            return None
        return (ours - theirs) / theirs

    def marks(self) -> dict[tuple[str, str], str]:
        """``"best"``/``"second"`` per cell (see :func:`rank_marks`)."""
        from ._marks import rank_marks

        return rank_marks(self)

    def interval(self, row_key: str, col_key: str) -> Interval | None:
        """95 % interval of a cell's mean (stored units); ``None`` below 2 seeds.

        ``interval_method == "bootstrap"`` resamples the per-seed values, which only a
        table built from records has; a table read from a CSV raises ``ValueError``.
        """
        c = self.cells.get((row_key, col_key))
        if c is None or c.empty or c.n_seeds < 2 or c.std is None:
            return None
        if self.interval_method == "bootstrap":
            if len(c.values) != c.n_seeds:
                raise ValueError(
                    f"table {self.spec.number}, cell {row_key}/{col_key}: a bootstrap interval needs the per-seed "
                    "numbers, which a leaderboard CSV does not hold; build from a results store (--results) or use "
                    "--interval t"
                )
            return bootstrap_interval(c.values)
        return t_interval(float(c.mean), c.std, c.n_seeds)  # type: ignore[arg-type]

    def p_values(self) -> dict[tuple[str, str], float]:
        """Holm-adjusted p-value of Welch's test against the best cell of its group (see :func:`significance`)."""
        from ._marks import significance

        return significance(self)[1]


#: How a record's ``implementation`` is named in a table header.
IMPLEMENTATION_NAMES = {"fused": "fused CPU kernel", "torch": "PyTorch code"}


def _hkey(h: Any) -> str:
    return canonical_hparams(h if isinstance(h, dict) else {}, ESTAG_DEFAULT_HPARAMS)


def _candidates(
    df: pd.DataFrame,
    model: str,
    dataset: str,
    col: Column,
    epochs: int | None,
    seeds: Sequence[int] | None,
    config_hashes: Iterable[str] | None,
) -> pd.DataFrame:
    m = df[(df["model"] == model) & (df["dataset"] == dataset)]
    if col.case is not None:
        m = m[m["case"] == col.case]
    if m.empty:
        return m
    hist = m["history"].fillna(col.history) if "history" in m else None
    if hist is not None:
        m = m[hist.astype(int) == col.history]
    want = _hkey(col.hparams)
    m = m[m["model_hparams"].map(_hkey) == want]
    if epochs is not None:
        m = m[(m["epochs"] == epochs) | ~m["trains"].astype(bool)]
    if seeds:
        m = m[m["seed"].isin(list(seeds))]
    if config_hashes is not None:
        m = m[m["config_hash"].isin(list(config_hashes))]
    return m


def _cell(m: pd.DataFrame, metric: str) -> Cell:
    if m.empty:
        return Cell()
    newest = m.groupby("config_hash")["finished_at"].max().sort_values()
    chash = str(newest.index[-1])
    g = m[m["config_hash"] == chash].drop_duplicates("seed", keep="last").sort_values("seed")
    vals = pd.to_numeric(g[metric], errors="coerce")
    first = g.iloc[0]
    cell = Cell(
        n_seeds=int(len(g)),
        seeds=",".join(str(int(s)) for s in g["seed"]),
        epochs=None if pd.isna(first["epochs"]) else int(first["epochs"]),
        config_hash=chash,
        n_configs=int(len(newest)),
        dataset=str(first["dataset"]),
        case=str(first["case"]),
        official=None if pd.isna(first["official_data"]) else bool(first["official_data"]),
        settings=_settings(first),
        implementation=str(first.get("implementation") or "") if not pd.isna(first.get("implementation")) else "",
        length_unit=str(first["units"].get("length_unit") or "") if isinstance(first.get("units"), dict) else "",
        leakage=_leakage_text(first),
    )
    params = pd.to_numeric(g["num_params"], errors="coerce").dropna() if "num_params" in g else pd.Series([])
    cell.num_params = int(params.max()) if len(params) else None
    if metric == "train_seconds_per_epoch" and not bool(g["trains"].astype(bool).any()):
        return cell  # Pt-s/m/t: nothing is trained, the paper prints "-"
    if vals.isna().all():
        return cell
    cell.mean = float(vals.mean())
    cell.values = tuple(float(v) for v in vals.dropna())
    cell.std = float(vals.std(ddof=1)) if len(vals.dropna()) > 1 else None
    return cell


def _skip_reason(df: pd.DataFrame, model: str, dataset: str, col: Column) -> str:
    """The reason ``run`` gave for skipping ``model`` on this column's case (``df.attrs["skipped"]``,
    the notes :func:`estagbench.skips.load_skips` reads), or ``""``."""
    for note in df.attrs.get("skipped") or ():
        if note.get("model") != model or note.get("dataset") != dataset:
            continue
        if col.case is not None and note.get("case") != col.case:
            continue
        if int(note.get("history") or col.history) != col.history:
            continue
        return str(note.get("reason") or "skipped")
    return ""


def _settings(rec: pd.Series) -> str:
    """``dataset/case: key=value ...`` of the data and training settings of a record."""
    dp = rec.get("data_params") if isinstance(rec.get("data_params"), dict) else {}
    tc = rec.get("train_config") if isinstance(rec.get("train_config"), dict) else {}
    data = " ".join(f"{k}={_short(v)}" for k, v in sorted(dp.items()) if k != "history")
    train = " ".join(f"{k}={_short(tc[k])}" for k in ("lr", "weight_decay", "batch_size", "hidden") if k in tc)
    return f"{rec['dataset']}/{rec['case']}: {data}; {train}"


def _leakage_text(rec: pd.Series) -> str:
    from ..data.splits import describe_leakage

    leak = rec.get("leakage")
    if not isinstance(leak, dict) or "test_targets_in_train" not in leak:
        return ""
    return f"{rec['dataset']}/{rec['case']}: {describe_leakage(leak).removeprefix('leakage: ')}"


def _units_text(table: Table) -> str:
    """``test MSE ×10⁻³ Å² (…)``: the printed numbers' unit, from the records or the datasets' families."""
    from ..data.catalog import DATASETS
    from ..data.units import FAMILY_LENGTH_UNITS, scale_label

    if not any(c.metric == "test_mse" for c in table.columns):
        return ""
    lengths = sorted({c.length_unit for c in table.cells.values() if c.n_seeds and c.length_unit})
    if not lengths:
        lengths = sorted({FAMILY_LENGTH_UNITS.get(DATASETS[d].family, "unit") for d in table.datasets.values()
                          if d in DATASETS})
    if not lengths:
        return ""
    scale = scale_label(table.spec.exponent)
    unit = " or ".join(f"{u}²" for u in lengths)
    return (f"test MSE{' ' + scale if scale else ''} {unit} (printed value = MSE · 10^{table.spec.exponent}; MSE = mean "
            "over windows, nodes, channels and x/y/z of the squared error)")


def _short(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return ",".join(_short(x) for x in v)
    return f"{v:g}" if isinstance(v, float) else str(v)


def stored_variants(spec: TableSpec, df: pd.DataFrame) -> list[dict[tuple[str, ...], str]]:
    """Every combination of stored datasets for the spec's column groups.

    A group with no stored dataset keeps its first (paper) dataset, so a table with
    nothing stored still builds once, all "–".
    """
    models = {r.model for r in spec.rows}
    have = set(df.loc[df["model"].isin(models), "dataset"]) if not df.empty else set()
    options = []
    for group in spec.variant_groups():
        stored = [d for d in group if d in have]
        options.append([(group, d) for d in (stored or [group[0]])])
    return [dict(combo) for combo in itertools.product(*options)]


def _choose_variant(spec: TableSpec, prefer: Sequence[str]) -> dict[tuple[str, ...], str]:
    choice = {}
    for group in spec.variant_groups():
        picked = [d for d in prefer if d in group]
        choice[group] = picked[0] if picked else group[0]
    return choice


def build_table(
    spec: TableSpec,
    df: pd.DataFrame,
    variant: dict[tuple[str, ...], str] | Sequence[str] | None = None,
    *,
    epochs: int | None = None,
    seeds: Sequence[int] | None = None,
    config_hashes: Iterable[str] | None = None,
    columns: Sequence[str] | None = None,
    compare_paper: bool = False,
    meta: dict[str, str] | None = None,
    drop_empty: bool = False,
    interval: str = "t",
) -> Table:
    """Build one table from a records frame (:func:`load_records`).

    Parameters
    ----------
    spec: the paper table.
    df: stored records.
    variant: group -> dataset (from :func:`stored_variants`), or a list of preferred
        dataset names (``["adk-mini"]``); default: the first alternative of each group.
    epochs, seeds, config_hashes: record filters (epochs does not filter models that
        do not train).
    columns: column keys to keep (default all, in the paper's order).
    compare_paper: print the paper's value and the relative difference in each cell.
    meta: extra header entries (command, provenance ...), appended after the built ones.
    drop_empty: omit columns without any stored value (unless all are empty).
    interval: ``"t"`` (Student-t, default) or ``"bootstrap"`` (percentile bootstrap over seeds)
        for the 95 % interval of each cell's mean.
    """
    if interval not in ("t", "bootstrap"):
        raise ValueError(f"unknown interval {interval!r}; choose 't' or 'bootstrap'")
    if variant is None:
        choice = _choose_variant(spec, [])
    elif isinstance(variant, dict):
        choice = dict(variant)
    else:
        choice = _choose_variant(spec, list(variant))
    datasets = {c.key: choice[c.datasets] for c in spec.columns}
    if columns is not None:
        unknown = [k for k in columns if k not in datasets]
        if unknown:
            raise KeyError(f"table {spec.number} has no column(s) {unknown}; columns: {list(datasets)}")
        col_keys = [c.key for c in spec.columns if c.key in set(columns)]
    else:
        col_keys = [c.key for c in spec.columns]
    cells: dict[tuple[str, str], Cell] = {}
    hashes = None if config_hashes is None else list(config_hashes)
    for col in spec.columns:
        if col.key not in col_keys:
            continue
        for row in spec.rows:
            m = _candidates(df, row.model, datasets[col.key], col, epochs, seeds, hashes) if not df.empty else df
            cells[(row.key, col.key)] = _cell(m, col.metric)
            if cells[(row.key, col.key)].empty:
                cells[(row.key, col.key)].skipped = _skip_reason(df, row.model, datasets[col.key], col)
    if drop_empty:
        keep = [k for k in col_keys if any(not cells[(r.key, k)].empty for r in spec.rows)]
        if keep:
            col_keys = keep
            cells = {k: v for k, v in cells.items() if k[1] in keep}
    table = Table(spec, datasets, cells, compare_paper=compare_paper, column_keys=col_keys, interval_method=interval)
    from ._describe import describe

    table.meta = describe(table, extra=meta)
    return table


def build_tables(
    spec: TableSpec,
    df: pd.DataFrame,
    prefer: Sequence[str] | None = None,
    **kwargs: Any,
) -> list[Table]:
    """One table per stored dataset variant (or just the ``prefer``-red one)."""
    if prefer:
        return [build_table(spec, df, list(prefer), **kwargs)]
    return [build_table(spec, df, v, **kwargs) for v in stored_variants(spec, df)]
