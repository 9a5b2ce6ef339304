"""AdK protein trajectories as 4-channel residue graphs (Section 5.2, Appendix C of Wu et al. 2023).

Data card
---------
* **Input**: any topology + trajectory pair that MDAnalysis reads (PSF/DCD, TPR/XTC,
  PDB/DCD, ...).  Only protein residues are used (MDAnalysis' ``protein`` selection:
  water, ions and ligands are left out).
* **Nodes**: one per residue, with a 4-channel position ``X_i(t) ∈ R^{3×4}`` in the
  channel order :data:`CHANNELS` ``= (N, CA, C, O)``, so ``ca_channel = 1``
  (Appendix C, "the position of C_α").  Positions are in Å, read as written in the file
  (the ``adk_equilibrium`` trajectory is already fitted on the AdK CORE domain; nothing
  is centred or aligned here).
* **Residues missing a backbone atom**: the C-terminal residue of a CHARMM topology
  names its carboxylate oxygens ``OT1``/``OT2`` (GROMACS: ``OC1``/``OC2``, OPLS-AA
  ``O1``/``O2``) and has no atom called ``O``.  A residue without ``O`` takes the first
  of ``o_aliases`` (default ``("OT1", "OC1", "O1")``) as its O channel, so AdK keeps
  all 214 residues.  A residue still missing one of N, CA, C, O is dropped, with a
  :class:`UserWarning` that lists it, and the drop is recorded in ``CaseData.notes``.
  If a residue holds two atoms of the same name (alternate locations), the first in
  file order is used.
  ``o_aliases=()`` reproduces the authors' loader, which keeps only residues whose
  ``backbone`` selection has 4 atoms and so drops the C-terminal GLY 214 (213 nodes).
* **Node features** ``(N, 4)``: the paper's text (Section 5.2) says "the atomic number of
  four backbone atoms", but the authors' public loader feeds the topology's partial
  charges of the four backbone atoms (N, CA, C, O) of each residue.  ``node_features=
  "charges"`` follows the code (the default for the named cases), ``"atomic_number"``
  gives ``(7, 6, 6, 8)`` on every row, and ``"auto"`` (the default for
  :func:`load_adk`) uses charges when the topology has them and atomic numbers
  otherwise (a PDB, for instance).  The choice made is stored in ``params``.
* **Graph**: residues whose CA atoms are closer than ``cutoff`` (6 Å, the authors'
  default) in the first frame of the first trajectory; directed edges both ways, no
  self loops; edge feature = that CA–CA distance, ``(E, 1)`` in Å.
* **Frames**: the last frame of each trajectory is dropped, as the authors' loader does.
* **Windows and split**: history ``T`` frames ``s, s+Δ, …, s+(T−1)Δ`` and target
  ``s+TΔ``, with ``m = n − TΔ`` window starts in a trajectory of ``n`` frames (after the
  drop).  The split is chronological 6 : 2 : 2 (protocol.md) and replicates the
  authors' boundaries, which they computed from the frame count *before* the last
  frame was dropped, i.e. from ``M = m + 1``: train = starts ``[0, ⌊0.6M⌋)``, val =
  ``[⌊0.6M⌋, ⌊0.8M⌋)``, test = ``[⌊0.8M⌋, m)``.  On ``adk_equilibrium`` (4187 frames,
  T = 10, Δ = 5) this gives 2482 / 827 / 827 (with ``⌊f·m⌋`` block sizes it would be
  2481 / 827 / 827).  Several trajectories are separate trajectories of one case: the
  split is applied to each one and no window crosses a trajectory boundary.

Cases
-----
``equilibrium`` (``--dataset adk``, Table 2)
    The MDAnalysisData ``adk_equilibrium`` set (Seyler & Beckstein 2017,
    doi:10.6084/m9.figshare.5108170.v1, CC-BY 4.0): ``adk4AKE.psf`` and
    ``1ake_007-nowater-core-dt240ps.dcd`` (4187 frames, 240 ps apart, 1.004 µs,
    3341 atoms), cached in ``<data_dir>/adk_equilibrium/`` (the folder name
    MDAnalysisData uses).  :func:`download_adk_equilibrium` fetches them from the
    figshare URLs in :data:`ADK_EQUILIBRIUM_FILES`.  T = 10, Δ = 5.
``mini`` (``--dataset adk-mini``, the offline default)
    The real AdK trajectories that the ``MDAnalysisTests`` package ships: ``adk.psf``
    with the two DIMS closed→open transition paths ``adk_dims.dcd`` (98 frames) and
    ``adk_dims2.dcd`` (102 frames) (Beckstein et al., J. Mol. Biol. 394, 2009).  With the
    protocol's Δ = 5 the paths give only 47 + 51 window starts (9 + 10 test
    windows); with Δ = 1 (T = 10 kept) they give 87 + 91, i.e. 107 / 36 / 35 windows, so
    adk-mini uses Δ = 1.  A DIMS step moves a CA by 0.39 Å on average, so Δ = 1 is
    still a non-trivial prediction.  The NAMD GBIS path is not used: it needs its own
    topology file and is a targeted-MD run with steps four times smaller, a different
    dynamics from the DIMS paths.  The files are found in the installed package; if
    ``MDAnalysisTests`` is missing, ``<data_dir>/adk/`` (the layout of
    ``../shared/data``) is used instead.

Generic use: ``load_adk(topology, [traj, ...], case=...)``; :func:`parse_md_spec`
splits a ``topology::traj1::traj2`` command-line string.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import protocol as P
from .base import CaseData, FileRecord, sha256_file
from .download import download_file, resolve_data_dir
from .errors import DataError, DataNotFoundError
from .graphs import cutoff_adjacency
from .registry import DataFile, Dataset, Protocol, register_dataset

__all__ = [
    "CHANNELS",
    "CA_CHANNEL",
    "BACKBONE_Z",
    "ADK_EQUILIBRIUM_DIR",
    "ADK_EQUILIBRIUM_FILES",
    "ADK_MINI_FILES",
    "CASE_DEFAULTS",
    "RemoteFile",
    "adk_chronological_split",
    "backbone_table",
    "load_adk",
    "load_adk_case",
    "load_adk_equilibrium",
    "load_adk_mini",
    "adk_mini_paths",
    "adk_equilibrium_paths",
    "download_adk_equilibrium",
    "parse_md_spec",
    "AdK",
    "ProteinFiles",
]

DATASET = "adk"
#: Channel order of a residue node (Appendix C): ``X_i = [x_N, x_CA, x_C, x_O]``.
CHANNELS: tuple[str, str, str, str] = ("N", "CA", "C", "O")
#: Index of the CA channel, used by single-channel models.
CA_CHANNEL = 1
#: Atomic numbers of the four channels.
BACKBONE_Z: tuple[int, int, int, int] = (7, 6, 6, 8)
#: Names taken as the O channel of a residue that has no atom named ``O``
#: (C-terminal carboxylate: CHARMM ``OT1``/``OT2``, GROMACS ``OC1``/``OC2``, GROMACS
#: OPLS-AA ``O1``/``O2``).
DEFAULT_O_ALIASES: tuple[str, ...] = ("OT1", "OC1", "O1")
NODE_FEATURES = ("auto", "charges", "atomic_number")


@dataclass(frozen=True)
class RemoteFile:
    """A downloadable data file: name in the cache folder, URL, official SHA-256."""

    filename: str
    url: str
    sha256: str


ADK_EQUILIBRIUM_DIR = "adk_equilibrium"
#: The files MDAnalysisData's ``fetch_adk_equilibrium`` downloads (URLs and SHA-256 as
#: listed in MDAnalysisData/adk_equilibrium.py; figshare fileset 5108170).
ADK_EQUILIBRIUM_FILES: dict[str, RemoteFile] = {
    "topology": RemoteFile(
        "adk4AKE.psf",
        "https://ndownloader.figshare.com/files/8672230",
        "1aa947d58fb41b6805dc1e7be4dbe65c6a8f4690f0bd7fc2ae03e7bd437085f4",
    ),
    "trajectory": RemoteFile(
        "1ake_007-nowater-core-dt240ps.dcd",
        "https://ndownloader.figshare.com/files/8672074",
        "598fcbcfcc425f6eafbe9997238320fcacc6a4613ecce061e1521732bab734bf",
    ),
}
ADK_EQUILIBRIUM_FRAMES = 4187

#: adk-mini files, as shipped in ``MDAnalysisTests/data/`` (SHA-256 of mdanalysistests
#: 2.11.0, ``../shared/data/SOURCES.md``).
ADK_MINI_FILES: dict[str, str] = {
    "adk.psf": "96cec916c4b5b19a7acb91bd1e672fb9c8b032aee1e7f0868a50655902c9b5b8",
    "adk_dims.dcd": "859a5bd9e7de45a0f2401f7971c5ffc296168e7c23f6f65382bde7c1686c19f1",
    "adk_dims2.dcd": "10a1740a6c05bd8dfd8107195d778f7f96f3c3b8aec48833d79a80e9b18843c6",
}
_MINI_TOPOLOGY = "adk.psf"
_MINI_TRAJECTORIES = ("adk_dims.dcd", "adk_dims2.dcd")

#: Per-case protocol defaults (protocol.md for ``equilibrium``; see the data card for ``mini``).
CASE_DEFAULTS: dict[str, dict[str, Any]] = {
    "equilibrium": {"history": P.HISTORY, "stride": P.ADK_STRIDE, "cutoff": P.ADK_CUTOFF, "split_fractions": P.ADK_FRACTIONS},
    "mini": {"history": P.HISTORY, "stride": 1, "cutoff": P.ADK_CUTOFF, "split_fractions": P.ADK_FRACTIONS},
}
_CASE_ALIASES = {"adk": "equilibrium", "adk-equilibrium": "equilibrium", "adk-mini": "mini"}


# --------------------------------------------------------------------------- split


def adk_chronological_split(
    num_frames: int, history: int, stride: int, fractions: Sequence[float] = P.ADK_FRACTIONS
) -> dict[str, np.ndarray]:
    """Chronological train/val/test blocks of window starts, as the authors' AdK loader cut them.

    Parameters
    ----------
    num_frames:
        ``n``, frames of the trajectory after its last frame was dropped.
    history, stride:
        T and Δ; a window spans frames ``s … s+TΔ``, so there are ``m = n − TΔ`` starts.
    fractions:
        ``(f_train, f_val, f_test)``, non-negative, summing to at most 1.

    Returns
    -------
    dict
        ``{"train", "val", "test"}`` → int64 start frames.  With ``M = m + 1`` (the
        authors' base, the start count before the last frame was dropped):
        train ``[0, ⌊f_tr M⌋)``, val ``[⌊f_tr M⌋, ⌊(f_tr+f_va) M⌋)``, test from there to
        ``min(m, ⌊(f_tr+f_va+f_te) M⌋)``; every block is clipped to ``[0, m)``.

    Raises
    ------
    ValueError
        If the trajectory is shorter than one window or the fractions are invalid.
    """
    _check_protocol(history, stride, fractions)
    m = int(num_frames) - history * stride
    if m <= 0:
        raise ValueError(
            f"a trajectory of {num_frames} frames is shorter than one window of T·Δ + 1 = "
            f"{history}·{stride} + 1 = {history * stride + 1} frames"
        )
    base = m + 1
    f_tr, f_va, f_te = (float(f) for f in fractions)
    b1 = min(m, int(f_tr * base))
    b2 = min(m, int((f_tr + f_va) * base))
    b3 = min(m, int((f_tr + f_va + f_te) * base))
    starts = np.arange(m, dtype=np.int64)
    return {"train": starts[:b1], "val": starts[b1:b2], "test": starts[b2:b3]}


def _check_protocol(history: int, stride: int, fractions: Sequence[float]) -> None:
    if int(history) != history or history < 1:
        raise ValueError(f"history T must be a positive integer, got {history!r}")
    if int(stride) != stride or stride < 1:
        raise ValueError(f"stride Δ must be a positive integer, got {stride!r}")
    fr = tuple(fractions)
    if len(fr) != 3 or any(not np.isfinite(f) or f < 0 for f in fr) or sum(fr) > 1 + 1e-9:
        raise ValueError(
            f"split fractions must be 3 non-negative numbers (train, val, test) summing to at most 1, got {fr}"
        )


# --------------------------------------------------------------------------- MDAnalysis reading


def _import_mda() -> Any:
    try:
        import MDAnalysis
    except ImportError as exc:  # pragma: no cover - MDAnalysis is a dependency
        raise ImportError("the AdK loader needs MDAnalysis: pip install 'MDAnalysis>=2.7'") from exc
    return MDAnalysis


def _universe(topology: Path, trajectory: Path) -> Any:
    """An MDAnalysis Universe; any failure becomes a DataError naming the file at fault."""
    mda = _import_mda()
    for path in (topology, trajectory):
        if not path.is_file():
            raise DataError(f"{path}: file not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = mda.Universe(str(topology))
    except Exception as exc:  # MDAnalysis raises ValueError, OSError, TypeError, EOFError, ...
        raise DataError(
            f"{topology}: MDAnalysis cannot read this topology ({type(exc).__name__}: {_first_line(exc)})"
        ) from exc
    _load_trajectory(parsed, trajectory)
    return parsed


def _load_trajectory(universe: Any, trajectory: Path) -> None:
    if not trajectory.is_file():
        raise DataError(f"{trajectory}: file not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            universe.load_new(str(trajectory))
    except Exception as exc:
        raise DataError(
            f"{trajectory}: MDAnalysis cannot read this trajectory with topology {universe.filename} "
            f"({type(exc).__name__}: {_first_line(exc)})"
        ) from exc
    _check_dcd_size(universe.trajectory, trajectory)


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300]


def _check_dcd_size(reader: Any, path: Path) -> None:
    """A DCD whose size is not header + whole frames was cut short (MDAnalysis silently reads fewer frames)."""
    f = getattr(reader, "_file", None)
    sizes = [getattr(f, a, None) for a in ("_header_size", "_firstframesize", "_framesize")]
    if f is None or any(not isinstance(s, int) for s in sizes) or reader.n_frames < 1:
        return
    header, first, per_frame = sizes
    expected = header + first + (reader.n_frames - 1) * per_frame
    actual = os.path.getsize(path)
    if actual != expected:
        raise DataError(
            f"{path}: truncated or corrupt DCD file: {actual} bytes, but a header of {header} bytes and "
            f"{reader.n_frames} whole frames of {per_frame} bytes make {expected} (a partial frame at the end?). "
            "Delete the file and download it again."
        )


def backbone_table(
    universe: Any, o_aliases: Sequence[str] = DEFAULT_O_ALIASES
) -> tuple[np.ndarray, list[str], list[str]]:
    """Atom indices of the backbone atoms of every protein residue, in residue × channel order.

    Parameters
    ----------
    universe:
        An MDAnalysis ``Universe``.
    o_aliases:
        Atom names used, in order, as the O channel of a residue with no atom named ``O``.

    Returns
    -------
    table : ``(R, 4)`` int64
        Universe atom indices (``ix``) of N, CA, C, O for each kept residue.
    labels : list of str
        ``"RESNAME RESID"`` (plus ``:SEGID``) of each kept residue.
    dropped : list of str
        ``"RESNAME RESID missing X, Y"`` for each protein residue left out.
    """
    prot = universe.select_atoms("protein")
    if prot.n_atoms == 0:
        return np.zeros((0, 4), dtype=np.int64), [], []
    names = np.asarray(prot.names).astype(str)
    ix = np.asarray(prot.ix, dtype=np.int64)
    res_of_atom = np.asarray(prot.resindices, dtype=np.int64)
    residues, row = np.unique(res_of_atom, return_inverse=True)
    table = np.full((len(residues), 4), -1, dtype=np.int64)
    # Assign in reverse file order so that, for duplicated names, the first atom wins.
    rev = slice(None, None, -1)
    for ch, name in enumerate(CHANNELS):
        sel = names == name
        table[row[sel][rev], ch] = ix[sel][rev]
    for alias in o_aliases:
        need = table[:, 3] < 0
        if not need.any():
            break
        sel = (names == alias) & need[row]
        table[row[sel][rev], 3] = ix[sel][rev]
    res = universe.residues[residues]
    segids = np.asarray(res.segids).astype(str)
    multi_seg = len(set(segids.tolist())) > 1
    labels = [
        f"{rn} {ri}" + (f":{sg}" if multi_seg else "")
        for rn, ri, sg in zip(np.asarray(res.resnames).astype(str), np.asarray(res.resids), segids, strict=True)
    ]
    keep = (table >= 0).all(axis=1)
    dropped = [
        f"{labels[r]} missing {', '.join(CHANNELS[c] for c in range(4) if table[r, c] < 0)}"
        for r in np.flatnonzero(~keep)
    ]
    return table[keep], [labels[r] for r in np.flatnonzero(keep)], dropped


def _read_positions(universe: Any, atom_ix: np.ndarray, path: Path) -> np.ndarray:
    """``(frames, len(atom_ix), 3)`` float32 positions, one AtomGroup read per frame into a preallocated array."""
    group = universe.atoms[atom_ix]
    traj = universe.trajectory
    out = np.empty((traj.n_frames, len(atom_ix), 3), dtype=np.float32)
    i = 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for i, _ in enumerate(traj):
                out[i] = group.positions
    except Exception as exc:
        raise DataError(
            f"{path}: reading frame {i} failed ({type(exc).__name__}: {_first_line(exc)}); "
            "the trajectory is truncated or corrupt"
        ) from exc
    return out


def _check_finite(path: Path, pos: np.ndarray, labels: list[str]) -> None:
    finite = np.isfinite(pos)
    if not finite.all():
        f, r, c, _ = (int(v) for v in np.argwhere(~finite)[0])
        n_bad = int((~finite.all(axis=-1)).sum())
        raise DataError(
            f"{path}: NaN/inf coordinates in {n_bad} backbone atom position(s), first at frame {f}, residue "
            f"{labels[r]}, atom {CHANNELS[c]}"
        )


def _node_features(universe: Any, table: np.ndarray, mode: str, topology: Path) -> tuple[np.ndarray, str]:
    if mode not in NODE_FEATURES:
        raise ValueError(f"node_features must be one of {NODE_FEATURES}, got {mode!r}")
    if mode in ("auto", "charges"):
        try:
            charges = np.asarray(universe.atoms.charges, dtype=np.float64)
        except (AttributeError, ValueError) as exc:  # MDAnalysis NoDataError subclasses both
            if mode == "charges":
                raise DataError(
                    f"{topology}: the topology has no partial charges, needed for node_features='charges'; "
                    "use node_features='atomic_number' (or 'auto')"
                ) from exc
        else:
            feats = charges[table]
            if not np.all(np.isfinite(feats)):
                raise DataError(f"{topology}: partial charges of backbone atoms contain NaN/inf")
            return feats, "charges"
    z = np.broadcast_to(np.asarray(BACKBONE_Z, dtype=np.float64), table.shape).copy()
    return z, "atomic_number"


# --------------------------------------------------------------------------- the generic loader


def load_adk(
    topology: str | os.PathLike[str],
    trajectories: Sequence[str | os.PathLike[str]],
    *,
    case: str,
    history: int = P.HISTORY,
    stride: int = P.ADK_STRIDE,
    cutoff: float = P.ADK_CUTOFF,
    fractions: Sequence[float] = P.ADK_FRACTIONS,
    node_features: str = "auto",
    o_aliases: Sequence[str] = DEFAULT_O_ALIASES,
    known_sha256: dict[str, str] | None = None,
    dataset: str = DATASET,
) -> CaseData:
    """Load protein trajectories as a 4-channel residue graph (see the module data card).

    Parameters
    ----------
    topology:
        A topology file MDAnalysis reads (PSF, TPR, PDB, GRO, PRMTOP, ...).
    trajectories:
        One or more trajectory files of that topology (DCD, XTC, TRR, NC, ...); each is
        a separate trajectory of the case (windows never cross from one to the next).
    case:
        Case name stored in the :class:`CaseData`.
    history, stride:
        T and Δ (protocol.md: 10 and 5 for AdK).
    cutoff:
        CA–CA distance (Å) below which two residues are joined, in the first frame.
    fractions:
        Chronological train/val/test fractions per trajectory
        (:func:`adk_chronological_split`).
    node_features:
        ``"charges"``, ``"atomic_number"`` or ``"auto"`` (charges when present).
    o_aliases:
        Names used as the O channel when a residue has no ``O`` (C-terminal OT1).
    known_sha256:
        File name → official SHA-256; sets ``FileRecord.official`` (None if unknown).
    dataset:
        Family name stored in the :class:`CaseData` (``"adk"``).

    Returns
    -------
    CaseData
        ``trajectories``: list of ``(frames − 1, N, 4, 3)`` float64 (last frame dropped);
        ``node_features`` ``(N, 4)``; ``edge_index`` ``(2, E)``; ``edge_attr`` ``(E, 1)``;
        ``windows``: ``(S, 2)`` rows of (trajectory index, start) per split; ``ca_channel = 1``.

    Raises
    ------
    DataError
        A file is missing, unreadable, truncated, holds NaN coordinates, has no
        complete protein residue, disagrees with the topology, or is shorter than one
        window; the message names the file.
    ValueError
        Invalid T, Δ, cutoff, fractions or ``node_features``.
    """
    _check_protocol(history, stride, fractions)
    if not (isinstance(cutoff, (int, float)) and np.isfinite(cutoff) and cutoff > 0):
        raise ValueError(f"graph cutoff must be a positive distance in Å, got {cutoff!r}")
    if node_features not in NODE_FEATURES:
        raise ValueError(f"node_features must be one of {NODE_FEATURES}, got {node_features!r}")
    if isinstance(trajectories, (str, os.PathLike)):
        trajectories = [trajectories]
    traj_paths = [Path(t) for t in trajectories]
    if not traj_paths:
        raise ValueError(f"{topology}: give at least one trajectory file")
    top_path = Path(topology)

    universe = _universe(top_path, traj_paths[0])
    table, labels, dropped = backbone_table(universe, o_aliases)
    if len(table) == 0:
        raise DataError(
            f"{top_path}: no protein residue with all of N, CA, C, O"
            + (f" (dropped: {'; '.join(dropped[:5])})" if dropped else " (the protein selection is empty)")
        )
    notes: list[str] = []
    if dropped:
        msg = f"{top_path}: dropped {len(dropped)} residue(s) missing a backbone atom: {'; '.join(dropped)}"
        warnings.warn(msg, UserWarning, stacklevel=2)
        notes.append(msg)
    names = np.asarray(universe.atoms.names).astype(str)
    aliased = [f"{labels[r]} O = {names[table[r, 3]]}" for r in np.flatnonzero(names[table[:, 3]] != "O")]
    if aliased:
        notes.append(f"O channel taken from {', '.join(aliased)} (no atom named O)")
    feats, feat_kind = _node_features(universe, table, node_features, top_path)
    if node_features == "auto" and feat_kind == "atomic_number":
        notes.append(f"{top_path}: no partial charges in the topology; node features are atomic numbers (7, 6, 6, 8)")

    flat_ix = table.reshape(-1)
    n_res = len(table)
    trajs: list[np.ndarray] = []
    windows: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    span = history * stride
    for t_id, path in enumerate(traj_paths):
        if t_id > 0:
            _load_trajectory(universe, path)
        pos = _read_positions(universe, flat_ix, path).reshape(-1, n_res, 4, 3)
        _check_finite(path, pos, labels)
        if pos.shape[0] - 1 <= span:
            raise DataError(
                f"{path}: {pos.shape[0]} frames, one frame is dropped, and a window of T = {history} frames "
                f"Δ = {stride} apart plus its target needs {span + 1}; the trajectory is shorter than one window "
                "(lower --history or --stride)"
            )
        pos = pos[:-1].astype(np.float64)  # the last frame is dropped, as in the authors' loader
        trajs.append(pos)
        for name, starts in adk_chronological_split(pos.shape[0], history, stride, fractions).items():
            windows[name].append(np.stack([np.full_like(starts, t_id), starts], axis=1))
    win = {k: np.concatenate(v).astype(np.int64).reshape(-1, 2) for k, v in windows.items()}
    empty = [k for k, v in win.items() if len(v) == 0]
    if empty:
        raise DataError(
            f"{', '.join(str(p) for p in traj_paths)}: the {', '.join(repr(e) for e in empty)} split(s) get no window "
            f"with T = {history}, Δ = {stride} and fractions {tuple(fractions)}; the trajectories are too short "
            "(lower --stride or --history)"
        )

    ca0 = trajs[0][0, :, CA_CHANNEL]
    adj = cutoff_adjacency(ca0, float(cutoff))
    src, dst = np.nonzero(adj)
    edge_index = np.stack([src, dst]).astype(np.int64)
    edge_attr = np.linalg.norm(ca0[src] - ca0[dst], axis=-1)[:, None]

    known = known_sha256 or {}
    files = []
    for path in [top_path, *traj_paths]:
        digest = sha256_file(path)
        expected = known.get(path.name)
        files.append(FileRecord(str(path), digest, None if expected is None else digest == expected, expected))
    params = {
        "history": int(history),
        "stride": int(stride),
        "cutoff": float(cutoff),
        "split_fractions": [float(f) for f in fractions],
        "split": "chronological per trajectory, authors' boundaries (m + 1 base)",
        "drop_last_frame": True,
        "node_features": feat_kind,
        "o_aliases": list(o_aliases),
        "channels": list(CHANNELS),
        "topology": top_path.name,
        "trajectories": [p.name for p in traj_paths],
        "num_residues": n_res,
        "dropped_residues": [d.split(" missing")[0] for d in dropped],
        "graph_frame": f"{traj_paths[0].name} frame 0",
    }
    return CaseData(
        dataset=dataset,
        case=case,
        trajectories=trajs,
        node_features=feats,
        edge_index=edge_index,
        edge_attr=edge_attr,
        windows=win,
        history=int(history),
        stride=int(stride),
        files=files,
        ca_channel=CA_CHANNEL,
        one_hop_mask=None,
        params=params,
        notes=notes,
    )


# --------------------------------------------------------------------------- named cases


def adk_equilibrium_paths(data_dir: str | os.PathLike[str] | None = None) -> dict[str, Path]:
    """``{"topology", "trajectory"}`` paths under ``<data_dir>/adk_equilibrium/``."""
    root = resolve_data_dir(data_dir) / ADK_EQUILIBRIUM_DIR
    return {k: root / f.filename for k, f in ADK_EQUILIBRIUM_FILES.items()}


def _missing_equilibrium_message(missing: dict[str, Path], reasons: dict[str, str] | None = None) -> str:
    """Name every missing file, its URL, where it goes, and (after a failed download) why."""
    lines = []
    for key, path in missing.items():
        why = f"  [{reasons[key]}]" if reasons and key in reasons else ""
        lines.append(f"  {path.name}: {ADK_EQUILIBRIUM_FILES[key].url} -> {path}{why}")
    folder = next(iter(missing.values())).parent
    head = "could not be downloaded" if reasons else "is not in the cache"
    todo = "Download" if reasons else "Run `estagbench download adk`, or download"
    return (
        f"AdK equilibrium data (MDAnalysisData adk_equilibrium) {head}. Missing file(s):\n"
        + "\n".join(lines)
        + f"\n{todo} the file(s) from those URLs and put them in {folder} (--data-dir / $ESTAGBENCH_DATA choose "
        "the cache root). For an offline run use --dataset adk-mini."
    )


def download_adk_equilibrium(data_dir: str | os.PathLike[str] | None = None, force: bool = False) -> dict[str, Path]:
    """Fetch ``adk4AKE.psf`` and ``1ake_007-nowater-core-dt240ps.dcd`` (161 MB) into ``<data_dir>/adk_equilibrium/``.

    Each file streams to ``<file>.part`` beside its target, is checked against the
    SHA-256 of :data:`ADK_EQUILIBRIUM_FILES` and renamed into place; a file already
    there is kept unless ``force``.

    Raises
    ------
    DataNotFoundError
        Without network: names every missing file, its URL and where to put it.
    ChecksumError
        A downloaded file has the wrong SHA-256 (nothing is written).
    """
    paths = adk_equilibrium_paths(data_dir)
    missing: dict[str, Path] = {}
    reasons: dict[str, str] = {}
    for key, path in paths.items():
        if path.exists() and not force:
            continue
        meta = ADK_EQUILIBRIUM_FILES[key]
        try:
            download_file(meta.url, path, sha256=meta.sha256)
        except DataNotFoundError as exc:
            missing[key] = path
            cause = exc.__cause__
            reasons[key] = f"{type(cause).__name__}: {cause}" if cause is not None else str(exc)
    if missing:
        raise DataNotFoundError(_missing_equilibrium_message(missing, reasons))
    return paths


def load_adk_equilibrium(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    history: int | None = None,
    stride: int | None = None,
    cutoff: float | None = None,
    split_fractions: Sequence[float] | None = None,
    download: bool = False,
) -> CaseData:
    """The ``adk`` dataset of Table 2: MDAnalysisData ``adk_equilibrium`` (T = 10, Δ = 5, 2482/827/827).

    Files not in ``<data_dir>/adk_equilibrium/`` are downloaded when ``download`` is
    True, else :class:`DataNotFoundError` names them, their URLs and the folder.  A file
    whose SHA-256 differs from the official one is used with a warning and its results
    are marked non-official.
    """
    paths = adk_equilibrium_paths(data_dir)
    missing = {k: p for k, p in paths.items() if not p.is_file()}
    if missing:
        if download:
            download_adk_equilibrium(data_dir)
        else:
            raise DataNotFoundError(_missing_equilibrium_message(missing))
    d = CASE_DEFAULTS["equilibrium"]
    case = load_adk(
        paths["topology"],
        [paths["trajectory"]],
        case="equilibrium",
        history=d["history"] if history is None else history,
        stride=d["stride"] if stride is None else stride,
        cutoff=d["cutoff"] if cutoff is None else cutoff,
        fractions=d["split_fractions"] if split_fractions is None else tuple(split_fractions),
        node_features="charges",
        known_sha256={f.filename: f.sha256 for f in ADK_EQUILIBRIUM_FILES.values()},
    )
    _warn_non_official(case)
    return case


def adk_mini_paths(data_dir: str | os.PathLike[str] | None = None) -> tuple[Path, list[Path]]:
    """Topology and trajectories of ``adk-mini``: from the installed ``MDAnalysisTests``, else ``<data_dir>/adk/``."""
    spec = importlib.util.find_spec("MDAnalysisTests")
    candidates: list[Path] = []
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(loc) / "data" for loc in spec.submodule_search_locations]
    if data_dir is not None or os.environ.get("ESTAGBENCH_DATA"):
        candidates.append(resolve_data_dir(data_dir) / "adk")
    names = [_MINI_TOPOLOGY, *_MINI_TRAJECTORIES]
    for folder in candidates:
        if all((folder / n).is_file() for n in names):
            return folder / _MINI_TOPOLOGY, [folder / n for n in _MINI_TRAJECTORIES]
    where = ", ".join(str(c) for c in candidates) or "(MDAnalysisTests is not installed)"
    raise DataNotFoundError(
        f"adk-mini needs {', '.join(names)}; looked in {where}. Install them with `pip install mdanalysistests` "
        "(they are in MDAnalysisTests/data/) or copy them to <data_dir>/adk/."
    )


def load_adk_mini(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    history: int | None = None,
    stride: int | None = None,
    cutoff: float | None = None,
    split_fractions: Sequence[float] | None = None,
) -> CaseData:
    """The offline ``adk-mini`` case: AdK DIMS paths of ``MDAnalysisTests`` (T = 10, Δ = 1; see the data card)."""
    topology, trajectories = adk_mini_paths(data_dir)
    d = CASE_DEFAULTS["mini"]
    case = load_adk(
        topology,
        trajectories,
        case="mini",
        history=d["history"] if history is None else history,
        stride=d["stride"] if stride is None else stride,
        cutoff=d["cutoff"] if cutoff is None else cutoff,
        fractions=d["split_fractions"] if split_fractions is None else tuple(split_fractions),
        node_features="charges",
        known_sha256=ADK_MINI_FILES,
    )
    _warn_non_official(case)
    return case


def _warn_non_official(case: CaseData) -> None:
    for rec in case.files:
        if rec.official is False:
            warnings.warn(
                f"{rec.path} has SHA-256 {rec.sha256}, not the official {rec.expected_sha256}; results on "
                f"{case.dataset}/{case.case} are marked non-official",
                RuntimeWarning,
                stacklevel=3,
            )


def load_adk_case(
    case: str,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    history: int | None = None,
    stride: int | None = None,
    split_fractions: Sequence[float] | None = None,
    cutoff: float | None = None,
    download: bool = False,
) -> CaseData:
    """Catalog entry point: ``case`` is ``"equilibrium"`` (``adk``) or ``"mini"`` (``adk-mini``).

    ``None`` keeps the case's defaults (:data:`CASE_DEFAULTS`).
    """
    name = _CASE_ALIASES.get(case, case)
    if name == "equilibrium":
        return load_adk_equilibrium(
            data_dir, history=history, stride=stride, cutoff=cutoff, split_fractions=split_fractions, download=download
        )
    if name == "mini":
        return load_adk_mini(data_dir, history=history, stride=stride, cutoff=cutoff, split_fractions=split_fractions)
    raise KeyError(f"unknown AdK case {case!r}; valid: 'equilibrium' (--dataset adk), 'mini' (--dataset adk-mini)")


def parse_md_spec(spec: str) -> tuple[Path, list[Path]]:
    """Split ``"topology::traj1[::traj2 …]"`` into the topology and trajectory paths.

    Raises
    ------
    ValueError
        When ``spec`` does not name a topology and at least one trajectory.
    """
    parts = [p for p in str(spec).split("::")]
    if len(parts) < 2 or any(not p.strip() for p in parts):
        raise ValueError(
            f"{spec!r}: expected 'path/to/topology::path/to/trajectory[::another_trajectory …]', "
            "e.g. 'adk.psf::adk_dims.dcd'"
        )
    return Path(parts[0]), [Path(p) for p in parts[1:]]


_ADK_OPTS = ("history", "stride", "split_fractions")
_ADK_PROTOCOL = Protocol(history=P.HISTORY, stride=P.ADK_STRIDE, lr=P.LR_ADK,
                         split="chronological blocks 0.6/0.2/0.2 of the window starts")


@register_dataset("adk-mini", family="adk", cases=("mini",), table="2", offline=True, stride=1,
                  description="AdK DIMS transition paths shipped by MDAnalysisTests (offline)")
@register_dataset("adk", family="adk", cases=("equilibrium",), table="2",
                  description="AdK equilibrium trajectory (MDAnalysisData adk_equilibrium), 4-channel residues (Table 2)")
class AdK(Dataset):
    """Adenylate kinase as 4-channel backbone residues (module data card)."""

    protocol = _ADK_PROTOCOL
    options = _ADK_OPTS

    def files(self, case: str) -> tuple[DataFile, ...]:
        if case == "mini":  # shipped by MDAnalysisTests (adk_mini_paths), or copied to <data_dir>/adk/
            return tuple(DataFile(f"adk/{n}", "", h) for n, h in ADK_MINI_FILES.items())
        return tuple(DataFile(f"{ADK_EQUILIBRIUM_DIR}/{f.filename}", f.url, f.sha256) for f in ADK_EQUILIBRIUM_FILES.values())

    def download(self, case: str, data_dir: Path, force: bool = False) -> list[Path]:
        if case == "mini":
            topology, trajectories = adk_mini_paths(data_dir)  # nothing to fetch; says where they are looked for
            return [topology, *trajectories]
        return list(download_adk_equilibrium(data_dir, force=force).values())

    def load(self, case: str, data_dir: Path, **opts: Any) -> CaseData:
        return load_adk_case(case, data_dir, **opts)


@register_dataset("md-files", family="adk", cases=(),
                  description="TOPOLOGY::TRAJECTORY[::TRAJECTORY...]: any protein MDAnalysis reads, as AdK-style residues")
class ProteinFiles(Dataset):
    """``--dataset TOPOLOGY::TRAJ[::TRAJ]``: any protein MDAnalysis reads, as 4-channel residues."""

    pattern = True
    offline = True
    protocol = _ADK_PROTOCOL
    options = _ADK_OPTS

    @classmethod
    def for_name(cls, name: str) -> Dataset | None:
        if "::" not in name:
            return None
        inst = cls()
        inst.cases = (Path(name.split("::")[0]).stem,)
        inst.spec = name  # type: ignore[attr-defined]
        return inst

    def load(self, case: str, data_dir: Path, **opts: Any) -> CaseData:  # noqa: ARG002
        top, trajs = parse_md_spec(self.spec)  # type: ignore[attr-defined]
        if "split_fractions" in opts:
            opts["fractions"] = opts.pop("split_fractions")
        return load_adk(top, trajs, case=case, **opts)
