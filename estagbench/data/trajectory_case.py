"""A :class:`CaseData` from a file in the project's trajectory ``.npz`` format.

Used for ``--dataset path/to/file.npz`` and for the simulated peptide cases.  The
protocol is :data:`TRAJECTORY_DEFAULTS`, replaced by ``metadata["protocol"]`` (version 1),
then by the file's ``protocol`` block (version 2), then by explicit arguments.  Its
``split`` chooses the rule (docs/trajectory-format.md): ``windows`` (the MD17 draw over
every trajectory's window starts; one trajectory gives exactly the version-1 split),
``trajectories`` (whole trajectories per split, named or by fraction, as the Motion
protocol) or ``chronological`` (time-ordered blocks of each trajectory).  A window
never crosses a trajectory boundary.  Graph: the file's ``edges`` or ``cutoff`` (1-hop)
plus 2-hop edges; fully connected when it has neither.  Edge features ``[f_i, f_j, hop]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .. import protocol as P
from .base import CaseData, FileRecord, sha256_file
from .errors import DataError
from .graphs import adjacency_from_pairs, cutoff_adjacency, edge_features_z_hop, one_and_two_hop
from .registry import Dataset, Protocol, register_dataset
from .splits import SPLITS, assign_trajectories, multi_chronological_split, multi_window_split, trajectory_split
from .trajectory import Trajectory, read_trajectory
from .units import Units

__all__ = ["TRAJECTORY_DEFAULTS", "case_from_trajectory", "load_trajectory_case"]

TRAJECTORY_DEFAULTS: dict[str, Any] = {
    "history": P.HISTORY,
    "stride": P.MD17_STRIDE,
    "split_margin": P.TRAJECTORY_MARGIN,
    "split_fractions": P.TRAJECTORY_FRACTIONS,
    "split_caps": P.MD17_CAPS,
}

#: The split rules a file's protocol may choose, and the fractions each uses unless the protocol gives some.
SPLIT_RULES: dict[str, tuple[float, float, float]] = {
    "windows": (0.3, 0.15, 0.15),
    "trajectories": (0.6, 0.2, 0.2),
    "chronological": (0.6, 0.2, 0.2),
}
#: Protocol keys beyond :data:`TRAJECTORY_DEFAULTS` (version 2): the rule and, for ``trajectories``,
#: the trajectories of each split (names or 0-based indices).
V2_PROTOCOL_KEYS = ("split", "train", "val", "test")


def case_from_trajectory(
    traj: Trajectory,
    dataset: str,
    case: str,
    *,
    history: int | None = None,
    stride: int | None = None,
    split_margin: int | None = None,
    split_fractions: tuple[float, float, float] | None = None,
    split_caps: tuple[int, int, int] | None = None,
    seed: int = P.SPLIT_SEED,
    drop_last: bool = False,
) -> CaseData:
    """Window a file's trajectories by its protocol; see the module docstring."""
    where = str(traj.path) if traj.path else f"{dataset}/{case}"
    proto = dict(TRAJECTORY_DEFAULTS)
    given: set[str] = set()
    for origin, block in (("metadata['protocol']", traj.metadata.get("protocol", {}) if isinstance(traj.metadata, dict) else {}),
                          ("protocol", traj.protocol or {})):
        if not isinstance(block, dict):
            raise DataError(f"{where}: {origin} must be a JSON object, got {type(block).__name__}")
        allowed = set(TRAJECTORY_DEFAULTS) | (set(V2_PROTOCOL_KEYS) if origin == "protocol" else set())
        unknown = set(block) - allowed
        if unknown:
            raise DataError(f"{where}: {origin} has unknown key(s) {sorted(unknown)}; allowed {sorted(allowed)}")
        proto.update(block)
        given.update(block)
    for key, val in (("history", history), ("stride", stride), ("split_margin", split_margin),
                     ("split_fractions", split_fractions), ("split_caps", split_caps)):
        if val is not None:
            proto[key] = val
            given.add(key)
    for key, low in (("history", 1), ("stride", 1), ("split_margin", 0)):  # the checks the flags get
        val = proto[key]
        if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < low:
            raise DataError(f"{where}: protocol {key} must be an integer >= {low}, got {val!r}")
    # a file of 3+ trajectories is split by trajectory unless its protocol says otherwise (random windows leak)
    rule = proto.get("split", "trajectories" if traj.num_trajectories >= 3 else "windows")
    if rule not in SPLIT_RULES:
        raise DataError(f"{where}: protocol split must be one of {', '.join(SPLIT_RULES)}, got {rule!r}")
    if "split_fractions" not in given:
        proto["split_fractions"] = SPLIT_RULES[rule]
    trajs = [t[:-1] for t in traj.trajectories()] if drop_last else traj.trajectories()
    lengths = [t.shape[0] for t in trajs]
    names = traj.names or [str(k) for k in range(len(trajs))]
    T, D = int(proto["history"]), int(proto["stride"])
    fractions, caps = tuple(proto["split_fractions"]), tuple(proto["split_caps"])
    try:
        if rule == "windows":
            windows = multi_window_split(lengths, T, D, int(proto["split_margin"]), fractions, caps, seed)
        elif rule == "chronological":
            windows = multi_chronological_split(lengths, T, D, fractions, caps)
        else:
            assignment = _assignment(where, proto, names, fractions, seed)
            proto.update({k: [names[i] for i in v] for k, v in assignment.items()})
            windows = trajectory_split(lengths, assignment, T, D, caps, seed)
    except ValueError as exc:
        raise DataError(f"{where}: {exc}") from exc
    for name in SPLITS:
        if len(windows[name]) == 0:
            raise DataError(f"{where}: the {name!r} split has no window of T·Δ + 1 = {T * D + 1} frames under the "
                            f"{rule!r} rule (trajectory lengths {min(lengths)}–{max(lengths)}); lower --history or "
                            "--stride, or change the protocol's fractions or trajectories")

    n = traj.num_nodes
    if traj.edges is not None:
        adj = adjacency_from_pairs(n, traj.edges)
    elif traj.cutoff is not None:
        adj = cutoff_adjacency(trajs[0][0, :, 0], traj.cutoff)
    else:
        adj = ~np.eye(n, dtype=bool)
    edge_index, hop = one_and_two_hop(adj)
    if edge_index.shape[1] == 0:
        raise DataError(f"{where}: the graph has no edges (cutoff {traj.cutoff} too small?)")
    files = [FileRecord(str(traj.path), sha256_file(traj.path), None)] if traj.path else []
    params = {k: (list(v) if isinstance(v, tuple) else v) for k, v in proto.items()}
    params.update({"split_seed": seed, "cutoff": traj.cutoff, "graph": "edges" if traj.edges is not None else
                   ("cutoff" if traj.cutoff is not None else "complete")})
    if traj.num_trajectories > 1:  # version-1 files keep their params (and so their config hashes) unchanged
        params["trajectory_lengths"] = lengths
        params["split"] = rule
    length = traj.length_unit or ("Å" if traj.atomic_numbers is not None else "unit")
    units = Units(length, traj.display_exponent or 0, traj.time_step, traj.time_unit)
    return CaseData(
        dataset=dataset,
        case=case,
        trajectories=trajs,
        node_features=traj.node_features,
        edge_index=edge_index,
        edge_attr=edge_features_z_hop(traj.node_features[:, 0], edge_index, hop),
        windows=windows,
        history=T,
        stride=D,
        files=files,
        one_hop_mask=hop == 1,
        params=params,
        units=units,
        trajectory_names=traj.names,
        up_axis=traj.up_axis,
    )


def _assignment(where: str, proto: dict[str, Any], names: list[str], fractions: tuple[float, ...],
                seed: int) -> dict[str, list[int]]:
    """Trajectory indices per split: the protocol's ``train``/``val``/``test`` lists (names or indices;
    trajectories left out of every list are unused), else a seeded assignment by fraction."""
    listed = [k for k in SPLITS if k in proto]
    if not listed:
        return assign_trajectories(len(names), fractions, seed)
    if len(listed) != 3:
        raise DataError(f"{where}: protocol names trajectories for {listed} only; give train, val and test")
    out: dict[str, list[int]] = {}
    seen: dict[int, str] = {}
    for split in SPLITS:
        entries = proto[split]
        if not isinstance(entries, list) or not entries:
            raise DataError(f"{where}: protocol {split!r} must be a non-empty list of trajectory names or indices")
        idx = []
        for e in entries:
            if isinstance(e, str) and e in names:
                i = names.index(e)
            elif isinstance(e, int) and not isinstance(e, bool) and 0 <= e < len(names):
                i = e
            else:
                raise DataError(f"{where}: protocol {split!r} names trajectory {e!r}, which the file does not have; "
                                f"its trajectories: {', '.join(names)}")
            if i in seen:
                raise DataError(f"{where}: trajectory {names[i]!r} is in both {seen[i]!r} and {split!r}")
            seen[i] = split
            idx.append(i)
        out[split] = idx
    return out


def load_trajectory_case(path: str | Path, **kwargs: Any) -> CaseData:
    """``--dataset path/to/file.npz``: read, validate and window a trajectory file (version 1 or 2)."""
    traj = read_trajectory(path)
    return case_from_trajectory(traj, "npz", Path(path).stem, **kwargs)


@register_dataset("npz", family="npz", cases=(), description="PATH.npz: your own trajectory file (docs/trajectory-format.md)")
class TrajectoryFile(Dataset):
    """``--dataset path/to/file.npz``: a trajectory in the project's format, windowed by the MD17 rules."""

    pattern = True
    offline = True
    options = ("history", "stride", "split_margin", "split_fractions", "split_caps")
    protocol = Protocol(lr=P.LR_MD17, split="the file's protocol block (windows, trajectories or chronological); "
                        "default: MD17 window rules, margin 0, fractions 0.3/0.15/0.15, or by trajectory for 3+ trajectories")

    @classmethod
    def for_name(cls, name: str) -> Dataset | None:
        if not (name.endswith(".npz") or Path(name).is_file()) or "::" in name:
            return None
        inst = cls()
        inst.cases = (Path(name).stem,)
        inst.path = name  # type: ignore[attr-defined]
        return inst

    def load(self, case: str, data_dir: Path, **opts: Any) -> CaseData:  # noqa: ARG002 - case is the file stem
        return load_trajectory_case(self.path, **opts)  # type: ignore[attr-defined]
