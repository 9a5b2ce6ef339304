"""Acclaim ASF skeleton files (CMU motion capture): bones, degrees of freedom, the skeleton graph."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, DataNotFoundError

__all__ = ["Bone", "Skeleton", "parse_asf", "skeleton_edges", "ASF_UNIT_METRES"]

#: Metres per ASF length unit for CMU files (``:units length 0.45``, i.e. 1/0.45 inch).
ASF_UNIT_METRES = 2.54 / 100.0 / 0.45

_AXES = {"x": 0, "y": 1, "z": 2}


# ---------------------------------------------------------------------------- ASF
@dataclass(frozen=True)
class Bone:
    """One ASF bone; its end point is a joint.

    direction: ``(3,)`` unit vector in the global frame of the rest pose.
    axis: ``(3,)`` local-frame Euler angles in radians, composed in ``axis_order``.
    dof: the AMC channels, e.g. ``("rx", "ry", "rz")`` (may be empty).
    parent: joint index of the parent (0 = root).
    """

    name: str
    direction: np.ndarray
    length: float
    axis: np.ndarray
    axis_order: str
    dof: tuple[str, ...]
    parent: int


@dataclass(frozen=True)
class Skeleton:
    """A parsed ASF file.

    Joints are ``("root", *bones in :bonedata order)``; ``parents[j]`` is the joint
    index of joint j's parent (−1 for the root).  ``fk_order`` lists the bone
    indices (0-based into ``bones``) so that parents come before children.
    """

    path: Path
    length_unit: float
    angle_unit: str
    root_order: tuple[str, ...]
    root_axis_order: str
    root_position: np.ndarray
    root_orientation: np.ndarray
    bones: tuple[Bone, ...]
    fk_order: tuple[int, ...]

    @property
    def joint_names(self) -> tuple[str, ...]:
        return ("root",) + tuple(b.name for b in self.bones)

    @property
    def num_joints(self) -> int:
        return 1 + len(self.bones)

    @property
    def parents(self) -> np.ndarray:
        return np.array([-1] + [b.parent for b in self.bones], dtype=np.int64)

    @property
    def dof_bones(self) -> dict[str, int]:
        """Bone name -> number of AMC values (bones with dofs only)."""
        return {b.name: len(b.dof) for b in self.bones if b.dof}


def _floats(path: Path, lineno: int, tokens: Sequence[str], n: int, what: str) -> np.ndarray:
    if len(tokens) < n:
        raise DataError(f"{path}: line {lineno}: {what} needs {n} numbers, got {len(tokens)}: {' '.join(tokens)!r}")
    try:
        vals = np.array([float(t) for t in tokens[:n]], dtype=np.float64)
    except ValueError as exc:
        raise DataError(f"{path}: line {lineno}: {what}: not a number ({exc})") from exc
    if not np.all(np.isfinite(vals)):
        raise DataError(f"{path}: line {lineno}: {what} has NaN/inf values: {' '.join(tokens[:n])}")
    return vals


def _read_text(path: Path) -> list[str]:
    if not path.exists():
        raise DataNotFoundError(f"{path}: file not found")
    try:
        text = path.read_bytes().decode("ascii")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a text ASF/AMC file (byte {exc.start} is not ASCII); corrupt download?") from exc
    return text.splitlines()


def _angle_factor(path: Path, unit: str) -> float:
    unit = unit.lower()
    if unit.startswith("deg"):
        return np.pi / 180.0
    if unit.startswith("rad"):
        return 1.0
    raise DataError(f"{path}: unknown angle unit {unit!r}; expected 'deg' or 'rad'")


def _check_order(path: Path, lineno: int, order: str) -> str:
    order = order.upper()
    if sorted(order) != ["X", "Y", "Z"]:
        raise DataError(f"{path}: line {lineno}: rotation order must be a permutation of XYZ, got {order!r}")
    return order


def parse_asf(asf_path: str | os.PathLike[str]) -> Skeleton:
    """Parse an Acclaim ASF skeleton file.

    Parameters
    ----------
    asf_path : path of the ``.asf`` file (LF or CRLF line endings).

    Returns
    -------
    Skeleton
        Bones in ``:bonedata`` order with unit directions and axis angles in radians.

    Raises
    ------
    DataError
        A missing section or field, a malformed number, an unknown dof, or a
        hierarchy that does not reach every bone exactly once from the root.
    """
    path = Path(asf_path)
    lines = _read_text(path)
    section = ""
    length_unit, angle_unit = 1.0, "deg"
    root: dict[str, Any] = {
        "order": ("TX", "TY", "TZ", "RX", "RY", "RZ"),
        "axis": "XYZ",
        "position": np.zeros(3),
        "orientation": np.zeros(3),
    }
    raw_bones: list[dict[str, Any]] = []
    cur: dict[str, Any] | None = None
    children: dict[str, list[str]] = {}
    in_limits = False
    for lineno, line in enumerate(lines, 1):
        tok = line.split()
        if not tok or tok[0].startswith("#"):
            continue
        key = tok[0].lower()
        if key.startswith(":"):
            section = key
            in_limits = False
            continue
        if section == ":units":
            if key == "length":
                length_unit = float(_floats(path, lineno, tok[1:], 1, "units length")[0])
            elif key == "angle" and len(tok) > 1:
                angle_unit = tok[1]
        elif section == ":root":
            if key == "order":
                root["order"] = tuple(t.upper() for t in tok[1:])
            elif key == "axis":
                root["axis"] = _check_order(path, lineno, tok[1] if len(tok) > 1 else "")
            elif key == "position":
                root["position"] = _floats(path, lineno, tok[1:], 3, "root position")
            elif key == "orientation":
                root["orientation"] = _floats(path, lineno, tok[1:], 3, "root orientation")
        elif section == ":bonedata":
            if key == "begin":
                cur = {"line": lineno, "dof": ()}
                in_limits = False
            elif key == "end":
                if cur is None:
                    raise DataError(f"{path}: line {lineno}: 'end' without 'begin' in :bonedata")
                raw_bones.append(cur)
                cur = None
                in_limits = False
            elif cur is None:
                raise DataError(f"{path}: line {lineno}: {key!r} outside a begin/end bone block")
            elif key == "name":
                cur["name"] = tok[1] if len(tok) > 1 else ""
                in_limits = False
            elif key == "direction":
                cur["direction"] = _floats(path, lineno, tok[1:], 3, "bone direction")
                in_limits = False
            elif key == "length":
                cur["length"] = float(_floats(path, lineno, tok[1:], 1, "bone length")[0])
                in_limits = False
            elif key == "axis":
                cur["axis"] = _floats(path, lineno, tok[1:], 3, "bone axis")
                cur["axis_order"] = _check_order(path, lineno, tok[4] if len(tok) > 4 else "XYZ")
                in_limits = False
            elif key == "dof":
                dof = tuple(t.lower() for t in tok[1:])
                bad = [d for d in dof if d not in ("rx", "ry", "rz")]
                if bad:
                    raise DataError(f"{path}: line {lineno}: unsupported bone dof {bad} (only rx, ry, rz)")
                cur["dof"] = dof
                in_limits = False
            elif key.startswith("limits") or (in_limits and key.startswith("(")):
                in_limits = True
            elif key in ("id", "bodymass", "cofmass"):
                in_limits = False
        elif section == ":hierarchy":
            if key in ("begin", "end"):
                continue
            children.setdefault(tok[0], []).extend(tok[1:])
    if cur is not None:
        raise DataError(f"{path}: bone block starting at line {cur['line']} has no 'end' (truncated file?)")
    if not raw_bones:
        raise DataError(f"{path}: no :bonedata bones found; not an ASF file?")
    names: list[str] = []
    for b in raw_bones:
        missing = [k for k in ("name", "direction", "length", "axis") if k not in b]
        if missing or not b.get("name"):
            raise DataError(f"{path}: bone block at line {b['line']} lacks {missing or ['name']}")
        names.append(b["name"])
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise DataError(f"{path}: duplicate bone name(s) {dup}")
    index = {"root": 0, **{n: i + 1 for i, n in enumerate(names)}}
    parent_of: dict[str, str] = {}
    for par, kids in children.items():
        if par not in index:
            raise DataError(f"{path}: :hierarchy names unknown parent {par!r}")
        for kid in kids:
            if kid not in index or kid == "root":
                raise DataError(f"{path}: :hierarchy names unknown bone {kid!r} (child of {par!r})")
            if kid in parent_of:
                raise DataError(f"{path}: bone {kid!r} has two parents in :hierarchy ({parent_of[kid]!r}, {par!r})")
            parent_of[kid] = par
    orphans = [n for n in names if n not in parent_of]
    if orphans:
        raise DataError(f"{path}: bone(s) {orphans} are missing from :hierarchy")
    order: list[int] = []
    stack = ["root"]
    while stack:
        node = stack.pop()
        for kid in reversed(children.get(node, [])):
            order.append(index[kid] - 1)
            stack.append(kid)
    if len(order) != len(names):
        raise DataError(f"{path}: :hierarchy has a cycle or bones unreachable from the root")
    afac = _angle_factor(path, angle_unit)
    bones = []
    for b in raw_bones:
        d = b["direction"]
        norm = float(np.linalg.norm(d))
        if not norm > 0:
            raise DataError(f"{path}: bone {b['name']!r} has a zero direction vector")
        bones.append(
            Bone(
                b["name"],
                d / norm,
                float(b["length"]),
                b["axis"] * afac,
                b.get("axis_order", "XYZ"),
                tuple(b["dof"]),
                index[parent_of[b["name"]]],
            )
        )
    rot = [c for c in root["order"] if c.startswith("R")]
    trans = [c for c in root["order"] if c.startswith("T")]
    if sorted(rot) != ["RX", "RY", "RZ"] or sorted(trans) != ["TX", "TY", "TZ"]:
        raise DataError(f"{path}: :root order must hold TX TY TZ RX RY RZ in some order, got {root['order']}")
    return Skeleton(
        path,
        length_unit,
        angle_unit,
        tuple(root["order"]),
        root["axis"],
        root["position"],
        root["orientation"] * afac,
        tuple(bones),
        tuple(order),
    )


def skeleton_edges(asf: str | os.PathLike[str] | Skeleton) -> np.ndarray:
    """The bones as ``(parent, child)`` joint pairs, ``(J − 1, 2)`` int64, in joint order.

    Row ``b`` is bone ``b`` of ``:bonedata``: ``(parent joint, b + 1)``.
    """
    sk = asf if isinstance(asf, Skeleton) else parse_asf(asf)
    return np.array([(b.parent, i + 1) for i, b in enumerate(sk.bones)], dtype=np.int64).reshape(-1, 2)


