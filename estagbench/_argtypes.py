"""``argparse`` value types and argument groups shared by the sub-commands (``run``, ``rollout``,
``tables``, ``plot``): a bad value is refused by the parser with the flag's name, before any data is
loaded or anything is trained.  Every command module imports its parsers from here, never from
another command's module."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from . import protocol as P

__all__ = ["positive_int", "nonnegative_int", "floats", "ints", "names", "hparams", "add_data_args", "data_opts",
           "DEFAULT_OUT"]

#: The results store of every command (``--out`` / ``--results``).
DEFAULT_OUT = Path("estagbench-results")


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def positive_int(text: str) -> int:
    """An integer >= 1."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def nonnegative_int(text: str) -> int:
    """An integer >= 0."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def floats(text: str) -> tuple[float, ...]:
    """Comma-separated numbers."""
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def ints(text: str) -> tuple[int, ...]:
    """Comma-separated integers."""
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def names(text: str) -> list[str]:
    """A comma list of names (blanks dropped)."""
    return [v.strip() for v in text.split(",") if v.strip()]


def hparams(text: str) -> dict[str, Any]:
    """``key=value,key=value`` with values parsed as int, float, bool or string."""
    out: dict[str, Any] = {}
    for item in names(text):
        if "=" not in item:
            raise argparse.ArgumentTypeError(f"expected key=value, got {item!r}")
        key, raw = item.split("=", 1)
        val: Any = raw
        for conv in (int, float):
            try:
                val = conv(raw)
                break
            except ValueError:
                continue
        if raw.lower() in ("true", "false"):
            val = raw.lower() == "true"
        out[key.strip().replace("-", "_")] = val
    return out


def add_data_args(p: argparse.ArgumentParser, dataset_required: bool = True) -> None:
    """Dataset selection and protocol overrides shared by run/rollout/reproduce."""
    p.add_argument("--dataset", required=dataset_required,
                   help="a registered dataset (`estagbench datasets` lists them, e.g. md17, adk-mini, motion-walk), "
                        "PATH.npz (your trajectory, docs/trajectory-format.md) or "
                        "TOPOLOGY::TRAJECTORY[::TRAJECTORY...] (any protein MDAnalysis reads, as AdK-style residues)")
    p.add_argument("--molecules", "--cases", dest="cases", type=names, default=None,
                   help="comma list of cases (MD17 molecules); default: all cases of the dataset")
    p.add_argument("--data-dir", type=Path, default=None, help="data cache (default $ESTAGBENCH_DATA or ~/.cache/estagbench)")
    p.add_argument("--history", type=positive_int, default=None, help=f"T, frames fed to the model (default {P.HISTORY})")
    p.add_argument("--stride", type=positive_int, default=None, help="Δ, frames between two inputs (dataset default)")
    p.add_argument("--split-margin", type=nonnegative_int, default=None,
                   help=f"frames excluded at both ends of an MD17 trajectory (MD17 default {P.MD17_MARGIN}; "
                        f"PATH.npz default {P.TRAJECTORY_MARGIN})")
    p.add_argument("--split-fractions", type=floats, default=None,
                   help=f"train,val,test fractions (MD17 default {','.join(map(str, P.MD17_FRACTIONS))})")
    p.add_argument("--split-caps", type=ints, default=None,
                   help=f"train,val,test caps (MD17 default {','.join(map(str, P.MD17_CAPS))})")


def data_opts(args: argparse.Namespace) -> dict[str, Any]:
    """The protocol overrides parsed by :func:`add_data_args`, as ``load_case`` takes them."""
    return {"history": args.history, "stride": args.stride, "split_margin": args.split_margin,
            "split_fractions": args.split_fractions, "split_caps": args.split_caps}
