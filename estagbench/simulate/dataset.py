"""Simulated solvated peptide: datasets ``peptide-explicit``, ``peptide-implicit``, ``peptide-vacuum``.

The datasets live beside their generator (:mod:`estagbench.simulate.peptide`), not in
:mod:`estagbench.data`: the data layer never imports the simulation (which imports it).

Data card
---------
* Source: generated on demand with OpenMM by :mod:`estagbench.simulate.peptide` from the
  Amber system ``bala.prmtop``/``bala.ncdf`` shipped by ``MDAnalysisTests`` -- a
  zwitterionic Val-Glu-Val tripeptide (net charge -1) with one Na+ and 870 TIP3P waters.
  One solute, three environments: ``explicit`` (water and ion simulated, not written),
  ``implicit`` (GBn2) and ``vacuum``.  Only the solute is observed, so the hidden
  solvent makes the observed dynamics non-Markovian (Wu et al. 2023, Section 1).
* Cache: ``<data_dir>/peptide/<solvent>-<settings hash>.npz`` in the project's
  trajectory format (docs/trajectory-format.md), written atomically and reused while
  the settings (and OpenMM version) are the same.
* Default trajectory: 3000 frames, 10 fs apart (30 ps after minimisation and 5 ps of
  equilibration), 300 K, Langevin 1/ps, 2 fs steps with H-bond constraints, seed 1,
  one CPU thread (bit-reproducible).
* Nodes: the 24 heavy atoms of the solute (Z > 1); node feature Z.
* Graph: MD17's rule (protocol.md) -- heavy atoms closer than λ in the first frame are
  1-hop neighbours, plus 2-hop neighbours; edge feature ``[Z_i, Z_j, hop]`` -- with
  λ = 1.85 Å instead of 1.6 Å: thermal C-C stretching (up to 1.67 Å at 300 K) made
  1.6 Å drop bonds in frame 0, while 1.85 Å gives exactly the 23 covalent heavy-atom
  bonds in every frame of all three default trajectories (checked and recorded in
  each file's ``metadata["graph"]``).
* Split: the MD17 rules (:func:`estagbench.data.splits.md17_split`, seed 100) with
  margin 0 (equilibration happens before recording), fractions 0.3/0.15/0.15, caps
  500/2000/2000; T = 10, Δ = 10 frames (100 fs) -- 500 / 435 / 435 windows by default.
  These are written into the file's ``metadata["protocol"]``; explicit arguments win.
* Units: Å; MSE tables print ×10⁻³ Å² like MD17.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from .. import protocol as P
from ..data.base import CaseData
from ..data.registry import Dataset, Protocol, register_dataset
from ..data.trajectory import read_trajectory
from ..data.trajectory_case import case_from_trajectory

__all__ = ["PEPTIDE_CASES", "Peptide", "load_peptide", "peptide_settings"]

#: case name (= solvent) of each dataset ``peptide-<case>``
PEPTIDE_CASES = ("explicit", "implicit", "vacuum")


def peptide_settings(case: str, **overrides: Any) -> Any:
    """The default :class:`~estagbench.simulate.peptide.PeptideSettings` of a case, with overrides."""
    from .peptide import PeptideSettings

    if case not in PEPTIDE_CASES:
        raise KeyError(f"unknown peptide case {case!r}; valid: {', '.join(PEPTIDE_CASES)} "
                       "(datasets peptide-explicit, peptide-implicit, peptide-vacuum)")
    return PeptideSettings(solvent=case, **overrides)


def load_peptide(
    case: str,
    data_dir: str | Path,
    *,
    history: int | None = None,
    stride: int | None = None,
    split_margin: int | None = None,
    split_fractions: tuple[float, float, float] | None = None,
    split_caps: tuple[int, int, int] | None = None,
    settings: Any = None,
    force: bool = False,
    progress: bool | None = None,
) -> CaseData:
    """Load (simulating first if needed) the peptide case ``case`` as :class:`CaseData`.

    Parameters
    ----------
    case: ``"explicit"``, ``"implicit"`` or ``"vacuum"``.
    data_dir: cache root; the trajectory lives in ``<data_dir>/peptide/``.
    history, stride, split_margin, split_fractions, split_caps: protocol overrides
        (``None`` keeps the file's ``metadata["protocol"]``).
    settings: a :class:`~estagbench.simulate.peptide.PeptideSettings` replacing the
        default simulation (its ``solvent`` must equal ``case``).
    force: simulate again even if the cached file exists.
    progress: show the simulation's progress bar when it has to run (default: only on a terminal,
        so logs of scripted runs stay clean).

    Returns
    -------
    CaseData with ``dataset="peptide"``, ``case=case``, one trajectory
    ``(frames, N, 1, 3)`` in Å; ``params`` adds the simulation settings hash.
    """
    from .peptide import generate_peptide

    if settings is None:
        settings = peptide_settings(case)
    elif settings.solvent != case:
        raise ValueError(f"peptide case {case!r} got settings for solvent {settings.solvent!r}")
    if progress is None:
        progress = sys.stderr.isatty()
    path = generate_peptide(settings, data_dir, force=force, progress=progress)
    traj = read_trajectory(path)
    data = case_from_trajectory(traj, "peptide", case, history=history, stride=stride, split_margin=split_margin,
                                split_fractions=split_fractions, split_caps=split_caps)
    meta = traj.metadata
    data.params["simulation_settings_hash"] = meta.get("settings_hash")
    data.params["simulation"] = {k: meta.get("settings", {}).get(k) for k in (
        "solvent", "frames", "interval_fs", "temperature_k", "seed", "threads", "atoms", "step_fs",
        "friction_per_ps", "equilibration_ps", "openmm_version")}
    data.notes.append(
        f"simulated with OpenMM {meta.get('settings', {}).get('openmm_version')} ({case} solvent); "
        f"file {path.name}; the solvent is not observed"
    )
    return data


_ABOUT = "Val-Glu-Val tripeptide (MDAnalysisTests bala.prmtop), OpenMM"


@register_dataset("peptide-vacuum", family="peptide", cases=("vacuum",), description=f"{_ABOUT} in vacuum; generated offline")
@register_dataset("peptide-implicit", family="peptide", cases=("implicit",),
                  description=f"{_ABOUT} with GBn2 implicit water; generated offline")
@register_dataset("peptide-explicit", family="peptide", cases=("explicit",),
                  description=f"{_ABOUT} with explicit TIP3P water (solvent hidden); generated offline")
class Peptide(Dataset):
    """A simulated solvated peptide (module data card); the trajectory is generated and cached on first use."""

    offline = True
    options = ("history", "stride", "split_margin", "split_fractions", "split_caps")
    protocol = Protocol(lr=P.LR_MD17, scale=P.MD17_SCALE, unit="×10⁻³",
                        split="MD17 rules, margin 0, fractions 0.3/0.15/0.15, seed 100")

    def load(self, case: str, data_dir: Path, **opts: Any) -> CaseData:
        return load_peptide(case, data_dir, **opts)

    def small_instance(self) -> tuple[str, dict[str, Any]] | None:
        """None: a first load runs an OpenMM simulation (minutes); tests/test_simulate.py covers it on a short run."""
        return None
