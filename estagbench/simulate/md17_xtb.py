"""``md17-xtb``: the eight MD17 molecules simulated offline with GFN2-xTB (issue 22).

Data card
---------
* What it is: one NVT trajectory per MD17 molecule from semi-empirical GFN2-xTB forces
  (tblite), integrated by ASE's Nosé–Hoover chain (length 3, τ = ``thermostat_tau_fs``) at
  500 K with a 0.5 fs step, every step saved, after ``equilibration_ps`` of discarded
  equilibration.  Start: an RDKit ETKDG conformer (seeded), GFN2-xTB optimised, then
  Maxwell–Boltzmann velocities (seeded) with drift and rotation removed.
* What it is not: MD17.  MD17 is DFT (PBE+vdW-TS) with its own thermostat; GFN2-xTB is a
  tight-binding approximation, so energies, forces, vibrational frequencies and the
  trajectories differ.  Results on ``md17-xtb`` are a different benchmark, never comparable
  number for number with the paper's Table 1.  One seed gives one trajectory per molecule.
* Layout and units as the official files: ``R`` (frames, atoms, 3) Å, ``z`` uint8, ``E``
  (frames, 1) kcal/mol, ``F`` (frames, atoms, 3) kcal/mol/Å, float32 by default; plus
  ``metadata`` (JSON: full settings, package versions, SHA-256 of the arrays, quality report).
* Cache: ``<data_dir>/md17_xtb/seed<S>-<official|frames<N>>/md17_xtb_<molecule>.npz`` and a
  manifest ``md17_xtb_<molecule>.json`` (settings, quality, SHA-256 of the ``.npz``); never
  under ``md17/`` and never named like an official file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..data.errors import DataError
from ..data.trajectory import atomic_write_bytes
from ..registry import UnknownNameError

__all__ = ["GENERATOR", "MOLECULES", "SMILES", "OFFICIAL_FRAMES", "XTBSettings", "parse_molecules", "parse_frames",
           "variant_dir", "output_name", "cache_path", "generate_molecule", "generate_all", "read_manifest"]

from ..data.md17_xtb_settings import (  # noqa: F401 - re-exported: the generator's public names
    COST_ORDER,
    GENERATOR,
    GENERATOR_VERSION,
    MOLECULES,
    OFFICIAL_FRAMES,
    SMILES,
    XTBSettings,
)


def parse_molecules(spec: str) -> list[str]:
    """``all`` (cheapest first) or a comma list of MD17 molecules (validated, order kept)."""
    if spec.strip() == "all":
        return list(COST_ORDER)
    names = [s.strip() for s in spec.split(",") if s.strip()]
    bad = [n for n in names if n not in SMILES]
    if bad or not names:
        raise UnknownNameError(f"unknown molecule(s) {bad or [spec]} for --molecules; valid: {', '.join(MOLECULES)} or all")
    return list(dict.fromkeys(names))


def parse_frames(spec: str | int, molecule: str) -> int:
    """``official`` (the MD17 file's length) or a positive integer."""
    if str(spec).strip() == "official":
        return OFFICIAL_FRAMES[molecule]
    try:
        n = int(str(spec))
    except ValueError:
        raise ValueError(f"--frames {spec!r}: must be 'official' or an integer >= 2") from None
    if n < 2:
        raise ValueError(f"--frames {spec}: must be 'official' or an integer >= 2")
    return n


def variant_dir(data_dir: str | os.PathLike[str], seed: int, frames_tag: str) -> Path:
    """``<data_dir>/md17_xtb/seed<S>-<official|frames<N>>``."""
    return Path(data_dir) / "md17_xtb" / f"seed{seed}-{frames_tag}"


def output_name(molecule: str) -> str:
    return f"md17_xtb_{molecule}.npz"


def cache_path(settings: XTBSettings, data_dir: str | os.PathLike[str]) -> Path:
    tag = "official" if settings.official_length else f"frames{settings.frames}"
    return variant_dir(data_dir, settings.seed, tag) / output_name(settings.molecule)


def _manifest_path(out: Path) -> Path:
    return out.with_suffix(".json")


def read_manifest(out: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON manifest beside a generated file (settings, quality, SHA-256 of the file)."""
    path = _manifest_path(Path(out))
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: manifest missing; regenerate {out} with `estagbench simulate md17-xtb --force`") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc}); regenerate with --force") from exc


def _arrays_sha256(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _file_sha256(path: Path) -> str:
    from ..data.base import sha256_file

    return sha256_file(path)


def _reuse(out: Path, settings: XTBSettings) -> bool:
    if not out.exists():
        return False
    man = read_manifest(out)
    if man.get("settings") != settings.identity():
        raise DataError(f"{out}: exists with other settings ({_manifest_path(out)}); delete it or regenerate with --force")
    if man.get("sha256_file") != _file_sha256(out):
        raise DataError(f"{out}: SHA-256 differs from its manifest (file changed or truncated); regenerate with --force")
    return True


def _load_or_make_structure(settings: XTBSettings, work: Path) -> Any:
    from ._xtb_md import Structure, initial_structure

    path = work / "structure.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as d:
            return Structure(d["z"], d["positions"], d["bonds"], json.loads(str(d["info"])))
    s = initial_structure(settings)
    atomic_write_bytes(path, lambda fh: np.savez(fh, z=s.z, positions=s.positions, bonds=s.bonds,
                                                  info=np.array(json.dumps(s.info))))
    return s


def generate_molecule(
    settings: XTBSettings,
    out: str | os.PathLike[str],
    *,
    force: bool = False,
    progress: bool = True,
    on_step: Callable[[int], None] | None = None,
) -> Path:
    """Generate (or resume, or reuse) one molecule's trajectory at ``out``; returns ``out``.

    The work folder ``<out dir>/.work-<molecule>-<settings hash>/`` holds the checkpoints;
    it is removed once ``out`` and its manifest are written (atomically).  An existing ``out``
    with the same settings is reused; with other settings it is refused unless ``force``.
    """
    from ._xtb_md import import_engine, run_md
    from .xtb_quality import quality_report

    out = Path(out)
    versions = import_engine()
    if not force and _reuse(out, settings):
        return out
    ident = settings.identity_hash(versions)
    work = out.parent / f".work-{settings.molecule}-{ident}"
    work.mkdir(parents=True, exist_ok=True)
    label = f"[md17-xtb {settings.molecule}]"

    def log(msg: str) -> None:
        if progress:
            print(f"{time.strftime('%H:%M:%S')} {label} {msg}", file=sys.stderr, flush=True)

    resumed = (work / "state.npz").exists()
    log(f"{'resuming' if resumed else 'starting'} in {work}: {settings.frames} frames after "
        f"{settings.equilibration_steps} equilibration steps")
    t0 = time.perf_counter()
    structure = _load_or_make_structure(settings, work)
    t_opt = time.perf_counter() - t0
    recorder, run_info = run_md(settings, structure, work, identity_hash=ident, progress=progress, log=log,
                                on_step=on_step)
    t1 = time.perf_counter()
    dt = np.dtype(settings.dtype)
    arrays = {"R": np.asarray(recorder["R"], dtype=dt), "z": structure.z.astype(np.uint8),
              "E": np.asarray(recorder["E"], dtype=dt), "F": np.asarray(recorder["F"], dtype=dt)}
    quality = quality_report(arrays["R"], structure.z, step_fs=settings.step_fs, temperature_k=settings.temperature_k,
                             ekin_ev=np.asarray(recorder["ekin"]), econs_ev=np.asarray(recorder["econs"]),
                             bonds=structure.bonds, reference=structure.positions)
    t_quality = time.perf_counter() - t1
    metadata = {
        "generator": GENERATOR, "generator_version": GENERATOR_VERSION, "dataset": "md17-xtb",
        "not_official_md17": "GFN2-xTB (tblite), not DFT; simulated by estagbench, not from the sGDML site",
        "molecule": settings.molecule, "settings": settings.identity(), "settings_hash": ident,
        "versions": versions, "python": sys.version.split()[0],
        "units": {"R": "angstrom", "E": "kcal/mol", "F": "kcal/mol/angstrom", "time_step_fs": settings.step_fs},
        "frames": {"recorded": settings.frames, "official_md17_length": OFFICIAL_FRAMES[settings.molecule],
                   "equilibration_steps_discarded": settings.equilibration_steps, "every_step_saved": True},
        "thermostat": {"kind": "Nose-Hoover chain (ase.md.nose_hoover_chain.NoseHooverChainNVT)",
                       "chain_length": settings.chain_length, "tau_fs": settings.thermostat_tau_fs,
                       "dof": "3N (ASE's count)"},
        "structure": structure.info, "bonds": structure.bonds.tolist(),
        "optimised_positions": np.round(structure.positions, 8).tolist(),
        "sha256_arrays": _arrays_sha256(arrays), "quality": quality,
    }
    run = {**run_info, "wall_s_optimise_or_load": round(t_opt, 3), "wall_s_quality": round(t_quality, 3),
           "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    arrays_out = {**arrays, "metadata": np.array(json.dumps(metadata, sort_keys=True))}
    atomic_write_bytes(out, lambda fh: np.savez(fh, **arrays_out))
    manifest = {"file": out.name, "sha256_file": _file_sha256(out), "settings": settings.identity(),
                "settings_hash": ident, "sha256_arrays": metadata["sha256_arrays"], "versions": versions,
                "quality": quality, "run": run}
    atomic_write_bytes(_manifest_path(out), lambda fh: fh.write(json.dumps(manifest, indent=1, sort_keys=True).encode()))
    shutil.rmtree(work, ignore_errors=True)
    q = quality
    log(f"wrote {out} in {run['wall_s_total']:.0f} s MD ({run['ms_per_step_this_segment']:.2f} ms/step): "
        f"T {q['temperature_k']['mean']:.1f} K, drift {q['conserved_energy']['drift_mev_per_ps']:+.3f} meV/ps, "
        f"max heavy bond change {q['bonds']['max_heavy_change_A']:.3f} Å, checks {'passed' if q['all_passed'] else 'FAILED: ' + str(q['passed'])}")
    return out


def _worker(settings: XTBSettings, out: str, force: bool, progress: bool) -> str:
    from ._xtb_md import single_thread_env

    single_thread_env()
    return str(generate_molecule(settings, out, force=force, progress=progress))


def generate_all(
    settings: Sequence[XTBSettings],
    outs: Sequence[Path],
    *,
    jobs: int = 1,
    force: bool = False,
    progress: bool = True,
) -> list[Path]:
    """Generate several molecules, each in its own process with one thread, ``jobs`` at a time.

    The thread variables are set before the workers start, so tblite's OpenMP runtime
    starts with one thread whatever the caller's environment.
    """
    import concurrent.futures as cf
    import multiprocessing as mp

    from ._xtb_md import check_extra, single_thread_env

    if jobs < 1:
        raise ValueError(f"--jobs {jobs}: must be >= 1")
    check_extra()
    single_thread_env()
    results: list[Path] = []
    with cf.ProcessPoolExecutor(max_workers=min(jobs, len(settings)), mp_context=mp.get_context("spawn")) as pool:
        futures = [pool.submit(_worker, s, str(o), force, progress) for s, o in zip(settings, outs, strict=True)]
        for fut in futures:
            results.append(Path(fut.result()))
    return results
