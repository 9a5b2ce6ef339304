"""A table's header: the budget (epochs, seeds), units, leakage, implementations and settings its cells
were made with, as the list under every formatted table."""

from __future__ import annotations

from ._build import IMPLEMENTATION_NAMES, Cell, Table, _units_text

__all__ = ["describe"]


def _budget(table: Table) -> tuple[list[int], list[str], set[str]]:
    epochs, seeds, hashes = set(), set(), set()
    for (rk, _ck), c in table.cells.items():
        if c.n_seeds == 0:
            continue
        hashes.add(c.config_hash)
        seeds.update(c.seeds.split(","))
        if c.epochs is not None and _row_trains(table, rk, c):
            epochs.add(c.epochs)
    return sorted(epochs), sorted(seeds, key=int), hashes


def _row_trains(table: Table, row_key: str, c: Cell) -> bool:
    from ..registry import get_model_entry

    try:
        return bool(get_model_entry(table.spec.row(row_key).model).trains)
    except KeyError:
        return True


def describe(table: Table, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The header of a table: caption, datasets, budget, notes, then ``extra``."""
    spec = table.spec
    epochs, seeds, _ = _budget(table)
    by_ds: dict[str, list[str]] = {}
    with_data = {ck for (_rk, ck), c in table.cells.items() if c.n_seeds}
    for c in table.columns:
        if with_data and c.key not in with_data:  # name the data the numbers come from, not every column
            continue
        cases = by_ds.setdefault(table.datasets[c.key], [])
        if c.case and c.case not in cases:
            cases.append(c.case)
    ds = [d + (f" ({', '.join(cs)})" if cs else "") for d, cs in by_ds.items()]
    filled = [c for c in table.cells.values() if c.n_seeds]
    unofficial = sorted({f"{c.dataset}/{c.case}" for c in filled if c.official is False})
    unverified = sorted({f"{c.dataset}/{c.case}" for c in filled if c.official is None})
    settings = sorted({c.settings for c in filled if c.settings})
    nseeds = sorted({c.n_seeds for c in table.cells.values() if c.n_seeds})
    meta = {
        "table": str(spec.number),
        "title": spec.title,
        "caption": spec.caption,
        "datasets": "; ".join(ds),
        "epochs": ",".join(map(str, epochs)) if epochs else "–",
        "seeds": ",".join(seeds) if seeds else "–",
        "seeds_per_cell": ",".join(map(str, nseeds)) if nseeds else "–",
        "statistic": "test MSE at the best-validation epoch; mean ± unbiased std over seeds",
    }
    units = _units_text(table)
    if units:
        meta["units"] = units
    leaks = sorted({c.leakage for c in filled if c.leakage})
    if leaks:
        meta["leakage"] = " | ".join(leaks)
    if filled:
        parts = []
        if unofficial:
            parts.append(f"no: {', '.join(unofficial)} (file checksum differs from the official one)")
        if unverified:
            parts.append(f"unverified: {', '.join(unverified)} (no official checksum known for some files)")
        meta["official_data"] = "; ".join(parts) if parts else "yes"
    if settings:
        meta["settings"] = " | ".join(settings)
    impls: dict[str, set[str]] = {}
    for (rk, _ck), c in table.cells.items():
        if c.n_seeds and c.implementation:
            impls.setdefault(rk, set()).add(IMPLEMENTATION_NAMES.get(c.implementation, c.implementation))
    if impls:  # which code made the numbers (and the timings) of rows with more than one implementation
        meta["implementation"] = "; ".join(f"{rk}: {', '.join(sorted(v))}" for rk, v in impls.items())
    notes = []
    if len(epochs) > 1:
        notes.append(f"mixed training budgets in one table: epochs {epochs} (filter with --epochs)")
    multi = [f"{rk}/{ck}" for (rk, ck), c in table.cells.items() if c.n_configs > 1]
    if multi:
        notes.append(f"cells with several stored configurations, newest used: {', '.join(multi)}")
    omitted = [c.label for c in spec.columns if c.key not in table.column_keys]
    if omitted:
        notes.append(f"columns omitted (not run or nothing stored): {', '.join(omitted)}")
    paper_ds = {g[0] for g in spec.variant_groups()}
    other = sorted({d for d in table.datasets.values() if d not in paper_ds})
    if other:
        notes.append(
            f"dataset variant(s) {', '.join(other)} differ from the paper's; paper numbers are for the paper's data"
        )
    if notes:
        meta["notes"] = "; ".join(notes)
    for k, v in (extra or {}).items():
        meta[k] = " ".join(str(v).split("\n"))
    return meta
