"""The AdK split: chronological 6 : 2 : 2 blocks of window starts, with the authors' boundaries
(see the data card in :mod:`estagbench.data.adk`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ... import protocol as P

__all__ = ["adk_chronological_split"]


# --------------------------------------------------------------------------- split


def adk_chronological_split(
    num_frames: int, history: int, stride: int, fractions: Sequence[float] = P.ADK_FRACTIONS
) -> dict[str, np.ndarray]:
    """Chronological train/val/test blocks of window starts, as the authors' AdK loader cut them.

    Parameters
    ----------
    num_frames:
        ``n``, frames of the trajectory after its last frame was dropped.
    history, stride:
        T and Δ; a window spans frames ``s … s+TΔ``, so there are ``m = n − TΔ`` starts.
    fractions:
        ``(f_train, f_val, f_test)``, non-negative, summing to at most 1.

    Returns
    -------
    dict
        ``{"train", "val", "test"}`` → int64 start frames.  With ``M = m + 1`` (the
        authors' base, the start count before the last frame was dropped):
        train ``[0, ⌊f_tr M⌋)``, val ``[⌊f_tr M⌋, ⌊(f_tr+f_va) M⌋)``, test from there to
        ``min(m, ⌊(f_tr+f_va+f_te) M⌋)``; every block is clipped to ``[0, m)``.

    Raises
    ------
    ValueError
        If the trajectory is shorter than one window or the fractions are invalid.
    """
    _check_protocol(history, stride, fractions)
    m = int(num_frames) - history * stride
    if m <= 0:
        raise ValueError(
            f"a trajectory of {num_frames} frames is shorter than one window of T·Δ + 1 = "
            f"{history}·{stride} + 1 = {history * stride + 1} frames"
        )
    base = m + 1
    f_tr, f_va, f_te = (float(f) for f in fractions)
    b1 = min(m, int(f_tr * base))
    b2 = min(m, int((f_tr + f_va) * base))
    b3 = min(m, int((f_tr + f_va + f_te) * base))
    starts = np.arange(m, dtype=np.int64)
    return {"train": starts[:b1], "val": starts[b1:b2], "test": starts[b2:b3]}


def _check_protocol(history: int, stride: int, fractions: Sequence[float]) -> None:
    if int(history) != history or history < 1:
        raise ValueError(f"history T must be a positive integer, got {history!r}")
    if int(stride) != stride or stride < 1:
        raise ValueError(f"stride Δ must be a positive integer, got {stride!r}")
    fr = tuple(fractions)
    if len(fr) != 3 or any(not np.isfinite(f) or f < 0 for f in fr) or sum(fr) > 1 + 1e-9:
        raise ValueError(
            f"split fractions must be 3 non-negative numbers (train, val, test) summing to at most 1, got {fr}"
        )


