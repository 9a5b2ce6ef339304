"""``estagbench status --out DIR``: the state of every planned cell of a results folder.

Reads only the store: ``grid/`` (cells a driver planned), ``results/`` (done), ``claims/``
(running: host, PID, heartbeat), ``failed/`` (the error) and ``locks/`` (drivers).  The
remaining compute is estimated from the recorded seconds per epoch: the mean over the stored
records of the same model and dataset, else of the same model, else of every record.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["GridStatus", "grid_status", "add_status_parser"]

STATES = ("done", "running", "failed", "to do")


@dataclass
class GridStatus:
    """One row per planned cell (``key``, ``cell``, ``state``, ``detail``), the drivers and the estimate."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    drivers: list[dict[str, Any]] = field(default_factory=list)
    remaining_seconds: float | None = None
    unestimated: int = 0

    def counts(self) -> dict[str, int]:
        c = dict.fromkeys(STATES, 0)
        for r in self.rows:
            c[r["state"]] += 1
        return c


def _label(g: dict[str, Any]) -> str:
    impl = g.get("implementation")
    impl = f" [{impl}]" if impl not in (None, g.get("default_implementation")) else ""
    return f"{g['model']}{impl} {g['dataset']}/{g['case']} seed {g['seed']}"


def grid_status(out: str | Path) -> GridStatus:
    """The state of the grid stored under ``out``."""
    from .store import ResultStore

    store = ResultStore(Path(out))
    grid = store.grid()
    done = {p.stem for p in store.results_dir.glob("*.json")} if store.results_dir.is_dir() else set()
    claims = store.claims()
    failures = store.failures()
    recs = store.records() if done else []
    per_epoch: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in recs:
        s = (r.get("timings") or {}).get("train_seconds_per_epoch")
        if isinstance(s, (int, float)) and s > 0:
            per_epoch[(str(r.get("model")), str(r.get("dataset")))].append(float(s))
    by_model: dict[str, list[float]] = defaultdict(list)
    for (m, _), v in per_epoch.items():
        by_model[m].extend(v)
    everything = [s for v in per_epoch.values() for s in v]

    st = GridStatus(drivers=store.drivers())
    remaining = 0.0
    now = time.time()
    for g in grid:
        key = g["key"]
        if key in done:
            row = {"state": "done", "detail": ""}
        elif key in claims and not claims[key].stale(now):
            c = claims[key]
            row = {"state": "running", "detail": f"{c.host} pid {c.pid} ({c.executor or '?'}), since "
                   f"{time.strftime('%H:%M:%S', time.localtime(c.started))}, heartbeat {now - c.heartbeat:.0f} s ago"}
        elif key in failures:
            row = {"state": "failed", "detail": failures[key].get("error", "")}
        else:
            row = {"state": "to do", "detail": "" if key not in claims else
                   f"stale claim of pid {claims[key].pid} on {claims[key].host} (taken over by the next run)"}
        if row["state"] != "done":
            sample = per_epoch.get((g["model"], g["dataset"])) or by_model.get(g["model"]) or everything
            epochs = int((g.get("train") or {}).get("epochs") or 0)
            if sample:
                remaining += sum(sample) / len(sample) * epochs
            else:
                st.unestimated += 1
        st.rows.append({"key": key, "cell": _label(g), **row})
    st.remaining_seconds = remaining if grid else None
    return st


def _duration(s: float) -> str:
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def cmd_status(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if not out.is_dir():
        raise FileNotFoundError(f"--out {out}: no such results folder; run `estagbench run ... --out {out}` first")
    st = grid_status(out)
    if not st.rows:
        print(f"{out}: no planned cells recorded (grid/ is empty: a folder from before `status` existed, or no run yet); "
              f"`estagbench results --out {out}` lists the stored records")
        return 0
    show = STATES if args.all else ("running", "failed", "to do")
    width = max(len(r["cell"]) for r in st.rows)
    for state in show:
        for r in st.rows:
            if r["state"] == state:
                print(f"{state:8s} {r['cell']:{width}s}  {r['detail']}".rstrip())
    c = st.counts()
    print(f"{out}: {len(st.rows)} cells: " + ", ".join(f"{c[s]} {s}" for s in STATES))
    if st.remaining_seconds is not None and c["done"] < len(st.rows):
        extra = f" ({st.unestimated} cell(s) with no recorded epoch time left out)" if st.unestimated else ""
        print(f"remaining compute: about {_duration(st.remaining_seconds)} of single-cell training time "
              f"(from the recorded seconds per epoch){extra}")
    for d in st.drivers:
        alive = {True: "running", False: "dead (its lock is taken over by the next run)", None: "on another host"}[d["alive"]]
        print(f"driver: pid {d['pid']} on {d.get('host')} since {d.get('started_at')}: {alive}")
    return 0


def add_status_parser(subparsers: Any) -> None:
    """Add ``estagbench status`` to the sub-command parser."""
    from ._argtypes import DEFAULT_OUT

    p = subparsers.add_parser("status", help="done / running / failed / to-do cells of a results folder, and the compute left")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder (default ./estagbench-results)")
    p.add_argument("--all", action="store_true", help="list the done cells too")
    p.set_defaults(func=cmd_status)


if __name__ == "__main__":  # pragma: no cover
    from .cli import main

    sys.exit(main(["status", *sys.argv[1:]]))
