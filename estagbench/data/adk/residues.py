"""Protein trajectories as 4-channel residue graphs: MDAnalysis reading, backbone table, node
features, graph, windows (:func:`load_adk`; the data card is in :mod:`estagbench.data.adk`)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ... import protocol as P
from ..base import CaseData, FileRecord, sha256_file
from ..errors import DataError
from ..graphs import cutoff_adjacency
from .split import _check_protocol, adk_chronological_split

__all__ = ["CHANNELS", "CA_CHANNEL", "BACKBONE_Z", "DEFAULT_O_ALIASES", "NODE_FEATURES", "backbone_table", "load_adk"]

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


