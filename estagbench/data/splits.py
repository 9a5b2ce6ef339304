"""Seeded split generation, replicating the authors' sampling procedures (protocol.md).

* :func:`md17_split` -- random window starts drawn without replacement with numpy's
  legacy global RNG (MD17, and any single long trajectory).
* :func:`chronological_split` -- consecutive blocks of window starts (6:2:2); the AdK
  cases use :func:`estagbench.data.adk.adk_chronological_split`, which reproduces the
  authors' block boundaries exactly.

All functions return ``{"train": starts, "val": starts, "test": starts}`` as int64
arrays of frame indices into the (preprocessed) trajectory.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import numpy as np

from .. import protocol as P

__all__ = ["md17_split", "chronological_split", "split_hash", "SPLITS", "check_disjoint"]

SPLITS = ("train", "val", "test")


def md17_split(
    num_frames: int,
    history: int = P.HISTORY,
    stride: int = P.MD17_STRIDE,
    margin: int = P.MD17_MARGIN,
    fractions: Sequence[float] = P.MD17_FRACTIONS,
    caps: Sequence[int] = P.MD17_CAPS,
    seed: int = P.SPLIT_SEED,
) -> dict[str, np.ndarray]:
    """The MD17 split of protocol.md, drawn exactly as the authors drew it.

    Candidate starts are the frames ``[margin, n − max(margin, Δ·T))`` indexed
    ``0 … m−1``.  With ``np.random.seed(seed)``: train = ``choice(m, int(f_train·m))``;
    val = ``choice(rest, int(f_val·m))`` over the sorted indices not in train; test
    likewise over those in neither (``replace=False`` throughout).  Each array is
    shifted by ``margin`` and truncated, in drawn order, to its cap.

    The legacy global RNG is seeded and its previous state restored afterwards, so
    callers' random streams are untouched.
    """
    if len(fractions) != 3 or len(caps) != 3:
        raise ValueError(f"split fractions and caps need 3 values (train, val, test), got {fractions} and {caps}")
    if any(f < 0 for f in fractions) or sum(fractions) > 1 + 1e-9:
        raise ValueError(f"split fractions must be non-negative and sum to at most 1, got {tuple(fractions)}")
    if margin < 0:
        raise ValueError(f"split margin must be >= 0, got {margin}")
    span = history * stride
    m = num_frames - max(margin, span) - margin
    if m <= 0:
        raise ValueError(
            f"a trajectory of {num_frames} frames has no window start: margin {margin} and a window of "
            f"T·Δ = {history}·{stride} = {span} frames need more than {max(margin, span) + margin} frames "
            "(lower --split-margin, --history or --stride)"
        )
    state = np.random.get_state()
    try:
        np.random.seed(seed)
        drawn: list[np.ndarray] = []
        taken = np.zeros(m, dtype=bool)
        for frac in fractions:
            k = int(frac * m)
            pool = np.flatnonzero(~taken)
            if k > len(pool):
                raise ValueError(f"cannot draw {k} window starts from the {len(pool)} left (fractions {tuple(fractions)})")
            idx = np.random.choice(m, k, replace=False) if not drawn else np.random.choice(pool, k, replace=False)
            taken[idx] = True
            drawn.append(np.asarray(idx, dtype=np.int64))
    finally:
        np.random.set_state(state)
    return {name: (idx + margin)[:cap] for name, idx, cap in zip(SPLITS, drawn, caps, strict=True)}


def chronological_split(
    num_frames: int, history: int, stride: int, fractions: Sequence[float] = P.ADK_FRACTIONS
) -> dict[str, np.ndarray]:
    """Consecutive blocks of the ``n − T·Δ`` window starts, in time order."""
    m = num_frames - history * stride
    if m <= 0:
        raise ValueError(
            f"a trajectory of {num_frames} frames is shorter than one window of T·Δ + 1 = {history * stride + 1} frames"
        )
    sizes = [int(f * m) for f in fractions]
    bounds = np.cumsum([0, *sizes])
    starts = np.arange(m, dtype=np.int64)
    return {name: starts[bounds[i] : bounds[i + 1]] for i, name in enumerate(SPLITS)}


def check_disjoint(windows: dict[str, np.ndarray]) -> None:
    """Raise if a window (trajectory, start) appears in two splits."""
    seen: dict[tuple[int, ...], str] = {}
    for name, arr in windows.items():
        for row in np.asarray(arr).reshape(len(arr), -1):
            key = tuple(int(v) for v in row)
            if key in seen and seen[key] != name:
                raise ValueError(f"window {key} appears in both {seen[key]!r} and {name!r} splits")
            seen[key] = name


def split_hash(windows: dict[str, np.ndarray]) -> str:
    """SHA-256 (first 16 hex) of the split's window lists, recorded with every result."""
    payload = json.dumps({k: np.asarray(v).tolist() for k, v in sorted(windows.items())}, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
