"""``estagbench convert``: write the trajectory ``.npz`` format (version 2) from common sources.

* ``--from amc --skeleton SUBJECT.asf T1.amc T2.amc …``: one trajectory per AMC trial, joint
  positions by the forward kinematics of the motion datasets (:mod:`estagbench.data.mocap`), in
  ASF length units, each trial centred on its scalar mean as the motion datasets are; the bones
  are the graph's edges.
* ``--from npy DIR_OR_FILES…``: ``.npy`` arrays ``(frames, nodes, 3)`` (or ``.npz`` files with a
  ``positions`` array), one trajectory per file in name order.
* ``--from extxyz FILES…``: ASE-readable trajectories (extxyz, xyz, traj …), one per file; the
  atomic numbers come from the first frame (needs ASE: ``pip install 'estagbench[simulate]'``).
* ``--from md TOPOLOGY TRAJ…``: MDAnalysis-readable topology and trajectories, one trajectory per
  file, the atoms of ``--select``.

Every source also takes the protocol (``--split``, ``--train/--val/--test``, ``--history``,
``--stride`` …) and the units (``--length-unit``, ``--time-step``/``--time-unit``, ``--up-axis``,
``--display-exponent``), written into the file (docs/trajectory-format.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from .data.errors import DataError

__all__ = ["add_convert_parser", "convert", "SOURCES"]

SOURCES = ("amc", "npy", "extxyz", "md")


def _existing(paths: list[Path], what: str) -> list[Path]:
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise FileNotFoundError(f"{what}: not found: {', '.join(missing)}")
    return paths


def _from_amc(sources: list[Path], skeleton: Path | None, center: bool) -> dict[str, Any]:
    from .data.mocap import parse_amc, parse_asf, skeleton_edges, skeleton_fk

    if skeleton is None:
        raise ValueError("--from amc needs --skeleton SUBJECT.asf (the skeleton the AMC trials were recorded on)")
    _existing([skeleton, *sources], "convert --from amc")
    sk = parse_asf(skeleton)
    trajs = []
    for amc in sources:
        pos = skeleton_fk(sk, parse_amc(amc, sk))
        trajs.append(pos - pos.mean() if center else pos)
    return {"positions": trajs, "names": [p.stem for p in sources], "edges": skeleton_edges(sk),
            "node_features": np.ones(sk.num_joints), "length_unit": "ASF unit", "up_axis": "y", "display_exponent": 1,
            "metadata": {"source": "amc", "skeleton": skeleton.name, "trials": [p.name for p in sources],
                         "center": "trial scalar mean" if center else "none", "forward_kinematics": "estagbench.data.mocap"}}


def _npy_files(sources: list[Path]) -> list[Path]:
    files: list[Path] = []
    for src in _existing(sources, "convert --from npy"):
        files += sorted(p for p in src.iterdir() if p.suffix in (".npy", ".npz")) if src.is_dir() else [src]
    if not files:
        raise ValueError(f"convert --from npy: no .npy or .npz file in {', '.join(map(str, sources))}")
    return files


def _from_npy(sources: list[Path]) -> dict[str, Any]:
    from .data.trajectory import load_npz

    files = _npy_files(sources)
    trajs = []
    for f in files:
        if f.suffix == ".npz":
            arrays = load_npz(f)
            if "positions" not in arrays and len(arrays) != 1:
                raise DataError(f"{f}: holds {sorted(arrays)}; name the coordinate array 'positions'")
            arr = arrays.get("positions", next(iter(arrays.values())))
        else:
            try:
                arr = np.load(f, allow_pickle=False)
            except (ValueError, OSError) as exc:
                raise DataError(f"{f}: not a readable .npy array: {exc}") from exc
        trajs.append(np.asarray(arr, dtype=np.float64))
    return {"positions": trajs, "names": [f.stem for f in files], "metadata": {"source": "npy", "files": [f.name for f in files]}}


def _from_extxyz(sources: list[Path]) -> dict[str, Any]:
    try:
        import ase.io
    except ModuleNotFoundError:
        raise ValueError("convert --from extxyz needs ASE, which is not installed: pip install 'estagbench[simulate]'") from None
    trajs, numbers = [], None
    for f in _existing(sources, "convert --from extxyz"):
        try:
            frames = ase.io.read(str(f), index=":")
        except Exception as exc:  # ASE raises many types for a malformed file
            raise DataError(f"{f}: ASE cannot read it: {type(exc).__name__}: {exc}") from exc
        if not frames:
            raise DataError(f"{f}: no frames")
        z = frames[0].get_atomic_numbers()
        if any(len(a) != len(z) or (a.get_atomic_numbers() != z).any() for a in frames):
            raise DataError(f"{f}: the atoms change between frames; every frame must hold the same atoms in the same order")
        if numbers is not None and (len(z) != len(numbers) or (z != numbers).any()):
            raise DataError(f"{f}: holds other atoms than {sources[0]}; every file must hold the same system")
        numbers = z
        trajs.append(np.stack([a.get_positions() for a in frames]))
    return {"positions": trajs, "names": [f.stem for f in sources], "atomic_numbers": numbers, "length_unit": "Å",
            "display_exponent": 3, "metadata": {"source": "extxyz", "files": [f.name for f in sources]}}


def _from_md(sources: list[Path], select: str) -> dict[str, Any]:
    try:
        import MDAnalysis as mda
    except ModuleNotFoundError:
        raise ValueError("convert --from md needs MDAnalysis, which is not installed: pip install MDAnalysis") from None
    if len(sources) < 2:
        raise ValueError("convert --from md needs TOPOLOGY TRAJECTORY [TRAJECTORY …]")
    top, trajs_in = _existing(sources, "convert --from md")[0], sources[1:]
    trajs, dt, numbers = [], None, None
    for f in trajs_in:
        try:
            u = mda.Universe(str(top), str(f))
            atoms = u.select_atoms(select)
        except Exception as exc:  # MDAnalysis raises many types for unreadable files or bad selections
            raise DataError(f"{top} + {f}: MDAnalysis cannot read them (selection {select!r}): {type(exc).__name__}: {exc}") from exc
        if len(atoms) == 0:
            raise ValueError(f"--select {select!r} matches no atom of {top}")
        trajs.append(np.stack([atoms.positions.astype(np.float64) for _ in u.trajectory]))
        dt = float(u.trajectory.dt)
        if hasattr(atoms, "elements"):
            from MDAnalysis.topology.tables import SYMB2Z

            z = [SYMB2Z.get(str(e).capitalize(), 0) for e in atoms.elements]
            numbers = np.asarray(z) if all(z) else None
    return {"positions": trajs, "names": [f.stem for f in trajs_in], "atomic_numbers": numbers, "length_unit": "Å",
            "time_step": dt, "time_unit": "ps", "metadata": {"source": "md", "topology": top.name,
                                                              "trajectories": [f.name for f in trajs_in], "select": select}}


def convert(source: str, sources: list[Path], out: Path, *, skeleton: Path | None = None, center: bool = True,
            select: str = "all", names: list[str] | None = None, protocol: dict[str, Any] | None = None,
            units: dict[str, Any] | None = None, cutoff: float | None = None, edges: Path | None = None) -> Path:
    """Read ``sources`` of kind ``source`` (:data:`SOURCES`) and write ``out`` (format version 2)."""
    from .data.trajectory import write_trajectory

    if source not in SOURCES:
        raise ValueError(f"--from {source!r}: valid sources are {', '.join(SOURCES)}")
    if not sources:
        raise ValueError(f"convert --from {source}: give at least one source file")
    sources = [Path(s) for s in sources]
    if source == "amc":
        got = _from_amc(sources, skeleton, center)
    elif source == "npy":
        got = _from_npy(sources)
    elif source == "extxyz":
        got = _from_extxyz(sources)
    else:
        got = _from_md(sources, select)
    trajs = got.pop("positions")
    shapes = {t.shape[1:] for t in trajs}
    if len(shapes) != 1:
        raise DataError(f"the sources disagree on (nodes, [channels,] 3): {sorted(shapes)}; every trajectory must hold "
                        "the same nodes")
    file_names = names or got.pop("names")
    got.pop("names", None)
    if len(file_names) != len(trajs):
        raise ValueError(f"--names gives {len(file_names)} name(s) for {len(trajs)} trajectories")
    for key, val in (units or {}).items():
        if val is not None:
            got[key] = val
    if cutoff is not None:
        got["cutoff"] = cutoff
    if edges is not None:
        got["edges"] = _read_edges(Path(edges))
    return write_trajectory(out, trajs, trajectory_names=file_names, protocol=protocol or None, **got)


def _read_edges(path: Path) -> np.ndarray:
    """Node pairs (bones, bonds) from a ``.npy`` ``(E, 2)`` integer array or a text file of two integers a line."""
    _existing([path], "--edges")
    try:
        arr = np.load(path, allow_pickle=False) if path.suffix == ".npy" else np.loadtxt(path, dtype=np.int64, ndmin=2)
    except ValueError as exc:
        raise DataError(f"{path}: --edges must hold two integer node ids per edge (a text file, one pair a line, "
                        f"or an (E, 2) .npy): {exc}") from exc
    return np.asarray(arr)


def _protocol(args: argparse.Namespace) -> dict[str, Any]:
    proto: dict[str, Any] = {}
    if args.split:
        proto["split"] = args.split
    for key in ("train", "val", "test"):
        if getattr(args, key):
            proto[key] = getattr(args, key)
            proto.setdefault("split", "trajectories")
    for key in ("history", "stride", "split_margin"):
        if getattr(args, key) is not None:
            proto[key] = getattr(args, key)
    if args.split_fractions is not None:
        proto["split_fractions"] = list(args.split_fractions)
    if args.split_caps is not None:
        proto["split_caps"] = list(args.split_caps)
    return proto


def _cmd_convert(args: argparse.Namespace) -> int:
    units = {"length_unit": args.length_unit, "time_step": args.time_step, "time_unit": args.time_unit,
             "up_axis": args.up_axis, "display_exponent": args.display_exponent}
    if args.time_step is not None and args.time_unit is None:
        raise ValueError("--time-step needs --time-unit (e.g. fs, ps, s)")
    path = convert(args.source, args.sources, args.out, skeleton=args.skeleton, center=not args.no_center,
                   select=args.select, names=args.names, protocol=_protocol(args), units=units, cutoff=args.cutoff,
                   edges=args.edges)
    from .data.trajectory import read_trajectory

    t = read_trajectory(path)
    lengths = np.diff(t.bounds)
    print(f"wrote {path}: {t.num_trajectories} trajectories ({', '.join(t.names or [])}), {t.num_nodes} nodes, "
          f"{lengths.min()}–{lengths.max()} frames each, length unit {t.length_unit or '(unstated)'}")
    return 0


def add_convert_parser(subparsers: Any) -> None:
    """Add ``convert`` to the ``estagbench`` sub-command parser."""
    from ._argtypes import floats as _floats
    from ._argtypes import ints as _ints
    from ._argtypes import names as _names
    from ._argtypes import nonnegative_int, positive_int

    p = subparsers.add_parser(
        "convert", help="write a trajectory .npz (format v2, several trajectories) from ASF/AMC, .npy, extxyz or MD files",
        description="One trajectory per AMC trial / array file / extxyz file / MD trajectory; see "
                    "docs/trajectory-format.md. Protocol flags are written into the file and used by `run`.")
    p.add_argument("--from", dest="source", required=True, choices=SOURCES, help="kind of the sources")
    p.add_argument("--out", type=Path, required=True, help="the .npz to write")
    p.add_argument("sources", type=Path, nargs="+", help="amc: AMC trials; npy: a folder or files; extxyz: files; "
                                                         "md: TOPOLOGY TRAJECTORY…")
    p.add_argument("--skeleton", type=Path, default=None, help="amc: the subject's ASF skeleton")
    p.add_argument("--no-center", action="store_true", help="amc: keep positions as recorded (default: each trial "
                                                            "minus its scalar mean, as the motion datasets)")
    p.add_argument("--select", default="all", help="md: MDAnalysis atom selection (default all)")
    p.add_argument("--names", type=_names, default=None, help="comma list of trajectory names (default: file stems)")
    p.add_argument("--cutoff", type=float, default=None, help="graph: node pairs closer than this in frame 0")
    p.add_argument("--edges", type=Path, default=None, help="graph: node pairs (bones, bonds), a text file of two "
                                                            "node ids a line or an (E, 2) .npy")
    p.add_argument("--split", choices=["windows", "trajectories", "chronological"], default=None,
                   help="split rule written into the file (default: trajectories for 3+ sources, else windows; "
                        "trajectories when --train/--val/--test are given)")
    p.add_argument("--train", type=_names, default=None, help="trajectories: comma list of training trajectory names")
    p.add_argument("--val", type=_names, default=None, help="trajectories: comma list of validation trajectory names")
    p.add_argument("--test", type=_names, default=None, help="trajectories: comma list of test trajectory names")
    p.add_argument("--history", type=positive_int, default=None, help="T written into the protocol (default 10)")
    p.add_argument("--stride", type=positive_int, default=None, help="Δ written into the protocol (default 10)")
    p.add_argument("--split-margin", type=nonnegative_int, default=None, help="windows: frames excluded at both ends")
    p.add_argument("--split-fractions", type=_floats, default=None, help="train,val,test fractions")
    p.add_argument("--split-caps", type=_ints, default=None, help="train,val,test window caps (default 500,2000,2000)")
    p.add_argument("--length-unit", default=None, help="unit of the coordinates (amc: 'ASF unit'; extxyz, md: Å)")
    p.add_argument("--time-step", type=float, default=None, help="time between two frames (with --time-unit)")
    p.add_argument("--time-unit", default=None, help="unit of --time-step, e.g. fs, ps, s")
    p.add_argument("--up-axis", choices=["x", "y", "z"], default=None, help="vertical axis (amc: y)")
    p.add_argument("--display-exponent", type=int, default=None,
                   help="tables print MSE × 10^this (amc: 1; extxyz: 3; default 0)")
    p.set_defaults(func=_cmd_convert)
