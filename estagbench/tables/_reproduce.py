"""``estagbench reproduce``: run exactly the cells a paper table needs, then write it.

The cells of Table N are (row model × column dataset case × seed), with the
column's history T (Table 6) and model hyper-parameters (Table 5's ``layers``).
They go through the grid runner (:func:`estagbench.runner.plan_run` /
:func:`~estagbench.runner.run_plan`), which skips every cell already stored, so an
interrupted reproduction resumes.  One budget (epochs, seeds) applies to every
model of the table.  The table is then built from exactly the configurations this
command ran and written as CSV, Markdown and LaTeX with a provenance header.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..registry import get_model_entry, list_models
from ._build import Table, _choose_variant, build_table
from ._describe import _budget
from ._format import EXTENSIONS, render
from ._latex import check_latex
from ._records import load_records
from ._specs import DEFAULT_HISTORY, ESTAG_DEFAULT_HPARAMS, TableSpec

if TYPE_CHECKING:
    import pandas as pd

    from ..runner import Executor

__all__ = ["RunGroup", "plan_table", "reproduce_table", "write_table"]


@dataclass
class RunGroup:
    """Cells sharing one runner call: a dataset, its cases, history and model hyper-parameters."""

    dataset: str
    cases: list[str | None]
    history: int
    hparams: dict[str, Any]
    models: list[str]
    columns: list[str] = field(default_factory=list)


def _registered(names: Sequence[str]) -> set[str]:
    return set(list_models()) & set(names)


def plan_table(
    spec: TableSpec,
    datasets: Sequence[str] | None = None,
    cases: Sequence[str] | None = None,
    models: Sequence[str] | None = None,
    model_hparams: dict[str, Any] | None = None,
) -> tuple[list[RunGroup], dict[tuple[str, ...], str], list[str]]:
    """The runner calls Table ``spec`` needs.

    Parameters
    ----------
    datasets: dataset names to run (each must fill some column); default: the paper's
        dataset of every column.  Columns whose dataset is not selected are not run.
    cases: restrict case columns (MD17 molecules) to these.
    models: restrict rows to these registry names.
    model_hparams: extra model hyper-parameters for every cell (recorded in the
        configuration; rows whose table fixes the same key keep the table's value).

    Returns
    -------
    groups, the variant choice (column group -> dataset), and notes (skipped rows).
    """
    all_ds = spec.datasets()
    if datasets:
        bad = [d for d in datasets if d not in all_ds]
        if bad:
            raise ValueError(
                f"table {spec.number} has no column for dataset(s) {bad}; its datasets: {', '.join(all_ds)}"
            )
    choice = _choose_variant(spec, list(datasets or []))
    if cases:
        known = {c.case for c in spec.columns if c.case}
        bad = [c for c in cases if c not in known]
        if bad and known:
            raise ValueError(f"table {spec.number} has no case column(s) {bad}; cases: {', '.join(sorted(known))}")
    row_models = [r.model for r in spec.rows]
    if models:
        bad = [m for m in models if m not in row_models]
        if bad:
            raise ValueError(f"table {spec.number} has no row for model(s) {bad}; rows: {', '.join(row_models)}")
    notes: list[str] = []
    wanted = [m for m in dict.fromkeys(row_models) if not models or m in models]
    registered = _registered(wanted)
    missing = [m for m in wanted if m not in registered]
    if missing:
        notes.append(f"not registered, left '–': {', '.join(missing)}")
    groups: dict[tuple[str, int, str], RunGroup] = {}
    for col in spec.columns:
        ds = choice[col.datasets]
        if datasets and ds not in datasets:
            continue
        if cases and col.case and col.case not in cases:
            continue
        hp = {**(model_hparams or {}), **col.hparams}
        hp = {k: v for k, v in hp.items() if ESTAG_DEFAULT_HPARAMS.get(k, object()) != v}
        key = (ds, col.history, repr(sorted(hp.items())))
        if key not in groups:
            from ..data.registry import get_dataset

            family = get_dataset(ds).family
            ms = [m for m in wanted if m in registered and get_model_entry(m).runs_on(family)]
            skipped = [m for m in wanted if m in registered and m not in ms]
            if skipped:
                notes.append(f"the paper did not run {', '.join(skipped)} on {family}")
            groups[key] = RunGroup(ds, [], col.history, hp, ms)
        g = groups[key]
        if col.case not in g.cases:
            g.cases.append(col.case)
        g.columns.append(col.key)
    return list(groups.values()), choice, list(dict.fromkeys(notes))


def reproduce_table(
    spec: TableSpec,
    *,
    preset: str = "paper",
    out: Path = Path("estagbench-results"),
    data_dir: Path | None = None,
    seeds: Sequence[int] | None = None,
    epochs: int | None = None,
    datasets: Sequence[str] | None = None,
    cases: Sequence[str] | None = None,
    models: Sequence[str] | None = None,
    model_hparams: dict[str, Any] | None = None,
    device: str = "cpu",
    lr: float | None = None,
    batch_size: int | None = None,
    data_opts: dict[str, Any] | None = None,
    compare_paper: bool = False,
    command: str | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    executor: Executor | None = None,
    shard: tuple[int, int] | None = None,
) -> Table:
    """Run the cells of ``spec`` (resuming stored ones) and build the table from them.

    ``data_opts`` are the protocol overrides (``stride``, ``split_margin``,
    ``split_fractions``, ``split_caps``); ``history`` comes from the table's columns.
    """
    from ..results import provenance
    from ..runner import PRESETS, plan_run, run_plan

    say = log or (lambda s: print(s, file=sys.stderr))
    t0 = time.time()
    groups, choice, notes = plan_table(spec, datasets, cases, models, model_hparams)
    opts = {k: v for k, v in (data_opts or {}).items() if v is not None and k != "history"}
    hashes: set[str] = set()
    records: list[dict[str, Any]] = []
    for g in groups:
        if not g.models:
            continue
        say(
            f"table {spec.number}: {', '.join(g.models)} on {g.dataset}"
            + (f" cases {', '.join(c for c in g.cases if c)}" if any(g.cases) else "")
            + (f", T={g.history}" if g.history != DEFAULT_HISTORY else "")
            + (f", model {g.hparams}" if g.hparams else "")
        )
        plan = plan_run(
            ",".join(g.models),
            g.dataset,
            [c for c in g.cases if c] or None,
            list(seeds) if seeds else None,
            epochs,
            preset,
            out,
            data_dir,
            device,
            lr,
            batch_size,
            model_hparams=g.hparams or None,
            history=None if g.history == DEFAULT_HISTORY else g.history,
            shard=shard,
            **opts,
        )
        recs = run_plan(plan, executor, progress=progress, log=say)
        notes.extend(f"failed (diverged, left out): {what}" for what, _ in plan.failed)
        records.extend(recs)
        hashes.update(r["config_hash"] for r in recs)
    ran_columns = [k for g in groups for k in g.columns if g.models]
    df = load_records(out)
    prov = provenance()
    p = PRESETS[preset]
    cell_seconds = sum(float(r.get("wall_seconds") or 0.0) for r in records)
    meta = {
        "command": command or "",
        "preset": preset,
        "budget": f"epochs {epochs if epochs is not None else p['epochs']}, seeds "
        f"{','.join(map(str, seeds or p['seeds']))} (the same for every model of the table)",
        "results": str(out),
        "commit": str(prov.get("git_commit")),
        "versions": format_versions(prov["versions"]),
        "machine": f"{format_machine(prov['machine'])}, device {device}",
        "wall_time": f"{time.time() - t0:.1f} s this invocation; {cell_seconds:.1f} s summed over the table's cells",
    }
    if notes:
        meta["run_notes"] = "; ".join(notes)
    return build_table(  # only the seeds of this budget, even when the store holds more
        spec, df, choice, seeds=list(seeds or p["seeds"]), config_hashes=hashes, columns=ran_columns or None,
        compare_paper=compare_paper, meta=meta,
    )


def format_versions(versions: dict[str, Any]) -> str:
    """``{"torch": "2.13.0", ...}`` as ``torch 2.13.0, ...`` (a table header line)."""
    return ", ".join(f"{k} {v}" for k, v in versions.items())


def format_machine(machine: dict[str, Any]) -> str:
    """A record's ``provenance.machine`` as one header line."""
    return (f"{machine.get('platform')}, {machine.get('processor')}, {machine.get('cpu_count')} CPUs, "
            f"torch threads {machine.get('torch_threads')}")


def provenance_of_cells(table: Table, df: pd.DataFrame) -> dict[str, str]:
    """Commits (with record counts), versions and machines of the stored records behind ``table``'s
    filled cells (``df`` from :func:`load_records`): the header lines of a table built from a store."""
    _, seeds, hashes = _budget(table)
    used = df[df["config_hash"].isin(hashes) & df["seed"].astype(str).isin(seeds)]
    if used.empty:
        return {}
    commits = used["git_commit"].fillna("unknown").value_counts()
    versions = {format_versions(d) for d in used["versions"] if isinstance(d, dict) and d}
    machines = {format_machine(d) for d in used["machine"] if isinstance(d, dict) and d}
    return {"commit": ", ".join(f"{c} ({n} records)" for c, n in commits.items()),
            "versions": " | ".join(sorted(versions)) or "unknown",
            "machine": " | ".join(sorted(machines)) or "unknown"}


def write_table(
    table: Table, out_dir: Path, formats: Sequence[str] = ("csv", "markdown", "latex"), standalone: bool = True
) -> list[Path]:
    """Write ``table`` as ``<out_dir>/<stem>.<ext>`` per format; LaTeX is structure-checked first."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        text = render(table, fmt, standalone=standalone)
        if fmt == "latex":
            check_latex(text)
        path = out_dir / f"{table.stem}.{EXTENSIONS[fmt]}"
        tmp = path.with_suffix(path.suffix + ".part")
        tmp.write_text(text)
        tmp.replace(path)
        paths.append(path)
    return paths


def command_line(parser: argparse.ArgumentParser, args: argparse.Namespace, prog: str) -> str:
    """The command as an equivalent, canonical ``estagbench <prog> ...`` line.

    Rebuilt from the parsed arguments (every option that differs from its default),
    so it is the same whether the command came from a shell or from ``main(argv)``.
    """
    words = ["estagbench", prog]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or action.dest in ("func",):
            continue
        value = getattr(args, action.dest, None)
        if value == action.default or value is None:
            continue
        if not action.option_strings:
            words.append(str(value))
            continue
        flag = action.option_strings[0]
        if isinstance(action, argparse._StoreTrueAction):
            words.append(flag)
        elif isinstance(value, dict):
            words += [flag, ",".join(f"{k}={v}" for k, v in value.items())]
        elif isinstance(value, (list, tuple)):
            words += [flag, ",".join(str(v) for v in value)]
        else:
            words += [flag, str(value)]
    return shlex.join(words)
