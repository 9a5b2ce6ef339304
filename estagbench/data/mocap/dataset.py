"""CMU Motion Capture (mocap.cs.cmu.edu): the cases, their files, download, split and loader.

Data card
---------
* Source: the CMU Graphics Lab Motion Capture Database, cited as [7] in Wu et al.
  2023 (ESTAG), Section 5.3 and Table 3.  One ASF file per subject (the skeleton:
  bone directions, lengths, local axes and degrees of freedom) and one AMC file per
  trial (per frame: the root translation and rotation, then each bone's Euler
  angles).  Files live at ``http://mocap.cs.cmu.edu/subjects/<NN>/<NN>.asf`` and
  ``<NN>_<TT>.amc`` and are cached as ``<data_dir>/cmu_mocap/subjects/<NN>/`` (the
  layout of ``../shared/data``).  Original trials are recorded at 120 fps.
* Nodes: the 31 joints of the CMU skeleton, root first, then the end point of each
  bone in the ASF's ``:bonedata`` order; positions from :func:`forward_kinematics`
  in ASF length units (1 unit = 1/0.45 inch ≈ 5.64 cm for CMU files).  Single
  channel: trajectories are ``(frames, 31, 1, 3)``.
* Graph: skeleton bones are 1-hop edges, plus 2-hop edges (protocol.md); node
  feature 1; edge features ``[1, 1, hop]``.
* Preprocessing (protocol.md, "CMU Motion Capture"): per trial the last frame is
  dropped, then the trial's *scalar* mean (over frames, joints and coordinates) is
  subtracted.
* Task: T = 10 frames Δ apart, target at ``start + T·Δ``.

Cases
-----
``walk``
    Subject 35, the 23 walk trials 01-16 and 28-34 (trial index 0-22 in that
    ascending order), 120 fps, Δ = 5.  Split by trial (0-based indices of
    :data:`SPLIT_TRIALS`).  The authors' procedure (their motion loader, read for
    facts): numpy's legacy RNG seeded with 100, then for every trial of the train
    list, in list order, then of val, then of test, 100 starts are drawn by
    ``choice(arange(300), 100, replace=False)`` (one continuing random stream).  A
    split's cap is spread as ``each = cap // number of trials in the split``, and
    each trial keeps the first ``each`` of its draws, in drawn order; trials are
    concatenated in list order.  With caps 3000/800/800 no trial is truncated:
    1100/600/600 windows.
``basketball``
    Subject 102, trials 01-33, keeping those with more than 170 frames (24 in
    the paper, index 0-23 in ascending trial order), 120 fps, Δ = 5, starts drawn
    from the first 120 frames; 1200/600/600 windows.
``walk-30fps``
    The 30 fps conversions in ``<data_dir>/cmu_mocap/35_30fps/`` (GPmat's
    ``cmu35WalkJog.mat``: every 4th original frame, frame i = original 4i−3); the
    same 23 walk trials and index lists as ``walk`` (the jog trials 17-26 are not
    used).  **Δ = 1**: one 30 fps frame spans 4 original frames, so the paper's
    Δ = 5 at 120 fps is 1.25 frames here and 1 is the nearest stride that exists
    (a window then spans 40 original frames instead of 50; Δ = 2 would span 80).
    **Start range [0, 75)**: the first 300 original frames of ``walk`` are 75
    frames at 30 fps, the same 2.5 s of motion.  The shortest trial has 90 frames
    (89 after dropping the last), and the last window needs frame 74 + T·Δ = 84,
    so every trial yields windows.  100 distinct starts cannot be drawn from 75, so
    all 75 are used, in the seeded order of ``choice(arange(75), 75,
    replace=False)``; caps as for ``walk``: 825/450/450 windows.
``walk-35_01``
    The single 120 fps trial ``subjects/35/35_01.amc`` (358 frames, 357 after
    dropping the last), Δ = 5, a chronological 6:2:2 split over its 307 window
    starts (:func:`estagbench.data.splits.chronological_split`): 184/61/61.  A
    quick real-data check that needs only the two files shipped in
    ``../shared/data``; windows of neighbouring splits share frames, as on AdK.

``history``/``stride`` overrides keep the start range unless a trial is too
short for it; then that trial's range is cut to ``frames − T·Δ`` (and fewer
starts are drawn from it), which is recorded in ``CaseData.notes``.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ... import protocol as P
from ..base import CaseData, FileRecord, sha256_file
from ..download import download_file
from ..errors import DataError, DataNotFoundError
from ..graphs import adjacency_from_pairs, edge_features_z_hop, one_and_two_hop
from ..registry import DataFile, Dataset, Protocol, register_dataset
from ..splits import SPLITS, chronological_split
from ..trajectory import atomic_write_bytes
from .amc import _INT, parse_amc
from .asf import parse_asf, skeleton_edges
from .kinematics import skeleton_fk

__all__ = ["MotionCaseSpec", "CASES", "SPLIT_TRIALS", "WALK_TRIALS", "URL_BASE", "KNOWN_SHA256", "motion_files",
           "download_motion", "load_motion", "CMUMotion"]

URL_BASE = "http://mocap.cs.cmu.edu/subjects"

#: SHA-256 of official CMU files (``../shared/data/SOURCES.md``).
KNOWN_SHA256: dict[str, str] = {
    "35.asf": "2a8e2eda3c0d7d828566b2a9a8ab36b2b8b3864110574e8b73c8f069fded416c",
    "35_01.amc": "0743f4ea48e7e199cd56b2810b5ce81f8ede08d32ff79aa4e363c44cc4fe33aa",
}


# ---------------------------------------------------------------------- cases
WALK_TRIALS = tuple(range(1, 17)) + tuple(range(28, 35))

#: 0-based trial indices per split (protocol.md), applied to trials in ascending order.
SPLIT_TRIALS: dict[str, dict[str, tuple[int, ...]]] = {
    "walk": {
        "train": (20, 1, 17, 13, 14, 9, 4, 2, 7, 5, 16),
        "val": (3, 8, 11, 12, 15, 18),
        "test": (6, 19, 21, 0, 22, 10),
    },
    "basketball": {
        "train": (20, 1, 17, 13, 14, 9, 4, 2, 7, 5, 16, 18),
        "val": (3, 0, 11, 21, 15, 23),
        "test": (6, 19, 12, 8, 22, 10),
    },
}


@dataclass(frozen=True)
class MotionCaseSpec:
    """How one motion case is built (see the module docstring).

    folder: relative to ``<data_dir>/cmu_mocap``.  min_frames: keep trials with more
    raw frames than this (basketball).  split: key of :data:`SPLIT_TRIALS`, or
    ``"chronological"``.
    """

    subject: str
    trials: tuple[int, ...]
    folder: str
    fps: int
    stride: int
    split: str
    start_range: int = 0
    per_trial: int = 0
    caps: tuple[int, int, int] = (3000, 800, 800)
    min_frames: int = 0
    downloadable: bool = True
    official_files: bool = True


CASES: dict[str, MotionCaseSpec] = {
    "walk": MotionCaseSpec("35", WALK_TRIALS, "subjects/35", 120, P.MOTION_STRIDE, "walk", 300, 100),
    "basketball": MotionCaseSpec(
        "102", tuple(range(1, 34)), "subjects/102", 120, P.MOTION_STRIDE, "basketball", 120, 100, min_frames=170
    ),
    "walk-30fps": MotionCaseSpec("35", WALK_TRIALS, "35_30fps", 30, 1, "walk", 75, 75, official_files=False),
    "walk-35_01": MotionCaseSpec("35", (1,), "subjects/35", 120, P.MOTION_STRIDE, "chronological"),
}


def _spec(case: str) -> MotionCaseSpec:
    if case not in CASES:
        raise KeyError(f"unknown motion case {case!r}; valid: {', '.join(CASES)}")
    return CASES[case]


def motion_files(case: str, data_dir: str | os.PathLike[str]) -> tuple[Path, list[Path]]:
    """The ASF path and the candidate AMC paths of ``case`` under ``data_dir``."""
    spec = _spec(case)
    folder = Path(data_dir) / "cmu_mocap" / spec.folder
    return folder / f"{spec.subject}.asf", [folder / f"{spec.subject}_{t:02d}.amc" for t in spec.trials]


def _derive_30fps(src: Path, dest: Path) -> None:
    """Write every 4th frame (1, 5, 9, …) of a 120 fps AMC as a 30 fps AMC, lines copied verbatim."""
    lines = src.read_bytes().decode("ascii").splitlines()
    out: list[str] = []
    keep = True  # header lines are kept
    for line in lines:
        tok = line.split()
        if len(tok) == 1 and _INT.match(tok[0]):
            n = int(tok[0])
            keep = (n - 1) % 4 == 0
            if keep:
                out.append(str((n - 1) // 4 + 1))
        elif keep:
            out.append(line)
    data = ("\r\n".join(out) + "\r\n").encode("ascii")
    atomic_write_bytes(dest, lambda fh: fh.write(data))


def download_motion(case: str, data_dir: str | os.PathLike[str], force: bool = False) -> list[Path]:
    """Fetch the ASF and the AMC files of ``case`` from mocap.cs.cmu.edu into the cache.

    Each file streams to ``<file>.part`` and is renamed when complete; ``35.asf``
    and ``35_01.amc`` are checked against :data:`KNOWN_SHA256`.  ``walk-30fps`` is
    derived from the 120 fps walk originals by keeping frames 1, 5, 9, … (the
    subsampling of GPmat's ``cmu35WalkJog.mat``; verified equal for trial 01).
    Existing files are kept unless ``force``.

    Raises
    ------
    DataNotFoundError
        Without network: names the URL and where to put the file.
    """
    spec = _spec(case)
    if case == "walk-30fps":
        src_asf, srcs = motion_files("walk", data_dir)
        fetched = download_motion("walk", data_dir, force=force)
        asf, amcs = motion_files(case, data_dir)
        asf.parent.mkdir(parents=True, exist_ok=True)
        if force or not asf.exists():
            asf_bytes = src_asf.read_bytes()
            atomic_write_bytes(asf, lambda fh: fh.write(asf_bytes))
        for src, dst in zip(srcs, amcs, strict=True):
            if force or not dst.exists():
                _derive_30fps(src, dst)
        return [*fetched, asf, *amcs]
    asf, amcs = motion_files(case, data_dir)
    out = []
    for path in (asf, *amcs):
        if force or not path.exists():
            download_file(f"{URL_BASE}/{spec.subject}/{path.name}", path, sha256=KNOWN_SHA256.get(path.name))
        out.append(path)
    return out


def _draw_starts(
    spec: MotionCaseSpec, lengths: list[int], span: int, seed: int, notes: list[str], names: list[str]
) -> dict[str, np.ndarray]:
    """The authors' per-trial draws and cap spreading (module docstring), as ``(S, 2)`` windows."""
    lists = SPLIT_TRIALS[spec.split]
    rng = np.random.RandomState(seed)  # the same stream as np.random.seed(seed) + np.random.choice
    drawn: dict[str, list[tuple[int, np.ndarray]]] = {}
    for split in SPLITS:
        drawn[split] = []
        for t in lists[split]:
            rng_range = min(spec.start_range, lengths[t] - span)
            if rng_range < spec.start_range:
                notes.append(
                    f"{names[t]}: {lengths[t]} frames; start range cut from {spec.start_range} to "
                    f"{rng_range} for T·Δ = {span}"
                )
            k = min(spec.per_trial, rng_range)
            drawn[split].append((t, rng.choice(np.arange(rng_range), size=k, replace=False)))
    windows = {}
    for split, cap in zip(SPLITS, spec.caps, strict=True):
        each = cap // len(lists[split])
        rows = [np.stack([np.full(len(st[:each]), t), st[:each]], axis=1) for t, st in drawn[split]]
        windows[split] = np.concatenate(rows).astype(np.int64)
    return windows


def load_motion(
    case: str,
    data_dir: str | os.PathLike[str],
    history: int = P.HISTORY,
    stride: int | None = None,
    seed: int = P.SPLIT_SEED,
) -> CaseData:
    """Load a CMU motion case as :class:`CaseData` (dataset ``"motion"``).

    Parameters
    ----------
    case : ``"walk"``, ``"basketball"``, ``"walk-30fps"`` or ``"walk-35_01"``.
    data_dir : cache root holding ``cmu_mocap/`` (``--data-dir`` / ``$ESTAGBENCH_DATA``).
    history : T, frames fed to a model.
    stride : Δ in frames; None takes the case's (5, or 1 for ``walk-30fps``).
    seed : seed of the per-trial start draws (100 in the paper).

    Returns
    -------
    CaseData
        Trajectories ``(frames, 31, 1, 3)`` per trial (ascending trial order),
        windows ``(S, 2)`` of (trial index, start frame) per split.

    Raises
    ------
    KeyError
        Unknown case.
    DataNotFoundError
        Missing files, listed with the download command.
    DataError
        Unreadable files, or a trial shorter than one window.
    """
    spec = _spec(case)
    T = int(history)
    D = spec.stride if stride is None else int(stride)
    if T < 1 or D < 1:
        raise ValueError(f"motion/{case}: history and stride must be >= 1, got T={T}, Δ={D}")
    span = T * D
    asf, amcs = motion_files(case, data_dir)
    missing = [p for p in (asf, *amcs) if not p.exists()]
    if missing:
        how = (
            f"Run `estagbench download motion-{case}` (fetches them from {URL_BASE}/{spec.subject}/)"
            if spec.downloadable
            else ""
        )
        listing = "\n  ".join(str(p) for p in missing)
        raise DataNotFoundError(
            f"motion/{case}: {len(missing)} file(s) missing:\n  {listing}\n{how} or put the files there; "
            "--data-dir / $ESTAGBENCH_DATA choose the cache root."
        )
    skeleton = parse_asf(asf)
    trials: list[np.ndarray] = []
    used: list[Path] = []
    notes: list[str] = []
    for amc in amcs:
        motion = parse_amc(amc, skeleton)
        if motion.num_frames <= spec.min_frames:
            continue
        pos = skeleton_fk(skeleton, motion)[:-1]  # drop the last frame
        if pos.shape[0] <= span:
            raise DataError(
                f"{amc}: {motion.num_frames} frames ({pos.shape[0]} after dropping the last) is shorter "
                f"than one window of T·Δ + 1 = {span + 1} frames"
            )
        trials.append(pos - pos.mean())  # the trial's scalar mean
        used.append(amc)
    if spec.split == "chronological":
        try:
            starts = chronological_split(trials[0].shape[0], T, D)
        except ValueError as exc:
            raise DataError(f"{used[0]}: {exc}") from exc
        windows = {k: np.stack([np.zeros_like(v), v], axis=1) for k, v in starts.items()}
    else:
        need = 1 + max(max(v) for v in SPLIT_TRIALS[spec.split].values())
        if len(trials) < need:
            raise DataError(
                f"motion/{case}: {len(trials)} trials kept in {asf.parent} (more than {spec.min_frames} "
                f"frames), the split index lists need {need}"
            )
        if len(trials) != need:
            notes.append(f"{len(trials)} trials kept; the split lists use the first {need}")
        windows = _draw_starts(spec, [t.shape[0] for t in trials], span, seed, notes, [p.name for p in used])
    edges = skeleton_edges(skeleton)
    edge_index, hop = one_and_two_hop(adjacency_from_pairs(skeleton.num_joints, edges))
    ones = np.ones(skeleton.num_joints)
    files = []
    for p in (asf, *used):
        digest = sha256_file(p)
        known = KNOWN_SHA256.get(p.name)
        if p.suffix == ".amc" and not spec.official_files:
            official: bool | None = False
        else:
            official = None if known is None else digest == known
        if official is False and known is not None:  # as the AdK loader does for its checked files
            warnings.warn(f"{p} has SHA-256 {digest}, not the official file's {known}; results on it are "
                          "marked non-official", RuntimeWarning, stacklevel=2)
        files.append(FileRecord(str(p), digest, official, known))
    if not spec.official_files:
        notes.append("30 fps AMC files are a conversion (every 4th frame), not the official CMU files")
    return CaseData(
        dataset="motion",
        case=case,
        trajectories=[t[:, :, None, :] for t in trials],
        node_features=ones[:, None],
        edge_index=edge_index,
        edge_attr=edge_features_z_hop(ones, edge_index, hop),
        windows=windows,
        history=T,
        stride=D,
        files=files,
        one_hop_mask=hop == 1,
        params={
            "subject": spec.subject,
            "trials": [p.stem for p in used],
            "fps": spec.fps,
            "history": T,
            "stride": D,
            "split": spec.split,
            "split_trials": {k: list(v) for k, v in SPLIT_TRIALS.get(spec.split, {}).items()},
            "start_range": spec.start_range,
            "per_trial": spec.per_trial,
            "caps": list(spec.caps),
            "min_frames": spec.min_frames,
            "seed": None if spec.split == "chronological" else seed,
            "drop_last": True,
            "center": "trial scalar mean",
        },
        notes=notes,
    )


_CMU = "CMU mocap subject"


@register_dataset("motion-basketball", family="motion", cases=("basketball",), table="3",
                  description=f"{_CMU} 102 basketball, 120 fps (Table 3)")
@register_dataset("motion-walk-35_01", family="motion", cases=("walk-35_01",), split="chronological 0.6/0.2/0.2",
                  description="CMU mocap trial 35_01 alone, 120 fps, chronological split")
@register_dataset("motion-walk-30fps", family="motion", cases=("walk-30fps",), table="3", stride=1,
                  description=f"{_CMU} 35 walk, 30 fps conversions")
@register_dataset("motion-walk", family="motion", cases=("walk",), table="3",
                  description=f"{_CMU} 35 walk, 120 fps originals (Table 3)")
class CMUMotion(Dataset):
    """CMU motion capture cases (module data card): ASF skeleton + AMC trials, forward kinematics to joints."""

    protocol = Protocol(history=P.HISTORY, stride=P.MOTION_STRIDE, lr=P.LR_MOTION, scale=P.MOTION_SCALE, unit="×10⁻¹",
                        split="per-trial random starts over fixed trial lists, seed 100")

    def files(self, case: str) -> tuple[DataFile, ...]:
        spec = _spec(case)
        asf, amcs = motion_files(case, ".")
        url = "" if case == "walk-30fps" else f"{URL_BASE}/{spec.subject}"  # 30 fps files are derived, not fetched
        return tuple(DataFile(str(Path("cmu_mocap") / spec.folder / p.name), f"{url}/{p.name}" if url else "",
                              KNOWN_SHA256.get(p.name) if spec.official_files else None) for p in (asf, *amcs))

    def download(self, case: str, data_dir: Path, force: bool = False) -> list[Path]:
        return download_motion(case, data_dir, force=force)  # also derives the 30 fps files

    def load(self, case: str, data_dir: Path, **opts: Any) -> CaseData:
        return load_motion(case, data_dir, **opts)
