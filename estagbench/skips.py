"""Notes of (model, dataset case) pairs a run skipped because the model cannot run the case.

Written under ``<out>/skipped/`` (one JSON file per pair and data settings, atomically) so
that ``estagbench tables`` prints such a cell as "–" with a footnote giving the reason,
instead of a bare "not stored".
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .data.trajectory import atomic_write_bytes

__all__ = ["store_skip", "load_skips"]


def _name(model: str, dataset: str, case: str, data_params: dict[str, Any]) -> str:
    key = json.dumps([model, dataset, case, data_params], sort_keys=True, default=str)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{model}__{Path(dataset).stem}__{case}")[:120]
    return f"{safe}__{hashlib.sha256(key.encode()).hexdigest()[:12]}.json"


def store_skip(root: str | Path, model: str, dataset: str, case: str, data_params: dict[str, Any], reason: str) -> Path:
    """Record that ``model`` was skipped on ``dataset/case`` (with ``data_params``) for ``reason``."""
    note = {"model": model, "dataset": dataset, "case": case, "data_params": data_params,
            "history": data_params.get("history"), "reason": reason}
    path = Path(root) / "skipped" / _name(model, dataset, case, data_params)
    blob = json.dumps(note, indent=1, sort_keys=True, default=str).encode()
    return atomic_write_bytes(path, lambda fh: fh.write(blob))


def load_skips(root: str | Path) -> list[dict[str, Any]]:
    """Every skip note under ``<root>/skipped/`` (unreadable ones are left out)."""
    from .store import read_json_folder

    return list(read_json_folder(Path(root) / "skipped").values())
