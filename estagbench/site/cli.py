"""Sub-command ``site``, added to the ``estagbench`` CLI through ``PLUGGABLE``."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

__all__ = ["add_site_parser"]


def _cmd_site(args: argparse.Namespace) -> int:
    from ._build import build_site

    t0 = time.perf_counter()
    lb = None if args.no_leaderboards else args.leaderboards
    payload = build_site(args.out, leaderboards=lb, results=args.results)
    n_cells = sum(1 for t in payload["tables"] for r in t["rows"] for c in r["cells"].values() if c["mean"] is not None)
    print(f"{args.out}/index.html: {len(payload['tables'])} tables ({n_cells} cells), {len(payload['models'])} model "
          f"pages, {len(payload['datasets'])} dataset pages, {len(payload['figures'])} figures "
          f"in {time.perf_counter() - t0:.1f} s")
    return 0


def add_site_parser(subparsers: Any) -> None:
    """Add ``site`` to the ``estagbench`` sub-command parser."""
    p = subparsers.add_parser("site", help="a static leaderboard site (works from file://) from leaderboards/ "
                                           "and a results store")
    p.add_argument("--out", type=Path, required=True, help="output folder, e.g. site/ (replaced atomically)")
    p.add_argument("--leaderboards", type=Path, default=Path("leaderboards"),
                   help="folder of committed table*.csv and figures/ (default ./leaderboards)")
    p.add_argument("--no-leaderboards", action="store_true", help="build from --results alone")
    p.add_argument("--results", type=Path, default=None,
                   help="a results store: adds tables rebuilt from its records, parameter counts, seconds per "
                        "epoch, split sizes and data checksums")
    p.set_defaults(func=_cmd_site)
