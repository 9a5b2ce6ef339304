"""Generate trajectories offline with a molecular-dynamics engine (``estagbench simulate``).

:mod:`estagbench.simulate.peptide` runs a solvated peptide with OpenMM in explicit,
implicit or no water and writes only the solute (issue 7).  OpenMM is imported only
when a simulation is built, so importing this package does not need it.
:mod:`estagbench.simulate.md17_xtb` generates the eight MD17 molecules with GFN2-xTB
(tblite + ASE + RDKit, issue 22); it is imported by its command, not here.
"""

from .peptide import (
    ATOM_SELECTIONS,
    DEFAULT_PROTOCOL,
    SOLVENTS,
    PeptideSettings,
    generate_peptide,
    peptide_cache_path,
    simulate_peptide,
)

__all__ = [
    "ATOM_SELECTIONS",
    "DEFAULT_PROTOCOL",
    "SOLVENTS",
    "PeptideSettings",
    "generate_peptide",
    "peptide_cache_path",
    "simulate_peptide",
]
