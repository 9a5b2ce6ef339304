"""The dataset table: command-line names -> loaders and per-dataset hyper-parameters.

``load_case(name, case, ...)`` is the one front door used by the CLI, the trainer
and the tests.  A name that is a path to an ``.npz`` file loads the project's own
trajectory format (docs/trajectory-format.md).
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..registry import UnknownNameError
from .base import CaseData
from .download import resolve_data_dir

__all__ = ["DatasetSpec", "DATASETS", "DATA_CARDS", "data_card", "get_dataset_spec", "list_datasets", "resolve_cases", "load_case"]


@dataclass(frozen=True)
class DatasetSpec:
    """One command-line dataset name.

    family: the ``DatasetInfo.dataset`` its cases carry (``md17``, ``adk``, ``motion``,
    ``peptide``, ``npz``); registry entries restrict models by family.
    cases: selectable cases (MD17 molecules), or one fixed case.
    lr: Adam learning rate of the protocol; batch 100, weight decay 1e-12, 500
    epochs and hidden 16 hold for every dataset.
    table: the paper's table for this dataset, if any.
    offline: needs no download.
    """

    name: str
    family: str
    cases: tuple[str, ...]
    loader: str
    lr: float
    description: str
    table: str = ""
    offline: bool = False
    scale: float = 1.0

    def load(self, case: str, data_dir: Path, **opts: Any) -> CaseData:
        module, func = self.loader.split(":")
        fn: Callable[..., CaseData] = getattr(importlib.import_module(module), func)
        if self.family == "npz" or "::" in self.name:
            opts = {**opts, "path": self.name}
        return fn(case, data_dir, **opts)


_MD17_MOLECULES = ("aspirin", "benzene", "ethanol", "malonaldehyde", "naphthalene", "salicylic", "toluene", "uracil")

DATASETS: dict[str, DatasetSpec] = {
    s.name: s
    for s in [
        DatasetSpec("md17", "md17", _MD17_MOLECULES, "estagbench.data._loaders:md17", 5e-3,
                    "MD17 molecules, heavy atoms, T=10, Δ=10 (Table 1)", "1", scale=1e3),
        # issue 22: MD17's protocol on trajectories generated offline with GFN2-xTB (estagbench simulate md17-xtb)
        DatasetSpec("md17-xtb", "md17", _MD17_MOLECULES, "estagbench.data._loaders:md17_xtb", 5e-3,
                    "MD17 molecules simulated offline with GFN2-xTB (not DFT), official lengths, MD17's exact protocol; "
                    "`estagbench simulate md17-xtb` generates it", offline=True, scale=1e3),
        DatasetSpec("md17-xtb-short", "md17", _MD17_MOLECULES, "estagbench.data._loaders:md17_xtb_short", 5e-3,
                    "2000-frame md17-xtb for quick checks/CI (split margin T·Δ instead of 10000; smoke checks only); "
                    "`estagbench simulate md17-xtb --frames 2000`", offline=True, scale=1e3),
        DatasetSpec("adk", "adk", ("equilibrium",), "estagbench.data._loaders:adk", 5e-5,
                    "AdK equilibrium trajectory (MDAnalysisData adk_equilibrium), 4-channel residues (Table 2)", "2"),
        DatasetSpec("adk-mini", "adk", ("mini",), "estagbench.data._loaders:adk", 5e-5,
                    "AdK DIMS transition paths shipped by MDAnalysisTests (offline)", "2", offline=True),
        DatasetSpec("motion-walk", "motion", ("walk",), "estagbench.data._loaders:motion", 5e-3,
                    "CMU mocap subject 35 walk, 120 fps originals (Table 3)", "3", scale=1e1),
        DatasetSpec("motion-walk-30fps", "motion", ("walk-30fps",), "estagbench.data._loaders:motion", 5e-3,
                    "CMU mocap subject 35 walk, 30 fps conversions", "3", scale=1e1),
        DatasetSpec("motion-walk-35_01", "motion", ("walk-35_01",), "estagbench.data._loaders:motion", 5e-3,
                    "CMU mocap trial 35_01 alone, 120 fps, chronological split", "", scale=1e1),
        DatasetSpec("motion-basketball", "motion", ("basketball",), "estagbench.data._loaders:motion", 5e-3,
                    "CMU mocap subject 102 basketball, 120 fps (Table 3)", "3", scale=1e1),
        DatasetSpec("peptide-explicit", "peptide", ("explicit",), "estagbench.data._loaders:peptide", 5e-3,
                    "Val-Glu-Val tripeptide (MDAnalysisTests bala.prmtop), OpenMM with explicit TIP3P water (solvent hidden); generated offline", offline=True, scale=1e3),
        DatasetSpec("peptide-implicit", "peptide", ("implicit",), "estagbench.data._loaders:peptide", 5e-3,
                    "Val-Glu-Val tripeptide (MDAnalysisTests bala.prmtop), OpenMM with GBn2 implicit water; generated offline", offline=True, scale=1e3),
        DatasetSpec("peptide-vacuum", "peptide", ("vacuum",), "estagbench.data._loaders:peptide", 5e-3,
                    "Val-Glu-Val tripeptide (MDAnalysisTests bala.prmtop), OpenMM in vacuum; generated offline", offline=True, scale=1e3),
    ]
}


#: dataset name -> module whose docstring is its data card (``estagbench datasets --info NAME``)
DATA_CARDS: dict[str, str] = {
    "md17": "estagbench.data.md17",
    "md17-xtb": "estagbench.data.md17_xtb",
    "md17-xtb-short": "estagbench.data.md17_xtb",
}


def data_card(name: str) -> str:
    """The data card of a dataset name: its spec, then its module's documentation where one is registered."""
    spec = get_dataset_spec(name)
    head = (f"{spec.name}: {spec.description}\nfamily {spec.family}; cases {', '.join(spec.cases)}; lr {spec.lr:g}; "
            f"tables print MSE × {spec.scale:g}{'; offline' if spec.offline else ''}")
    module = DATA_CARDS.get(spec.name)
    if module is None:
        return head
    doc = importlib.import_module(module).__doc__ or ""
    return f"{head}\n\n{doc.strip()}"


def _md_spec(spec: str) -> DatasetSpec:
    return DatasetSpec(spec, "adk", (Path(spec.split("::")[0]).stem,), "estagbench.data._loaders:md_files", 5e-5,
                       f"topology + trajectory {spec} read with MDAnalysis (4-channel backbone residues)", offline=True)


def _npz_spec(path: str) -> DatasetSpec:
    return DatasetSpec(path, "npz", (Path(path).stem,), "estagbench.data._loaders:npz_file", 5e-3,
                       f"trajectory file {path}", offline=True)


def list_datasets() -> list[str]:
    return list(DATASETS)


def get_dataset_spec(name: str) -> DatasetSpec:
    """The spec for a dataset name or an ``.npz`` path; unknown names list the valid ones."""
    if name in DATASETS:
        return DATASETS[name]
    if "::" in name:
        return _md_spec(name)
    if name.endswith(".npz") or Path(name).is_file():
        return _npz_spec(name)
    close = difflib.get_close_matches(name, list(DATASETS), n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownNameError(
        f"unknown dataset {name!r}.{hint} Valid datasets: {', '.join(DATASETS)}, a path to a trajectory .npz, "
        "or TOPOLOGY::TRAJECTORY[::TRAJECTORY…] for any MDAnalysis-readable protein (see `estagbench datasets`)"
    )


def resolve_cases(name: str, cases: list[str] | None = None) -> list[str]:
    """The cases of dataset ``name`` to run: ``cases`` (validated) or all of them."""
    spec = get_dataset_spec(name)
    if not cases:
        return list(spec.cases)
    bad = [c for c in cases if c not in spec.cases]
    if bad:
        raise UnknownNameError(f"unknown case(s) {bad} for dataset {name!r}; valid: {', '.join(spec.cases)}")
    return list(cases)


def load_case(name: str, case: str | None = None, *, data_dir: str | Path | None = None, **opts: Any) -> CaseData:
    """Load one dataset case as :class:`CaseData`.

    ``opts`` are protocol overrides: ``history``, ``stride``, ``split_margin``,
    ``split_fractions``, ``split_caps``; ``None`` values keep the dataset's defaults.
    """
    spec = get_dataset_spec(name)
    (case_name,) = resolve_cases(name, [case] if case else [spec.cases[0]])
    return spec.load(case_name, resolve_data_dir(data_dir), **{k: v for k, v in opts.items() if v is not None})
