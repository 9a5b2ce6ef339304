"""A dataset's identity in configurations and records: its name, or for files their content.

``--dataset runs.npz`` and ``--dataset /abs/path/runs.npz`` name the same data: both get the
label ``runs.npz`` and the configuration holds the file's SHA-256, not the path as typed, so
either spelling resumes the same cells (and a changed file is a new configuration).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from .base import sha256_file
from .catalog import DATASETS

__all__ = ["dataset_identity", "record_source", "same_dataset"]


def dataset_identity(name: str) -> tuple[str, str | None]:
    """``(label, sha256)``: a catalog name gives ``(name, None)``; an ``.npz`` path gives
    ``(file name, its SHA-256)``; ``TOPOLOGY::TRAJ…`` gives the file names joined by ``::`` and
    the SHA-256 of their hashes in order.  A missing file keeps its spelling (the loader reports it)."""
    if name in DATASETS:
        return name, None
    parts = name.split("::") if "::" in name else [name]
    paths = [Path(p) for p in parts]
    if not all(p.is_file() for p in paths):
        return name, None
    label = "::".join(p.name for p in paths)
    if len(paths) == 1:
        return label, sha256_file(paths[0])
    digest = hashlib.sha256("\n".join(sha256_file(p) for p in paths).encode()).hexdigest()
    return label, digest


def record_source(record: dict[str, Any]) -> str:
    """What to pass to ``load_case`` to load a stored record's data: its ``dataset`` for catalog names,
    else the data files it lists (``TOPOLOGY::TRAJ…`` for MD files), as they were given to ``run``."""
    name = str(record.get("dataset"))
    files = [f.get("path") for f in record.get("data_files") or [] if f.get("path")]
    if name in DATASETS or not record.get("data_sha256") or not files:
        return name
    return "::".join(files) if "::" in name else files[0]


def same_dataset(stored: str, name: str) -> bool:
    """Whether a record's ``dataset`` (a catalog name or a file label) is the dataset ``name`` given
    on the command line (a catalog name or a path in any spelling)."""
    return stored == name or stored == dataset_identity(name)[0]
