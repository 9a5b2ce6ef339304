"""MD17 (Chmiela et al., Sci. Adv. 3, e1603015, 2017): the 8 molecules of Table 1.

Data card
---------
* Files: official ``md17_<molecule>.npz`` from the sGDML site (keys ``R`` frames × atoms
  × 3 in Å, ``z``, ``E`` kcal/mol, ``F`` kcal/mol/Å); cached as
  ``<data_dir>/md17/<file>`` (the layout of ``../shared/data``).
* Preprocessing (protocol.md): heavy atoms only (z > 1); the last frame dropped;
  benzene centred per frame (minus the mean over atoms) before anything else.
* Graph: heavy atoms closer than λ = 1.6 Å in the trajectory's first frame are
  1-hop neighbours, plus 2-hop neighbours; edge feature ``[z_i, z_j, hop]``; node
  feature ``z``.
* Split: :func:`estagbench.data.splits.md17_split` (margin 10000, fractions
  0.1/0.05/0.05, caps 500/2000/2000, seed 100), T = 10, Δ = 10.

Official SHA-256 values are not published by the source; a file is marked
official when its SHA-256 matches :data:`KNOWN_SHA256` (filled in from a trusted
download) or, failing that, when its frame count equals the official one.  The
2000-frame ethanol excerpt in ``../shared/data`` is therefore used with a warning
and its results are marked non-official.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .. import protocol as P
from .base import CaseData, FileRecord, sha256_file
from .download import download_file
from .errors import DataError, DataNotFoundError
from .graphs import cutoff_adjacency, edge_features_z_hop, one_and_two_hop
from .registry import DataFile, Dataset, Protocol, register_dataset
from .splits import md17_split
from .trajectory import load_npz

__all__ = ["MOLECULES", "FILES", "URL_BASE", "MD17", "md17_path", "download_md17", "load_md17", "read_md17_arrays",
           "md17_case"]

URL_BASE = "http://quantum-machine.org/gdml/data/npz"

#: molecule -> (file name, official frame count, heavy-atom count)
FILES: dict[str, tuple[str, int, int]] = {
    "aspirin": ("md17_aspirin.npz", 211762, 13),
    "benzene": ("md17_benzene2017.npz", 627983, 6),
    "ethanol": ("md17_ethanol.npz", 555092, 3),
    "malonaldehyde": ("md17_malonaldehyde.npz", 993237, 5),
    "naphthalene": ("md17_naphthalene.npz", 326250, 10),
    "salicylic": ("md17_salicylic.npz", 320231, 10),
    "toluene": ("md17_toluene.npz", 442790, 7),
    "uracil": ("md17_uracil.npz", 133770, 8),
}
MOLECULES = tuple(FILES)

#: SHA-256 of official files, from a trusted download (none could be made offline).
KNOWN_SHA256: dict[str, str] = {}
#: SHA-256 of known non-official excerpts (shared/data/SOURCES.md).
KNOWN_EXCERPTS: dict[str, str] = {
    "1f5919561e69c12754e10b335721be7cc59ce9fbba3970188303f88d462cdd57": "first 2000 frames of md17_ethanol.npz (mlff tests)",
}

CUTOFF = P.MD17_CUTOFF
DEFAULTS = {"history": P.HISTORY, "stride": P.MD17_STRIDE, "split_margin": P.MD17_MARGIN,
            "split_fractions": P.MD17_FRACTIONS, "split_caps": P.MD17_CAPS}


def _check_molecule(molecule: str) -> None:
    if molecule not in FILES:
        raise KeyError(f"unknown MD17 molecule {molecule!r}; valid: {', '.join(MOLECULES)}")


def md17_path(molecule: str, data_dir: Path) -> Path:
    _check_molecule(molecule)
    return Path(data_dir) / "md17" / FILES[molecule][0]


def download_md17(molecule: str, data_dir: Path, force: bool = False) -> Path:
    """Fetch ``md17_<molecule>.npz`` into ``<data_dir>/md17/`` and check it.

    The download is checked against :data:`KNOWN_SHA256` where a trusted checksum is recorded
    (none yet: the official files could not be fetched where this suite was built), and the
    file, new or already cached, must be a readable ``.npz`` with ``R`` and ``z``
    (:class:`DataError` naming the file otherwise; a bad download leaves a cached file untouched).
    """
    dest = md17_path(molecule, data_dir)

    def check(path: Path) -> None:
        load_npz(path, required=("R", "z"))

    if force or not dest.exists():
        fname = FILES[molecule][0]  # checked before it replaces a cached file
        download_file(f"{URL_BASE}/{fname}", dest, sha256=KNOWN_SHA256.get(fname), check=check)
    else:
        check(dest)
    return dest


# Deliberate repetition (`duplicates`): every loader lists its split overrides in its own typed,
# documented signature (as trajectory_case.case_from_trajectory and simulate.dataset.load_peptide do);
# their defaults all come from estagbench.protocol, so nothing is defined twice.
def load_md17(
    molecule: str,
    data_dir: Path,
    *,
    history: int | None = None,
    stride: int | None = None,
    split_margin: int | None = None,
    split_fractions: tuple[float, float, float] | None = None,
    split_caps: tuple[int, int, int] | None = None,
    seed: int = P.SPLIT_SEED,
) -> CaseData:
    """Load one MD17 molecule as a :class:`CaseData` (see the module data card)."""
    _check_molecule(molecule)
    path = md17_path(molecule, data_dir)
    if not path.exists():
        raise DataNotFoundError(
            f"MD17 file {path} not found. Run `estagbench download md17 --molecules {molecule}` (fetches "
            f"{URL_BASE}/{FILES[molecule][0]}) or put the file there; --data-dir / $ESTAGBENCH_DATA choose the folder."
        )
    R, z, generator = read_md17_arrays(path)
    fname, official_frames, _ = FILES[molecule]
    digest = sha256_file(path)
    if fname in KNOWN_SHA256:
        official = digest == KNOWN_SHA256[fname]
    else:  # a generated file (md17-xtb) has the official length too: its metadata tells it apart
        official = R.shape[0] == official_frames and digest not in KNOWN_EXCERPTS and generator is None
    if not official:
        what = (f"generated by {generator!r}" if generator else
                KNOWN_EXCERPTS.get(digest, f"{R.shape[0]} frames, official file has {official_frames}"))
        warnings.warn(
            f"{path} is not the official MD17 file ({what}); results on it are marked non-official",
            RuntimeWarning,
            stacklevel=2,
        )
    return md17_case(path, molecule, R, z, FileRecord(str(path), digest, official, KNOWN_SHA256.get(fname)),
                     history=history, stride=stride, split_margin=split_margin, split_fractions=split_fractions,
                     split_caps=split_caps, seed=seed)


def read_md17_arrays(path: Path) -> tuple[np.ndarray, np.ndarray, str | None]:
    """``R``, ``z`` and the generator named in ``metadata`` (``None`` without one) of an MD17-layout ``.npz``.

    Checked: dtypes, shapes, finite coordinates (DataError naming the file).  Official MD17
    files have no ``metadata``; files written by ``estagbench simulate md17-xtb`` do.
    """
    arrays = load_npz(path, required=("R", "z"))
    R, z = np.asarray(arrays["R"]), np.asarray(arrays["z"]).reshape(-1)
    generator = None
    if "metadata" in arrays:
        try:
            meta = json.loads(str(np.asarray(arrays["metadata"])))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: 'metadata' is not valid JSON ({exc})") from exc
        generator = str(meta.get("generator")) if isinstance(meta, dict) else "unknown"
    for key, arr, kinds in (("R", R, "f"), ("z", z, "iuf")):
        if arr.dtype.kind not in kinds:
            need = "floating point" if kinds == "f" else "numeric"
            raise DataError(f"{path}: {key} must be {need}, got dtype {arr.dtype}")
    if R.ndim != 3 or R.shape[2] != 3 or R.shape[1] != z.shape[0]:
        raise DataError(f"{path}: expected R of shape (frames, {z.shape[0]}, 3) matching z {z.shape}, got R {R.shape}")
    if not np.all(np.isfinite(R)):
        bad = np.argwhere(~np.isfinite(R))[0]
        raise DataError(f"{path}: R contains NaN/inf coordinates (first at frame {bad[0]}, atom {bad[1]})")
    return R, z, generator


def md17_case(
    path: Path,
    molecule: str,
    R: np.ndarray,
    z: np.ndarray,
    record: FileRecord,
    *,
    history: int | None = None,
    stride: int | None = None,
    split_margin: int | None = None,
    split_fractions: tuple[float, float, float] | None = None,
    split_caps: tuple[int, int, int] | None = None,
    seed: int = 100,
) -> CaseData:
    """MD17's protocol applied to one molecule's ``R``/``z`` (heavy atoms, benzene centred, λ graph, split).

    Shared by ``md17`` and ``md17-xtb``, so that the two differ only in the file read.
    """
    heavy = FILES[molecule][2]
    keep = z > 1
    if int(keep.sum()) != heavy:
        raise DataError(f"{path}: {int(keep.sum())} heavy atoms, MD17 {molecule} has {heavy}")
    pos = R[:-1][:, keep].astype(np.float64)  # drop the last frame
    if molecule == "benzene":
        pos = pos - pos.mean(axis=1, keepdims=True)
    zh = z[keep].astype(np.float64)
    edge_index, hop = one_and_two_hop(cutoff_adjacency(pos[0], CUTOFF))

    T = DEFAULTS["history"] if history is None else history
    D = DEFAULTS["stride"] if stride is None else stride
    margin = DEFAULTS["split_margin"] if split_margin is None else split_margin
    fracs = tuple(DEFAULTS["split_fractions"] if split_fractions is None else split_fractions)
    caps = tuple(DEFAULTS["split_caps"] if split_caps is None else split_caps)
    try:
        starts = md17_split(pos.shape[0], T, D, margin, fracs, caps, seed)
    except ValueError as exc:
        raise DataError(f"{path}: {exc}") from exc
    windows = {k: np.stack([np.zeros_like(v), v], axis=1) for k, v in starts.items()}
    # Deliberate repetition: each loader builds its CaseData field by field (the mocap loader too), naming
    # where every field comes from; a shared builder would only move the keyword list.
    return CaseData(
        dataset="md17",
        case=molecule,
        trajectories=[pos[:, :, None, :]],
        node_features=zh[:, None],
        edge_index=edge_index,
        edge_attr=edge_features_z_hop(zh, edge_index, hop),
        windows=windows,
        history=T,
        stride=D,
        files=[record],
        one_hop_mask=hop == 1,
        params={"history": T, "stride": D, "split_margin": margin, "split_fractions": list(fracs),
                "split_caps": list(caps), "split_seed": seed, "cutoff": CUTOFF},
    )


_SPLIT_OPTS = ("history", "stride", "split_margin", "split_fractions", "split_caps")


@register_dataset("md17", family="md17", cases=MOLECULES, table="1",
                  description="MD17 molecules, heavy atoms, T=10, Δ=10 (Table 1)")
class MD17(Dataset):
    """The eight MD17 molecules (module data card)."""

    protocol = Protocol(history=P.HISTORY, stride=P.MD17_STRIDE, lr=P.LR_MD17, scale=P.MD17_SCALE, unit="×10⁻³",
                        split=f"random starts, margin {P.MD17_MARGIN}, fractions {P.MD17_FRACTIONS}, caps {P.MD17_CAPS}, "
                              f"seed {P.SPLIT_SEED}")
    options = _SPLIT_OPTS

    def files(self, case: str) -> tuple[DataFile, ...]:
        fname = FILES[case][0]
        return (DataFile(f"md17/{fname}", f"{URL_BASE}/{fname}", KNOWN_SHA256.get(fname)),)

    def download(self, case: str, data_dir: Path, force: bool = False) -> list[Path]:
        return [download_md17(case, data_dir, force=force)]  # also checks that the file reads as MD17

    def load(self, case: str, data_dir: Path, **opts: Any) -> CaseData:
        return load_md17(case, data_dir, **opts)

    def small_instance(self) -> tuple[str, dict[str, Any]] | None:
        """The 2000-frame ethanol excerpt of the shared data, with the overrides it needs (README, Data)."""
        return "ethanol", {"split_margin": 0, "split_fractions": P.TRAJECTORY_FRACTIONS}
