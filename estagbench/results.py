"""The results store: one JSON record per (model, dataset, case, seed, config hash).

Records are written atomically (temporary file + rename) under
``<out>/results/``; split windows go to ``<out>/splits/``; per-run logs and best
checkpoints to ``<out>/runs/<cell id>/``.  :func:`load_results` turns the store into
a pandas table and :func:`aggregate` into mean ± unbiased std over seeds.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .data.trajectory import atomic_write_bytes

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "config_hash",
    "cell_id",
    "ResultStore",
    "load_results",
    "aggregate",
    "provenance",
    "RESULT_COLUMNS",
]

RESULT_COLUMNS = [
    "model",
    "dataset",
    "case",
    "seed",
    "test_mse",
    "val_mse",
    "best_epoch",
    "epochs",
    "train_seconds_per_epoch",
    "ms_per_sample",
    "num_params",
    "official_data",
    "split_hash",
    "config_hash",
    "git_commit",
    "implementation",
]


def config_hash(config: dict[str, Any]) -> str:
    """First 12 hex of the SHA-256 of a canonical JSON of ``config``."""
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _safe(s: str, limit: int = 80) -> str:
    """``s`` as a file-name part; a longer one (e.g. ``TOPOLOGY::TRAJ`` with absolute paths) keeps its
    last ``limit - 9`` characters and a hash of the whole, so that names stay unique and short."""
    out = "".join(c if c.isalnum() or c in "-_." else "_" for c in s)
    if len(out) > limit:
        out = f"{hashlib.sha256(s.encode()).hexdigest()[:8]}-{out[-(limit - 9):]}"
    return out


def cell_id(model: str, dataset: str, case: str, seed: int, chash: str) -> str:
    return f"{_safe(model)}__{_safe(Path(dataset).stem if dataset.endswith('.npz') else dataset)}__{_safe(case)}__s{seed}__{chash}"


def _git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        if out.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def provenance() -> dict[str, Any]:
    """Package versions, git commit and machine, recorded with every result."""
    import numpy
    import torch

    from . import __version__

    versions = {"estagbench": __version__, "python": platform.python_version(), "torch": torch.__version__,
                "numpy": numpy.__version__}
    for dist in ("pandas", "e3nn", "MDAnalysis", "dgl", "openmm"):  # read from the installed metadata: importing dgl and
        try:  # openmm just for their version took ~1.5 s of every run's start-up
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:  # optional packages
            pass
    return {
        "versions": versions,
        "git_commit": _git_commit(),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
        },
    }


@dataclass
class ResultStore:
    """A results directory (default ``./estagbench-results``)."""

    root: Path

    def __post_init__(self) -> None:
        self.root = Path(self.root)

    @property
    def results_dir(self) -> Path:
        return self.root / "results"

    def path(self, cid: str) -> Path:
        return self.results_dir / f"{cid}.json"

    def run_dir(self, cid: str) -> Path:
        d = self.root / "runs" / cid
        d.mkdir(parents=True, exist_ok=True)
        return d

    def has(self, cid: str) -> bool:
        p = self.path(cid)
        if not p.exists():
            return False
        try:
            json.loads(p.read_text())
        except (json.JSONDecodeError, OSError):
            return False
        return True

    def get(self, cid: str) -> dict[str, Any]:
        return json.loads(self.path(cid).read_text())

    def put(self, cid: str, record: dict[str, Any]) -> Path:
        blob = json.dumps(record, indent=1, sort_keys=True, default=str).encode()
        return atomic_write_bytes(self.path(cid), lambda fh: fh.write(blob))

    def put_split(self, dataset: str, case: str, split_hash: str, payload: str) -> Path:
        p = self.root / "splits" / f"{_safe(Path(dataset).stem if dataset.endswith('.npz') else dataset)}__{_safe(case)}__{split_hash}.json"
        if not p.exists():
            atomic_write_bytes(p, lambda fh: fh.write(payload.encode()))
        return p

    def records(self) -> Iterable[dict[str, Any]]:
        if not self.results_dir.exists():
            return []
        out = []
        for p in sorted(self.results_dir.glob("*.json")):
            try:
                out.append(json.loads(p.read_text()))
            except (json.JSONDecodeError, OSError) as exc:  # records are written atomically: damaged afterwards
                warnings.warn(
                    f"{p}: unreadable result record, left out ({type(exc).__name__}: {exc}); delete it and rerun "
                    "the command that made it to recompute that cell",
                    RuntimeWarning,
                    stacklevel=2,
                )
        return out


def _flatten(rec: dict[str, Any]) -> dict[str, Any]:
    m = rec.get("metrics", {})
    t = rec.get("timings", {})
    return {
        "model": rec.get("model"),
        "dataset": rec.get("dataset"),
        "case": rec.get("case"),
        "seed": rec.get("seed"),
        "test_mse": m.get("test_mse"),
        "val_mse": m.get("val_mse"),
        "best_epoch": m.get("best_epoch"),
        "epochs": rec.get("config", {}).get("epochs"),
        "train_seconds_per_epoch": t.get("train_seconds_per_epoch"),
        "ms_per_sample": t.get("ms_per_sample"),
        "num_params": rec.get("num_params"),
        "official_data": rec.get("official_data"),
        "split_hash": rec.get("split_hash"),
        "config_hash": rec.get("config_hash"),
        "git_commit": rec.get("provenance", {}).get("git_commit"),
        "implementation": rec.get("implementation"),
    }


def load_results(root: str | Path) -> pd.DataFrame:
    """All stored records under ``root`` as a table with :data:`RESULT_COLUMNS`."""
    import pandas as pd  # here, not at the top: a run needs pandas only for its closing summary
    rows = [_flatten(r) for r in ResultStore(Path(root)).records()]
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def aggregate(df: pd.DataFrame, value: str = "test_mse") -> pd.DataFrame:
    """Mean, unbiased std and seed count of ``value`` per (model, dataset, case, config)."""
    import pandas as pd
    if df.empty:
        return pd.DataFrame(columns=["model", "dataset", "case", "config_hash", "mean", "std", "n_seeds", "seeds"])
    g = df.groupby(["model", "dataset", "case", "config_hash"], sort=False)
    out = g[value].agg(["mean", "std", "count"]).rename(columns={"count": "n_seeds"})
    out["std"] = out["std"].fillna(0.0)
    out["seeds"] = g["seed"].apply(lambda s: ",".join(str(v) for v in sorted(s)))
    return out.reset_index()
