"""The one evaluator every model goes through (protocol.md, "Metric").

MSE = mean over every node, channel and coordinate of (pred − target)², averaged
over the samples of a split: the element-wise mean, not the per-node sum that
Eq. 14 writes.  Models and trainers never compute leaderboard metrics themselves.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from . import protocol as P
from .data.base import SplitData
from .types import Batch, DatasetInfo

__all__ = ["mse", "METRICS", "Evaluator", "EvalResult", "iterate_batches"]


def mse(pred: Tensor, target: Tensor) -> Tensor:
    """Element-wise mean squared error of ``(B, N, C, 3)`` tensors."""
    return torch.mean((pred - target) ** 2)


METRICS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {"mse": mse}


@dataclass
class EvalResult:
    mse: float
    samples: int
    seconds: float

    @property
    def ms_per_sample(self) -> float:
        return 1000.0 * self.seconds / max(self.samples, 1)


def iterate_batches(split: SplitData, batch_size: int, order: Tensor | None = None):
    """Yield ``(x, y)`` slices of ``split`` in ``order`` (all samples, last batch partial)."""
    n = len(split)
    for start in range(0, n, batch_size):
        if order is None:
            yield split.x[start : start + batch_size], split.y[start : start + batch_size]
        else:
            idx = order[start : start + batch_size]
            yield split.x[idx], split.y[idx]


class Evaluator:
    """Evaluate a model on a split of one dataset case.

    Parameters
    ----------
    info: the case's :class:`DatasetInfo` (its graph and features build each batch).
    batch_transform: the registry entry's optional batch adapter (e.g. DGL).
    """

    def __init__(
        self,
        info: DatasetInfo,
        batch_size: int = P.BATCH_SIZE,
        device: torch.device | str = "cpu",
        batch_transform: Callable[[Batch, DatasetInfo], Any] | None = None,
    ) -> None:
        self.info = info
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.batch_transform = batch_transform
        self._h = info.node_features.to(self.device)
        self._edge_index = info.edge_index.to(self.device)
        self._edge_attr = info.edge_attr.to(self.device)

    def make_batch(self, x: Tensor, y: Tensor | None = None) -> Any:
        """A model input for history ``x`` (B, T, N, C, 3) on this evaluator's device."""
        batch = Batch(
            x=x.to(self.device),
            h=self._h,
            edge_index=self._edge_index,
            edge_attr=self._edge_attr,
            y=None if y is None else y.to(self.device),
        )
        return self.batch_transform(batch, self.info) if self.batch_transform else batch

    @staticmethod
    def check(pred: Tensor, target: Tensor, where: str = "") -> None:
        if pred.shape != target.shape:
            raise ValueError(f"{where}model output has shape {tuple(pred.shape)}, the target {tuple(target.shape)}")
        if not torch.isfinite(pred).all():
            raise FloatingPointError(f"{where}model output contains NaN/inf")

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: SplitData, where: str = "") -> EvalResult:
        """Element-wise MSE of ``model`` over all samples of ``split``; ``where`` prefixes error messages."""
        was_training = model.training
        model.eval()
        total = torch.zeros((), dtype=torch.float64)
        count = 0
        t0 = time.perf_counter()
        for x, y in iterate_batches(split, self.batch_size):
            pred = model(self.make_batch(x))
            y = y.to(pred.device)
            self.check(pred, y, where)
            total += ((pred - y) ** 2).double().sum().cpu()
            count += y.numel()
        seconds = time.perf_counter() - t0
        model.train(was_training)
        return EvalResult(float(total / max(count, 1)), len(split), seconds)
