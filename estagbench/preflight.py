"""Checks of ``estagbench run``'s inputs made before any data is loaded or anything trained.

Each check raises :class:`PreflightError` (a ``ValueError``: the command line prints it as
one ``estagbench: error: ...`` line and exits with status 2) naming the flag, path or value
and the fix.  :func:`describe_os_error` turns a write failure met later (disk full, a
folder made read-only) into such a line too.
"""

from __future__ import annotations

import errno
import inspect
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "PreflightError",
    "dedupe",
    "check_models_arg",
    "check_out",
    "check_device",
    "check_model_hparams",
    "describe_os_error",
]


class PreflightError(ValueError):
    """A bad ``run`` input found before any work: one line, exit status 2."""


def dedupe(values: Sequence[Any], flag: str) -> tuple[list[Any], str | None]:
    """``values`` without repeats (first occurrence kept, order kept), and a note naming the
    repeats (``None`` when there were none): a cell is never trained twice in one run."""
    seen: list[Any] = []
    repeated: list[Any] = []
    for v in values:
        if v in seen:
            if v not in repeated:
                repeated.append(v)
        else:
            seen.append(v)
    if not repeated:
        return seen, None
    return seen, f"{flag} names {', '.join(map(str, repeated))} more than once; each runs once"


def check_models_arg(spec: str) -> str:
    """The ``--models`` value with repeats removed; an empty one is an error."""
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise PreflightError(f"--models {spec!r} names no model; give 'all' or a comma list (`estagbench models` lists them)")
    return ",".join(names)


def check_out(out: Path) -> None:
    """``--out`` must be a folder this process can create and write in (it is created here)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise PreflightError(f"--out {out}: is a file, not a folder; name a folder (it is created if missing)")
    parent = next((p for p in [out, *out.parents] if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise PreflightError(f"--out {out}: {parent} is a file, not a folder; name a folder (it is created if missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise PreflightError(
            f"--out {out}: cannot write there ({exc.strerror or exc}); choose a writable folder with --out"
        ) from None


def check_device(device: str) -> None:
    """``--device cuda`` needs a torch built with CUDA and a visible GPU."""
    if not device.startswith("cuda"):
        return
    import torch

    if not torch.cuda.is_available():
        why = ("this torch is a CPU-only build" if torch.version.cuda is None
               else "no CUDA device is visible (CUDA_VISIBLE_DEVICES, driver)")
        raise PreflightError(f"--device {device}: {why} (torch {torch.__version__}); use --device cpu, "
                             "or install a CUDA build of torch on a machine with a GPU")


def _toy_info(history: int, channels: int) -> Any:
    """A 4-node chain graph with ``history`` frames: enough to build any registered model."""
    import torch

    from .types import DatasetInfo

    src = torch.tensor([0, 1, 1, 2, 2, 3])
    dst = torch.tensor([1, 0, 2, 1, 3, 2])
    return DatasetInfo(dataset="toy", case="toy", num_nodes=4, num_channels=channels,
                       node_features=torch.ones(4, 1), edge_index=torch.stack([src, dst]),
                       edge_attr=torch.ones(6, 1), history=history, stride=1,
                       one_hop_mask=torch.ones(6, dtype=torch.bool))


def _hint(name: str) -> str:
    """What model ``name``'s builder signature says it takes (all of it, unless it passes ``**kwargs`` on)."""
    from .registry import get_model_entry

    entry = get_model_entry(name)
    params = list(inspect.signature(entry.builder).parameters.values())[1:]  # [0] is the DatasetInfo
    named = sorted({p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
                   | set(entry.defaults) | {"hidden"})
    if any(p.kind == p.VAR_KEYWORD for p in params):
        return f"its builder takes {', '.join(named)} and passes others on; `estagbench models {name}` describes it"
    return f"it takes {', '.join(named)}"


def _build_error(name: str, info: Any, hparams: dict[str, Any]) -> BaseException | None:
    from .registry import create_model

    try:
        create_model(name, info, **hparams)
    except Exception as exc:  # noqa: BLE001 - any refusal is reported by the caller
        return exc
    return None


def check_model_hparams(models: Sequence[str], hparams: dict[str, Any] | None, history: int = 10) -> None:
    """Each of ``models`` must accept ``--model-hparams``: the builder's signature is read for
    the declared names, and each model is built once on a 4-node toy graph with and without
    the values; a value it refuses only with them (wrong type, unknown name, out of range)
    is an error naming the model, the value and the names it declares."""
    if not hparams:
        return
    from .registry import get_model_entry

    given = ",".join(f"{k}={v}" for k, v in hparams.items())
    for name in models:
        entry = get_model_entry(name)
        info = _toy_info(history, 4 if entry.multichannel else 1)
        if _build_error(name, info, {"hidden": 16}) is not None:
            continue  # this toy graph does not suit the model: left to the run's own checks
        exc = _build_error(name, info, {"hidden": 16, **hparams})
        if exc is None:
            continue
        why = (str(exc).splitlines() or [repr(exc)])[0].strip("\"")
        hint = _hint(name)
        raise PreflightError(f"--model-hparams {given}: model {name} refuses it ({type(exc).__name__}: {why})"
                             + ("" if "valid" in why else f"; {hint}"))


_FIXES = {
    errno.ENOSPC: "free space there or choose another --out",
    errno.EDQUOT: "free space (disk quota) or choose another --out",
    errno.EROFS: "the file system is read-only: choose a writable --out",
    errno.EACCES: "fix that path's permissions, or choose another --out if it is in the results folder",
    errno.EPERM: "fix that path's permissions, or choose another --out if it is in the results folder",
}
#: Errors that only a write meets: the file named was being written.
_WRITE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def describe_os_error(exc: OSError) -> str:
    """One line for a failed file operation: what, where, the fix, and that stored cells are kept."""
    verb = "writing" if exc.errno in _WRITE_ERRORS else "at"
    where = f" {verb} {exc.filename}" if exc.filename else ""
    fix = _FIXES.get(exc.errno or -1, "check that path and the disk")
    return (f"{exc.strerror or exc}{where}; {fix}. Finished cells are stored and nothing partial is left: "
            "rerun the same command to resume")
