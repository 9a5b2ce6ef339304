"""What decides an ``md17-xtb`` trajectory: the generator's settings and the molecules (issue 22).

Kept in the data layer so that the loader (:mod:`estagbench.data.md17_xtb`) can tell a file
made with non-default settings without importing the simulator; the generator
(:mod:`estagbench.simulate.md17_xtb`) imports these from here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..registry import UnknownNameError
from .md17 import FILES as MD17_FILES

__all__ = ["GENERATOR", "GENERATOR_VERSION", "SMILES", "MOLECULES", "OFFICIAL_FRAMES", "COST_ORDER", "XTBSettings"]

GENERATOR = "estagbench simulate md17-xtb"
GENERATOR_VERSION = 1

#: MD17 molecule -> SMILES (malonaldehyde: the Z enol with its internal hydrogen bond, as in MD17).
SMILES: dict[str, str] = {
    "aspirin": "CC(=O)Oc1ccccc1C(=O)O",
    "benzene": "c1ccccc1",
    "ethanol": "CCO",
    "malonaldehyde": "O/C=C\\C=O",
    "naphthalene": "c1ccc2ccccc2c1",
    "salicylic": "O=C(O)c1ccccc1O",
    "toluene": "Cc1ccccc1",
    "uracil": "O=c1cc[nH]c(=O)[nH]1",
}
MOLECULES = tuple(SMILES)
#: frames of the official MD17 files (the default length, so that MD17's split applies unchanged)
OFFICIAL_FRAMES: dict[str, int] = {m: MD17_FILES[m][1] for m in MOLECULES}
#: the cheapest first, the order of ``--molecules all``: CPU ms/step measured on a loaded 2-core machine (uracil 6.5,
#: ethanol 2.5, benzene 4.6, toluene 7.2, malonaldehyde 3.4, aspirin 14.7, salicylic 10.9, naphthalene 12.7)
#: times official frames: 0.28, 0.40, 0.83, 0.93, 0.95, 0.95, 1.03, 1.22 CPU-hours
COST_ORDER = ("uracil", "ethanol", "benzene", "toluene", "malonaldehyde", "aspirin", "salicylic", "naphthalene")


@dataclass(frozen=True)
class XTBSettings:
    """Everything that decides one molecule's trajectory (``checkpoint_every`` decides nothing)."""

    molecule: str
    frames: int
    seed: int = 1
    temperature_k: float = 500.0
    thermostat_tau_fs: float = 500.0
    equilibration_ps: float = 10.0
    step_fs: float = 0.5
    chain_length: int = 3
    method: str = "GFN2-xTB"
    scf_accuracy: float = 0.1
    scf_max_iterations: int = 250
    electronic_temperature_k: float = 300.0
    fmax_ev_per_a: float = 0.005
    max_opt_steps: int = 1000
    dtype: str = "float32"
    blowup_bond_change_a: float = 1.5
    checkpoint_every: int = 5000

    def __post_init__(self) -> None:
        if self.molecule not in SMILES:
            raise UnknownNameError(f"unknown molecule {self.molecule!r} for --molecules; valid: {', '.join(MOLECULES)} or all")
        checks = (("--frames", self.frames, self.frames >= 2, "an integer >= 2 or 'official'"),
                  ("--temperature", self.temperature_k, self.temperature_k > 0, "a positive number of kelvin"),
                  ("--thermostat-tau-fs", self.thermostat_tau_fs, self.thermostat_tau_fs > 0, "a positive number of fs"),
                  ("--equilibration-ps", self.equilibration_ps, self.equilibration_ps >= 0, "a number of ps >= 0"),
                  ("--seed", self.seed, self.seed >= 0, "an integer >= 0"),
                  ("--scf-accuracy", self.scf_accuracy, self.scf_accuracy > 0, "a positive number"),
                  ("--checkpoint-every", self.checkpoint_every, self.checkpoint_every >= 1, "a positive number of steps"),
                  ("step_fs", self.step_fs, self.step_fs > 0, "a positive number of fs"))
        for flag, value, ok, need in checks:
            if not ok or (isinstance(value, float) and not np.isfinite(value)):
                raise ValueError(f"{flag} {value}: must be {need}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"--dtype {self.dtype}: must be float32 or float64")

    @property
    def smiles(self) -> str:
        return SMILES[self.molecule]

    @property
    def equilibration_steps(self) -> int:
        return int(round(self.equilibration_ps * 1000.0 / self.step_fs))

    @property
    def official_length(self) -> bool:
        return self.frames == OFFICIAL_FRAMES[self.molecule]

    def identity(self) -> dict[str, Any]:
        """The settings that decide the numbers (JSON-ready)."""
        d = dataclasses.asdict(self)
        d.pop("checkpoint_every")
        d["smiles"] = self.smiles
        return d

    def identity_hash(self, versions: dict[str, str] | None = None) -> str:
        blob = json.dumps({"settings": self.identity(), "versions": versions or {}, "generator": GENERATOR_VERSION},
                          sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]
