"""The paper's Tables 1–9 as data: rows, columns, datasets, scaling.

Each :class:`TableSpec` names the paper's rows (a registered model, possibly with
fixed hyper-parameters) and columns (a dataset case, a metric, and the protocol
settings a stored record must have to belong there).  The numbers come from the
results store; nothing here is a result.

Scaling follows the paper: MD17 ×10⁻³ (Tables 1, 4, 7), AdK unscaled (Tables 2, 8),
Motion ×10⁻¹ (Tables 3, 9), the ethanol sweeps ×10⁻⁴ (Tables 5, 6).  A displayed
value is ``mse / 10^k`` for a ``×10^k`` table, i.e. ``mse * display_factor``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import protocol as P

__all__ = [
    "Row",
    "Column",
    "TableSpec",
    "TABLES",
    "MD17_MOLECULES",
    "ESTAG_DEFAULT_HPARAMS",
    "get_table_spec",
    "parse_table_selector",
]

#: The paper's column order for MD17 (Tables 1, 4, 7) and each molecule's label.
MD17_MOLECULES: tuple[tuple[str, str], ...] = (
    ("aspirin", "Aspirin"),
    ("benzene", "Benzene"),
    ("ethanol", "Ethanol"),
    ("malonaldehyde", "Malonaldehyde"),
    ("naphthalene", "Naphthalene"),
    ("salicylic", "Salicylic"),
    ("toluene", "Toluene"),
    ("uracil", "Uracil"),
)

#: Hyper-parameter values a record may carry explicitly and still count as the
#: registered default (ESTAG's number of blocks, Sec. 5.4: "we choose L = 2").
ESTAG_DEFAULT_HPARAMS: dict[str, Any] = {"layers": 2}

#: Protocol default history T (protocol.md: "Default T = 10 for every dataset"); the old name of
#: :data:`estagbench.protocol.HISTORY`.
DEFAULT_HISTORY = P.HISTORY


@dataclass(frozen=True)
class Row:
    """One table row: a registered model, optionally with fixed model hyper-parameters.

    Parameters
    ----------
    key: unique key inside the table (also the key of the paper's value).
    label: the paper's row label (``ST_EGNN``, ``w/o EDFT``).
    model: registry name (``st-egnn``, ``estag-no-edft``).
    """

    key: str
    label: str
    model: str


@dataclass(frozen=True)
class Column:
    """One table column.

    Parameters
    ----------
    key: unique key inside the table (``ethanol``, ``mse``, ``time``, ``L3``, ``T20``).
    label: the paper's column label.
    datasets: dataset names that may fill the column, in order of preference
        (``("adk", "adk-mini")``); the first stored one is used unless a variant
        is chosen, and a table is built once per stored variant.
    case: the dataset case (MD17 molecule); ``None``: the dataset's only case.
    metric: ``test_mse`` or ``train_seconds_per_epoch`` (Table 2's TIME(S)).
    history: the history length T a record must have.
    hparams: model hyper-parameters a record must have (the L sweep's ``layers``).
    ranked: whether best/second marks apply (not to TIME).
    """

    key: str
    label: str
    datasets: tuple[str, ...]
    case: str | None = None
    metric: str = "test_mse"
    history: int = DEFAULT_HISTORY
    hparams: dict[str, Any] = field(default_factory=dict)
    ranked: bool = True


@dataclass(frozen=True)
class TableSpec:
    """One of the paper's tables.

    Parameters
    ----------
    number: the paper's table number (1–9).
    title: short name used in file headers.
    caption: the paper's caption (adapted: the store decides seeds and epochs).
    rows, columns: layout, in the paper's order.
    exponent: the table prints ``mse × 10^-exponent`` (3 for MD17, 0 for AdK, 1 for
        Motion, 4 for Tables 5/6); 0 means unscaled.
    rank_axis: ``"column"`` (best model per column, as the paper marks) or
        ``"row"`` (best setting along a sweep, Tables 5/6).
    corner: the header's top-left cell.
    """

    number: int
    title: str
    caption: str
    rows: tuple[Row, ...]
    columns: tuple[Column, ...]
    exponent: int = 0
    rank_axis: str = "column"
    corner: str = "Method"

    @property
    def display_factor(self) -> float:
        """Multiplier from stored MSE to the printed number (1e3 for ×10⁻³)."""
        return float(10**self.exponent)

    @property
    def scale_label(self) -> str:
        """``×10⁻³`` style label, or ``""`` when unscaled."""
        if self.exponent == 0:
            return ""
        sup = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
        return "×10" + f"-{self.exponent}".translate(sup)

    @property
    def scale_latex(self) -> str:
        return "" if self.exponent == 0 else f"$\\times 10^{{-{self.exponent}}}$"

    def variant_groups(self) -> list[tuple[str, ...]]:
        """Distinct dataset-alternative tuples of the columns, in column order."""
        out: list[tuple[str, ...]] = []
        for c in self.columns:
            if c.datasets not in out:
                out.append(c.datasets)
        return out

    def datasets(self) -> list[str]:
        """Every dataset name any column accepts."""
        out: list[str] = []
        for g in self.variant_groups():
            out.extend(d for d in g if d not in out)
        return out

    def row(self, key: str) -> Row:
        for r in self.rows:
            if r.key == key:
                return r
        raise KeyError(f"table {self.number} has no row {key!r}; rows: {[r.key for r in self.rows]}")

    def column(self, key: str) -> Column:
        for c in self.columns:
            if c.key == key:
                return c
        raise KeyError(f"table {self.number} has no column {key!r}; columns: {[c.key for c in self.columns]}")


def _main_rows(*names: str) -> tuple[Row, ...]:
    labels = {
        "pt-s": "Pt-s",
        "pt-m": "Pt-m",
        "pt-t": "Pt-t",
        "egnn-s": "EGNN-s",
        "egnn-m": "EGNN-m",
        "egnn-t": "EGNN-t",
        "st-tfn": "ST_TFN",
        "st-gnn": "ST_GNN",
        "st-se3": "ST_SE(3)-Tr",
        "st-egnn": "ST_EGNN",
        "st-gmn": "ST_GMN",
        "eqmotion": "EqMotion",
        "stgcn": "STGCN",
        "agl-stan": "AGL-STAN",
        "estag": "ESTAG",
    }
    return tuple(Row(n, labels[n], n) for n in names)


_ABLATION_ROWS = (
    Row("estag", "ESTAG", "estag"),
    Row("estag-no-edft", "w/o EDFT", "estag-no-edft"),
    Row("estag-no-attn", "w/o Attention", "estag-no-attn"),
    Row("stag", "w/o Equivariance", "stag"),
    Row("estag-no-pool", "w/o Temporal", "estag-no-pool"),
)

_MD17_COLUMNS = tuple(Column(m, label, ("md17",), case=m) for m, label in MD17_MOLECULES)
_ADK = ("adk", "adk-mini")
_WALK = ("motion-walk", "motion-walk-30fps")

TABLES: dict[int, TableSpec] = {
    1: TableSpec(
        1,
        "MD17",
        "Prediction error (×10⁻³) on MD17",
        _main_rows(
            "pt-s",
            "pt-m",
            "pt-t",
            "egnn-s",
            "egnn-m",
            "egnn-t",
            "st-tfn",
            "st-gnn",
            "st-se3",
            "st-egnn",
            "eqmotion",
            "stgcn",
            "agl-stan",
            "estag",
        ),
        _MD17_COLUMNS,
        exponent=3,
    ),
    2: TableSpec(
        2,
        "Protein (AdK)",
        "Prediction error and training time (seconds per epoch) on the Protein dataset",
        _main_rows(
            "pt-s",
            "pt-m",
            "pt-t",
            "egnn-s",
            "egnn-m",
            "egnn-t",
            "st-gnn",
            "st-gmn",
            "st-egnn",
            "stgcn",
            "agl-stan",
            "estag",
        ),
        (Column("mse", "MSE", _ADK), Column("time", "TIME(S)", _ADK, metric="train_seconds_per_epoch", ranked=False)),
        exponent=0,
    ),
    3: TableSpec(
        3,
        "Motion",
        "Prediction error (×10⁻¹) on the Motion dataset",
        _main_rows(
            "pt-s",
            "pt-m",
            "pt-t",
            "egnn-s",
            "egnn-m",
            "egnn-t",
            "st-gnn",
            "st-tfn",
            "st-se3",
            "st-egnn",
            "eqmotion",
            "stgcn",
            "agl-stan",
            "estag",
        ),
        (Column("walk", "Walk", _WALK), Column("basketball", "Basketball", ("motion-basketball",))),
        exponent=1,
    ),
    4: TableSpec(
        4, "MD17 ablations", "Ablation studies (×10⁻³) on MD17", _ABLATION_ROWS, _MD17_COLUMNS, exponent=3, corner=""
    ),
    5: TableSpec(
        5,
        "Ethanol, layers L",
        "MSE (×10⁻⁴) on Ethanol w.r.t. the number of layers L",
        (Row("estag", "MSE", "estag"),),
        tuple(Column(f"L{k}", str(k), ("md17",), case="ethanol", hparams={"layers": k}) for k in range(1, 7)),
        exponent=4,
        rank_axis="row",
        corner="L",
    ),
    6: TableSpec(
        6,
        "Ethanol, history T",
        "MSE (×10⁻⁴) on Ethanol w.r.t. the number of previous timestamps T",
        (Row("estag", "MSE", "estag"),),
        tuple(
            Column(f"T{t}", str(t), ("md17",), case="ethanol", history=t) for t in (3, 5, 8, 10, 20, 30, 40, 50, 60, 70)
        ),
        exponent=4,
        rank_axis="row",
        corner="T",
    ),
    7: TableSpec(
        7,
        "MD17, w_k ablation",
        "Ablation studies (×10⁻³) of the learnable spectral filter w_k on MD17",
        (Row("estag", "ESTAG", "estag"), Row("estag-no-wk", "w/o w_k", "estag-no-wk")),
        _MD17_COLUMNS,
        exponent=3,
        corner="",
    ),
    8: TableSpec(
        8,
        "Protein ablations",
        "Ablation study on the Protein dataset",
        _ABLATION_ROWS,
        (Column("mse", "MSE", _ADK),),
        exponent=0,
        corner="Model",
    ),
    9: TableSpec(
        9,
        "Motion ablations",
        "Ablation study (×10⁻¹) on the Motion dataset (walk)",
        _ABLATION_ROWS,
        (Column("mse", "MSE", _WALK),),
        exponent=1,
        corner="Model",
    ),
}


def get_table_spec(number: int | str) -> TableSpec:
    """The spec of the paper's Table ``number`` (1–9)."""
    try:
        return TABLES[int(number)]
    except (KeyError, ValueError):
        raise KeyError(
            f"unknown table {number!r}; the paper has Tables {', '.join(map(str, TABLES))} (or 'all')"
        ) from None


def parse_table_selector(text: str) -> list[int]:
    """``"all"``, ``"3"`` or ``"1,4,7"`` -> table numbers, validated."""
    text = str(text).strip()
    if text == "all":
        return list(TABLES)
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        out.append(get_table_spec(part).number)
    if not out:
        raise ValueError(f"no table selected by {text!r}; use 1..9 or 'all'")
    return out
