"""Quality checks of a generated ``md17-xtb`` trajectory (stored with the file).

Pure numpy, no simulation engine: the same checks run on any MD17-layout trajectory,
so a generated file can be compared with a real MD17 file (e.g. the 2000-frame
ethanol excerpt) on equal terms.

Checks
------
* kinetic temperature per 1 ps block, counted over 3N degrees of freedom (the
  Nosé–Hoover chain's count) and over 3N − 6 (rotation and drift removed);
* drift of the Nosé–Hoover chain's conserved energy (linear fit, meV/ps);
* the largest change of any covalent bond length from the optimised geometry
  (all bonds and heavy-atom bonds), i.e. whether a bond broke;
* the displacement of atoms between consecutive saved steps (all atoms and heavy atoms).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["KB_EV_PER_K", "THRESHOLDS", "kinetic_temperature", "displacement_stats", "bond_change", "quality_report"]

#: Boltzmann constant in eV/K (CODATA 2018, as ASE uses).
KB_EV_PER_K = 8.617333262e-5

#: Pass/fail limits recorded beside the numbers.
THRESHOLDS = {
    "temperature_mean_rel": 0.05,  # |<T_kin,3N> - T| / T
    "max_heavy_bond_change_A": 0.5,  # a larger change means a bond broke or formed
    "abs_drift_mev_per_ps_per_atom": 1.0,  # conserved-energy drift
}

_CHUNK = 100_000


def kinetic_temperature(ekin_ev: np.ndarray, num_atoms: int, dof: int | None = None) -> np.ndarray:
    """``2 E_kin / (dof k_B)`` in K per step; ``dof`` defaults to 3N."""
    dof = 3 * num_atoms if dof is None else dof
    return 2.0 * np.asarray(ekin_ev, dtype=np.float64) / (dof * KB_EV_PER_K)


def displacement_stats(R: np.ndarray, mask: np.ndarray | None = None) -> dict[str, float]:
    """Mean, standard deviation, 99th percentile and max of ``|R[t+1, i] - R[t, i]|`` in Å over steps and atoms."""
    R = np.asarray(R)
    if mask is not None:
        R = R[:, mask]
    if R.shape[0] < 2:
        return {"mean": float("nan"), "std": float("nan"), "p99": float("nan"), "max": float("nan")}
    total, total2, count, vmax = 0.0, 0.0, 0, 0.0
    samples = []
    for a in range(0, R.shape[0] - 1, _CHUNK):
        seg = np.asarray(R[a:min(a + _CHUNK + 1, R.shape[0])], dtype=np.float64)
        d = np.linalg.norm(np.diff(seg, axis=0), axis=-1).ravel()
        total += float(d.sum())
        total2 += float((d * d).sum())
        count += d.size
        vmax = max(vmax, float(d.max()))
        samples.append(d[:: max(1, d.size // 20_000)])
    mean = total / count
    return {"mean": mean, "std": float(np.sqrt(max(total2 / count - mean * mean, 0.0))),
            "p99": float(np.percentile(np.concatenate(samples), 99)), "max": vmax}


def bond_change(R: np.ndarray, bonds: np.ndarray, reference: np.ndarray) -> float:
    """Largest ``|d_b(t) - d_b(reference)|`` in Å over frames ``t`` and bonds ``b`` (pairs of atom indices)."""
    bonds = np.asarray(bonds, dtype=np.int64).reshape(-1, 2)
    if bonds.size == 0:
        return 0.0
    ref = np.linalg.norm(reference[bonds[:, 0]] - reference[bonds[:, 1]], axis=-1)
    worst = 0.0
    for a in range(0, R.shape[0], _CHUNK):
        seg = np.asarray(R[a:a + _CHUNK], dtype=np.float64)
        d = np.linalg.norm(seg[:, bonds[:, 0]] - seg[:, bonds[:, 1]], axis=-1)
        worst = max(worst, float(np.abs(d - ref).max()))
    return worst


def _drift(econs_ev: np.ndarray, step_fs: float) -> float:
    """Slope of a least-squares line through the conserved energy, meV/ps."""
    e = np.asarray(econs_ev, dtype=np.float64)
    if e.size < 2:
        return 0.0
    t_ps = np.arange(e.size, dtype=np.float64) * step_fs * 1e-3
    t_ps -= t_ps.mean()
    slope = float(np.dot(t_ps, e - e.mean()) / np.dot(t_ps, t_ps))
    return slope * 1e3


def quality_report(
    R: np.ndarray,
    z: np.ndarray,
    *,
    step_fs: float,
    temperature_k: float,
    ekin_ev: np.ndarray | None = None,
    econs_ev: np.ndarray | None = None,
    bonds: np.ndarray | None = None,
    reference: np.ndarray | None = None,
) -> dict[str, Any]:
    """The quality report of one trajectory (a JSON-ready dict).

    ``R`` (frames, atoms, 3) in Å, one frame per ``step_fs``; ``ekin_ev``/``econs_ev``: kinetic
    and conserved energy per frame in eV (omitted checks are left out); ``bonds``: (B, 2) atom
    pairs, ``reference``: the geometry their lengths are compared with (default frame 0).
    ``passed`` maps each check with a threshold (:data:`THRESHOLDS`) to whether it holds.
    """
    z = np.asarray(z).reshape(-1)
    n_atoms = z.size
    heavy = z > 1
    report: dict[str, Any] = {"frames": int(R.shape[0]), "step_fs": step_fs,
                              "duration_ps": round((R.shape[0] - 1) * step_fs * 1e-3, 6), "thresholds": dict(THRESHOLDS)}
    passed: dict[str, bool] = {"finite": bool(all(np.isfinite(np.asarray(R[a:a + _CHUNK])).all()
                                                  for a in range(0, R.shape[0], _CHUNK)))}
    if ekin_ev is not None:
        t3n = kinetic_temperature(ekin_ev, n_atoms)
        block = max(1, int(round(1000.0 / step_fs)))  # 1 ps
        nblk = max(1, t3n.size // block)
        blocks = t3n[: nblk * block].reshape(nblk, -1).mean(axis=1) if t3n.size >= block else t3n.mean(keepdims=True)
        scale = 3 * n_atoms / max(3 * n_atoms - 6, 1)
        report["temperature_k"] = {
            "target": temperature_k, "dof": "3N (the thermostat's count); 'mean_3n_minus_6' rescales to 3N-6",
            "mean": float(t3n.mean()), "mean_3n_minus_6": float(t3n.mean() * scale), "std": float(t3n.std()),
            "block_ps": block * step_fs * 1e-3, "block_min": float(blocks.min()), "block_max": float(blocks.max()),
            "blocks": [round(float(b), 2) for b in blocks],
        }
        passed["temperature_mean"] = bool(abs(t3n.mean() - temperature_k) <= THRESHOLDS["temperature_mean_rel"] * temperature_k)
    if econs_ev is not None:
        drift = _drift(econs_ev, step_fs)
        report["conserved_energy"] = {"drift_mev_per_ps": drift, "drift_mev_per_ps_per_atom": drift / n_atoms,
                                      "std_mev": float(np.std(np.asarray(econs_ev, dtype=np.float64)) * 1e3)}
        passed["energy_drift"] = bool(abs(drift / n_atoms) <= THRESHOLDS["abs_drift_mev_per_ps_per_atom"])
    if bonds is not None:
        ref = np.asarray(R[0] if reference is None else reference, dtype=np.float64)
        bonds = np.asarray(bonds, dtype=np.int64).reshape(-1, 2)
        hb = bonds[heavy[bonds[:, 0]] & heavy[bonds[:, 1]]]
        report["bonds"] = {"count": int(len(bonds)), "heavy_count": int(len(hb)),
                           "max_change_A": bond_change(R, bonds, ref), "max_heavy_change_A": bond_change(R, hb, ref),
                           "reference": "optimised geometry" if reference is not None else "frame 0"}
        passed["bonds_intact"] = bool(report["bonds"]["max_heavy_change_A"] <= THRESHOLDS["max_heavy_bond_change_A"])
    report["displacement_per_step_A"] = {"all_atoms": displacement_stats(R), "heavy_atoms": displacement_stats(R, heavy)}
    report["passed"] = passed
    report["all_passed"] = bool(all(passed.values()))
    return report
