"""A plain multi-layer perceptron shared by ESTAG and the baselines."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

__all__ = ["MLP"]


class MLP(nn.Sequential):
    """Stack of ``Linear`` layers with an activation between them.

    ``MLP(in_dim, hidden, out_dim, layers=2)`` is
    ``Linear(in, hidden) -> act -> Linear(hidden, out)``; ``layers = L`` uses
    ``L - 1`` hidden layers of width ``hidden`` and ``layers = 1`` is a single
    ``Linear(in, out)``.  It acts on the last axis: ``(..., in_dim) -> (..., out_dim)``.

    Parameters
    ----------
    in_dim, hidden, out_dim:
        Input, hidden and output widths.
    layers:
        Number of ``Linear`` layers (>= 1).
    act:
        Activation class (instantiated without arguments), default ``nn.SiLU``.
    act_last:
        Also apply the activation after the last layer.
    bias_last:
        Whether the last ``Linear`` has a bias.
    """

    def __init__(
        self,
        in_dim: int,
        hidden: int,
        out_dim: int,
        layers: int = 2,
        act: Callable[[], nn.Module] = nn.SiLU,
        act_last: bool = False,
        bias_last: bool = True,
    ) -> None:
        if layers < 1:
            raise ValueError(f"MLP needs layers >= 1, got {layers}")
        dims = [in_dim] + [hidden] * (layers - 1) + [out_dim]
        mods: list[nn.Module] = []
        for i in range(layers):
            last = i == layers - 1
            mods.append(nn.Linear(dims[i], dims[i + 1], bias=bias_last or not last))
            if not last or act_last:
                mods.append(act())
        super().__init__(*mods)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102 - same as nn.Sequential
        for m in self:
            x = m(x)
        return x
