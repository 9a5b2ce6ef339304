"""Adapters from the catalog's uniform call ``loader(case, data_dir, **overrides)``
to each dataset module (imported lazily so that, e.g., OpenMM is only needed for
the peptide cases)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from .base import CaseData


def _reject(dataset: str, opts: dict[str, Any], allowed: tuple[str, ...]) -> dict[str, Any]:
    ignored = sorted(set(opts) - set(allowed))
    if ignored:
        warnings.warn(f"{dataset}: option(s) {ignored} do not apply to this dataset and are ignored", stacklevel=3)
    return {k: v for k, v in opts.items() if k in allowed}


_SPLIT_OPTS = ("history", "stride", "split_margin", "split_fractions", "split_caps")


def md17(case: str, data_dir: Path, **opts: Any) -> CaseData:
    from .md17 import load_md17

    return load_md17(case, data_dir, **_reject("md17", opts, _SPLIT_OPTS))


def md17_xtb(case: str, data_dir: Path, **opts: Any) -> CaseData:
    from .md17_xtb import load_md17_xtb

    return load_md17_xtb(case, data_dir, **_reject("md17-xtb", opts, _SPLIT_OPTS))


def md17_xtb_short(case: str, data_dir: Path, **opts: Any) -> CaseData:
    from .md17_xtb import load_md17_xtb

    return load_md17_xtb(case, data_dir, variant="short", **_reject("md17-xtb-short", opts, _SPLIT_OPTS))


def npz_file(case: str, data_dir: Path, **opts: Any) -> CaseData:  # noqa: ARG001 - case is the file stem
    from .trajectory_case import load_trajectory_case

    path = opts.pop("path")
    return load_trajectory_case(path, **_reject(str(path), opts, _SPLIT_OPTS))


def motion(case: str, data_dir: Path, **opts: Any) -> CaseData:
    from .mocap import load_motion

    return load_motion(case, data_dir, **_reject(f"motion-{case}", opts, ("history", "stride")))


def adk(case: str, data_dir: Path, **opts: Any) -> CaseData:
    from .adk import load_adk_case

    return load_adk_case(case, data_dir, **_reject(f"adk-{case}", opts, ("history", "stride", "split_fractions")))


def peptide(case: str, data_dir: Path, **opts: Any) -> CaseData:
    from .peptide import load_peptide

    return load_peptide(case, data_dir, **_reject(f"peptide-{case}", opts, _SPLIT_OPTS))


def md_files(case: str, data_dir: Path, **opts: Any) -> CaseData:  # noqa: ARG001
    """``--dataset TOPOLOGY::TRAJ[::TRAJ]``: any protein MDAnalysis reads, as AdK-style residues."""
    from .adk import load_adk, parse_md_spec

    top, trajs = parse_md_spec(opts.pop("path"))
    kw = _reject(case, opts, ("history", "stride", "split_fractions"))
    if "split_fractions" in kw:
        kw["fractions"] = kw.pop("split_fractions")
    return load_adk(top, trajs, case=case, **kw)
