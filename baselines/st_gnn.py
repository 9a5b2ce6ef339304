"""ST_GNN: a non-equivariant message-passing GNN run on every past frame, then pooled.

The "typical GNN with trivial spatio-temporal aggregation" of Wu et al. 2023 (ESTAG,
Sec. 5 "Baselines", item 5; ``protocol.md``, "Baselines as the paper ran them"): the
GNN of Gilmer et al. 2017 (the non-equivariant baseline of Satorras et al. 2021, EGNN)
runs with shared weights on each of the T past frames, the frame index is embedded in
the node features, and the next frame is a learned softmax-weighted sum over frames.

For every sample, frame ``t`` and node ``i`` (C position channels flattened):

.. math::

    \\mathbf h_i^{(0)}(t) &= W\\,[\\mathbf h_i, \\vec{\\mathbf x}_i(t)] + \\mathbf e_t \\\\
    \\mathbf m_{ij}(t) &= \\phi_e\\big(\\mathbf h_i^{(l)}(t), \\mathbf h_j^{(l)}(t), \\mathbf a_{ij}\\big), \\qquad
    \\mathbf h_i^{(l+1)}(t) = \\mathbf h_i^{(l)}(t)
        + \\phi_h\\Big(\\mathbf h_i^{(l)}(t), \\sum_{j \\in \\mathcal N(i)} \\mathbf m_{ij}(t)\\Big) \\\\
    \\hat{\\mathbf x}_i(t) &= \\vec{\\mathbf x}_i(t) + \\phi_x\\big(\\mathbf h_i^{(L)}(t)\\big), \\qquad
    \\vec{\\mathbf x}_i^{*}(T) = \\sum_t \\operatorname{softmax}(\\mathbf w)_t\\, \\hat{\\mathbf x}_i(t).

Coordinates enter as plain node features, so the model is **not** E(3)-equivariant
(``symmetry="none"``); it is permutation-equivariant in the nodes.

Choices (documented deviations / facts from the authors' code)
---------------------------------------------------------------
* ``decode="displacement"`` (default): the per-frame read-out is the frame's own
  position plus an MLP displacement, like EGNN's coordinate update.  The authors' GNN
  read out *absolute* coordinates from ``h`` alone; ``decode="absolute"`` gives that.
* ``layers=2`` as in the authors' MD17 script (``--n_layers 2``), hidden 16, SiLU,
  residual ("recurrent") node updates, sum aggregation.
* Temporal pooling logits start from U(-1, 1) as in the authors' code
  (``pool_init="random"``; see :mod:`baselines._temporal`).
* Multi-channel nodes (AdK, C = 4): the C×3 coordinates are flattened into the input
  features and the read-out predicts a C×3 displacement, so every channel is
  output (``multichannel=True``).

The message passing itself lives in :meth:`STGNN.propagate`, so a subclass can swap
the backend (see :mod:`baselines.dgl_st_gnn`) while keeping every parameter.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from estagbench import Batch, DatasetInfo, register_model
from estagbench.nn import MLP

from ._temporal import FrameEmbedding, SoftmaxTemporalPooling

__all__ = ["GCL", "STGNN", "st_gnn"]

_DECODES = ("displacement", "absolute")


class GCL(nn.Module):
    """One non-equivariant graph convolution layer (Gilmer et al. 2017, as in EGNN's GNN baseline).

    ``m_ij = phi_e([h_i, h_j, a_ij])`` (two layers, activation after both),
    ``h_i <- h_i + phi_h([h_i, sum_j m_ij])``.

    The first linear map of ``phi_e`` is split as ``W_i h_i + W_j h_j + W_a a_ij + b``:
    the node terms are computed once per node (:meth:`project`) and gathered per edge,
    which gives the same messages as concatenating ``[h_i, h_j, a_ij]`` per edge at a
    fraction of the cost.

    Parameters
    ----------
    hidden:
        Width of ``h`` and of the messages.
    edge_dim:
        D, the edge-feature width.
    """

    def __init__(self, hidden: int, edge_dim: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.edge_mlp = MLP(2 * hidden + edge_dim, hidden, hidden, act_last=True)
        self.node_mlp = MLP(2 * hidden, hidden, hidden)

    def project(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """Node terms of the first message layer: ``(W_i h, W_j h)``, each ``(..., N, H)``."""
        w = self.edge_mlp[0].weight
        H = self.hidden
        return h @ w[:, :H].T, h @ w[:, H : 2 * H].T

    def edge_term(self, edge_attr: Tensor) -> Tensor:
        """Edge term ``W_a a_ij + b`` of the first message layer, ``(..., E, H)``."""
        first = self.edge_mlp[0]
        return edge_attr @ first.weight[:, 2 * self.hidden :].T + first.bias

    def message(self, pre: Tensor) -> Tensor:
        """Messages from the first layer's pre-activation ``W_i h_i + W_j h_j + W_a a_ij + b`` ``(..., E, H)``."""
        for m in list(self.edge_mlp)[1:]:
            pre = m(pre)
        return pre

    def update(self, h: Tensor, agg: Tensor) -> Tensor:
        """Residual node update ``(..., N, H), (..., N, H) -> (..., N, H)``."""
        return h + self.node_mlp(torch.cat([h, agg], dim=-1))


class STGNN(nn.Module):
    """ST_GNN on dense batches ``x (B, T, N, C, 3) -> (B, N, C, 3)``.

    Parameters
    ----------
    info:
        The dataset case (N, C, F, D, T).
    hidden:
        Width of the node features (16 in the paper).
    layers:
        Number of :class:`GCL` layers.
    decode:
        ``"displacement"`` (frame position + MLP) or ``"absolute"`` (MLP only).
    pool_init:
        Initialisation of the temporal softmax logits (:class:`SoftmaxTemporalPooling`).
    """

    def __init__(
        self,
        info: DatasetInfo,
        hidden: int = 16,
        layers: int = 2,
        decode: str = "displacement",
        pool_init: str = "random",
    ) -> None:
        super().__init__()
        if decode not in _DECODES:
            raise ValueError(f"st-gnn: decode must be one of {_DECODES}, got {decode!r}")
        if hidden < 1 or layers < 1:
            raise ValueError(f"st-gnn: hidden and layers must be >= 1, got hidden={hidden}, layers={layers}")
        self.num_frames = info.history
        self.num_channels = info.num_channels
        self.decode = decode
        in_dim = info.node_feat_dim + 3 * info.num_channels
        self.embed = FrameEmbedding(in_dim, hidden, info.history)
        self.layers = nn.ModuleList(GCL(hidden, info.edge_attr_dim) for _ in range(layers))
        self.readout = MLP(hidden, hidden, 3 * info.num_channels)
        self.pool = SoftmaxTemporalPooling(info.history, init=pool_init)

    # -- backend-specific part -------------------------------------------------------
    def propagate(self, layer: GCL, h: Tensor, graph: Any) -> Tensor:
        """One message-passing step on ``h (B, T, N, H)``; ``graph = (edge_index, edge_attr)``.

        Gathers along the node axis and scatters with ``index_add_`` (no per-sample
        offsets): returns ``sum_{j -> i} m_ij`` of shape ``(B, T, N, H)``.
        """
        edge_index, edge_attr = graph
        src, dst = edge_index[0], edge_index[1]
        p_dst, p_src = layer.project(h)
        pre = p_dst.index_select(-2, dst) + p_src.index_select(-2, src) + layer.edge_term(edge_attr.to(h.dtype))
        return torch.zeros_like(h).index_add_(-2, dst, layer.message(pre))

    # -- shared part -----------------------------------------------------------------
    def run(self, x: Tensor, node_features: Tensor, graph: Any) -> Tensor:
        """The model on history ``x (B, T, N, C, 3)`` and features ``(N, F)`` or ``(B, N, F)`` -> ``(B, N, C, 3)``."""
        B, T, N, C, _ = x.shape
        if T != self.num_frames:
            raise ValueError(f"st-gnn was built for T={self.num_frames} frames, got a history of {T}")
        if C != self.num_channels:
            raise ValueError(f"st-gnn was built for C={self.num_channels} channels, got {C}")
        hf = node_features.to(x.dtype)
        if hf.dim() == 3:  # per-sample features (B, N, F)
            hf = hf.unsqueeze(1)
        feats = torch.cat([hf.expand(B, T, N, hf.shape[-1]), x.reshape(B, T, N, 3 * C)], dim=-1)
        h = self.embed.linear(feats) + self.embed.frame.weight.to(x.dtype)[None, :, None, :]
        for layer in self.layers:
            h = layer.update(h, self.propagate(layer, h, graph))
        out = self.readout(h).reshape(B, T, N, C, 3)
        if self.decode == "displacement":
            out = out + x
        return self.pool(out, dim=1)

    def forward(self, batch: Batch) -> Tensor:
        """Predict ``x(T)`` of shape ``(B, N, C, 3)`` from ``batch.x (B, T, N, C, 3)``."""
        return self.run(batch.x, batch.h, (batch.edge_index, batch.edge_attr))


@register_model(
    "st-gnn",
    multichannel=True,
    symmetry="none",
    paper="Gilmer et al. 2017 (ICML), as the ST_GNN baseline of Wu et al. 2023 (ESTAG)",
)
def st_gnn(
    info: DatasetInfo,
    hidden: int = 16,
    layers: int = 2,
    decode: str = "displacement",
    pool_init: str = "random",
    **unused: Any,
) -> STGNN:
    """ST_GNN: non-equivariant message passing on [h, x] per frame, softmax-pooled over frames."""
    _reject_unknown("st-gnn", unused)
    return STGNN(info, hidden=hidden, layers=layers, decode=decode, pool_init=pool_init)


def _reject_unknown(name: str, unused: dict[str, Any]) -> None:
    if unused:
        raise ValueError(f"{name}: unknown hyper-parameter(s) {sorted(unused)}")
