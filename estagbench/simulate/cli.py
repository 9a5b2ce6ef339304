"""``estagbench simulate peptide|md17-xtb``: the command-line front of :mod:`estagbench.simulate.peptide`
and :mod:`estagbench.simulate.md17_xtb`.

The lead's ``estagbench/cli.py`` calls :func:`add_simulate_parser` with its
sub-parsers object; the sub-command's ``func`` is :func:`run_simulate`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .peptide import ATOM_SELECTIONS, SOLVENTS, PeptideSettings

__all__ = ["add_simulate_parser", "run_simulate", "settings_from_args"]

_DEFAULTS = PeptideSettings()


def add_simulate_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``simulate`` with its sub-command ``peptide`` to an argparse sub-parsers object."""
    sim = subparsers.add_parser("simulate", help="generate trajectories offline with a molecular-dynamics engine "
                                                 "(OpenMM; GFN2-xTB for md17-xtb)")
    targets = sim.add_subparsers(dest="simulate_target", required=True, metavar="{peptide,md17-xtb}")
    p = targets.add_parser(
        "peptide",
        help="solvated Val-Glu-Val peptide in explicit/implicit/no water; only the solute is written",
        description="Simulate the Amber peptide system shipped by MDAnalysisTests (bala.prmtop/bala.ncdf) with OpenMM "
                    "and write the solute's trajectory in the estagbench .npz format. Without --out the file goes to "
                    "the cache <data-dir>/peptide/<solvent>-<settings hash>.npz and is reused when it exists.",
    )
    p.add_argument("--solvent", default=_DEFAULTS.solvent, help=f"{' | '.join(SOLVENTS)} (default {_DEFAULTS.solvent})")
    p.add_argument("--frames", type=int, default=_DEFAULTS.frames, help=f"recorded frames (default {_DEFAULTS.frames})")
    p.add_argument("--interval-fs", type=float, default=_DEFAULTS.interval_fs,
                   help=f"fs between recorded frames, a multiple of --step-fs (default {_DEFAULTS.interval_fs:g})")
    p.add_argument("--temperature", type=float, default=_DEFAULTS.temperature_k,
                   help=f"K (default {_DEFAULTS.temperature_k:g})")
    p.add_argument("--seed", type=int, default=_DEFAULTS.seed, help=f"random seed >= 1 (default {_DEFAULTS.seed})")
    p.add_argument("--threads", type=int, default=_DEFAULTS.threads,
                   help=f"CPU threads (default {_DEFAULTS.threads}; only 1 thread is bit-reproducible)")
    p.add_argument("--atoms", default=_DEFAULTS.atoms, help=f"{' | '.join(ATOM_SELECTIONS)} solute atoms written "
                                                              f"(default {_DEFAULTS.atoms})")
    p.add_argument("--step-fs", type=float, default=_DEFAULTS.step_fs, help=f"integration step (default {_DEFAULTS.step_fs:g})")
    p.add_argument("--friction", type=float, default=_DEFAULTS.friction_per_ps,
                   help=f"Langevin friction, 1/ps (default {_DEFAULTS.friction_per_ps:g})")
    p.add_argument("--equilibration-ps", type=float, default=_DEFAULTS.equilibration_ps,
                   help=f"unrecorded MD before recording (default {_DEFAULTS.equilibration_ps:g})")
    p.add_argument("--topology", type=Path, default=None, help="Amber prmtop (default: MDAnalysisTests bala.prmtop)")
    p.add_argument("--coordinates", type=Path, default=None,
                   help="coordinates MDAnalysis reads for --topology (default: MDAnalysisTests bala.ncdf)")
    p.add_argument("--coordinates-frame", type=int, default=_DEFAULTS.coordinates_frame,
                   help="starting frame of --coordinates (default -1, the last)")
    p.add_argument("--out", type=Path, default=None, help="write here instead of the cache")
    p.add_argument("--data-dir", type=Path, default=None, help="cache root (default $ESTAGBENCH_DATA or ~/.cache/estagbench)")
    p.add_argument("--force", action="store_true", help="simulate again even if the cached file exists")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_simulate)
    add_md17_xtb_parser(targets)
    return p


def add_md17_xtb_parser(targets: Any) -> argparse.ArgumentParser:
    """``simulate md17-xtb``: the eight MD17 molecules with GFN2-xTB (tblite) and a Nosé–Hoover chain."""
    from .md17_xtb import XTBSettings

    d = XTBSettings("ethanol", 2)
    p = targets.add_parser(
        "md17-xtb",
        help="the MD17 molecules simulated with GFN2-xTB (tblite) + ASE Nose-Hoover chain NVT (dataset md17-xtb)",
        description="RDKit conformer -> GFN2-xTB optimisation -> Maxwell-Boltzmann velocities (drift and rotation "
                    "removed) -> equilibration (discarded) -> Nose-Hoover chain NVT, 0.5 fs, every step saved, in the "
                    "official MD17 layout and units. Written atomically to <data-dir>/md17_xtb/seed<S>-<official|"
                    "frames<N>>/md17_xtb_<molecule>.npz (+ .json manifest with the quality report); an interrupted "
                    "run resumes from its last checkpoint when the same command is rerun. Needs the [simulate] extra.",
    )
    p.add_argument("--molecules", default="all", help="all (cheapest first) or a comma list of MD17 molecules")
    p.add_argument("--frames", default="official",
                   help="'official' (the MD17 file's length, so MD17's split applies) or N frames (default official)")
    p.add_argument("--seed", type=int, default=d.seed, help=f"conformer and velocity seed (default {d.seed})")
    p.add_argument("--temperature", type=float, default=d.temperature_k, help=f"K (default {d.temperature_k:g})")
    p.add_argument("--thermostat-tau-fs", type=float, default=d.thermostat_tau_fs,
                   help=f"Nose-Hoover chain time constant in fs (default {d.thermostat_tau_fs:g})")
    p.add_argument("--equilibration-ps", type=float, default=d.equilibration_ps,
                   help=f"discarded MD before the first frame (default {d.equilibration_ps:g})")
    p.add_argument("--scf-accuracy", type=float, default=d.scf_accuracy,
                   help=f"tblite SCF accuracy (default {d.scf_accuracy:g}; 1.0 drifts ~25x more in energy)")
    p.add_argument("--dtype", choices=["float32", "float64"], default=d.dtype, help=f"R, E, F dtype (default {d.dtype})")
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every,
                   help=f"steps between checkpoints (default {d.checkpoint_every}; does not change the numbers)")
    p.add_argument("--jobs", type=int, default=1, help="molecules simulated at once, one process and one thread each "
                                                       "(default 1)")
    p.add_argument("--out", type=Path, default=None, help="write DIR/md17_xtb_<molecule>.npz instead of the cache")
    p.add_argument("--data-dir", type=Path, default=None, help="cache root (default $ESTAGBENCH_DATA or ~/.cache/estagbench)")
    p.add_argument("--force", action="store_true", help="simulate again even if the file exists")
    p.add_argument("--no-progress", action="store_true", help="no progress bar or log lines")
    p.set_defaults(func=run_md17_xtb)
    return p


def run_md17_xtb(args: argparse.Namespace) -> int:
    """Run ``estagbench simulate md17-xtb``; print each path written (or reused). Returns 0."""
    from ..data.download import resolve_data_dir
    from .md17_xtb import XTBSettings, cache_path, generate_all, output_name, parse_frames, parse_molecules

    settings = [
        XTBSettings(m, parse_frames(args.frames, m), seed=args.seed, temperature_k=args.temperature,
                    thermostat_tau_fs=args.thermostat_tau_fs, equilibration_ps=args.equilibration_ps,
                    scf_accuracy=args.scf_accuracy, dtype=args.dtype, checkpoint_every=args.checkpoint_every)
        for m in parse_molecules(args.molecules)
    ]
    if args.out is not None:
        outs = [Path(args.out) / output_name(s.molecule) for s in settings]
    else:
        root = resolve_data_dir(args.data_dir)
        outs = [cache_path(s, root) for s in settings]
    for path in generate_all(settings, outs, jobs=args.jobs, force=args.force, progress=not args.no_progress):
        print(path)
    return 0


def settings_from_args(args: argparse.Namespace) -> PeptideSettings:
    """The :class:`PeptideSettings` of parsed ``simulate peptide`` arguments (validated)."""
    return PeptideSettings(
        solvent=args.solvent,
        frames=args.frames,
        interval_fs=args.interval_fs,
        temperature_k=args.temperature,
        seed=args.seed,
        threads=args.threads,
        atoms=args.atoms,
        step_fs=args.step_fs,
        friction_per_ps=args.friction,
        equilibration_ps=args.equilibration_ps,
        topology=None if args.topology is None else str(args.topology),
        coordinates=None if args.coordinates is None else str(args.coordinates),
        coordinates_frame=args.coordinates_frame,
    )


def run_simulate(args: argparse.Namespace) -> int:
    """Run ``estagbench simulate peptide``; print the path written (or reused). Returns 0."""
    from ..data.download import resolve_data_dir
    from .peptide import generate_peptide, peptide_cache_path, simulate_peptide

    if args.simulate_target != "peptide":  # argparse already restricts this; kept for direct callers
        raise ValueError(f"unknown simulation target {args.simulate_target!r}; choose peptide")
    settings = settings_from_args(args)
    progress = not args.no_progress
    try:
        if args.out is not None:
            path = simulate_peptide(settings, args.out, progress=progress)
        else:
            root = resolve_data_dir(args.data_dir)
            cached = peptide_cache_path(settings, root)
            existed = cached.exists() and not args.force
            path = generate_peptide(settings, root, force=args.force, progress=progress)
            if existed:
                print(f"reusing cached trajectory (same settings): {path}", file=sys.stderr)
    except Exception as exc:
        if type(exc).__name__ != "OpenMMException":
            raise
        raise ValueError(f"the simulation failed ({exc}); with --step-fs {settings.step_fs:g} the integrator is "
                         "probably unstable: try a smaller --step-fs") from exc
    print(path)
    return 0
