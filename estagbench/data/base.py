"""The data contract between dataset modules and the trainer.

A dataset module (md17, adk, mocap, trajectory files, simulated peptides) turns raw
files into a :class:`CaseData`: preprocessed trajectories, the graph, node
features and the split's window starts.  :meth:`CaseData.prepare` cuts the windows
once into dense tensors and returns a :class:`PreparedCase` that every model of a
run shares.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..types import DatasetInfo
from .errors import DataError
from .splits import SPLITS, check_disjoint, leakage, split_hash
from .units import Units

__all__ = ["FileRecord", "CaseData", "SplitData", "PreparedCase", "sha256_file", "make_windows"]


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class FileRecord:
    """A data file used by a case: path, SHA-256, and whether it is the official file.

    ``official`` is None when no official checksum is known for the file.
    """

    path: str
    sha256: str
    official: bool | None = None
    expected_sha256: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "official": self.official, "expected_sha256": self.expected_sha256}


@dataclass
class SplitData:
    """Dense windows of one split: ``x (S, T, N, C, 3)``, ``y (S, N, C, 3)``."""

    x: Tensor
    y: Tensor

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass
class CaseData:
    """One dataset case before windowing.

    trajectories: list of ``(frames, N, C, 3)`` float64 arrays, already preprocessed
        (last frame dropped, centred or normalised as the protocol says).
    windows: split name -> ``(S, 2)`` int64 array of ``(trajectory index, start frame)``.
    """

    dataset: str
    case: str
    trajectories: list[np.ndarray]
    node_features: np.ndarray
    edge_index: np.ndarray
    edge_attr: np.ndarray
    windows: dict[str, np.ndarray]
    history: int
    stride: int
    files: list[FileRecord] = field(default_factory=list)
    ca_channel: int = 0
    one_hop_mask: np.ndarray | None = None
    params: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: the MSE's unit and display scale (set by the loader or by ``load_case`` from the catalog)
    units: Units | None = None
    #: optional names of the trajectories (a multi-trajectory file's ``trajectory_names``)
    trajectory_names: list[str] | None = None
    #: the vertical axis (``x``, ``y`` or ``z``), for figures
    up_axis: str = "z"

    def __post_init__(self) -> None:
        shapes = {t.shape[1:] for t in self.trajectories}
        if len(shapes) != 1:
            raise ValueError(f"{self.dataset}/{self.case}: trajectories disagree on (N, C, 3): {shapes}")
        (shape,) = shapes
        if len(shape) != 3 or shape[-1] != 3:
            raise ValueError(f"{self.dataset}/{self.case}: trajectories must be (frames, N, C, 3), got {shape}")
        for name in SPLITS:
            if name not in self.windows:
                raise ValueError(f"{self.dataset}/{self.case}: no {name!r} windows")
            if len(self.windows[name]) == 0:
                raise ValueError(
                    f"{self.dataset}/{self.case}: the {name!r} split is empty; the trajectory is too short for "
                    f"T={self.history}, Δ={self.stride} with these split settings"
                )
        check_disjoint(self.windows)

    @property
    def num_nodes(self) -> int:
        return int(self.trajectories[0].shape[1])

    @property
    def num_channels(self) -> int:
        return int(self.trajectories[0].shape[2])

    def split_sizes(self) -> dict[str, int]:
        return {k: int(len(v)) for k, v in self.windows.items()}

    def split_hash(self) -> str:
        return split_hash(self.windows)

    def leakage(self) -> dict[str, Any]:
        """Overlap of the test windows with the training windows (:func:`estagbench.data.splits.leakage`)."""
        return leakage(self.windows, self.history, self.stride)

    def steps_per_epoch(self, batch_size: int) -> int:
        """Optimiser steps in one epoch over the training windows (the last batch may be partial)."""
        return -(-len(self.windows["train"]) // batch_size)

    def info(self) -> DatasetInfo:
        return DatasetInfo(
            dataset=self.dataset,
            case=self.case,
            num_nodes=self.num_nodes,
            num_channels=self.num_channels,
            node_features=torch.as_tensor(self.node_features, dtype=torch.float32),
            edge_index=torch.as_tensor(self.edge_index, dtype=torch.long),
            edge_attr=torch.as_tensor(self.edge_attr, dtype=torch.float32),
            history=self.history,
            stride=self.stride,
            ca_channel=self.ca_channel,
            one_hop_mask=None if self.one_hop_mask is None else torch.as_tensor(self.one_hop_mask, dtype=torch.bool),
            extra={"params": dict(self.params)},
        )

    def prepare(self, dtype: torch.dtype = torch.float32) -> PreparedCase:
        """Cut every split's windows into dense tensors (done once per case)."""
        splits = {}
        for name in SPLITS:
            x, y = make_windows(self.trajectories, self.windows[name], self.history, self.stride)
            split = SplitData(torch.as_tensor(x, dtype=dtype), torch.as_tensor(y, dtype=dtype))
            if not (torch.isfinite(split.x).all() and torch.isfinite(split.y).all()):  # finite in float64 only
                where = ", ".join(f.path for f in self.files) or f"{self.dataset}/{self.case}"
                raise DataError(f"{where}: coordinates overflow {dtype} (largest magnitude "
                                f"{max(float(np.abs(t).max()) for t in self.trajectories):.3g}); wrong units?")
            splits[name] = split
        return PreparedCase(self, self.info(), splits)

    def windows_json(self) -> str:
        return json.dumps(
            {
                "dataset": self.dataset,
                "case": self.case,
                "history": self.history,
                "stride": self.stride,
                "params": self.params,
                "split_hash": self.split_hash(),
                "leakage": self.leakage(),
                "units": None if self.units is None else self.units.as_dict(),
                "trajectory_names": self.trajectory_names,
                "windows": {k: np.asarray(v).tolist() for k, v in self.windows.items()},
            }
        )


@dataclass
class PreparedCase:
    """A case ready for training: the :class:`DatasetInfo` and dense split tensors."""

    data: CaseData
    info: DatasetInfo
    splits: dict[str, SplitData]

    @property
    def name(self) -> str:
        return f"{self.data.dataset}/{self.data.case}"


def make_windows(
    trajectories: list[np.ndarray], windows: np.ndarray, history: int, stride: int
) -> tuple[np.ndarray, np.ndarray]:
    """Gather ``x (S, T, N, C, 3)`` and ``y (S, N, C, 3)`` for ``windows (S, 2)``.

    Frames ``s, s+Δ, …, s+(T−1)Δ`` form the history and ``s+TΔ`` the target.
    """
    windows = np.asarray(windows, dtype=np.int64).reshape(-1, 2)
    offsets = np.arange(history + 1) * stride
    xs = []
    for traj_id in np.unique(windows[:, 0]):
        rows = windows[:, 0] == traj_id
        traj = trajectories[int(traj_id)]
        frames = windows[rows, 1][:, None] + offsets[None, :]
        if frames.min() < 0 or frames.max() >= traj.shape[0]:
            raise ValueError(
                f"window frames out of range for trajectory {traj_id} with {traj.shape[0]} frames "
                f"(T={history}, Δ={stride})"
            )
        seq = traj[frames]
        xs.append((np.flatnonzero(rows), seq[:, :history], seq[:, history]))
    order = np.concatenate([r for r, _, _ in xs])
    x = np.concatenate([a for _, a, _ in xs])
    y = np.concatenate([b for _, _, b in xs])
    inv = np.empty_like(order)
    inv[order] = np.arange(len(order))
    return x[inv], y[inv]
