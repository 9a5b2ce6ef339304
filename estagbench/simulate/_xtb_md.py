"""The GFN2-xTB molecular-dynamics engine behind ``estagbench simulate md17-xtb``.

RDKit conformer → GFN2-xTB optimisation (tblite's ASE calculator, ASE's BFGS) →
Maxwell–Boltzmann velocities with drift and rotation removed → Nosé–Hoover chain NVT
(ASE ``NoseHooverChainNVT``): equilibration steps (discarded), then production, every
step recorded.  Checkpoints make a run resumable bit for bit: positions, momenta, the
thermostat's chain variables, the last energy and forces, tblite's converged
wavefunction (the next step's SCF guess) and the RNG state.

tblite, ASE and RDKit are imported inside the functions (the ``[simulate]`` extra);
:func:`single_thread_env` must run before tblite is first imported in a process.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data.errors import DataError
from ..data.trajectory import atomic_write_bytes

__all__ = ["SimulationError", "MissingExtraError", "check_extra", "single_thread_env", "import_engine", "initial_structure",
           "Recorder", "run_md"]

EV_TO_KCAL_MOL = 23.060547830619026  # 1 eV in kcal/mol (ASE: 1 / (units.kcal / units.mol))
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


class SimulationError(DataError):
    """The simulation failed (SCF not converged, geometry blew up); the message names the step."""


class MissingExtraError(ValueError):
    """tblite, ASE or RDKit is not installed."""


def single_thread_env() -> None:
    """One OpenMP/BLAS thread for this process (two are slower and not reproducible).

    Sets the variables whatever the caller's environment; effective only before tblite's
    OpenMP runtime is loaded, so it is called before the first ``import tblite``.
    """
    for var in _THREAD_VARS:
        os.environ[var] = "1"
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"


def check_extra() -> None:
    """Raise :class:`MissingExtraError` (one line naming the extra) unless tblite, ASE and RDKit are installed.

    Looks the packages up without importing them (tblite's OpenMP runtime must not start here).
    """
    import importlib.util

    missing = [p for p in ("tblite", "ase", "rdkit") if importlib.util.find_spec(p) is None]
    if missing:
        raise MissingExtraError(f"`estagbench simulate md17-xtb` needs tblite, ase and rdkit ({', '.join(missing)} "
                                "missing); install the extra: pip install 'estagbench[simulate]'")


def _one_omp_thread() -> None:
    """Set the calling thread's OpenMP thread count to 1 in the loaded ``libgomp.so.1``.

    torch ships its own ``libgomp.so.1``; when torch is imported first, tblite binds to that
    already-initialised runtime and the environment set by :func:`single_thread_env` is
    ignored, so the count is also set through the runtime's API.
    """
    import ctypes

    try:
        ctypes.CDLL("libgomp.so.1").omp_set_num_threads(1)
    except (OSError, AttributeError):
        pass  # no GNU OpenMP runtime loaded under that name: the environment variables apply


def import_engine() -> dict[str, Any]:
    """Import tblite, ASE and RDKit (after :func:`single_thread_env`); a missing one names the extra."""
    check_extra()
    if "tblite" not in sys.modules:
        single_thread_env()
    try:
        import ase  # noqa: F401
        import rdkit  # noqa: F401
        import tblite.ase  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError(
            f"`estagbench simulate md17-xtb` needs tblite, ase and rdkit ({exc.name or exc} is missing); "
            "install the extra: pip install 'estagbench[simulate]'"
        ) from exc
    _one_omp_thread()
    from importlib.metadata import version

    return {p: version(p) for p in ("tblite", "ase", "rdkit", "numpy")}


@dataclass(frozen=True)
class Structure:
    """Atoms of one molecule: atomic numbers, optimised positions (Å) and covalent bonds (pairs)."""

    z: np.ndarray
    positions: np.ndarray
    bonds: np.ndarray
    info: dict[str, Any]


_MD_CALCULATOR: Any = None


def _md_calculator_class() -> Any:
    """tblite's ASE calculator, trimmed for MD (same numbers, about a third less time per step).

    * ``calculate`` reads only the energy and the gradient from tblite's result (the stock one
      also reads charges, dipole and bond orders, which cost as much as a small molecule's SCF);
    * ``check_state`` compares positions exactly and skips ASE's element-wise tolerance checks
      when nothing but positions can have changed (numbers, cell, pbc and the per-atom arrays
      are those of the last calculation), as in MD.
    The SCF, its restart from the previous wavefunction, and the unit conversions are tblite's
    (tblite 0.8.0: ``_check_api_calculator``/``_create_api_calculator``/``_res``).
    """
    global _MD_CALCULATOR
    if _MD_CALCULATOR is not None:
        return _MD_CALCULATOR
    from ase.calculators.calculator import CalculationFailed, Calculator, all_changes
    from ase.units import Bohr, Hartree
    from tblite.ase import TBLite, _create_api_calculator

    class MDTBLite(TBLite):
        implemented_properties = ["energy", "free_energy", "forces"]

        def check_state(self, atoms: Any, tol: float = 1e-15) -> list[str]:
            prev = self.atoms
            if (prev is None or len(prev) != len(atoms) or not np.array_equal(prev.numbers, atoms.numbers)
                    or not np.array_equal(prev.cell.array, atoms.cell.array) or not np.array_equal(prev.pbc, atoms.pbc)
                    or set(prev.arrays) - {"momenta"} != set(atoms.arrays) - {"momenta"}):
                return super().check_state(atoms, tol)
            return [] if np.array_equal(prev.positions, atoms.positions) else ["positions"]

        def calculate(self, atoms: Any = None, properties: Any = None, system_changes: Any = all_changes) -> None:
            Calculator.calculate(self, atoms, properties or ["energy"], system_changes)
            self._check_api_calculator(system_changes)
            if self._xtb is None:
                self._xtb = _create_api_calculator(self.atoms, self.parameters)
            try:
                self._res = self._xtb.singlepoint(self._res)
            except RuntimeError as exc:
                raise CalculationFailed(str(exc)) from exc
            self.results["energy"] = self.results["free_energy"] = self._res["energy"] * Hartree
            self.results["forces"] = -self._res["gradient"] * Hartree / Bohr

    _MD_CALCULATOR = MDTBLite
    return MDTBLite


def _calculator(settings: Any) -> Any:
    return _md_calculator_class()(method=settings.method, accuracy=settings.scf_accuracy,
                                  max_iterations=settings.scf_max_iterations,
                                  electronic_temperature=settings.electronic_temperature_k, verbosity=0)


def initial_structure(settings: Any) -> Structure:
    """RDKit conformer (ETKDG, seeded) of ``settings.smiles``, optimised with GFN2-xTB (BFGS to ``settings.fmax``)."""
    from ase import Atoms
    from ase.optimize import BFGS
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles(settings.smiles))
    params = AllChem.ETKDGv3()
    params.randomSeed = int(settings.seed)
    if AllChem.EmbedMolecule(mol, params) != 0:
        raise SimulationError(f"md17-xtb {settings.molecule}: RDKit could not embed {settings.smiles!r} with seed {settings.seed}")
    z = np.array([a.GetAtomicNum() for a in mol.GetAtoms()], dtype=np.int64)
    bonds = np.array([(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()], dtype=np.int64)
    atoms = Atoms(numbers=z, positions=mol.GetConformer().GetPositions())
    atoms.calc = _calculator(settings)
    opt = BFGS(atoms, logfile=None)
    try:
        converged = opt.run(fmax=settings.fmax_ev_per_a, steps=settings.max_opt_steps)
    except Exception as exc:
        raise SimulationError(f"md17-xtb {settings.molecule}: GFN2-xTB optimisation failed ({exc})") from exc
    if not converged:
        raise SimulationError(f"md17-xtb {settings.molecule}: GFN2-xTB optimisation did not reach fmax "
                              f"{settings.fmax_ev_per_a} eV/Å in {settings.max_opt_steps} steps")
    info = {"smiles": settings.smiles, "optimisation_steps": int(opt.nsteps),
            "optimised_energy_ev": float(atoms.get_potential_energy()),
            "max_force_ev_per_a": float(np.linalg.norm(atoms.get_forces(), axis=1).max())}
    return Structure(z, atoms.get_positions(), bonds, info)


class Recorder:
    """Per-step arrays of a run, as memory maps in the work folder (flushed at each checkpoint).

    ``R``/``F`` (frames, N, 3) and ``E`` (frames, 1) in the output dtype; ``ekin``/``econs``
    (frames,) float64 in eV, for the quality checks.
    """

    def __init__(self, work: Path, frames: int, num_atoms: int, dtype: str, create: bool) -> None:
        from numpy.lib.format import open_memmap

        mode = "w+" if create else "r+"
        shapes = {"R": ((frames, num_atoms, 3), dtype), "F": ((frames, num_atoms, 3), dtype), "E": ((frames, 1), dtype),
                  "ekin": ((frames,), "float64"), "econs": ((frames,), "float64")}
        self.arrays = {}
        for key, (shape, dt) in shapes.items():
            path = work / f"{key}.npy"
            arr = open_memmap(path, mode=mode, dtype=dt, shape=shape if create else None)
            if arr.shape != shape or arr.dtype != np.dtype(dt):
                raise DataError(f"{path}: expected {shape} {dt}, found {arr.shape} {arr.dtype}; delete {work} to start over")
            self.arrays[key] = arr

    def flush(self) -> None:
        for arr in self.arrays.values():
            arr.flush()

    def __getitem__(self, key: str) -> np.ndarray:
        return self.arrays[key]


def _save_checkpoint(work: Path, step: int, atoms: Any, dyn: Any, rng_state: dict[str, Any], identity_hash: str,
                     recorder: Recorder, wall_s: float) -> None:
    """Flush the recorded frames, save tblite's wavefunction, then atomically replace ``state.npz``."""
    recorder.flush()
    calc = atoms.calc
    wf = work / f"wavefunction-{step}.npz"
    calc._res.save(str(wf))  # tblite 0.8.0: the ASE calculator keeps its last Result (the SCF guess) in _res
    thermo = dyn._thermostat  # ASE 3.29: chain positions/momenta of NoseHooverChainThermostat
    arrays = {
        "step": np.int64(step), "positions": atoms.get_positions(), "momenta": atoms.get_momenta(),
        "eta": np.array(thermo._eta), "p_eta": np.array(thermo._p_eta),
        "energy": np.float64(calc.results["energy"]), "forces": np.array(calc.results["forces"]),
        "wavefunction": np.array(wf.name), "rng": np.array(json.dumps(rng_state)),
        "identity_hash": np.array(identity_hash), "wall_s": np.float64(wall_s),
    }
    atomic_write_bytes(work / "state.npz", lambda fh: np.savez(fh, **arrays))
    for old in work.glob("wavefunction-*.npz"):
        if old.name != wf.name:
            old.unlink()


def _load_checkpoint(work: Path) -> dict[str, Any] | None:
    path = work / "state.npz"
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as d:
        state = {k: d[k] for k in d.files}
    state["step"] = int(state["step"])
    state["wavefunction"] = str(state["wavefunction"])
    state["identity_hash"] = str(state["identity_hash"])
    state["rng"] = json.loads(str(state["rng"]))
    return state


def _progress(total: int, done: int, label: str, enabled: bool) -> Any:
    if not (enabled and sys.stderr.isatty()):
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=done, unit="step", desc=label, file=sys.stderr, mininterval=1.0, smoothing=0.05)


def run_md(
    settings: Any,
    structure: Structure,
    work: Path,
    *,
    identity_hash: str,
    progress: bool = True,
    log: Callable[[str], None] = lambda msg: None,
    on_step: Callable[[int], None] | None = None,
) -> tuple[Recorder, dict[str, Any]]:
    """Run (or resume) the MD of ``settings`` in ``work``; returns the filled :class:`Recorder` and run info.

    Global step ``s`` counts from the start of equilibration; ``settings.equilibration_steps``
    are discarded and frame ``i`` is the state after step ``equilibration_steps + i``.  A
    checkpoint is written every ``settings.checkpoint_every`` steps; a rerun with the same
    settings continues from the last one and gives the same bits as an uninterrupted run.
    ``on_step(s)`` is called after each step (a hook for tests: raising there interrupts the run).
    """
    from ase import Atoms, units
    from ase.calculators.calculator import CalculationFailed
    from ase.md.nose_hoover_chain import NoseHooverChainNVT
    from ase.md.velocitydistribution import Stationary, ZeroRotation, thermalize_momenta
    from tblite.interface import Result

    eq, frames = settings.equilibration_steps, settings.frames
    total = eq + frames - 1  # steps after the start
    n = structure.z.size
    rng = np.random.default_rng(settings.seed)
    state = _load_checkpoint(work)
    if state is not None and state["identity_hash"] != identity_hash:
        raise DataError(f"{work}: checkpoint of other settings ({state['identity_hash']} != {identity_hash}); "
                        f"delete {work} to start over")
    recorder = Recorder(work, frames, n, settings.dtype, create=state is None)
    atoms = Atoms(numbers=structure.z, positions=structure.positions)
    atoms.calc = calc = _calculator(settings)
    if state is None:
        thermalize_momenta(atoms, settings.temperature_k, rng=rng)  # Maxwell-Boltzmann
        Stationary(atoms)
        ZeroRotation(atoms)
        start, wall_before = 0, 0.0
    else:
        rng.bit_generator.state = state["rng"]
        atoms.set_positions(state["positions"])
        atoms.set_momenta(state["momenta"])
        # the energy and forces at the checkpoint's positions, as the uninterrupted run had them cached
        calc.atoms = atoms.copy()
        calc.results = {"energy": float(state["energy"]), "forces": np.array(state["forces"])}
        calc._res = Result()
        calc._res.load(str(work / state["wavefunction"]))
        start, wall_before = state["step"], float(state["wall_s"])
    if state is None:
        initial = {"temperature_k_ase": float(atoms.get_temperature()),
                   "linear_momentum": float(np.linalg.norm(atoms.get_momenta().sum(0))),
                   "angular_momentum": float(np.linalg.norm(atoms.get_angular_momentum()))}
        atomic_write_bytes(work / "initial.json", lambda fh: fh.write(json.dumps(initial).encode()))
    else:
        initial = json.loads((work / "initial.json").read_text())
    dyn = NoseHooverChainNVT(atoms, timestep=settings.step_fs * units.fs, temperature_K=settings.temperature_k,
                             tdamp=settings.thermostat_tau_fs * units.fs, tchain=settings.chain_length, loginterval=0)
    if state is not None:
        dyn._thermostat._eta[:] = state["eta"]
        dyn._thermostat._p_eta[:] = state["p_eta"]
    R, F, E, ekin, econs = (recorder[k] for k in ("R", "F", "E", "ekin", "econs"))
    bonds = structure.bonds
    ref_len = np.linalg.norm(structure.positions[bonds[:, 0]] - structure.positions[bonds[:, 1]], axis=-1)
    where = f"md17-xtb {settings.molecule}"

    def fail(step: int, why: str) -> SimulationError:
        kept = _load_checkpoint(work)
        at = f"the last good checkpoint (step {kept['step']}) is kept in {work}; rerun to resume from it" if kept else \
            f"no checkpoint was written yet ({work})"
        phase = "equilibration" if step < eq else f"production frame {step - eq}"
        return SimulationError(f"{where}: {why} at step {step} ({phase}); nothing written; {at}, or change "
                               "--scf-accuracy/--temperature")

    def record(step: int) -> None:
        pos = atoms.positions
        if not np.isfinite(pos).all():
            raise fail(step, "the geometry blew up (NaN/inf positions)")
        d = np.linalg.norm(pos[bonds[:, 0]] - pos[bonds[:, 1]], axis=-1)
        if np.abs(d - ref_len).max() > settings.blowup_bond_change_a:
            raise fail(step, f"the geometry blew up (a bond changed by more than {settings.blowup_bond_change_a} Å)")
        if step < eq:
            return
        i = step - eq
        # the step left the calculator's results at these positions (ASE's state checks cost as much as the SCF)
        e = float(calc.results["energy"])
        ke = atoms.get_kinetic_energy()
        R[i] = pos
        F[i] = calc.results["forces"] * EV_TO_KCAL_MOL
        E[i, 0] = e * EV_TO_KCAL_MOL
        ekin[i] = ke
        econs[i] = e + ke + dyn._thermostat.get_thermostat_energy()

    label = f"md17-xtb {settings.molecule}"
    bar = _progress(total, start, label, progress)
    t0 = time.perf_counter()
    last_log = t0
    try:
        if start == 0:
            try:
                atoms.get_forces()
            except CalculationFailed as exc:
                raise fail(0, f"the GFN2-xTB SCF did not converge ({exc})") from exc
            record(0)
        for step in range(start + 1, total + 1):
            try:
                dyn.step()
            except CalculationFailed as exc:
                raise fail(step, f"the GFN2-xTB SCF did not converge ({exc})") from exc
            record(step)
            if step % settings.checkpoint_every == 0 or step == total:
                _save_checkpoint(work, step, atoms, dyn, rng.bit_generator.state, identity_hash, recorder,
                                 wall_before + time.perf_counter() - t0)
            if bar is not None:
                bar.update(1)
            elif progress and time.perf_counter() - last_log > 60:
                last_log = time.perf_counter()
                rate = (step - start) / (last_log - t0)
                log(f"step {step}/{total} ({100 * step / total:.1f} %), {rate:.0f} steps/s, "
                    f"ETA {(total - step) / rate / 60:.1f} min")
            if on_step is not None:
                on_step(step)
    finally:
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - t0
    info = {"initial_velocities": initial,
            "resumed_from_step": start, "steps_this_segment": total - start,
            "wall_s_this_segment": round(wall, 3), "wall_s_total": round(wall_before + wall, 3),
            "ms_per_step_this_segment": round(1e3 * wall / max(total - start, 1), 4)}
    return recorder, info
