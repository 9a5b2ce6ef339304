"""md17-xtb: the eight MD17 molecules re-simulated offline with GFN2-xTB (issue 22).

Data card
---------
* What it is: per molecule, one NVT trajectory generated here by
  ``estagbench simulate md17-xtb`` (estagbench/simulate/md17_xtb.py): an RDKit conformer,
  GFN2-xTB optimised (tblite 0.8.0 through its ASE calculator), Maxwell–Boltzmann
  velocities at 500 K with drift and rotation removed, 10 ps of discarded equilibration,
  then a Nosé–Hoover chain (ASE ``NoseHooverChainNVT``, chain 3, τ = 500 fs) at 500 K,
  0.5 fs steps, every step saved: as many frames as the official MD17 file.  Seed 1
  (conformer and velocities); one trajectory per molecule.
* What it is not: MD17.  GFN2-xTB is semi-empirical tight binding, not DFT
  (MD17: PBE+vdW-TS), and MD17's own thermostat and starting points are not known, so
  the motions differ (frequencies, anharmonicity, barrier heights).  Numbers on
  ``md17-xtb`` are never to be read as the paper's Table 1; the files are marked
  non-official and live apart from MD17's (``md17_xtb/``, ``md17_xtb_<molecule>.npz``).
* Protocol: exactly MD17's, through the same code (:func:`estagbench.data.md17.md17_case`):
  heavy atoms, the last frame dropped, benzene centred per frame, λ = 1.6 Å 1-hop graph in
  the first frame plus 2-hop, edge feature [z_i, z_j, hop]; split margin 10 000, fractions
  0.1/0.05/0.05, caps 500/2000/2000, seed 100; T = 10, Δ = 10; Adam lr 5e-3.  The only
  difference from ``md17`` is the file.
* ``md17-xtb-short``: the 2000-frame variant (``simulate md17-xtb --frames 2000``) for quick
  checks and CI.  A 10 000-frame margin cannot apply to 2000 frames, so its split rule is
  MD17's with the margin set to T·Δ (100 frames by default): window starts in
  [100, n − 100), the same fractions, caps and seed (2000 frames → 179/89/89 windows).  Its
  test windows overlap training windows, so its numbers are smoke checks, not results.
* Files: ``<data_dir>/md17_xtb/seed1-official/md17_xtb_<molecule>.npz`` (``seed1-frames2000``
  for the short variant), keys ``R`` Å, ``z``, ``E`` kcal/mol, ``F`` kcal/mol/Å (float32),
  ``metadata`` (settings, package versions, SHA-256 of the arrays, quality report), and a
  manifest ``.json`` beside it with the file's SHA-256 and the quality report.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .base import CaseData, FileRecord, sha256_file
from .errors import DataError, DataNotFoundError
from .md17 import _SPLIT_OPTS, DEFAULTS, FILES, MD17, MOLECULES, md17_case, read_md17_arrays
from .md17_xtb_settings import XTBSettings
from .registry import Dataset, Protocol, register_dataset

__all__ = ["VARIANTS", "SHORT_FRAMES", "md17_xtb_path", "load_md17_xtb"]

SHORT_FRAMES = 2000
#: variant -> folder tag under md17_xtb/seed<S>-
VARIANTS = {"official": "official", "short": f"frames{SHORT_FRAMES}"}
GENERATOR = "estagbench simulate md17-xtb"


def md17_xtb_path(molecule: str, data_dir: Path, variant: str = "official", seed: int = 1) -> Path:
    """``<data_dir>/md17_xtb/seed<S>-<official|frames2000>/md17_xtb_<molecule>.npz``."""
    if molecule not in FILES:
        raise KeyError(f"unknown MD17 molecule {molecule!r}; valid: {', '.join(FILES)}")
    return Path(data_dir) / "md17_xtb" / f"seed{seed}-{VARIANTS[variant]}" / f"md17_xtb_{molecule}.npz"


def load_md17_xtb(
    molecule: str,
    data_dir: Path,
    *,
    variant: str = "official",
    seed: int = 1,
    history: int | None = None,
    stride: int | None = None,
    split_margin: int | None = None,
    split_fractions: tuple[float, float, float] | None = None,
    split_caps: tuple[int, int, int] | None = None,
) -> CaseData:
    """Load one generated molecule as :class:`CaseData` with MD17's protocol (see the module data card)."""
    path = md17_xtb_path(molecule, data_dir, variant, seed)
    if not path.exists():
        frames = "official" if variant == "official" else str(SHORT_FRAMES)
        work = sorted(path.parent.glob(f".work-{molecule}-*")) if path.parent.is_dir() else []
        busy = f" (a generation is under way or was interrupted: {work[0]}; the same command resumes it)" if work else ""
        raise DataNotFoundError(
            f"md17-xtb file {path} not found{busy}; generate it with `estagbench simulate md17-xtb --molecules "
            f"{molecule} --frames {frames} --seed {seed}` (same --data-dir / $ESTAGBENCH_DATA)"
        )
    R, z, generator = read_md17_arrays(path)
    if generator != GENERATOR:
        raise DataError(f"{path}: not written by `{GENERATOR}` (its metadata names {generator!r}); regenerate it "
                        "with `estagbench simulate md17-xtb --force`")
    with np.load(path, allow_pickle=False) as arrays:  # lazily: only the metadata again
        meta = json.loads(str(arrays["metadata"]))
    want = FILES[molecule][1] if variant == "official" else SHORT_FRAMES
    if R.shape[0] != want:
        raise DataError(f"{path}: {R.shape[0]} frames, the {variant} variant has {want}; regenerate it with --force")
    settings = meta.get("settings", {})
    default = XTBSettings(molecule, want, seed=seed).identity()
    differ = sorted(k for k in default if settings.get(k) != default[k])
    if differ:
        warnings.warn(f"{path} was generated with non-default settings ({', '.join(differ)}); results on it are not "
                      "md17-xtb's", RuntimeWarning, stacklevel=2)
    if variant == "short" and split_margin is None:
        T = DEFAULTS["history"] if history is None else history
        D = DEFAULTS["stride"] if stride is None else stride
        split_margin = T * D
    case = md17_case(path, molecule, R, z, FileRecord(str(path), sha256_file(path), False, None),
                     history=history, stride=stride, split_margin=split_margin, split_fractions=split_fractions,
                     split_caps=split_caps)
    case.params.update({"source": f"md17-xtb ({variant})", "xtb_settings_hash": meta.get("settings_hash"),
                        "xtb_sha256_arrays": meta.get("sha256_arrays")})
    return case


@register_dataset("md17-xtb", family="md17", cases=MOLECULES, table="1",
                  description="MD17 molecules simulated offline with GFN2-xTB (not DFT), official lengths, MD17's exact "
                              "protocol; `estagbench simulate md17-xtb` generates it")
class MD17XTB(Dataset):
    """``md17-xtb``: MD17's protocol (the same code as ``md17``) on the generated files (module data card)."""

    protocol = MD17.protocol
    options = _SPLIT_OPTS
    offline = True

    def load(self, case: str, data_dir: Path, **opts: Any) -> CaseData:
        return load_md17_xtb(case, data_dir, **opts)


@register_dataset("md17-xtb-short", family="md17", cases=MOLECULES,
                  description="2000-frame md17-xtb for quick checks/CI (split margin T·Δ instead of 10000; smoke checks "
                              "only); `estagbench simulate md17-xtb --frames 2000`")
class MD17XTBShort(Dataset):
    """``md17-xtb-short``: the 2000-frame variant, MD17's split rule with margin T·Δ (module data card)."""

    protocol = Protocol(history=MD17.protocol.history, stride=MD17.protocol.stride, lr=MD17.protocol.lr,
                        scale=MD17.protocol.scale, unit=MD17.protocol.unit,
                        split="MD17's rule with margin T·Δ (2000 frames: 179/89/89 windows; test overlaps training)")
    options = _SPLIT_OPTS
    offline = True

    def load(self, case: str, data_dir: Path, **opts: Any) -> CaseData:
        return load_md17_xtb(case, data_dir, variant="short", **opts)
