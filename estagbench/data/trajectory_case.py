"""A :class:`CaseData` from one trajectory in the project's ``.npz`` format.

Used for ``--dataset path/to/file.npz`` and for the simulated peptide cases.  Splits
follow the MD17 rules (:func:`estagbench.data.splits.md17_split`) with the defaults
of docs/trajectory-format.md, replaced by ``metadata["protocol"]`` in the file, then
by explicit arguments.  Graph: the file's ``edges`` or ``cutoff`` (1-hop) plus 2-hop
edges; fully connected when it has neither.  Edge features ``[f_i, f_j, hop]``.
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
from .splits import md17_split
from .trajectory import Trajectory, read_trajectory

__all__ = ["TRAJECTORY_DEFAULTS", "case_from_trajectory", "load_trajectory_case"]

TRAJECTORY_DEFAULTS: dict[str, Any] = {
    "history": P.HISTORY,
    "stride": P.MD17_STRIDE,
    "split_margin": P.TRAJECTORY_MARGIN,
    "split_fractions": P.TRAJECTORY_FRACTIONS,
    "split_caps": P.MD17_CAPS,
}


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
    """Window one trajectory by the MD17 rules; see the module docstring."""
    where = str(traj.path) if traj.path else f"{dataset}/{case}"
    proto = dict(TRAJECTORY_DEFAULTS)
    file_proto = traj.metadata.get("protocol", {}) if isinstance(traj.metadata, dict) else {}
    if not isinstance(file_proto, dict):
        raise DataError(f"{where}: metadata['protocol'] must be a JSON object, got {type(file_proto).__name__}")
    unknown = set(file_proto) - set(TRAJECTORY_DEFAULTS)
    if unknown:
        raise DataError(f"{where}: metadata['protocol'] has unknown key(s) {sorted(unknown)}; allowed {sorted(TRAJECTORY_DEFAULTS)}")
    proto.update(file_proto)
    for key, val in (("history", history), ("stride", stride), ("split_margin", split_margin),
                     ("split_fractions", split_fractions), ("split_caps", split_caps)):
        if val is not None:
            proto[key] = val
    for key, low in (("history", 1), ("stride", 1), ("split_margin", 0)):  # the checks the flags get
        val = proto[key]
        if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < low:
            raise DataError(f"{where}: protocol {key} must be an integer >= {low}, got {val!r}")
    pos = traj.positions[:-1] if drop_last else traj.positions
    try:
        starts = md17_split(pos.shape[0], int(proto["history"]), int(proto["stride"]), int(proto["split_margin"]),
                            tuple(proto["split_fractions"]), tuple(proto["split_caps"]), seed)
    except ValueError as exc:
        raise DataError(f"{where}: {exc}") from exc

    n = traj.num_nodes
    if traj.edges is not None:
        adj = adjacency_from_pairs(n, traj.edges)
    elif traj.cutoff is not None:
        adj = cutoff_adjacency(pos[0, :, 0], traj.cutoff)
    else:
        adj = ~np.eye(n, dtype=bool)
    edge_index, hop = one_and_two_hop(adj)
    if edge_index.shape[1] == 0:
        raise DataError(f"{where}: the graph has no edges (cutoff {traj.cutoff} too small?)")
    files = [FileRecord(str(traj.path), sha256_file(traj.path), None)] if traj.path else []
    params = {k: (list(v) if isinstance(v, tuple) else v) for k, v in proto.items()}
    params.update({"split_seed": seed, "cutoff": traj.cutoff, "graph": "edges" if traj.edges is not None else
                   ("cutoff" if traj.cutoff is not None else "complete")})
    return CaseData(
        dataset=dataset,
        case=case,
        trajectories=[pos],
        node_features=traj.node_features,
        edge_index=edge_index,
        edge_attr=edge_features_z_hop(traj.node_features[:, 0], edge_index, hop),
        windows={k: np.stack([np.zeros_like(v), v], axis=1) for k, v in starts.items()},
        history=int(proto["history"]),
        stride=int(proto["stride"]),
        files=files,
        one_hop_mask=hop == 1,
        params=params,
    )


def load_trajectory_case(path: str | Path, **kwargs: Any) -> CaseData:
    """``--dataset path/to/file.npz``: read, validate and window a trajectory file."""
    traj = read_trajectory(path)
    return case_from_trajectory(traj, "npz", Path(path).stem, **kwargs)


@register_dataset("npz", family="npz", cases=(), description="PATH.npz: your own trajectory file (docs/trajectory-format.md)")
class TrajectoryFile(Dataset):
    """``--dataset path/to/file.npz``: a trajectory in the project's format, windowed by the MD17 rules."""

    pattern = True
    offline = True
    options = ("history", "stride", "split_margin", "split_fractions", "split_caps")
    protocol = Protocol(lr=P.LR_MD17, split="MD17 rules, margin 0, fractions 0.3/0.15/0.15 (or the file's metadata)")

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
