"""Pt-s / Pt-m / Pt-t: predict one of the input frames (Section 5, "Baselines", item 1).

No parameters, nothing to train: their errors depend only on the data pipeline,
which makes them the end-to-end check of splits and windows.  Frame choice for
history length T: start 0, middle ``(T − 1) // 2`` (4 for T = 10) and terminal ``T − 1``.
Trivially E(3)-equivariant.
"""

from __future__ import annotations

from torch import Tensor, nn

from estagbench import Batch, DatasetInfo, register_model

__all__ = ["PastFrame", "frame_index"]


def frame_index(which: str, history: int) -> int:
    """Index of the start / middle / terminal frame of a history of length ``history``."""
    table = {"s": 0, "m": (history - 1) // 2, "t": history - 1}
    if which not in table:
        raise ValueError(f"frame must be one of {sorted(table)}, got {which!r}")
    return table[which]


class PastFrame(nn.Module):
    """Return frame ``index`` of the history: ``x (B, T, N, C, 3) -> x[:, index]``."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index

    def forward(self, batch: Batch) -> Tensor:
        return batch.x[:, self.index]


def _make(which: str):
    def build(info: DatasetInfo, **_: object) -> nn.Module:
        return PastFrame(frame_index(which, info.history))

    build.__name__ = f"pt_{which}"
    build.__doc__ = f"Pt-{which}: copy the {dict(s='start', m='middle', t='terminal')[which]} input frame."
    return build


for _which in ("s", "m", "t"):
    register_model(f"pt-{_which}", multichannel=True, trains=False, symmetry="E3",
                   paper="Wu et al. 2023, Sec. 5")(_make(_which))
