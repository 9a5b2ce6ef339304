"""Read and write the estagbench trajectory ``.npz`` format (docs/trajectory-format.md).

The format lets a user bring their own trajectories (``--dataset path/to/file.npz``)
and is what ``estagbench simulate`` writes.  Reading validates everything a model
relies on and raises :class:`DataError` naming the file and the problem.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError

__all__ = ["Trajectory", "read_trajectory", "trajectory_from_arrays", "write_trajectory", "load_npz", "atomic_write_bytes"]

KNOWN_KEYS = ("positions", "node_features", "atomic_numbers", "masses", "edges", "cutoff", "time_step_fs", "metadata")


@dataclass
class Trajectory:
    """One trajectory in canonical form.

    positions: ``(frames, nodes, channels, 3)`` float64 (a 3-D file gets channels = 1).
    """

    positions: np.ndarray
    node_features: np.ndarray
    atomic_numbers: np.ndarray | None = None
    masses: np.ndarray | None = None
    edges: np.ndarray | None = None
    cutoff: float | None = None
    time_step_fs: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def num_frames(self) -> int:
        return int(self.positions.shape[0])

    @property
    def num_nodes(self) -> int:
        return int(self.positions.shape[1])

    @property
    def num_channels(self) -> int:
        return int(self.positions.shape[2])


def load_npz(path: str | os.PathLike[str], required: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Load every array of an ``.npz`` eagerly, turning any failure into :class:`DataError`.

    A truncated or corrupt archive, a pickled object array, or a missing required key
    raises with the file path and the problem.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_file():
        with open(path, "rb") as fh:
            head = fh.read(4)
        if head != b"PK\x03\x04":  # every .npz is a zip archive
            what = "an empty file" if not head else f"first bytes {head!r}, not the zip signature of an .npz"
            raise DataError(
                f"{path}: not an .npz archive ({what}; corrupt or truncated file?). "
                "Replace the file (download it again if it came from `estagbench download`)."
            )
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as exc:
        raise DataError(
            f"{path}: not a readable .npz archive (corrupt or truncated file?): {type(exc).__name__}: {exc}. "
            "Replace the file (download it again if it came from `estagbench download`)."
        ) from exc
    missing = [k for k in required if k not in arrays]
    if missing:
        raise DataError(f"{path}: missing key(s) {missing}; the file has {sorted(arrays)}")
    return arrays


def _check_finite(path: Path, name: str, arr: np.ndarray) -> None:
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))
        raise DataError(
            f"{path}: {name} contains {len(bad)} NaN/inf value(s), first at index {tuple(int(i) for i in bad[0])}"
        )


def read_trajectory(path: str | os.PathLike[str]) -> Trajectory:
    """Read and validate a trajectory ``.npz``; see docs/trajectory-format.md."""
    path = Path(path)
    return trajectory_from_arrays(path, load_npz(path, required=("positions",)))


def trajectory_from_arrays(path: Path, arrays: dict[str, Any]) -> Trajectory:
    """Validate the arrays of a trajectory file (named ``path`` in errors; ``positions`` present) and
    build the :class:`Trajectory`."""
    pos = np.asarray(arrays["positions"])
    if np.issubdtype(pos.dtype, np.floating):
        _check_finite(path, "positions", pos)
    if pos.ndim == 3:
        pos = pos[:, :, None, :]
    if pos.ndim != 4 or pos.shape[-1] != 3:
        raise DataError(
            f"{path}: 'positions' must have shape (frames, nodes, 3) or (frames, nodes, channels, 3), "
            f"got {tuple(arrays['positions'].shape)}"
        )
    if not np.issubdtype(pos.dtype, np.floating):
        raise DataError(f"{path}: 'positions' must be floating point, got dtype {pos.dtype}")
    pos = pos.astype(np.float64)
    frames, nodes = pos.shape[:2]
    if frames < 2 or nodes < 1:
        raise DataError(f"{path}: 'positions' holds {frames} frame(s) of {nodes} node(s); need at least 2 frames")

    def per_node(key: str, dtype: Any) -> np.ndarray | None:
        if key not in arrays:
            return None
        arr = np.asarray(arrays[key])
        if arr.shape[0:1] != (nodes,):
            raise DataError(f"{path}: {key!r} must have {nodes} rows (one per node), got shape {arr.shape}")
        arr = arr.astype(dtype)
        if np.issubdtype(arr.dtype, np.floating):
            _check_finite(path, key, arr)
        return arr

    z = per_node("atomic_numbers", np.int64)
    masses = per_node("masses", np.float64)
    feats = per_node("node_features", np.float64)
    if feats is None:
        feats = z.astype(np.float64) if z is not None else np.ones(nodes)
    if feats.ndim == 1:
        feats = feats[:, None]
    if feats.ndim != 2:
        raise DataError(f"{path}: 'node_features' must be (nodes,) or (nodes, F), got {feats.shape}")

    edges = None
    if "edges" in arrays:
        edges = np.asarray(arrays["edges"])
        if edges.ndim != 2 or edges.shape[1] != 2 or not np.issubdtype(edges.dtype, np.integer):
            raise DataError(f"{path}: 'edges' must be an integer array of shape (E, 2), got {edges.dtype} {edges.shape}")
        if edges.size and (edges.min() < 0 or edges.max() >= nodes):
            raise DataError(f"{path}: 'edges' refers to node ids outside [0, {nodes})")
        edges = edges.astype(np.int64)
    cutoff = None
    if "cutoff" in arrays:
        cutoff = float(np.asarray(arrays["cutoff"]))
        if not cutoff > 0:
            raise DataError(f"{path}: 'cutoff' must be a positive distance, got {cutoff}")
    dt = float(np.asarray(arrays["time_step_fs"])) if "time_step_fs" in arrays else None
    meta: dict[str, Any] = {}
    if "metadata" in arrays:
        try:
            meta = json.loads(str(np.asarray(arrays["metadata"])))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: 'metadata' is not valid JSON: {exc}") from exc
        if not isinstance(meta, dict):
            raise DataError(f"{path}: 'metadata' must hold a JSON object, got {type(meta).__name__}")
    return Trajectory(pos, feats, z, masses, edges, cutoff, dt, meta, path)


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike[str], writer: Any) -> Path:
    """Call ``writer(fileobj)`` on a temporary file beside ``path``, then rename it into place.

    An interrupted write leaves no half-written ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes owner-only files; give the usual permissions
        with os.fdopen(fd, "wb") as fh:
            writer(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename is None:  # a failed write (disk full) names its file
            exc.filename = str(path)
        raise
    return path


def write_trajectory(
    path: str | os.PathLike[str],
    positions: np.ndarray,
    *,
    node_features: np.ndarray | None = None,
    atomic_numbers: np.ndarray | None = None,
    masses: np.ndarray | None = None,
    edges: np.ndarray | None = None,
    cutoff: float | None = None,
    time_step_fs: float | None = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write a trajectory ``.npz`` atomically (temporary file, then rename), after checking it as
    :func:`read_trajectory` would: a file this writes can be read back (DataError otherwise, nothing written)."""
    arrays: dict[str, Any] = {"positions": np.asarray(positions, dtype=np.float64)}
    for key, val in (
        ("node_features", node_features),
        ("atomic_numbers", atomic_numbers),
        ("masses", masses),
        ("edges", edges),
        ("cutoff", cutoff),
        ("time_step_fs", time_step_fs),
    ):
        if val is not None:
            arrays[key] = np.asarray(val)
    if metadata is not None:
        arrays["metadata"] = np.array(json.dumps(metadata, sort_keys=True))
    trajectory_from_arrays(Path(path), arrays)
    return atomic_write_bytes(path, lambda fh: np.savez(fh, **arrays))
