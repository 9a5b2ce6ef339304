"""``estagbench plan``: what the paper's tables cost in CPU-hours, before anything runs.

Cost model, per cell (model x dataset case x seed) of a table, at the protocol's budget
(protocol.md: 500 epochs, batch 100, val and test every 5 epochs, 3 seeds)::

    train  = epochs x ceil(train windows / batch) x (one training step)
    eval   = evaluations x (ceil(val windows / batch) + ceil(test windows / batch)) x (one eval forward)
    cell   = train + eval;  models that do not train (Pt-s/m/t): one evaluation

where ``evaluations`` counts the epochs ``e`` with ``e % eval_every == 0`` or ``e == epochs``.
The eval term is an upper bound: the trainer evaluates test only where validation improves.
Step times are measured on the machine the command runs on (``estagbench bench``'s interleaved
timer at the protocol's sizes, one torch thread), or read from a ``bench --save`` file.  MD17
molecules other than ethanol (3 heavy atoms) and aspirin (13) take a step time interpolated
linearly in the node count between those two measured sizes.  Cells shared by several tables
(Table 1's ESTAG column is Table 4's and Table 7's) are counted once in the ``--table all`` total.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._argtypes import positive_int

__all__ = ["PROTOCOL_CASES", "CaseSize", "PlanCell", "StepKey", "table_cells", "step_keys", "cell_seconds",
           "plan_tables", "format_plan", "StepTimes", "add_plan_parser"]


@dataclass(frozen=True)
class CaseSize:
    """One dataset case at the protocol's settings: graph size and window counts (protocol.md)."""

    dataset: str
    case: str | None
    nodes: int
    channels: int
    windows: tuple[int, int, int]  # train, val, test
    bench_size: str  # the ``estagbench bench`` size that measures it


_MD17_NODES = {"aspirin": 13, "benzene": 6, "ethanol": 3, "malonaldehyde": 5, "naphthalene": 10,
               "salicylic": 10, "toluene": 7, "uracil": 8}

#: The protocol's cases: MD17 caps 500/2000/2000; AdK chronological 6:2:2 of adk_equilibrium;
#: CMU walk / basketball: 100 windows per trial, 11/6/6 and 12/6/6 trials; walk at 30 fps 75 per trial.
PROTOCOL_CASES: dict[tuple[str, str | None], CaseSize] = {
    **{("md17", m): CaseSize("md17", m, n, 1, (500, 2000, 2000), "md17") for m, n in _MD17_NODES.items()},
    ("adk", None): CaseSize("adk", None, 214, 4, (2482, 827, 827), "adk"),
    ("motion-walk", None): CaseSize("motion-walk", None, 31, 1, (1100, 600, 600), "walk"),
    ("motion-walk-30fps", None): CaseSize("motion-walk-30fps", None, 31, 1, (825, 450, 450), "walk"),
    ("motion-basketball", None): CaseSize("motion-basketball", None, 31, 1, (1200, 600, 600), "walk"),
}


@dataclass(frozen=True)
class StepKey:
    """What one step time is measured for: a model (with hyper-parameters) on a graph size."""

    model: str
    nodes: int
    channels: int
    history: int
    hparams: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class PlanCell:
    """One (model, case, history, hparams) of a table; it runs once per seed."""

    model: str
    trains: bool
    case: CaseSize
    history: int = 10
    hparams: tuple[tuple[str, Any], ...] = ()
    column: str = field(default="", compare=False)

    @property
    def key(self) -> tuple[Any, ...]:
        return (self.model, self.case.dataset, self.case.case, self.history, self.hparams)


#: ``(StepKey) -> (train step seconds, eval forward seconds)``
StepTimes = Callable[[StepKey], tuple[float, float]]


def table_cells(numbers: Iterable[int]) -> dict[int, list[PlanCell]]:
    """The cells of each table (rows x columns; the protocol's dataset for each column)."""
    from .registry import get_model_entry
    from .tables import get_table_spec

    out: dict[int, list[PlanCell]] = {}
    for n in numbers:
        spec = get_table_spec(n)
        cells: dict[tuple[Any, ...], PlanCell] = {}
        for col in spec.columns:
            dataset = col.datasets[0]
            size = PROTOCOL_CASES.get((dataset, col.case))
            if size is None:
                raise KeyError(f"table {n}: no protocol size for {dataset}/{col.case}")
            for row in spec.rows:
                entry = get_model_entry(row.model)
                if size.channels > 1 and not entry.multichannel:
                    continue
                cell = PlanCell(row.model, entry.trains, size, col.history, tuple(sorted(col.hparams.items())), col.key)
                cells.setdefault(cell.key, cell)  # Table 2's MSE and TIME columns are one run
        out[n] = list(cells.values())
    return out


def _anchors(cell: PlanCell) -> list[tuple[int, float]]:
    """``(nodes, weight)`` of the measured sizes whose step times give this cell's (MD17 interpolation)."""
    n = cell.case.nodes
    if cell.case.dataset != "md17" or n in (3, 13):
        return [(n, 1.0)]
    w = (n - 3) / (13 - 3)
    return [(3, 1.0 - w), (13, w)]


def step_keys(cells: Iterable[PlanCell]) -> list[StepKey]:
    """The distinct step times the cells need measured."""
    keys: list[StepKey] = []
    for c in cells:
        for nodes, _ in _anchors(c):
            k = StepKey(c.model, nodes, c.case.channels, c.history, c.hparams)
            if k not in keys:
                keys.append(k)
    return keys


def cell_seconds(cell: PlanCell, times: StepTimes, epochs: int = 500, batch_size: int = 100, eval_every: int = 5) -> float:
    """CPU seconds of one seed of ``cell`` under the cost model (module docstring)."""
    train_w, val_w, test_w = cell.case.windows
    eval_batches = math.ceil(val_w / batch_size) + math.ceil(test_w / batch_size)
    t_train = t_eval = 0.0
    for nodes, w in _anchors(cell):
        a, b = times(StepKey(cell.model, nodes, cell.case.channels, cell.history, cell.hparams))
        t_train += w * a
        t_eval += w * b
    if not cell.trains:  # evaluated once
        return eval_batches * t_eval
    evaluations = sum(1 for e in range(1, epochs + 1) if e % eval_every == 0 or e == epochs)
    return epochs * math.ceil(train_w / batch_size) * t_train + evaluations * eval_batches * t_eval


def plan_tables(numbers: Sequence[int], times: StepTimes, epochs: int = 500, seeds: int = 3, batch_size: int = 100,
                eval_every: int = 5) -> dict[str, Any]:
    """CPU-hours per table and per model (``seeds`` runs of each cell), and the total over the
    distinct cells of all the tables."""
    cells = table_cells(numbers)
    per_table: dict[int, dict[str, float]] = {}
    per_column: dict[int, dict[str, float]] = {}
    distinct: dict[tuple[Any, ...], float] = {}
    for n, cs in cells.items():
        models: dict[str, float] = {}
        columns: dict[str, float] = {}
        for c in cs:
            hours = seeds * cell_seconds(c, times, epochs, batch_size, eval_every) / 3600.0
            models[c.model] = models.get(c.model, 0.0) + hours
            columns[c.column] = columns.get(c.column, 0.0) + hours
            distinct[c.key] = hours
        per_table[n], per_column[n] = models, columns
    return {"tables": per_table, "columns": per_column, "total": sum(distinct.values()),
            "cells": sum(len(c) for c in cells.values()), "distinct_cells": len(distinct), "epochs": epochs, "seeds": seeds}


def format_plan(plan: dict[str, Any], jobs: int = 1, cores: int | None = None) -> list[str]:
    """The report's lines; the last one is ``total: X CPU-hours``."""
    lines = []
    for n, models in plan["tables"].items():
        total = sum(models.values())
        lines.append(f"Table {n}: {total:.2f} CPU-hours")
        columns = plan.get("columns", {}).get(n, {})
        if len(columns) > 1:
            lines.append("  by column: " + ", ".join(f"{k} {h:.2f}" for k, h in columns.items()))
        for m, h in sorted(models.items(), key=lambda kv: -kv[1]):
            lines.append(f"  {m:18s} {h:9.2f}")
    if jobs > 1:
        usable = min(jobs, cores) if cores else jobs
        lines.append(f"wall-clock with --jobs {jobs} ({usable} core(s) busy): at least {plan['total'] / usable:.2f} h")
    lines.append(f"total: {plan['total']:.2f} CPU-hours")
    return lines


def _measured_times(keys: Sequence[StepKey], rounds: int, log: Callable[[str], None]) -> dict[StepKey, tuple[float, float]]:
    """Measure ``keys`` with bench's interleaved timer, one synthetic case per graph size."""
    from .bench import SIZES, synthetic_case, time_interleaved

    edges = {(z.nodes, z.channels): z.edges for group in SIZES.values() for z in group}
    groups: dict[tuple[int, int, int], list[StepKey]] = {}
    for k in keys:
        groups.setdefault((k.nodes, k.channels, k.history), []).append(k)
    out: dict[StepKey, tuple[float, float]] = {}
    for (nodes, channels, history), ks in groups.items():
        info, batch = synthetic_case(nodes, history, 100, channels=channels, edges=edges.get((nodes, channels)))
        log(f"measuring {len(ks)} model(s) at {nodes} nodes x {channels} channel(s), T {history}, "
            f"{info.num_edges} edges ({rounds} rounds)")
        rows = time_interleaved([(k.model, dict(k.hparams)) for k in ks], info, batch, rounds=rounds)
        for k, r in zip(ks, rows, strict=True):
            if "error" in r:
                raise RuntimeError(f"{k.model} failed at {nodes} nodes: {r['error']}")
            out[k] = (r["train_ms"] / 1000.0, r["eval_ms"] / 1000.0)
    return out


def _saved_times(path: Path) -> dict[StepKey, tuple[float, float]]:
    """Step times from an ``estagbench bench --save`` file."""
    data = json.loads(Path(path).read_text())
    out = {}
    for r in data["times"]:
        key = StepKey(r["model"], int(r["nodes"]), int(r["channels"]), int(r.get("history", 10)),
                      tuple(sorted((r.get("hparams") or {}).items())))
        out[key] = (r["train_ms"] / 1000.0, r["eval_ms"] / 1000.0)
    return out


def cmd_plan(args: argparse.Namespace) -> int:
    import torch

    from .bench import machine_note
    from .tables import parse_table_selector

    torch.set_num_threads(1)
    numbers = parse_table_selector(args.table)
    cells = [c for cs in table_cells(numbers).values() for c in cs]
    keys = step_keys(cells)
    known: dict[StepKey, tuple[float, float]] = {}
    for path in args.step_times or ():
        known.update(_saved_times(path))  # a later file overrides an earlier one
    missing = [k for k in keys if k not in known]
    print(f"machine: {machine_note()}")
    print(f"budget: {args.epochs} epochs x {args.seeds} seeds, batch 100, val + test every 5 epochs "
          f"(an upper bound: test runs only where val improves); one torch thread per run")
    if missing:
        if args.step_times:
            print(f"{len(missing)} step time(s) not in the --step-times file(s): measuring them here")
        known.update(_measured_times(missing, args.rounds, print))

    def times(k: StepKey) -> tuple[float, float]:
        return known[k]

    plan = plan_tables(numbers, times, epochs=args.epochs, seeds=args.seeds)
    if args.executor == "sequential" and args.jobs > 1:
        raise ValueError("--executor sequential runs one cell at a time; use --jobs 1 or --executor process")
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    for line in format_plan(plan, jobs=args.jobs if args.executor == "process" else 1, cores=cores):
        print(line)
    return 0


def add_plan_parser(sub: Any) -> None:
    p = sub.add_parser("plan", help="CPU-hours of the paper's tables at the protocol's budget, from measured step times")
    p.add_argument("--table", required=True, help="table number, comma list, or 'all'")
    p.add_argument("--epochs", type=positive_int, default=500)
    p.add_argument("--seeds", type=positive_int, default=3)
    p.add_argument("--jobs", type=positive_int, default=1, help="cells run at once (wall-clock estimate)")
    p.add_argument("--executor", choices=("process", "sequential"), default="process",
                   help="how `estagbench run --jobs` would run the cells (process: one per job)")
    p.add_argument("--rounds", type=positive_int, default=5, help="interleaved timing rounds per measured size")
    p.add_argument("--step-times", type=Path, action="append", default=None, metavar="JSON",
                   help="step times from `estagbench bench --save`; repeatable, a later file overrides an earlier "
                        "one (what they lack is measured here)")
    p.set_defaults(func=cmd_plan)
