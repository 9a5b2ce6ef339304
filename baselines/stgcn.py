"""STGCN (Yu, Yin & Zhu, IJCAI 2018) adapted to next-frame prediction of geometric graphs.

The spatio-temporal graph convolutional network of Yu et al. 2018 ("Spatio-Temporal
Graph Convolutional Networks: A Deep Learning Framework for Traffic Forecasting",
arXiv:1709.04875) as Wu et al. 2023 (ESTAG, Sec. 5 "Baselines", item 3) ran it: a
non-equivariant model whose input per node and frame is ``[node feature, x, y, z]``
and which predicts the residual ``x(T) - x(T-1)``:

.. math::

    \\vec{\\mathbf x}_i^{*}(T) = \\vec{\\mathbf x}_i(T-1) + f_\\theta\\big(\\{[\\mathbf h_i,
    \\vec{\\mathbf x}_i(t)]\\}_{t, i}\\big)_i .

Architecture (Yu et al. Sec. 3.2-3.4, Fig. 2)
----------------------------------------------
Two ST-Conv "sandwich" blocks, each
``gated temporal conv -> spatial graph conv -> gated temporal conv -> layer norm``,
then an output layer ``gated temporal conv over the remaining frames -> layer norm ->
1x1 conv + sigmoid -> fully connected`` (Yu et al. Fig. 2, right) (the last one is the *output head*, initialised
to zero so that an untrained model returns ``x(T-1)`` exactly).

* Gated temporal convolution (Yu et al. Sec. 3.3): a ``(K_t, 1)`` convolution along time
  with ``2 c_out`` channels split into ``P, Q``; output ``(P + r) ⊙ σ(Q)`` where ``r``
  is the input aligned to ``c_out`` channels (a linear map when narrowing, zero
  padding when widening) and to the last ``T - K_t + 1`` frames, as in the authors' code.
  It shortens the time axis by ``K_t - 1``.
* Spatial graph convolution: Chebyshev polynomials of the scaled Laplacian
  ``L~ = 2 L / λ_max - I``, ``L = I - D^{-1/2} A D^{-1/2}`` (Yu et al. Eq. 3, order
  ``K_s``), or the first-order approximation ``Â = D~^{-1/2} (A + I) D~^{-1/2}``
  (Yu et al. Eq. 5, ``graph_conv="first"``); ``ReLU(Θ *_G x + r)``.
* Layer normalisation over (nodes, channels) per sample and frame.
* Channels ``(64, 16, 64)`` per block (Yu et al. Sec. 4.3), ``K_t = K_s = 3``.

The graph ``A`` is the dataset case's fixed graph (``info.edge_index``: the 1-hop +
2-hop graph on MD17 and Motion, the CA cutoff graph on AdK), symmetrised, unweighted.

Receptive field: each block consumes ``2 (K_t - 1)`` frames and the output layer the
rest, so the model needs ``T >= 4 (K_t - 1) + 1`` past frames (9 for ``K_t = 3``, 5
for ``K_t = 2``); building it for a shorter history raises ``ValueError``.

Multi-channel nodes (AdK)
-------------------------
``input_channels="ca"`` (default): the input coordinates are those of the CA channel
(``info.ca_channel``), as the issue asks; the output head predicts a residual for
*every* channel (``3 C`` outputs per node), so N, C and O atoms move by their own
predicted displacement from the CA-channel features.  ``input_channels="all"`` feeds all
``3 C`` coordinates instead, as the ESTAG authors' protein script did.

Input normalisation (``normalize``)
----------------------------------
Yu et al. z-score their data (Sec. 4.2).  Here (``normalize="zscore"``, default) the
input coordinates are standardised per node and coordinate, and the residual is
predicted in units of the RMS frame-to-frame displacement of each node, channel and
axis; both statistics are accumulated from the *training* batches only
(:class:`RunningStandardizer`, frozen in evaluation mode, saved in the state dict).
``normalize="none"`` feeds raw coordinates as the ESTAG authors did.  On the MD17
ethanol slice at the protocol's learning rate (5e-3) that variant sits on the
``x(T-1)`` plateau (training MSE 0.603e-3, the authors' STGCN figure is 0.606e-3) for
the first 100-250 epochs before it escapes; with z-scoring it learns from the first
epoch.

Symmetry: none.  Absolute coordinates are input features, and the layer norms carry
per-node affine parameters, so the model is neither E(3)- nor permutation-equivariant.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from estagbench import Batch, DatasetInfo, register_model

__all__ = [
    "RunningStandardizer",
    "TemporalGatedConv",
    "ChebGraphConv",
    "STConvBlock",
    "STGCN",
    "graph_supports",
    "stgcn",
]

_GRAPH_CONVS = ("cheb", "first")
_CHANNEL_MODES = ("ca", "all")
_NORMALIZE = ("zscore", "none")


class RunningStandardizer(nn.Module):
    """Z-score statistics accumulated from the training batches (Yu et al. 2018, Sec. 4.2).

    Keeps the cumulative average over training-mode calls of the batch mean ``E[x]``
    and second moment ``E[x^2]`` of a tensor, per element of ``shape`` (like
    ``BatchNorm(momentum=None)``, but the *running* values are used in training and
    evaluation alike, so a prediction never depends on the other samples of its
    batch and no gradient flows through the statistics).  Before the first training
    call the statistics are ``mean = 0``, ``E[x^2] = 1`` (the identity transform).

    Parameters
    ----------
    shape:
        Shape of one statistic, e.g. ``(N, 3)`` for per-node coordinates.
    eps:
        Added to the variance before the square root.
    """

    def __init__(self, shape: tuple[int, ...], eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("count", torch.zeros((), dtype=torch.long))
        self.register_buffer("mean", torch.zeros(shape))
        self.register_buffer("sq_mean", torch.ones(shape))

    def update(self, x: Tensor, dims: tuple[int, ...]) -> None:
        """Fold the batch statistics of ``x`` over ``dims`` into the running ones (training mode only)."""
        if not self.training:
            return
        with torch.no_grad():
            self.count += 1
            w = 1.0 / float(self.count)
            self.mean.lerp_(x.mean(dim=dims).to(self.mean.dtype), w)
            self.sq_mean.lerp_((x * x).mean(dim=dims).to(self.sq_mean.dtype), w)

    @property
    def std(self) -> Tensor:
        """``sqrt(E[x^2] - E[x]^2 + eps)``."""
        return (self.sq_mean - self.mean.square()).clamp_min(0.0).add(self.eps).sqrt()

    @property
    def rms(self) -> Tensor:
        """``sqrt(E[x^2] + eps)``."""
        return (self.sq_mean + self.eps).sqrt()


def _dense_adjacency(edge_index: Tensor, num_nodes: int) -> Tensor:
    """Symmetric unweighted ``(N, N)`` float64 adjacency without self loops."""
    a = torch.zeros(num_nodes, num_nodes, dtype=torch.float64)
    if edge_index.numel():
        a[edge_index[0], edge_index[1]] = 1.0
        a[edge_index[1], edge_index[0]] = 1.0
    a.fill_diagonal_(0.0)
    return a


def _inv_sqrt_degree(a: Tensor) -> Tensor:
    deg = a.sum(dim=1)
    return torch.where(deg > 0, deg.clamp_min(1e-12).rsqrt(), torch.zeros_like(deg))


def graph_supports(edge_index: Tensor, num_nodes: int, graph_conv: str = "cheb", order: int = 3) -> Tensor:
    """Graph-convolution supports of STGCN (Yu et al. 2018, Eqs. 3 and 5).

    Parameters
    ----------
    edge_index:
        ``(2, E)`` edges of the fixed graph (symmetrised here).
    num_nodes:
        N.
    graph_conv:
        ``"cheb"``: ``[T_0(L~), ..., T_{K-1}(L~)]`` with ``T_0 = I``, ``T_1 = L~``,
        ``T_k = 2 L~ T_{k-1} - T_{k-2}`` and ``L~ = 2 L / λ_max - I``;
        ``"first"``: ``[D~^{-1/2} (A + I) D~^{-1/2}]``.
    order:
        K_s, the number of Chebyshev terms (``"cheb"`` only).

    Returns
    -------
    Tensor
        ``(K, N, N)`` float64 (K = ``order`` or 1).
    """
    if graph_conv not in _GRAPH_CONVS:
        raise ValueError(f"graph_conv must be one of {_GRAPH_CONVS}, got {graph_conv!r}")
    a = _dense_adjacency(edge_index, num_nodes)
    eye = torch.eye(num_nodes, dtype=torch.float64)
    if graph_conv == "first":
        a_tilde = a + eye
        d = _inv_sqrt_degree(a_tilde)
        return (d[:, None] * a_tilde * d[None, :]).unsqueeze(0)
    if order < 1:
        raise ValueError(f"Chebyshev order K_s must be >= 1, got {order}")
    d = _inv_sqrt_degree(a)
    lap = eye - d[:, None] * a * d[None, :]
    lam_max = float(torch.linalg.eigvalsh(lap).max()) if num_nodes > 1 else 0.0
    if lam_max < 1e-8:  # no edges: L = I (or 0); fall back to the usual bound
        lam_max = 2.0
    lap_scaled = 2.0 * lap / lam_max - eye
    terms = [eye, lap_scaled][:order]
    while len(terms) < order:
        terms.append(2.0 * lap_scaled @ terms[-1] - terms[-2])
    return torch.stack(terms)


class _Align(nn.Module):
    """Match ``c_in`` to ``c_out`` channels: linear map (narrowing), zero padding (widening) or identity."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.c_in, self.c_out = c_in, c_out
        self.proj = nn.Linear(c_in, c_out) if c_in > c_out else None

    def forward(self, x: Tensor) -> Tensor:
        if self.proj is not None:
            return self.proj(x)
        if self.c_in < self.c_out:
            return F.pad(x, (0, self.c_out - self.c_in))
        return x


class TemporalGatedConv(nn.Module):
    """Gated temporal convolution (Yu et al. 2018, Sec. 3.3): ``(P + r) ⊙ σ(Q)``.

    A ``(K_t, 1)`` convolution along time, written as a linear map of the ``K_t``
    consecutive frames of each node (channels-last layout, no transposes).

    Parameters
    ----------
    c_in, c_out:
        Channels in and out.
    kernel:
        K_t, the temporal kernel size; the time axis shrinks by ``K_t - 1``.
    act:
        ``"glu"`` (gated, default), ``"sigmoid"`` (``σ(conv)``) or ``"linear"``.

    Shapes: ``(B, T, N, c_in) -> (B, T - K_t + 1, N, c_out)``.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, act: str = "glu") -> None:
        super().__init__()
        if act not in ("glu", "sigmoid", "linear"):
            raise ValueError(f"temporal conv act must be 'glu', 'sigmoid' or 'linear', got {act!r}")
        self.kernel, self.act = kernel, act
        self.conv = nn.Linear(kernel * c_in, (2 if act == "glu" else 1) * c_out)
        self.align = _Align(c_in, c_out)

    def forward(self, x: Tensor) -> Tensor:
        B, T, N, c = x.shape
        k = self.kernel
        if k == 1:
            win = x
        else:  # (B, T', N, c, k) -> (B, T', N, c * k)
            win = x.unfold(1, k, 1).reshape(B, T - k + 1, N, c * k)
        out = self.conv(win)
        if self.act == "glu":
            p, q = out.chunk(2, dim=-1)
            return (p + self.align(x[:, k - 1 :])) * torch.sigmoid(q)
        if self.act == "sigmoid":
            return torch.sigmoid(out)
        return out


class ChebGraphConv(nn.Module):
    """Spatial graph convolution ``ReLU(sum_k T_k x Θ_k + b + r)`` (Yu et al. 2018, Eqs. 3/5).

    Parameters
    ----------
    c_in, c_out:
        Channels in and out.
    supports:
        ``(K, N, N)`` from :func:`graph_supports`.

    Shapes: ``(B, T, N, c_in) -> (B, T, N, c_out)``.
    """

    def __init__(self, c_in: int, c_out: int, supports: Tensor) -> None:
        super().__init__()
        k, n, _ = supports.shape
        self.register_buffer("supports", supports.reshape(k * n, n).to(torch.get_default_dtype()), persistent=False)
        self.order = k
        self.theta = nn.Linear(k * c_in, c_out)  # Θ_0 .. Θ_{K-1} side by side, and the bias
        nn.init.xavier_uniform_(self.theta.weight)
        nn.init.zeros_(self.theta.bias)
        self.align = _Align(c_in, c_out)

    def forward(self, x: Tensor) -> Tensor:
        B, T, N, c = x.shape
        xk = torch.matmul(self.supports.to(x.dtype), x)  # (B, T, K*N, c)
        xk = xk.view(B, T, self.order, N, c).transpose(2, 3).reshape(B, T, N, self.order * c)
        return F.relu(self.theta(xk) + self.align(x))


class STConvBlock(nn.Module):
    """The ST-Conv "sandwich" block (Yu et al. 2018, Sec. 3.4, Fig. 2 middle).

    ``TemporalGatedConv -> ChebGraphConv -> TemporalGatedConv -> LayerNorm`` (the norm
    over nodes and channels); ``(B, T, N, c_in) -> (B, T - 2 (K_t - 1), N, c_out)``.
    """

    def __init__(
        self, c_in: int, channels: tuple[int, int, int], kernel: int, supports: Tensor, num_nodes: int
    ) -> None:
        super().__init__()
        c_t, c_s, c_o = channels
        self.temporal1 = TemporalGatedConv(c_in, c_t, kernel)
        self.spatial = ChebGraphConv(c_t, c_s, supports)
        self.temporal2 = TemporalGatedConv(c_s, c_o, kernel)
        self.norm = nn.LayerNorm([num_nodes, c_o])

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.temporal2(self.spatial(self.temporal1(x))))


class STGCN(nn.Module):
    """STGCN on dense batches: ``x (B, T, N, C, 3) -> x(T-1) + residual``, ``(B, N, C, 3)``.

    Parameters
    ----------
    info:
        The dataset case (graph, N, C, F, T, CA channel).
    channels:
        ``(c_t, c_s, c_o)`` of each ST-Conv block.
    kernel:
        K_t, the temporal kernel.
    cheb_order:
        K_s, the Chebyshev order (``graph_conv="cheb"``).
    graph_conv:
        ``"cheb"`` or ``"first"``.
    input_channels:
        ``"ca"`` or ``"all"`` (multi-channel nodes, see the module docstring).
    zero_init_head:
        Initialise the output head to zero (the untrained model returns ``x(T-1)``).
    """

    def __init__(
        self,
        info: DatasetInfo,
        channels: tuple[int, int, int] = (64, 16, 64),
        kernel: int = 3,
        cheb_order: int = 3,
        graph_conv: str = "cheb",
        input_channels: str = "ca",
        normalize: str = "zscore",
        zero_init_head: bool = True,
    ) -> None:
        super().__init__()
        if normalize not in _NORMALIZE:
            raise ValueError(f"stgcn: normalize must be one of {_NORMALIZE}, got {normalize!r}")
        if input_channels not in _CHANNEL_MODES:
            raise ValueError(f"stgcn: input_channels must be one of {_CHANNEL_MODES}, got {input_channels!r}")
        channels = tuple(int(c) for c in channels)  # type: ignore[assignment]
        if len(channels) != 3 or min(channels) < 1:
            raise ValueError(f"stgcn: channels must be three positive widths (c_t, c_s, c_o), got {channels}")
        if kernel < 1:
            raise ValueError(f"stgcn: temporal kernel K_t must be >= 1, got {kernel}")
        need = 4 * (kernel - 1) + 1
        if info.history < need:
            raise ValueError(
                f"stgcn with temporal kernel K_t={kernel} needs a history of at least 4*(K_t-1)+1 = {need} frames "
                f"(two ST-Conv blocks consume {4 * (kernel - 1)}), but {info.dataset}/{info.case} has T={info.history}; "
                "use a longer history or a smaller kernel (K_t=2 needs T >= 5)"
            )
        self.num_frames = info.history
        self.num_channels = info.num_channels
        self.ca_channel = info.ca_channel
        self.input_channels = input_channels
        n = info.num_nodes
        coords_in = 3 * (info.num_channels if input_channels == "all" else 1)
        c_in = info.node_feat_dim + coords_in
        supports = graph_supports(info.edge_index, n, graph_conv, cheb_order)
        c_o = channels[2]
        self.block1 = STConvBlock(c_in, channels, kernel, supports, n)
        self.block2 = STConvBlock(c_o, channels, kernel, supports, n)
        rest = info.history - 4 * (kernel - 1)
        self.out_temporal = TemporalGatedConv(c_o, c_o, rest)
        self.out_norm = nn.LayerNorm([n, c_o])
        self.out_sigmoid = TemporalGatedConv(c_o, c_o, 1, act="sigmoid")
        self.head = nn.Linear(c_o, 3 * info.num_channels)
        self.in_stats = RunningStandardizer((n, coords_in)) if normalize == "zscore" else None
        self.res_stats = RunningStandardizer((n, info.num_channels, 3)) if normalize == "zscore" else None
        if zero_init_head:
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def features(self, x: Tensor, node_features: Tensor) -> Tensor:
        """Per node and frame input ``[h, x]``: ``(B, T, N, C, 3) -> (B, T, N, F + 3 or F + 3C)``.

        With ``normalize="zscore"`` the coordinates are standardised per node and
        coordinate with the running training statistics; ``h`` is passed unchanged.
        """
        B, T, N, C, _ = x.shape
        coords = x.reshape(B, T, N, 3 * C) if self.input_channels == "all" else x[:, :, :, self.ca_channel]
        if self.in_stats is not None:
            self.in_stats.update(coords, dims=(0, 1))
            coords = (coords - self.in_stats.mean.to(x.dtype)) / self.in_stats.std.to(x.dtype)
        h = node_features.to(x.dtype).expand(B, T, N, node_features.shape[-1])
        return torch.cat([h, coords], dim=-1)

    def residual_scale(self, x: Tensor) -> Tensor | float:
        """Unit of the predicted residual: running RMS of the frame-to-frame displacement ``(N, C, 3)``, or 1."""
        if self.res_stats is None:
            return 1.0
        if x.shape[1] > 1:
            self.res_stats.update(x[:, 1:] - x[:, :-1], dims=(0, 1))
        return self.res_stats.rms.to(x.dtype)

    def forward(self, batch: Batch) -> Tensor:
        """Predict ``x(T)`` ``(B, N, C, 3)`` from ``batch.x (B, T, N, C, 3)``."""
        x = batch.x
        B, T, N, C, _ = x.shape
        if T != self.num_frames:
            raise ValueError(f"stgcn was built for T={self.num_frames} frames, got a history of {T}")
        if C != self.num_channels:
            raise ValueError(f"stgcn was built for C={self.num_channels} channels, got {C}")
        z = self.block2(self.block1(self.features(x, batch.h)))
        z = self.out_sigmoid(self.out_norm(self.out_temporal(z)))  # (B, 1, N, c_o)
        res = self.head(z[:, 0]).reshape(B, N, C, 3)
        return x[:, -1] + self.residual_scale(x) * res


@register_model(
    "stgcn",
    multichannel=True,
    symmetry="none",
    paper="Yu, Yin & Zhu 2018 (IJCAI), arXiv:1709.04875; residual variant of Wu et al. 2023 (ESTAG)",
)
def stgcn(
    info: DatasetInfo,
    channels: tuple[int, int, int] = (64, 16, 64),
    kernel: int = 3,
    cheb_order: int = 3,
    graph_conv: str = "cheb",
    input_channels: str = "ca",
    normalize: str = "zscore",
    zero_init_head: bool = True,
    **unused: Any,
) -> STGCN:
    """STGCN: two gated-temporal/graph-conv sandwich blocks predicting x(T) - x(T-1)."""
    unused.pop("hidden", None)  # the shared CLI width; STGCN's widths are `channels`
    if unused:
        raise ValueError(f"stgcn: unknown hyper-parameter(s) {sorted(unused)}")
    return STGCN(
        info,
        channels=channels,
        kernel=kernel,
        cheb_order=cheb_order,
        graph_conv=graph_conv,
        input_channels=input_channels,
        normalize=normalize,
        zero_init_head=zero_init_head,
    )
