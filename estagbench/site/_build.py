"""Write the site folder atomically: build in a temporary sibling, then swap it into place."""

from __future__ import annotations

import math
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._assets import CSS, JS
from ._collect import collect
from ._render import data_json, dataset_file, dataset_page, index_page, model_file, model_page

__all__ = ["build_site"]


def _clean(v: Any) -> Any:
    """NaN/inf -> None, recursively, so ``data.json`` is strict JSON."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


def _stderr(msg: str) -> None:
    print(f"estagbench: warning: {msg}", file=sys.stderr)


def build_site(
    out: str | Path,
    leaderboards: str | Path | None = "leaderboards",
    results: str | Path | None = None,
    warn: Callable[[str], None] = _stderr,
) -> dict[str, Any]:
    """Build the site into ``out`` (replacing it only once the new one is complete); return data.json's content.

    Raises ``FileNotFoundError``/``ValueError`` (one line naming the input and the fix) when
    nothing valid is left to show; skipped inputs are reported through ``warn``.
    """
    out = Path(out)
    lb = None if leaderboards is None else Path(leaderboards)
    data = collect(lb, None if results is None else Path(results), warn)
    payload = _clean(data.as_json())
    if out.exists() and not (out / "index.html").is_file() and any(out.iterdir()):
        raise ValueError(f"--out {out}: exists and is not a site built by estagbench (no index.html); "
                         "choose an empty or new folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        (tmp / "assets").mkdir()
        (tmp / "models").mkdir()
        (tmp / "datasets").mkdir()
        (tmp / "assets" / "site.css").write_text(CSS)
        (tmp / "assets" / "site.js").write_text(JS)
        if lb is not None and (lb / "figures").is_dir():
            (tmp / "figures").mkdir()
            for f in payload["figures"]:
                shutil.copy2(lb / f["file"], tmp / f["file"])
        (tmp / "index.html").write_text(index_page(payload))
        for m in payload["models"]:
            (tmp / model_file(m["name"])).write_text(model_page(m))
        for d in payload["datasets"]:
            (tmp / dataset_file(d["name"])).write_text(dataset_page(d))
        (tmp / "data.json").write_text(data_json(payload))
        os.chmod(tmp, 0o755)
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return payload


