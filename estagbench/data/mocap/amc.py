"""Acclaim AMC motion files (CMU motion capture): per-frame root pose and bone angles."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError
from .asf import Skeleton, _angle_factor, _read_text

__all__ = ["Motion", "parse_amc"]


# ---------------------------------------------------------------------------- AMC
@dataclass
class Motion:
    """A parsed AMC file.

    root: ``(F, 6)`` root values in the ASF ``:root`` order (translations in length
    units, angles in radians).  bones: name -> ``(F, ndof)`` angles in radians, in
    the bone's ``dof`` order.  frame_numbers: ``(F,)`` as written in the file.
    """

    path: Path
    root: np.ndarray
    bones: dict[str, np.ndarray]
    frame_numbers: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def num_frames(self) -> int:
        return int(self.root.shape[0])


_INT = re.compile(r"^\d+$")


def parse_amc(amc_path: str | os.PathLike[str], skeleton: Skeleton) -> Motion:
    """Parse an Acclaim AMC motion file against its skeleton.

    Every frame must hold a frame number (consecutive) followed by exactly one line
    per bone that has dofs in the ASF (the root with 6 values, each bone with as many
    values as its ``dof``).  Angles are read in ``:DEGREES`` unless the header says
    ``:RADIANS`` (and, without either, in the ASF's angle unit).

    Raises
    ------
    DataError
        Naming the file, the frame number and the problem: a missing bone line, an
        unknown or repeated bone, a wrong number of values, a non-number, NaN/inf,
        a file that ends inside a frame (truncated) or holds no frame.
    """
    path = Path(amc_path)
    lines = _read_text(path)
    expect = {"root": len(skeleton.root_order), **skeleton.dof_bones}
    dofless = {b.name for b in skeleton.bones if not b.dof}
    afac = _angle_factor(path, skeleton.angle_unit)
    values: dict[str, list[list[str]]] = {n: [] for n in expect}
    frames: list[int] = []
    seen: set[str] = set()

    def close_frame(at_eof: bool = False) -> None:
        if not frames:
            return
        if len(seen) != len(expect):
            missing = [n for n in expect if n not in seen]
            what = "the file ends inside the frame (truncated?); " if at_eof else ""
            raise DataError(f"{path}: frame {frames[-1]}: {what}missing bone line(s) {missing}")

    i = 0
    n_lines = len(lines)
    while i < n_lines:
        line = lines[i]
        i += 1
        tok = line.split()
        if not tok:
            continue
        head = tok[0]
        if not frames and (head.startswith("#") or head.startswith(":")):
            if head.upper() == ":RADIANS":
                afac = 1.0
            elif head.upper() == ":DEGREES":
                afac = np.pi / 180.0
            continue
        if len(tok) == 1 and _INT.match(head):
            close_frame()
            num = int(head)
            if frames and num != frames[-1] + 1:
                raise DataError(f"{path}: frame {num}: frame numbers are not consecutive (previous was {frames[-1]})")
            frames.append(num)
            seen = set()
            continue
        if not frames:
            raise DataError(f"{path}: line {i}: bone line {head!r} before the first frame number")
        if head not in expect:
            if head in dofless and len(tok) == 1:
                continue
            if head in dofless:
                raise DataError(
                    f"{path}: frame {frames[-1]}: bone {head!r} has no dofs in the ASF but the line has "
                    f"{len(tok) - 1} values"
                )
            raise DataError(f"{path}: frame {frames[-1]}: unknown bone {head!r} (not in {skeleton.path.name})")
        if head in seen:
            raise DataError(f"{path}: frame {frames[-1]}: bone {head!r} appears twice")
        if len(tok) - 1 != expect[head]:
            raise DataError(
                f"{path}: frame {frames[-1]}: bone {head!r} has {len(tok) - 1} values, expected {expect[head]}"
            )
        seen.add(head)
        values[head].append(tok[1:])
    if not frames:
        raise DataError(f"{path}: no frames found (empty or truncated AMC file)")
    close_frame(at_eof=True)
    arrays: dict[str, np.ndarray] = {}
    for name, rows in values.items():
        try:
            arr = np.array(rows, dtype=np.float64).reshape(len(frames), expect[name])
        except ValueError:
            for k, row in enumerate(rows):
                try:
                    [float(v) for v in row]
                except ValueError as exc:
                    raise DataError(f"{path}: frame {frames[k]}: bone {name!r}: not a number ({exc})") from exc
            raise
        bad = ~np.isfinite(arr)
        if bad.any():
            k = int(np.argwhere(bad)[0, 0])
            raise DataError(f"{path}: frame {frames[k]}: bone {name!r} has NaN/inf values: {' '.join(rows[k])}")
        arrays[name] = arr
    root = arrays.pop("root").copy()
    rot_cols = [k for k, c in enumerate(skeleton.root_order) if c.startswith("R")]
    root[:, rot_cols] *= afac
    bones = {n: a * afac for n, a in arrays.items()}
    return Motion(path, root, bones, np.asarray(frames, dtype=np.int64))


