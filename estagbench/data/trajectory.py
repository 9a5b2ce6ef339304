"""Read and write the estagbench trajectory ``.npz`` format (docs/trajectory-format.md).

The format lets a user bring their own trajectories (``--dataset path/to/file.npz``)
and is what ``estagbench simulate`` and ``estagbench convert`` write.  Version 2 adds
several trajectories per file (``offsets``), their names, units, ``up_axis`` and a
``protocol`` block; version 1 files read as before.  Reading validates everything a
model relies on and raises :class:`DataError` naming the file and the problem.
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

__all__ = ["Trajectory", "read_trajectory", "trajectory_from_arrays", "write_trajectory", "load_npz", "atomic_write_bytes",
           "FORMAT_VERSION"]

KNOWN_KEYS = ("positions", "node_features", "atomic_numbers", "masses", "edges", "cutoff", "time_step_fs", "metadata",
              "format_version", "offsets", "trajectory_names", "length_unit", "time_step", "time_unit", "up_axis",
              "protocol", "display_exponent")
#: The newest format version this module reads and writes.
FORMAT_VERSION = 2


@dataclass
class Trajectory:
    """The trajectories of one file in canonical form.

    positions: ``(frames, nodes, channels, 3)`` float64 (a 3-D file gets channels = 1); with
    several trajectories, their frames one after another, trajectory ``k`` being frames
    ``offsets[k]:offsets[k + 1]``.
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
    offsets: np.ndarray | None = None
    names: list[str] | None = None
    length_unit: str | None = None
    time_step: float | None = None
    time_unit: str | None = None
    up_axis: str = "z"
    protocol: dict[str, Any] | None = None
    format_version: int = 1
    display_exponent: int | None = None

    @property
    def bounds(self) -> np.ndarray:
        """``(K + 1,)`` frame offsets of the trajectories (``[0, frames]`` for one)."""
        return self.offsets if self.offsets is not None else np.array([0, self.num_frames], dtype=np.int64)

    @property
    def num_trajectories(self) -> int:
        return len(self.bounds) - 1

    def trajectories(self) -> list[np.ndarray]:
        """Each trajectory's ``(frames_k, nodes, channels, 3)`` positions, in file order."""
        b = self.bounds
        return [self.positions[b[k]:b[k + 1]] for k in range(len(b) - 1)]

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
        raise DataError(f"{path}: 'node_features' must be (nodes,) or (nodes, F), got {feats.shape} "
                        "(per-frame node features are not supported: give static ones)")

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
    meta = _json_object(path, arrays, "metadata") or {}
    v2 = _read_v2(path, arrays, frames)
    if dt is not None and v2["time_step"] is None:
        v2["time_step"], v2["time_unit"] = dt, "fs"
    return Trajectory(pos, feats, z, masses, edges, cutoff, dt, meta, path, **v2)


def _json_object(path: Path, arrays: dict[str, Any], key: str) -> dict[str, Any] | None:
    if key not in arrays:
        return None
    try:
        obj = json.loads(str(np.asarray(arrays[key])))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: {key!r} is not valid JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise DataError(f"{path}: {key!r} must hold a JSON object, got {type(obj).__name__}")
    return obj


def _text(path: Path, arrays: dict[str, Any], key: str, allowed: tuple[str, ...] = ()) -> str | None:
    if key not in arrays:
        return None
    arr = np.asarray(arrays[key])
    if arr.ndim != 0 or arr.dtype.kind != "U" or not str(arr).strip():
        raise DataError(f"{path}: {key!r} must be a non-empty 0-d string, got {arr.dtype} {arr.shape}")
    val = str(arr).strip()
    if allowed and val not in allowed:
        raise DataError(f"{path}: {key!r} must be one of {', '.join(allowed)}, got {val!r}")
    return val


def _read_v2(path: Path, arrays: dict[str, Any], frames: int) -> dict[str, Any]:
    """The version-2 keys (docs/trajectory-format.md), validated."""
    version = 1
    if "format_version" in arrays:
        version = int(np.asarray(arrays["format_version"]))
        if version not in (1, FORMAT_VERSION):
            raise DataError(f"{path}: format_version {version} is not readable by this estagbench (reads 1 and "
                            f"{FORMAT_VERSION}); upgrade estagbench")
    offsets = None
    if "offsets" in arrays:
        offsets = np.asarray(arrays["offsets"])
        if offsets.ndim != 1 or not np.issubdtype(offsets.dtype, np.integer) or len(offsets) < 2:
            raise DataError(f"{path}: 'offsets' must be a 1-D integer array [0, …, frames] of K + 1 entries, "
                            f"got {offsets.dtype} {offsets.shape}")
        offsets = offsets.astype(np.int64)
        if offsets[0] != 0 or offsets[-1] != frames:
            raise DataError(f"{path}: 'offsets' must start at 0 and end at the {frames} frames of 'positions', "
                            f"got {offsets[0]} … {offsets[-1]}")
        short = np.flatnonzero(np.diff(offsets) < 2)
        if len(short):
            raise DataError(f"{path}: trajectory {int(short[0])} spans frames {offsets[short[0]]}:{offsets[short[0] + 1]}; "
                            "every trajectory needs at least 2 frames ('offsets' must increase by >= 2)")
    count = 1 if offsets is None else len(offsets) - 1
    names = None
    if "trajectory_names" in arrays:
        arr = np.asarray(arrays["trajectory_names"])
        if arr.ndim != 1 or arr.dtype.kind != "U" or len(arr) != count:
            raise DataError(f"{path}: 'trajectory_names' must be {count} string(s), one per trajectory, "
                            f"got {arr.dtype} {arr.shape}")
        names = [str(n) for n in arr]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup or any(not n.strip() for n in names):
            raise DataError(f"{path}: 'trajectory_names' must be unique and non-empty; repeated: {dup}")
    step = None
    if "time_step" in arrays:
        step = float(np.asarray(arrays["time_step"]))
        if not step > 0 or not np.isfinite(step):
            raise DataError(f"{path}: 'time_step' must be a positive number, got {step}")
    unit = _text(path, arrays, "time_unit")
    if step is not None and unit is None:
        raise DataError(f"{path}: 'time_step' needs 'time_unit' (e.g. 'fs', 'ps', 's')")
    exponent = None
    if "display_exponent" in arrays:
        arr = np.asarray(arrays["display_exponent"])
        if arr.ndim != 0 or not np.issubdtype(arr.dtype, np.integer):
            raise DataError(f"{path}: 'display_exponent' must be a 0-d integer (3 prints MSE ×10⁻³), got {arr.dtype} {arr.shape}")
        exponent = int(arr)
    return {
        "display_exponent": exponent,
        "offsets": offsets,
        "names": names,
        "length_unit": _text(path, arrays, "length_unit"),
        "time_step": step,
        "time_unit": unit,
        "up_axis": _text(path, arrays, "up_axis", ("x", "y", "z")) or "z",
        "protocol": _json_object(path, arrays, "protocol"),
        "format_version": FORMAT_VERSION if any(k in arrays for k in KNOWN_KEYS[KNOWN_KEYS.index("offsets"):]) else version,
    }


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
    positions: np.ndarray | list[np.ndarray],
    *,
    node_features: np.ndarray | None = None,
    atomic_numbers: np.ndarray | None = None,
    masses: np.ndarray | None = None,
    edges: np.ndarray | None = None,
    cutoff: float | None = None,
    time_step_fs: float | None = None,
    metadata: dict[str, Any] | None = None,
    offsets: np.ndarray | list[int] | None = None,
    trajectory_names: list[str] | None = None,
    length_unit: str | None = None,
    time_step: float | None = None,
    time_unit: str | None = None,
    up_axis: str | None = None,
    protocol: dict[str, Any] | None = None,
    display_exponent: int | None = None,
) -> Path:
    """Write a trajectory ``.npz`` atomically (temporary file, then rename), after checking it as
    :func:`read_trajectory` would: a file this writes can be read back (DataError otherwise, nothing written).

    ``positions`` may be a list of ``(frames_k, nodes, [channels,] 3)`` arrays (several trajectories):
    they are stored one after another with their ``offsets`` (format version 2).  Any version-2 key
    (``offsets``, ``trajectory_names``, ``length_unit``, ``time_step``/``time_unit``, ``up_axis``,
    ``protocol``) makes a version-2 file; without them the file is exactly version 1.
    """
    if isinstance(positions, (list, tuple)):
        if offsets is not None:
            raise ValueError("give either a list of trajectories or one array with offsets, not both")
        parts = [np.asarray(p, dtype=np.float64) for p in positions]
        offsets = np.cumsum([0] + [len(p) for p in parts]).astype(np.int64)
        positions = np.concatenate(parts) if parts else np.zeros((0, 0, 3))
    arrays: dict[str, Any] = {"positions": np.asarray(positions, dtype=np.float64)}
    for key, val in (
        ("node_features", node_features),
        ("atomic_numbers", atomic_numbers),
        ("masses", masses),
        ("edges", edges),
        ("cutoff", cutoff),
        ("time_step_fs", time_step_fs),
        ("offsets", None if offsets is None else np.asarray(offsets, dtype=np.int64)),
        ("trajectory_names", None if trajectory_names is None else np.array([str(n) for n in trajectory_names])),
        ("length_unit", length_unit),
        ("time_step", time_step),
        ("time_unit", time_unit),
        ("up_axis", up_axis),
        ("display_exponent", display_exponent),
    ):
        if val is not None:
            arrays[key] = np.asarray(val)
    if metadata is not None:
        arrays["metadata"] = np.array(json.dumps(metadata, sort_keys=True))
    if protocol is not None:
        arrays["protocol"] = np.array(json.dumps(protocol, sort_keys=True))
    if any(k in arrays for k in KNOWN_KEYS[KNOWN_KEYS.index("offsets"):]):
        arrays["format_version"] = np.asarray(FORMAT_VERSION)
    trajectory_from_arrays(Path(path), arrays)
    return atomic_write_bytes(path, lambda fh: np.savez(fh, **arrays))
