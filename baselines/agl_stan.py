"""AGL-STAN (Sun et al. 2022) adapted to next-frame prediction of geometric graphs.

The adaptive-graph-learning spatio-temporal attention network of Sun et al. 2022
("AGL-STAN: Adaptive Graph Learning Spatial-Temporal Attention Network for Traffic
Forecasting") as Wu et al. 2023 (ESTAG, Sec. 5 "Baselines", item 4) ran it: a
non-equivariant model fed ``[node feature, x, y, z]`` per node and frame that predicts
the residual ``x(T) - x(T-1)``.

Architecture
------------
* **Adaptive graph learning** (after AGCRN, Bai et al. 2020): learned node embeddings
  ``E (N, d_e)`` give the adjacency ``A = softmax(ReLU(E E^T))`` (row-wise softmax), and
  a Chebyshev-style support set ``S_0 = I``, ``S_1 = A``, ``S_k = 2 A S_{k-1} - S_{k-2}``
  (order ``K = 3``).  Node-adaptive parameters ``W_i = E_i W_pool``, ``b_i = E_i b_pool``
  give, for every frame, ``z_i = sum_k (S_k x)_i W_{i,k} + b_i``:

  .. math::

      \\mathbf z_i(t) = \\sum_{k=0}^{K-1} \\Big(\\sum_j (S_k)_{ij}\\, \\mathbf x_j(t)\\Big)
      \\big(\\mathbf E_i \\mathbf W_{\\text{pool}}\\big)_k + \\mathbf E_i \\mathbf b_{\\text{pool}} .

* **Temporal self-attention** (TSA): the graph-convolved frame, flattened over the nodes
  (one token of width ``N * d`` per frame, ``d = 3 C`` as AGL-STAN ties the per-node
  width to the output width), plus a sinusoidal position encoding of the frame index
  after the first graph convolution, goes through a pre-norm Transformer encoder layer
  (multi-head self-attention over the T frames, feed-forward of width ``filter_size``).
  ``layers`` pairs of (graph conv, TSA), then a final layer norm.
* **Output**: a 2-D convolution that maps the T frames to one (kernel 5×5 over the
  (node, feature) plane, padding 2), giving the residual of every node; it is the
  *output head*, initialised to zero so that an untrained model returns ``x(T-1)``.

The adaptive adjacency replaces a fixed graph, so the dataset's edges are not used
(only N).  Any batch size works, a final partial batch included (the authors'
re-implementation reshaped with a fixed batch size).

Input normalisation (``normalize="zscore"``, default; ``"none"`` is the authors' raw
input): as for :mod:`baselines.stgcn`, the coordinates are standardised per node and
coordinate with running training statistics, and the residual is predicted in units of
the running RMS frame-to-frame displacement.  With raw inputs and the protocol's
learning rate the model sits near the ``x(T-1)`` plateau for the first ~100 epochs on
the MD17 ethanol slice before it starts to learn.

Multi-channel nodes (AdK): ``input_channels="ca"`` (default) feeds the CA channel's
coordinates (``info.ca_channel``) and predicts a residual for every channel (``d = 3C``);
``"all"`` feeds all ``3 C`` coordinates, as the ESTAG authors' protein script did.

Cost: the attention layers are dense in the token width ``N * 3C``; on AdK (N = 214,
C = 4) that is 2568 and the model holds about 53 M parameters (the authors' protein
run used the same width), against 84 k on a 31-joint Motion skeleton.

Defaults follow the ESTAG authors' run of AGL-STAN: embedding width ``d_e`` = hidden
16, Chebyshev order 3, 2 layers, feed-forward width 32.  Heads: 3 (the authors'
6 does not divide ``N * 3`` in general).  Symmetry: none (and the output convolution
mixes neighbouring node indices, so it is not permutation-equivariant either).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from estagbench import Batch, DatasetInfo, register_model

from .stgcn import RunningStandardizer

__all__ = ["AdaptiveGraphConv", "TemporalSelfAttention", "AGLSTAN", "agl_stan"]

_CHANNEL_MODES = ("ca", "all")
_NORMALIZE = ("zscore", "none")


class AdaptiveGraphConv(nn.Module):
    """Adaptive graph convolution with node-adaptive parameters (AGL; Bai et al. 2020, Eqs. 3-5).

    Parameters
    ----------
    c_in, c_out:
        Feature widths in and out.
    cheb_order:
        K, number of supports ``S_0 .. S_{K-1}``.
    embed_dim:
        d_e, width of the node embeddings.

    Shapes: ``x (B, T, N, c_in)``, ``E (N, d_e)`` -> ``(B, T, N, c_out)``.
    """

    def __init__(self, c_in: int, c_out: int, cheb_order: int, embed_dim: int) -> None:
        super().__init__()
        if cheb_order < 1:
            raise ValueError(f"agl-stan: Chebyshev order must be >= 1, got {cheb_order}")
        self.cheb_order = cheb_order
        self.weights_pool = nn.Parameter(torch.empty(embed_dim, cheb_order, c_in, c_out))
        self.bias_pool = nn.Parameter(torch.zeros(embed_dim, c_out))
        nn.init.xavier_uniform_(self.weights_pool.view(embed_dim * cheb_order * c_in, c_out))

    @staticmethod
    def supports(emb: Tensor, order: int) -> Tensor:
        """``(K, N, N)``: ``I``, ``A = softmax(ReLU(E E^T))`` and the Chebyshev recursion."""
        n = emb.shape[0]
        a = torch.softmax(torch.relu(emb @ emb.T), dim=1)
        terms = [torch.eye(n, dtype=emb.dtype, device=emb.device), a][:order]
        while len(terms) < order:
            terms.append(2.0 * a @ terms[-1] - terms[-2])
        return torch.stack(terms)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        s = self.supports(emb, self.cheb_order)
        xg = torch.einsum("knm,btmc->btnkc", s, x)
        w = torch.einsum("nd,dkio->nkio", emb, self.weights_pool)
        b = emb @ self.bias_pool
        return torch.einsum("btnki,nkio->btno", xg, w) + b


class TemporalSelfAttention(nn.Module):
    """Pre-norm Transformer encoder layer over the frame axis (AGL-STAN's TSA layer).

    ``x <- x + MHA(LN(x))``, ``x <- x + FFN(LN(x))``; ``(B, T, D) -> (B, T, D)``.

    Parameters
    ----------
    width:
        D, the token width (``N * d``).
    heads:
        Number of attention heads (must divide ``width``).
    filter_size:
        Hidden width of the feed-forward block.
    """

    def __init__(self, width: int, heads: int, filter_size: int) -> None:
        super().__init__()
        if heads < 1 or width % heads:
            raise ValueError(f"agl-stan: {heads} attention heads do not divide the token width {width}")
        self.heads = heads
        self.norm_attn = nn.LayerNorm(width, eps=1e-6)
        self.q = nn.Linear(width, width, bias=False)
        self.k = nn.Linear(width, width, bias=False)
        self.v = nn.Linear(width, width, bias=False)
        self.o = nn.Linear(width, width, bias=False)
        self.norm_ffn = nn.LayerNorm(width, eps=1e-6)
        self.ffn = nn.Sequential(nn.Linear(width, filter_size), nn.ReLU(), nn.Linear(filter_size, width))

    def forward(self, x: Tensor) -> Tensor:
        B, T, D = x.shape
        y = self.norm_attn(x)

        def split(t: Tensor) -> Tensor:
            return t.view(B, T, self.heads, D // self.heads).transpose(1, 2)

        att = torch.nn.functional.scaled_dot_product_attention(split(self.q(y)), split(self.k(y)), split(self.v(y)))
        x = x + self.o(att.transpose(1, 2).reshape(B, T, D))
        return x + self.ffn(self.norm_ffn(x))


def sinusoidal_encoding(num_frames: int, width: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``(T, width)`` sine/cosine encoding of the frame index (Vaswani et al. 2017; first half sin, second cos)."""
    half = width // 2
    inc = math.log(10000.0) / max(half - 1, 1)
    inv = torch.exp(-inc * torch.arange(half, dtype=torch.float64))
    ang = torch.arange(num_frames, dtype=torch.float64)[:, None] * inv[None, :]
    enc = torch.cat([ang.sin(), ang.cos(), torch.zeros(num_frames, width - 2 * half, dtype=torch.float64)], dim=1)
    return enc.to(dtype=dtype, device=device)


class AGLSTAN(nn.Module):
    """AGL-STAN on dense batches: ``x (B, T, N, C, 3) -> x(T-1) + residual``, ``(B, N, C, 3)``.

    Parameters
    ----------
    info:
        The dataset case (N, C, F, T, CA channel).
    embed_dim:
        d_e, node-embedding width (the paper's hidden 16).
    layers:
        Number of (adaptive graph conv, temporal self-attention) pairs.
    cheb_order:
        K of the adaptive supports.
    heads, filter_size:
        Attention heads and feed-forward width of each TSA layer.
    input_channels, normalize, zero_init_head:
        See the module docstring.
    """

    def __init__(
        self,
        info: DatasetInfo,
        embed_dim: int = 16,
        layers: int = 2,
        cheb_order: int = 3,
        heads: int = 3,
        filter_size: int = 32,
        input_channels: str = "ca",
        normalize: str = "zscore",
        zero_init_head: bool = True,
    ) -> None:
        super().__init__()
        if input_channels not in _CHANNEL_MODES:
            raise ValueError(f"agl-stan: input_channels must be one of {_CHANNEL_MODES}, got {input_channels!r}")
        if normalize not in _NORMALIZE:
            raise ValueError(f"agl-stan: normalize must be one of {_NORMALIZE}, got {normalize!r}")
        if embed_dim < 1 or layers < 1 or filter_size < 1:
            raise ValueError(
                f"agl-stan: embed_dim, layers and filter_size must be >= 1, got {embed_dim}, {layers}, {filter_size}"
            )
        n, c = info.num_nodes, info.num_channels
        self.num_frames, self.num_nodes, self.num_channels = info.history, n, c
        self.ca_channel, self.input_channels = info.ca_channel, input_channels
        coords_in = 3 * (c if input_channels == "all" else 1)
        self.node_dim = 3 * c
        width = n * self.node_dim
        self.node_embeddings = nn.Parameter(torch.randn(n, embed_dim))
        dims = [info.node_feat_dim + coords_in] + [self.node_dim] * layers
        self.gconvs = nn.ModuleList(
            AdaptiveGraphConv(dims[i], dims[i + 1], cheb_order, embed_dim) for i in range(layers)
        )
        self.encoders = nn.ModuleList(TemporalSelfAttention(width, heads, filter_size) for _ in range(layers))
        self.last_norm = nn.LayerNorm(width, eps=1e-6)
        self.head = nn.Conv2d(info.history, 1, kernel_size=5, padding=2)
        self.in_stats = RunningStandardizer((n, coords_in)) if normalize == "zscore" else None
        self.res_stats = RunningStandardizer((n, c, 3)) if normalize == "zscore" else None
        if zero_init_head:
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def features(self, x: Tensor, node_features: Tensor) -> Tensor:
        """``[h, coordinates]`` per node and frame: ``(B, T, N, C, 3) -> (B, T, N, F + 3 or F + 3C)``."""
        B, T, N, C, _ = x.shape
        coords = x.reshape(B, T, N, 3 * C) if self.input_channels == "all" else x[:, :, :, self.ca_channel]
        if self.in_stats is not None:
            self.in_stats.update(coords, dims=(0, 1))
            coords = (coords - self.in_stats.mean.to(x.dtype)) / self.in_stats.std.to(x.dtype)
        return torch.cat([node_features.to(x.dtype).expand(B, T, N, node_features.shape[-1]), coords], dim=-1)

    def forward(self, batch: Batch) -> Tensor:
        """Predict ``x(T)`` ``(B, N, C, 3)`` from ``batch.x (B, T, N, C, 3)``; any B."""
        x = batch.x
        B, T, N, C, _ = x.shape
        if (T, N, C) != (self.num_frames, self.num_nodes, self.num_channels):
            raise ValueError(
                f"agl-stan was built for (T, N, C) = {(self.num_frames, self.num_nodes, self.num_channels)}, "
                f"got {(T, N, C)}"
            )
        emb = self.node_embeddings.to(x.dtype)
        z = self.features(x, batch.h)
        for i, (gconv, enc) in enumerate(zip(self.gconvs, self.encoders, strict=True)):
            z = gconv(z.reshape(B, T, N, -1), emb).reshape(B, T, N * self.node_dim)
            if i == 0:
                z = z + sinusoidal_encoding(T, z.shape[-1], z.dtype, z.device)
            z = enc(z)
        z = self.last_norm(z).reshape(B, T, N, self.node_dim)
        res = self.head(z)[:, 0].reshape(B, N, C, 3)
        scale: Tensor | float = 1.0
        if self.res_stats is not None:
            self.res_stats.update(x[:, 1:] - x[:, :-1], dims=(0, 1))
            scale = self.res_stats.rms.to(x.dtype)
        return x[:, -1] + scale * res


@register_model(
    "agl-stan",
    multichannel=True,
    symmetry="none",
    paper="Sun et al. 2022 (AGL-STAN); residual variant of Wu et al. 2023 (ESTAG)",
)
def agl_stan(
    info: DatasetInfo,
    hidden: int = 16,
    layers: int = 2,
    cheb_order: int = 3,
    heads: int = 3,
    filter_size: int = 32,
    input_channels: str = "ca",
    normalize: str = "zscore",
    zero_init_head: bool = True,
    **unused: Any,
) -> AGLSTAN:
    """AGL-STAN: adaptive graph learning + temporal self-attention, predicting x(T) - x(T-1)."""
    if unused:
        raise ValueError(f"agl-stan: unknown hyper-parameter(s) {sorted(unused)}")
    return AGLSTAN(
        info,
        embed_dim=hidden,
        layers=layers,
        cheb_order=cheb_order,
        heads=heads,
        filter_size=filter_size,
        input_channels=input_channels,
        normalize=normalize,
        zero_init_head=zero_init_head,
    )
