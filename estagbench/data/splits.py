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

__all__ = ["md17_split", "chronological_split", "split_hash", "SPLITS", "check_disjoint", "draw_indices",
           "multi_window_split", "trajectory_split", "multi_chronological_split", "assign_trajectories", "leakage",
           "describe_leakage", "LEAKAGE_WARN_SHARE"]

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
    drawn = draw_indices(m, fractions, seed)
    return {name: (idx + margin)[:cap] for name, idx, cap in zip(SPLITS, drawn, caps, strict=True)}


def draw_indices(m: int, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """The MD17 draw over ``m`` candidates: ``int(f·m)`` indices per split, without replacement,
    with numpy's legacy global RNG seeded by ``seed`` (its previous state restored afterwards)."""
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
    return drawn


def _pairs(traj: int, starts: np.ndarray) -> np.ndarray:
    starts = np.asarray(starts, dtype=np.int64)
    return np.stack([np.full(len(starts), traj, dtype=np.int64), starts], axis=1)


def _stack(rows: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(rows).astype(np.int64) if rows else np.zeros((0, 2), dtype=np.int64)


def multi_window_split(
    lengths: Sequence[int],
    history: int,
    stride: int,
    margin: int,
    fractions: Sequence[float],
    caps: Sequence[int],
    seed: int,
) -> dict[str, np.ndarray]:
    """The ``windows`` rule over several trajectories: ``(S, 2)`` windows ``(trajectory, start)``.

    Each trajectory contributes the starts ``[margin, n_k − max(margin, T·Δ))``; the candidates,
    in (trajectory, start) order, are drawn as :func:`md17_split` draws them.  One trajectory
    gives exactly :func:`md17_split`'s starts.  A window never leaves its trajectory.
    """
    if len(lengths) == 1:
        starts = md17_split(int(lengths[0]), history, stride, margin, fractions, caps, seed)
        return {k: _pairs(0, v) for k, v in starts.items()}
    if len(fractions) != 3 or len(caps) != 3:
        raise ValueError(f"split fractions and caps need 3 values (train, val, test), got {fractions} and {caps}")
    if any(f < 0 for f in fractions) or sum(fractions) > 1 + 1e-9:
        raise ValueError(f"split fractions must be non-negative and sum to at most 1, got {tuple(fractions)}")
    span = history * stride
    cand = _stack([_pairs(k, np.arange(margin, n - max(margin, span))) for k, n in enumerate(lengths)
                   if n - max(margin, span) > margin])
    if len(cand) == 0:
        raise ValueError(f"no trajectory (longest {max(lengths)} frames) holds a window of T·Δ = {history}·{stride} = "
                         f"{span} frames with margin {margin} (lower --split-margin, --history or --stride)")
    drawn = draw_indices(len(cand), fractions, seed)
    return {name: cand[idx][:cap] for name, idx, cap in zip(SPLITS, drawn, caps, strict=True)}


def trajectory_split(
    lengths: Sequence[int],
    assignment: dict[str, list[int]],
    history: int,
    stride: int,
    caps: Sequence[int],
    seed: int,
) -> dict[str, np.ndarray]:
    """Whole trajectories per split (the Motion protocol): every start of every trajectory of a split,
    then, above the split's cap, a seeded subset (kept in (trajectory, start) order)."""
    span = history * stride
    rng = np.random.RandomState(seed)
    out = {}
    for name, cap in zip(SPLITS, caps, strict=True):
        rows = [_pairs(k, np.arange(max(lengths[k] - span, 0))) for k in assignment[name]]
        win = _stack(rows)
        if len(win) > cap:
            win = win[np.sort(rng.choice(len(win), cap, replace=False))]
        out[name] = win
    return out


def assign_trajectories(num: int, fractions: Sequence[float], seed: int) -> dict[str, list[int]]:
    """Trajectory indices per split for fractional ``trajectories`` splits: a seeded permutation cut
    into ``round(f·K)`` trajectories per split (at least one each)."""
    if num < 3:
        raise ValueError(f"a split by trajectory needs at least 3 trajectories (train, val, test), the file has {num}")
    order = np.random.RandomState(seed).permutation(num)
    n_val = max(1, int(round(fractions[1] * num)))
    n_test = max(1, int(round(fractions[2] * num)))
    n_train = num - n_val - n_test
    if fractions[0] + fractions[1] + fractions[2] < 1 - 1e-9:
        n_train = min(n_train, max(1, int(round(fractions[0] * num))))
    if n_train < 1:
        raise ValueError(f"fractions {tuple(fractions)} leave no training trajectory out of {num}")
    return {"train": sorted(order[:n_train].tolist()), "val": sorted(order[n_train:n_train + n_val].tolist()),
            "test": sorted(order[n_train + n_val:n_train + n_val + n_test].tolist())}


def multi_chronological_split(
    lengths: Sequence[int], history: int, stride: int, fractions: Sequence[float], caps: Sequence[int]
) -> dict[str, np.ndarray]:
    """Per trajectory, consecutive blocks of its starts in time order (train first, then val, then test);
    one trajectory gives :func:`chronological_split`'s starts.  Caps keep the first windows."""
    rows: dict[str, list[np.ndarray]] = {k: [] for k in SPLITS}
    for k, n in enumerate(lengths):
        if n - history * stride <= 0:
            continue
        for name, starts in chronological_split(int(n), history, stride, fractions).items():
            rows[name].append(_pairs(k, starts))
    return {name: _stack(rows[name])[:cap] for name, cap in zip(SPLITS, caps, strict=True)}


#: ``run`` warns when more than this share of test targets lies inside training windows.
LEAKAGE_WARN_SHARE = 0.1


def leakage(windows: dict[str, np.ndarray], history: int, stride: int) -> dict[str, float | int | None]:
    """How much the test windows overlap the training windows (same trajectory).

    ``test_targets_in_train``: share of test targets (frame ``s + T·Δ``) lying inside the frame span
    ``[a, a + T·Δ]`` of some training window; ``test_targets_in_train_count``: their number;
    ``min_gap_frames``: the smallest number of frames between a test window's span and a training
    window's span (negative: the spans overlap by that many frames; ``None``: no test window shares a
    trajectory with a training window); ``shared_trajectories``: trajectories holding both.
    """
    span = history * stride
    train = np.asarray(windows["train"], dtype=np.int64).reshape(-1, 2)
    test = np.asarray(windows["test"], dtype=np.int64).reshape(-1, 2)
    inside = 0
    gap: int | None = None
    shared = 0
    for traj in np.unique(test[:, 0]):
        a = np.sort(train[train[:, 0] == traj, 1])
        if len(a) == 0:
            continue
        shared += 1
        s = test[test[:, 0] == traj, 1]
        t = s + span
        # a training window [a, a+span] holds t iff t - span <= a <= t
        inside += int(np.sum(np.searchsorted(a, t, side="right") > np.searchsorted(a, t - span, side="left")))
        i = np.searchsorted(a, s)
        far = np.iinfo(np.int64).max
        before = a[np.clip(i - 1, 0, len(a) - 1)]
        after = a[np.clip(i, 0, len(a) - 1)]
        g = np.minimum(np.where(before <= s, s - (before + span), far),
                       np.where(after >= s, after - (s + span), far))
        g_min = int(g.min())
        gap = g_min if gap is None else min(gap, g_min)
    n = len(test)
    return {"test_targets_in_train": inside / n if n else 0.0, "test_targets_in_train_count": inside,
            "test_windows": n, "min_gap_frames": gap, "shared_trajectories": shared}


def describe_leakage(leak: dict[str, float | int | None]) -> str:
    """One line: ``leakage: 12.0% of test targets (6/50) inside training windows; smallest gap -95 frames``."""
    gap = leak.get("min_gap_frames")
    gap_text = ("no test window shares a trajectory with a training window" if gap is None else
                f"smallest train-test gap {gap} frames" + (" (windows overlap)" if gap < 0 else ""))
    return (f"leakage: {100 * float(leak['test_targets_in_train']):.1f}% of test targets "
            f"({leak['test_targets_in_train_count']}/{leak['test_windows']}) inside training windows; {gap_text}")


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
