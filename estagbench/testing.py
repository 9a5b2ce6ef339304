"""Test helpers shared by the core and by third-party models.

:func:`assert_equivariant` is the single E(3) assertion every model test uses: it
draws a random orthogonal matrix (a rotation, and a rotation times a reflection), a
random translation, transforms the history ``x`` of a random float64 batch and
checks ``f(g·x) == g·f(x)`` within a tolerance.  :func:`equivariance_error`
returns the error itself, so a test can also *assert that a model is not*
equivariant.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from . import protocol as P
from .evaluate import mse
from .types import Batch, DatasetInfo

__all__ = [
    "random_orthogonal",
    "random_info",
    "random_batch",
    "equivariance_error",
    "assert_equivariant",
    "permutation_error",
    "training_losses",
]


def random_orthogonal(generator: torch.Generator, reflect: bool, dtype: torch.dtype = torch.float64) -> Tensor:
    """A random 3×3 orthogonal matrix with determinant −1 if ``reflect`` else +1."""
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=generator, dtype=dtype))
    q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)
    if torch.det(q) < 0:
        q[:, 0] = -q[:, 0]
    if reflect:
        q = q @ torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=dtype))
    return q


def random_info(
    num_nodes: int = 5,
    num_channels: int = 1,
    history: int = P.HISTORY,
    node_feat_dim: int = 1,
    edge_attr_dim: int = 3,
    seed: int = 0,
    dataset: str = "random",
) -> DatasetInfo:
    """A fully connected random :class:`DatasetInfo` (float64)."""
    g = torch.Generator().manual_seed(seed)
    src, dst = torch.meshgrid(torch.arange(num_nodes), torch.arange(num_nodes), indexing="ij")
    keep = src != dst
    edge_index = torch.stack([src[keep], dst[keep]])
    return DatasetInfo(
        dataset=dataset,
        case="random",
        num_nodes=num_nodes,
        num_channels=num_channels,
        node_features=torch.rand(num_nodes, node_feat_dim, generator=g, dtype=torch.float64) + 0.5,
        edge_index=edge_index,
        edge_attr=torch.rand(edge_index.shape[1], edge_attr_dim, generator=g, dtype=torch.float64),
        history=history,
        stride=1,
        ca_channel=1 if num_channels == 4 else 0,
        one_hop_mask=torch.ones(edge_index.shape[1], dtype=torch.bool),
    )


def random_batch(info: DatasetInfo, batch_size: int = 3, seed: int = 0, scale: float = 1.0) -> Batch:
    """A float64 random-walk batch (B, T, N, C, 3) shaped for ``info``."""
    g = torch.Generator().manual_seed(seed)
    shape = (batch_size, info.history, info.num_nodes, info.num_channels, 3)
    start = torch.randn(batch_size, 1, info.num_nodes, info.num_channels, 3, generator=g, dtype=torch.float64)
    steps = 0.1 * torch.randn(*shape, generator=g, dtype=torch.float64)
    x = scale * (start + steps.cumsum(dim=1))
    y = x[:, -1] + 0.1 * torch.randn(x[:, -1].shape, generator=g, dtype=torch.float64)
    return Batch.from_info(info, x.to(torch.float64), y)


def _apply(batch: Batch, rot: Tensor, shift: Tensor) -> Batch:
    return Batch(
        x=batch.x @ rot.T + shift,
        h=batch.h,
        edge_index=batch.edge_index,
        edge_attr=batch.edge_attr,
        y=None if batch.y is None else batch.y @ rot.T + shift,
        extra=dict(batch.extra),
    )


def equivariance_error(
    fn: Callable[[Batch], Tensor] | nn.Module,
    batch: Batch,
    seed: int = 0,
    translate: bool = True,
) -> dict[str, float]:
    """Max abs error of ``fn(g·batch) - g·fn(batch)`` for a rotation and a reflection.

    Returns ``{"rotation": e1, "reflection": e2}`` (each with a random translation
    when ``translate``).  Inputs should be float64 for tight tolerances.
    """
    g = torch.Generator().manual_seed(seed + 12345)
    errors: dict[str, float] = {}
    with torch.no_grad():  # a check of the map, not of its gradients
        out = fn(batch)
        for case, reflect in (("rotation", False), ("reflection", True)):
            rot = random_orthogonal(g, reflect, batch.x.dtype)
            shift = (torch.randn(3, generator=g, dtype=batch.x.dtype) * 3.0) if translate else torch.zeros(3, dtype=batch.x.dtype)
            out_g = fn(_apply(batch, rot, shift))
            errors[case] = float((out_g - (out @ rot.T + shift)).abs().max())
    return errors


def assert_equivariant(
    fn: Callable[[Batch], Tensor] | nn.Module,
    batch: Batch,
    atol: float = 1e-10,
    seed: int = 0,
) -> dict[str, float]:
    """Raise AssertionError unless ``fn`` is E(3)-equivariant on ``batch`` (see above)."""
    __tracebackhide__ = True
    errors = equivariance_error(fn, batch, seed=seed)
    bad = {k: v for k, v in errors.items() if not v < atol}
    if bad:
        raise AssertionError(f"not E(3)-equivariant within {atol:g}: max errors {errors}")
    return errors


def permutation_error(fn: Callable[[Batch], Tensor] | nn.Module, info: DatasetInfo, batch: Batch, seed: int = 0) -> float:
    """Max abs error of ``fn(P·batch) - P·fn(batch)`` for a random node permutation."""
    g = torch.Generator().manual_seed(seed + 777)
    n = info.num_nodes
    perm = torch.randperm(n, generator=g)
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(n)
    out = fn(batch)
    permuted = Batch(
        x=batch.x[:, :, perm],
        h=batch.h[perm],
        edge_index=inv[batch.edge_index],
        edge_attr=batch.edge_attr,
        y=None if batch.y is None else batch.y[:, perm],
        extra=dict(batch.extra),
    )
    return float((fn(permuted) - out[:, perm]).abs().max())


def training_losses(model: nn.Module, batch: Batch, steps: int, lr: float = P.LR, weight_decay: float = P.WEIGHT_DECAY) -> tuple[float, float]:
    """MSE on ``batch`` before and after ``steps`` Adam steps on it (the paper's optimiser).

    The shared body of every "a few steps on real data lower the training loss" test.
    """
    if batch.y is None:
        raise ValueError("training_losses needs a batch with targets y")
    optim = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)

    def loss() -> Tensor:
        return mse(model(batch), batch.y)

    with torch.no_grad():
        before = float(loss())
    for _ in range(steps):
        optim.zero_grad(set_to_none=True)
        value = loss()
        value.backward()
        optim.step()
    with torch.no_grad():
        after = float(loss())
    return before, after
