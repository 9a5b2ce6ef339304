"""``estagbench simulate peptide``: the command-line front of :mod:`estagbench.simulate.peptide`.

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
    sim = subparsers.add_parser("simulate", help="generate trajectories offline with a molecular-dynamics engine (OpenMM)")
    targets = sim.add_subparsers(dest="simulate_target", required=True, metavar="{peptide}")
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
    return p


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
