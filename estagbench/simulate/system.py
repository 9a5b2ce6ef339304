"""The OpenMM system of a peptide simulation: read the Amber files, keep the solute, choose the
solvent model (explicit water, GBn2, vacuum) and build a ready context (:func:`build_simulation`).

OpenMM is imported only when a simulation is built.  The settings, the trajectory writer and the
cache are in :mod:`estagbench.simulate.peptide`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..data.errors import DataError, DataNotFoundError

if TYPE_CHECKING:
    from .peptide import PeptideSettings

__all__ = ["SimulationRun", "shipped_system_files", "build_simulation"]

_WATER_RESIDUES = frozenset({"HOH", "WAT", "TIP3", "TIP3P", "SOL", "H2O", "T3P"})
_ION_ELEMENTS = frozenset({"Li", "Na", "K", "Rb", "Cs", "Mg", "Ca", "Zn", "F", "Cl", "Br", "I"})


def _import_openmm() -> tuple[Any, Any, Any]:
    try:
        import openmm
        from openmm import app, unit
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "estagbench simulate needs OpenMM: pip install 'estagbench[simulate]' (or pip install openmm)"
        ) from exc
    return openmm, app, unit


def shipped_system_files() -> tuple[Path, Path]:
    """Paths of the Amber topology and coordinates shipped by ``MDAnalysisTests``.

    Returns
    -------
    (prmtop, ncdf): ``bala.prmtop`` and ``bala.ncdf``.
    """
    try:
        from MDAnalysisTests import datafiles
    except ImportError as exc:
        raise DataNotFoundError(
            "the default peptide system (bala.prmtop, bala.ncdf) ships with the MDAnalysisTests package, which is "
            "not installed: pip install MDAnalysisTests, or pass --topology and --coordinates"
        ) from exc
    return Path(datafiles.PRMncdf), Path(datafiles.NCDF)



@dataclass
class SimulationRun:
    """An OpenMM context ready for production, plus what the writer needs.

    ``keep``: ``(K,)`` indices (into the full system) of the atoms written;
    ``atomic_numbers``/``masses``/``atom_names``: of those atoms; ``info``: a
    description of the system for the file's metadata.
    """

    context: Any
    integrator: Any
    keep: np.ndarray
    atomic_numbers: np.ndarray
    masses: np.ndarray
    atom_names: list[str]
    info: dict[str, Any] = field(default_factory=dict)
    bonds: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))


def _read_topology(path: Path) -> Any:
    _, app, _ = _import_openmm()
    try:
        return app.AmberPrmtopFile(str(path))
    except Exception as exc:  # OpenMM raises bare Exception/ValueError/IndexError on bad files
        raise DataError(f"{path}: OpenMM cannot read this file as an Amber topology (prmtop): "
                        f"{type(exc).__name__}: {exc}") from exc


def _read_coordinates(top: Path, crd: Path, frame: int, num_atoms: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Positions ``(num_atoms, 3)`` in nm and box lengths ``(3,)`` in nm (None if absent)."""
    import warnings

    import MDAnalysis as mda

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            u = mda.Universe(str(top), str(crd))
    except Exception as exc:
        raise DataError(f"{crd}: cannot read coordinates for topology {top.name}: {type(exc).__name__}: {exc}") from exc
    if u.atoms.n_atoms != num_atoms:
        raise DataError(f"{crd}: {u.atoms.n_atoms} atoms, but the topology {top.name} has {num_atoms}")
    n = len(u.trajectory)
    if not -n <= frame < n:
        raise ValueError(f"coordinates_frame {frame} is out of range for {crd} with {n} frame(s)")
    ts = u.trajectory[frame]
    pos = np.asarray(ts.positions, dtype=np.float64) / 10.0
    if not np.all(np.isfinite(pos)):
        raise DataError(f"{crd}: frame {frame} has NaN/inf coordinates")
    dims = ts.dimensions
    box = None
    if dims is not None and np.all(np.asarray(dims[:3]) > 0):
        if not np.allclose(dims[3:], 90.0):
            raise DataError(f"{crd}: only rectangular boxes are supported, got angles {tuple(dims[3:])}")
        box = np.asarray(dims[:3], dtype=np.float64) / 10.0
    return pos, box


def _solute_atoms(topology: Any) -> np.ndarray:
    """Indices of atoms in residues that are neither water nor single-atom ions."""
    idx = []
    for res in topology.residues():
        atoms = list(res.atoms())
        if res.name.upper() in _WATER_RESIDUES:
            continue
        if len(atoms) == 1 and atoms[0].element is not None and atoms[0].element.symbol in _ION_ELEMENTS:
            continue
        idx.extend(a.index for a in atoms)
    return np.asarray(sorted(idx), dtype=np.int64)


def _solute_system(full: Any, solute: np.ndarray) -> Any:
    """A System of the atoms ``solute`` with exactly their terms from ``full`` (a NoCutoff system).

    Bonds, angles, torsions, constraints and 1-4 exceptions are kept when every atom
    they involve is in ``solute``; charges and Lennard-Jones parameters are copied per
    atom.  Raises for force types it does not know how to subset.
    """
    openmm, _, _ = _import_openmm()
    old_to_new = {int(o): n for n, o in enumerate(solute)}
    sub = openmm.System()
    for o in solute:
        sub.addParticle(full.getParticleMass(int(o)))
    for i in range(full.getNumConstraints()):
        a, b, d = full.getConstraintParameters(i)
        if a in old_to_new and b in old_to_new:
            sub.addConstraint(old_to_new[a], old_to_new[b], d)
    for force in full.getForces():
        if isinstance(force, openmm.HarmonicBondForce):
            new = openmm.HarmonicBondForce()
            for i in range(force.getNumBonds()):
                a, b, r0, k = force.getBondParameters(i)
                if a in old_to_new and b in old_to_new:
                    new.addBond(old_to_new[a], old_to_new[b], r0, k)
        elif isinstance(force, openmm.HarmonicAngleForce):
            new = openmm.HarmonicAngleForce()
            for i in range(force.getNumAngles()):
                a, b, c, t0, k = force.getAngleParameters(i)
                if all(x in old_to_new for x in (a, b, c)):
                    new.addAngle(old_to_new[a], old_to_new[b], old_to_new[c], t0, k)
        elif isinstance(force, openmm.PeriodicTorsionForce):
            new = openmm.PeriodicTorsionForce()
            for i in range(force.getNumTorsions()):
                a, b, c, d, per, ph, k = force.getTorsionParameters(i)
                if all(x in old_to_new for x in (a, b, c, d)):
                    new.addTorsion(old_to_new[a], old_to_new[b], old_to_new[c], old_to_new[d], per, ph, k)
        elif isinstance(force, openmm.NonbondedForce):
            new = openmm.NonbondedForce()
            new.setNonbondedMethod(openmm.NonbondedForce.NoCutoff)
            for o in solute:
                new.addParticle(*force.getParticleParameters(int(o)))
            for i in range(force.getNumExceptions()):
                a, b, qq, sig, eps = force.getExceptionParameters(i)
                if a in old_to_new and b in old_to_new:
                    new.addException(old_to_new[a], old_to_new[b], qq, sig, eps)
        elif isinstance(force, openmm.CMMotionRemover):
            new = openmm.CMMotionRemover(force.getFrequency())
        else:
            raise DataError(f"cannot build the solute-only system: unsupported force {type(force).__name__} in the topology")
        new.setForceGroup(force.getForceGroup())
        sub.addForce(new)
    return sub


def _solute_topology(topology: Any, solute: np.ndarray) -> Any:
    """An OpenMM Topology of the ``solute`` atoms (for the GBn2 parameter lookup)."""
    _, app, _ = _import_openmm()
    keep = set(int(i) for i in solute)
    sub = app.Topology()
    amap = {}
    for chain in topology.chains():
        new_chain = None
        for res in chain.residues():
            atoms = [a for a in res.atoms() if a.index in keep]
            if not atoms:
                continue
            if new_chain is None:
                new_chain = sub.addChain(chain.id)
            new_res = sub.addResidue(res.name, new_chain, res.id)
            for a in atoms:
                amap[a] = sub.addAtom(a.name, a.element, new_res)
    for a, b in topology.bonds():
        if a in amap and b in amap:
            sub.addBond(amap[a], amap[b])
    return sub


def _add_gbn2(system: Any, topology: Any) -> None:
    """Add OpenMM's GBn2 force (no cutoff) with the system's charges and mbondi3 radii."""
    openmm, _, _ = _import_openmm()
    from openmm.app.internal import customgbforces as cgb

    nb = next(f for f in system.getForces() if isinstance(f, openmm.NonbondedForce))
    gb = cgb.GBSAGBn2Force(solventDielectric=78.5, soluteDielectric=1.0, SA="ACE", cutoff=None, kappa=0.0)
    params = cgb.GBSAGBn2Force.getStandardParameters(topology)
    for i, p in enumerate(params):
        charge = nb.getParticleParameters(i)[0].value_in_unit(openmm.unit.elementary_charge)
        gb.addParticle([charge, *[float(v) for v in p]])
    gb.finalize()
    gb.setNonbondedMethod(openmm.CustomGBForce.NoCutoff)
    system.addForce(gb)


def build_simulation(settings: PeptideSettings) -> SimulationRun:
    """Build the OpenMM system of ``settings`` and a CPU context at the starting positions.

    No minimisation or MD is done here; see :func:`simulate_peptide`.
    """
    openmm, app, unit = _import_openmm()
    top_path, crd_path = settings.resolved_files()
    prmtop = _read_topology(top_path)
    topology = prmtop.topology
    n_all = topology.getNumAtoms()
    pos_nm, box_nm = _read_coordinates(top_path, crd_path, settings.coordinates_frame, n_all)
    solute = _solute_atoms(topology)
    if len(solute) == 0:
        raise DataError(f"{top_path}: no solute atoms (every residue is water or a single-atom ion)")
    atoms = list(topology.atoms())
    elements = [atoms[i].element for i in solute]
    if any(e is None for e in elements):
        raise DataError(f"{top_path}: some solute atoms have no element; cannot assign atomic numbers")
    z_solute = np.asarray([e.atomic_number for e in elements], dtype=np.int64)

    if settings.solvent == "explicit":
        if box_nm is None:
            raise DataError(f"{crd_path}: explicit solvent needs a periodic box, but the coordinates carry none")
        if np.any(box_nm < 2 * settings.pme_cutoff_nm):
            raise ValueError(f"PME cutoff {settings.pme_cutoff_nm} nm is more than half the box {tuple(box_nm)} nm")
        system = prmtop.createSystem(nonbondedMethod=app.PME, nonbondedCutoff=settings.pme_cutoff_nm * unit.nanometer,
                                     constraints=app.HBonds, rigidWater=True)
        index = np.arange(n_all)
        positions = pos_nm
        keep_in_context = solute
    else:
        full = prmtop.createSystem(nonbondedMethod=app.NoCutoff, constraints=app.HBonds, rigidWater=True)
        system = _solute_system(full, solute)
        if settings.solvent == "implicit":
            _add_gbn2(system, _solute_topology(topology, solute))
        index = solute
        positions = pos_nm[solute]
        keep_in_context = np.arange(len(solute))

    select = z_solute > 1 if settings.atoms == "heavy" else np.ones(len(solute), dtype=bool)
    keep = keep_in_context[select]
    masses = np.asarray([system.getParticleMass(int(i)).value_in_unit(unit.dalton) for i in keep])

    integrator = openmm.LangevinMiddleIntegrator(settings.temperature_k * unit.kelvin,
                                                 settings.friction_per_ps / unit.picosecond,
                                                 settings.step_fs * unit.femtosecond)
    integrator.setRandomNumberSeed(int(settings.seed))
    cpu = openmm.Platform.getPlatformByName("CPU")
    context = openmm.Context(system, integrator, cpu,
                             {"Threads": str(int(settings.threads)), "DeterministicForces": "true"})
    if settings.solvent == "explicit":
        a, b, c = (float(v) for v in box_nm)  # type: ignore[union-attr]
        context.setPeriodicBoxVectors(openmm.Vec3(a, 0, 0), openmm.Vec3(0, b, 0), openmm.Vec3(0, 0, c))
    context.setPositions(positions)

    solute_set = set(solute.tolist())
    residues = [f"{r.name}{r.id}" for r in topology.residues() if any(a.index in solute_set for a in r.atoms())]
    n_water = sum(1 for r in topology.residues() if r.name.upper() in _WATER_RESIDUES)
    nb = next(f for f in system.getForces() if isinstance(f, openmm.NonbondedForce))
    charge = sum(nb.getParticleParameters(int(i))[0].value_in_unit(unit.elementary_charge) for i in keep_in_context)
    info = {
        "solute_residues": residues,
        "solute_atoms": int(len(solute)),
        "solute_charge_e": round(float(charge), 6),
        "atoms_in_system": int(system.getNumParticles()),
        "waters_simulated": int(n_water) if settings.solvent == "explicit" else 0,
        "hidden_atoms": int(system.getNumParticles() - len(keep)),
        "written_atom_indices_in_topology": [int(index[i]) for i in keep],
        "box_nm": None if box_nm is None or settings.solvent != "explicit" else [float(v) for v in box_nm],
        "nonbonded": {"explicit": f"PME, cutoff {settings.pme_cutoff_nm} nm, rigid TIP3P water",
                      "implicit": "GBn2 (mbondi3 radii, eps_solvent 78.5, ACE surface term), no cutoff",
                      "vacuum": "no cutoff, no solvent"}[settings.solvent],
        "constraints": "HBonds",
        "integrator": "LangevinMiddleIntegrator",
        "platform": "CPU (DeterministicForces)",
    }
    names = [atoms[int(index[i])].name for i in keep]
    written = {int(index[i]): k for k, i in enumerate(keep)}
    bonds = np.asarray(sorted({tuple(sorted((written[a.index], written[b.index])))
                               for a, b in topology.bonds() if a.index in written and b.index in written}),
                       dtype=np.int64).reshape(-1, 2)
    return SimulationRun(context, integrator, keep, z_solute[select], masses, names, info, bonds)


def _degrees_of_freedom(system: Any) -> int:
    openmm, _, _ = _import_openmm()
    dof = 3 * sum(1 for i in range(system.getNumParticles()) if system.getParticleMass(i)._value > 0)
    dof -= system.getNumConstraints()
    if any(isinstance(f, openmm.CMMotionRemover) for f in system.getForces()):
        dof -= 3
    return dof


