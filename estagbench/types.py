"""The two objects every model sees: :class:`DatasetInfo` and :class:`Batch`.

A model in estagbench maps a batch of T past frames of one geometric graph to the
next frame (Eq. 1 of Wu et al. 2023, ESTAG).  All samples of a dataset case share
the same nodes, node features and edges, so a batch is *dense*:

* ``x``  -- history positions, shape ``(B, T, N, C, 3)``
  (B samples, T frames, N nodes, C position channels, 3 coordinates);
  ``C = 1`` for atoms and joints, ``C = 4`` for AdK residues (N, CA, C, O).
* ``h``  -- node features, ``(N, F)``, shared by every sample and frame.
* ``edge_index`` -- ``(2, E)`` long tensor ``[src, dst]`` of ONE graph with node ids in
  ``[0, N)``; the same edges serve every sample and frame.
* ``edge_attr``  -- ``(E, D)`` edge features.
* ``y``  -- target positions at frame T, ``(B, N, C, 3)``.

A model returns a tensor shaped like ``y``.  Message passing gathers
``x[..., src, :, :]`` along the node axis and scatters with ``index_add_`` along the
same axis, so no per-sample graph offsets are ever built.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor

from . import protocol as P

__all__ = ["DatasetInfo", "Batch"]


@dataclass(frozen=True)
class DatasetInfo:
    """Static description of one dataset case, handed to every model builder.

    Attributes
    ----------
    dataset, case:
        Family and case names, e.g. ``("md17", "ethanol")`` or ``("motion", "walk")``.
    num_nodes, num_channels:
        N and C of the position tensors.
    node_features:
        ``(N, F)`` float tensor (MD17: atomic number; Motion: ones; AdK: the partial
        charges of the 4 backbone atoms, as the authors' loader feeds them).
    edge_index, edge_attr:
        ``(2, E)`` and ``(E, D)``: the dataset case's graph (1-hop + 2-hop for MD17
        and Motion, a CA cutoff graph for AdK).
    history, stride:
        T (frames fed to the model) and Δ (frames between two of them).
    ca_channel:
        Which channel single-channel models should use on multi-channel data
        (the CA atom on AdK); 0 when ``num_channels == 1``.
    one_hop_mask:
        ``(E,)`` bool, True for 1-hop edges (the rest are 2-hop), where defined.
    """

    dataset: str
    case: str
    num_nodes: int
    num_channels: int
    node_features: Tensor
    edge_index: Tensor
    edge_attr: Tensor
    history: int = P.HISTORY
    stride: int = P.MD17_STRIDE
    ca_channel: int = 0
    one_hop_mask: Tensor | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def node_feat_dim(self) -> int:
        return int(self.node_features.shape[1])

    @property
    def edge_attr_dim(self) -> int:
        return int(self.edge_attr.shape[1])

    @property
    def num_edges(self) -> int:
        return int(self.edge_index.shape[1])

    def with_history(self, history: int) -> DatasetInfo:
        return replace(self, history=history)


@dataclass
class Batch:
    """A dense batch; see the module docstring for shapes."""

    x: Tensor
    h: Tensor
    edge_index: Tensor
    edge_attr: Tensor
    y: Tensor | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def batch_size(self) -> int:
        return int(self.x.shape[0])

    @property
    def history(self) -> int:
        return int(self.x.shape[1])

    @property
    def num_nodes(self) -> int:
        return int(self.x.shape[2])

    @property
    def num_channels(self) -> int:
        return int(self.x.shape[3])

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> Batch:
        def mv(t: Tensor | None, floating: bool = True) -> Tensor | None:
            if t is None:
                return None
            if floating and dtype is not None and t.is_floating_point():
                return t.to(device=device, dtype=dtype)
            return t.to(device=device)

        return Batch(
            x=mv(self.x),  # type: ignore[arg-type]
            h=mv(self.h),  # type: ignore[arg-type]
            edge_index=mv(self.edge_index, floating=False),  # type: ignore[arg-type]
            edge_attr=mv(self.edge_attr),  # type: ignore[arg-type]
            y=mv(self.y),
            extra=dict(self.extra),
        )

    @classmethod
    def from_info(cls, info: DatasetInfo, x: Tensor, y: Tensor | None = None) -> Batch:
        """Build a batch for ``info`` from history ``x`` (B, T, N, C, 3)."""
        return cls(
            x=x,
            h=info.node_features.to(x.dtype),
            edge_index=info.edge_index,
            edge_attr=info.edge_attr.to(x.dtype),
            y=y,
        )
