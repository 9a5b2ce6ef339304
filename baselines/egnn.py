"""EGNN baselines: ``egnn-s``, ``egnn-m``, ``egnn-t`` (one frame) and ``st-egnn`` (all frames).

EGNN is the E(n)-equivariant graph neural network of Satorras, Hoogeboom & Welling,
"E(n) Equivariant Graph Neural Networks", ICML 2021 (arXiv:2102.09844), Eqs. (3)-(6):

.. math::

    \\mathbf m_{ij} &= \\phi_e\\big(\\mathbf h_i, \\mathbf h_j, \\|\\vec x_i - \\vec x_j\\|^2, a_{ij}\\big) \\\\
    \\vec x_i' &= \\vec x_i + \\frac{c}{|\\mathcal N(i)|} \\sum_{j \\in \\mathcal N(i)}
                 (\\vec x_i - \\vec x_j)\\, \\phi_x(\\mathbf m_{ij}) \\\\
    \\mathbf h_i' &= \\mathbf h_i + \\phi_h\\big(\\mathbf h_i, \\textstyle\\sum_{j} \\mathbf m_{ij}\\big)

How the ESTAG paper ran it (Wu et al. 2023, Sec. 5.1 "Baselines" 2) and 5); ``protocol.md``
"Baselines as the paper ran them") -- facts read from a public derivative of the authors'
code (github.com/miao2y/STEGMN, which keeps the ESTAG training scripts and baselines):

* **EGNN-s / -m / -t** get only the input frame at index 0 / 4 / 9 (T = 10) and return the
  EGNN's output coordinates of that frame.  For a general T the indices are
  ``0``, ``(T - 1) // 2`` and ``T - 1``.
* **ST_EGNN** runs the same EGNN on every past frame (shared weights, frames batched) with
  the initial node features ``Linear(z) + Embedding(t)`` and predicts
  :math:`\\vec x^*(T) = \\sum_t \\operatorname{softmax}(\\mathbf w)_t\\,\\vec x^{(L)}(t)`
  with ``w ~ U(-1, 1)`` at initialisation (:mod:`baselines._temporal`).
* Layer details: ``phi_e`` = Linear-act-Linear-act on ``[h_i, h_j, radial, a_ij]`` (the
  dataset's edge features enter every layer); ``phi_x`` = Linear-act-Linear(no bias,
  Xavier gain 0.001); ``phi_h`` = Linear-act-Linear with a residual connection; the
  coordinate update is the *mean* over neighbours of the raw (unnormalised) difference
  vector; no tanh, no velocity input, hidden 16.
* Depth and activation follow the authors' two scripts: MD17 (single-channel) uses 2 EGNN
  layers with SiLU and ``c = 1``; the protein script (multi-channel) uses 4 layers with
  LeakyReLU(0.2) and ``c = 3``.  These are the defaults when ``layers``/``act``/
  ``coords_weight`` are left ``None`` (chosen from ``info.num_channels``).

Multi-channel nodes (AdK, C = 4 backbone atoms per residue): the relative position
becomes a 3 x C matrix :math:`\\vec Z_{ij}` and the invariant ``radial`` becomes
:math:`\\vec Z_{ij}^\\top \\vec Z_{ij} / \\|\\vec Z_{ij}^\\top \\vec Z_{ij}\\|_F` (C*C numbers;
ESTAG Sec. 4.4 and Appendix C.1).  ``phi_x`` outputs one scalar per channel and channel
``c`` moves along its own difference vector (a channel-wise update, as the authors'
multi-channel EGNN does).  With C = 1 this is exactly EGNN.

Deviation: the authors clamp each coordinate of the per-edge update to [-100, 100]
("never activated"); a per-component clamp is not rotation-equivariant, so it is left out.

Shapes: a :class:`~estagbench.Batch` with ``x (B, T, N, C, 3)``; output ``(B, N, C, 3)``.
Symmetry: E(3)-equivariant in ``x`` (rotations, reflections, translations), permutation-
equivariant in the nodes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from estagbench import Batch, DatasetInfo, register_model

from ._temporal import FrameEmbedding, SoftmaxTemporalPooling

__all__ = [
    "EGNNLayer",
    "EGNN",
    "SingleFrameEGNN",
    "SpatioTemporalEGNN",
    "resolve_frame",
    "make_activation",
    "count_parameters",
]

_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "silu": nn.SiLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "relu": nn.ReLU,
}
_FRAMES = {"first": "0", "middle": "(T - 1) // 2", "last": "T - 1"}

EGNN_PAPER = "Satorras et al., E(n) Equivariant Graph Neural Networks, ICML 2021, arXiv:2102.09844"


def make_activation(name: str) -> nn.Module:
    """A fresh activation module by name: ``silu``, ``leaky_relu`` (slope 0.2) or ``relu``."""
    try:
        return _ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; expected one of {sorted(_ACTIVATIONS)}") from None


def resolve_frame(frame: str | int, history: int) -> int:
    """Index of the single input frame of EGNN-s/m/t.

    Parameters
    ----------
    frame:
        ``"first"`` (0), ``"middle"`` (``(T - 1) // 2``, i.e. 4 for T = 10) or ``"last"``
        (``T - 1``), or an integer index (negative counts from the end).
    history:
        T, the number of past frames.

    Returns
    -------
    int
        A non-negative index in ``[0, T)``.
    """
    if isinstance(frame, str):
        if frame == "first":
            return 0
        if frame == "middle":
            return (history - 1) // 2
        if frame == "last":
            return history - 1
        raise ValueError(f"frame must be one of {sorted(_FRAMES)} or an int, got {frame!r}")
    idx = int(frame)
    if not -history <= idx < history:
        raise ValueError(f"frame index {idx} is out of range for T = {history} past frames")
    return idx % history


def _in_degree(edge_index: Tensor, num_nodes: int, dtype: torch.dtype) -> Tensor:
    """``(N,)`` reciprocal number of incoming edges (0 for isolated nodes)."""
    deg = torch.bincount(edge_index[1], minlength=num_nodes).to(dtype)
    return 1.0 / deg.clamp(min=1.0)


class EGNNLayer(nn.Module):
    """One E_GCL layer of EGNN on dense batches, single- or multi-channel.

    Implements Eqs. (3)-(6) of Satorras et al. 2021 with the ESTAG authors' choices (module
    docstring); for ``C > 1`` the radial term is the Frobenius-normalised Gram matrix
    ``Z^T Z / ||Z^T Z||_F`` of ESTAG Appendix C.1 and ``phi_x`` gives one weight per channel.

    Parameters
    ----------
    hidden:
        H, width of ``h`` and of the messages.
    edge_dim:
        D, width of the static edge features ``a_ij`` (0 for none).
    channels:
        C, position channels per node.
    act:
        Activation name (see :func:`make_activation`).
    coords_weight:
        ``c``, the factor on the mean coordinate update.

    Notes
    -----
    Messages flow ``src -> dst`` (``edge_index = [src, dst]``): node ``i = dst`` receives
    from ``j = src``.  The first linear map of ``phi_e`` acts on the concatenation
    ``[h_i, h_j, radial, a_ij]``; it is evaluated as a sum of slices of one weight matrix
    (same parameters and initialisation as a single ``nn.Linear``), so the ``h`` terms
    are projected once per node instead of once per edge.
    """

    def __init__(
        self, hidden: int, edge_dim: int, channels: int = 1, act: str = "silu", coords_weight: float = 1.0
    ) -> None:
        super().__init__()
        if hidden < 1 or edge_dim < 0 or channels < 1:
            raise ValueError(
                f"EGNNLayer needs hidden >= 1, edge_dim >= 0, channels >= 1; got {hidden}, {edge_dim}, {channels}"
            )
        self.hidden = hidden
        self.edge_dim = edge_dim
        self.channels = channels
        self.coords_weight = float(coords_weight)
        self.radial_dim = 1 if channels == 1 else channels * channels
        self.edge_in = nn.Linear(2 * hidden + self.radial_dim + edge_dim, hidden)
        self.edge_out = nn.Sequential(make_activation(act), nn.Linear(hidden, hidden), make_activation(act))
        self.node_mlp = nn.Sequential(nn.Linear(2 * hidden, hidden), make_activation(act), nn.Linear(hidden, hidden))
        self.coord_mlp = nn.Sequential(nn.Linear(hidden, hidden), make_activation(act), self._coord_head(hidden))

    def _coord_head(self, hidden: int) -> nn.Linear:
        """Last layer of ``phi_x``: C outputs, no bias, Xavier-uniform with gain 0.001."""
        head = nn.Linear(hidden, self.channels, bias=False)
        nn.init.xavier_uniform_(head.weight, gain=0.001)
        return head

    def radial(self, diff: Tensor) -> Tensor:
        """Invariant of the relative positions ``diff (..., C, 3)`` -> ``(..., radial_dim)``.

        ``||x_ij||^2`` for C = 1; the flattened ``Z^T Z / ||Z^T Z||_F`` for C > 1.
        """
        if self.channels == 1:
            return diff.pow(2).sum(dim=-1)
        gram = (diff @ diff.transpose(-1, -2)).flatten(-2)
        return gram / gram.norm(dim=-1, keepdim=True).clamp(min=1e-12)

    def coord_update(self, diff: Tensor, m: Tensor) -> Tensor:
        """Per-edge displacement ``(L, E, C, 3)``: channel c moves along ``diff[..., c, :]``."""
        return diff * self.coord_mlp(m).unsqueeze(-1)

    def forward(
        self,
        h: Tensor,
        x: Tensor,
        edge_index: Tensor,
        edge_attr: Tensor | None,
        inv_deg: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Update ``h (L, N, H)`` and ``x (L, N, C, 3)`` over one shared graph.

        Parameters
        ----------
        h, x:
            Node features and positions; ``L`` is any flattened batch (samples x frames).
        edge_index:
            ``(2, E)`` ``[src, dst]`` of the one graph shared by all ``L`` copies.
        edge_attr:
            ``(E, D)`` static edge features or ``None`` when ``D = 0``.
        inv_deg:
            ``(N,)`` reciprocal in-degrees (computed when ``None``).

        Returns
        -------
        tuple of Tensor
            ``h' (L, N, H)`` and ``x' (L, N, C, 3)``.
        """
        src, dst = edge_index[0], edge_index[1]
        n = x.shape[1]
        if inv_deg is None:
            inv_deg = _in_degree(edge_index, n, x.dtype)
        diff = x.index_select(1, dst) - x.index_select(1, src)  # (L, E, C, 3): x_i - x_j
        radial = self.radial(diff)

        w = self.edge_in.weight
        hd = self.hidden
        w_i, w_j = w[:, :hd], w[:, hd : 2 * hd]
        w_r = w[:, 2 * hd : 2 * hd + self.radial_dim]
        pre = (h @ w_i.T + self.edge_in.bias).index_select(1, dst) + (h @ w_j.T).index_select(1, src)
        pre = pre + radial @ w_r.T
        if self.edge_dim:
            if edge_attr is None:
                raise ValueError(f"EGNNLayer built for {self.edge_dim} edge features, got edge_attr=None")
            pre = pre + edge_attr @ w[:, 2 * hd + self.radial_dim :].T
        m = self.edge_out(pre)  # (L, E, H)

        trans = self.coord_update(diff, m)
        agg_x = x.new_zeros(x.shape).index_add_(1, dst, trans)
        x = x + (self.coords_weight * inv_deg).view(1, n, 1, 1) * agg_x

        agg_h = h.new_zeros(h.shape).index_add_(1, dst, m)
        h = h + self.node_mlp(torch.cat([h, agg_h], dim=-1))
        return h, x


LayerFactory = Callable[..., EGNNLayer]


class EGNN(nn.Module):
    """A stack of :class:`EGNNLayer` (or a subclass) sharing one graph.

    Parameters
    ----------
    hidden, edge_dim, channels, act, coords_weight:
        Passed to every layer.
    layers:
        Number of layers L.
    layer_cls:
        The layer class (``EGNNLayer`` or e.g. :class:`baselines.gmn.GMNLayer`).
    """

    def __init__(
        self,
        hidden: int,
        edge_dim: int,
        channels: int,
        layers: int,
        act: str,
        coords_weight: float,
        layer_cls: LayerFactory = EGNNLayer,
    ) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"EGNN needs layers >= 1, got {layers}")
        self.layers = nn.ModuleList(
            layer_cls(hidden, edge_dim, channels=channels, act=act, coords_weight=coords_weight) for _ in range(layers)
        )

    def forward(self, h: Tensor, x: Tensor, edge_index: Tensor, edge_attr: Tensor | None) -> tuple[Tensor, Tensor]:
        """``h (L, N, H)``, ``x (L, N, C, 3)`` -> updated ``(h, x)`` after all layers."""
        inv_deg = _in_degree(edge_index, x.shape[1], x.dtype)
        for layer in self.layers:
            h, x = layer(h, x, edge_index, edge_attr, inv_deg)
        return h, x


def _check_batch(batch: Batch, info_channels: int, history: int | None, name: str) -> None:
    if batch.x.dim() != 5 or batch.x.shape[-1] != 3:
        raise ValueError(f"{name}: batch.x must be (B, T, N, C, 3), got {tuple(batch.x.shape)}")
    if batch.x.shape[3] != info_channels:
        raise ValueError(f"{name}: built for C = {info_channels} channels, batch has C = {batch.x.shape[3]}")
    if history is not None and batch.x.shape[1] != history:
        raise ValueError(f"{name}: built for T = {history} past frames, batch has T = {batch.x.shape[1]}")


class _EGNNBase(nn.Module):
    """Shared constructor: dataset-dependent defaults, embedding and the EGNN stack."""

    name = "egnn"

    def __init__(
        self,
        info: DatasetInfo,
        num_frames: int,
        hidden: int = 16,
        layers: int | None = None,
        act: str | None = None,
        coords_weight: float | None = None,
        layer_cls: LayerFactory = EGNNLayer,
    ) -> None:
        super().__init__()
        multi = info.num_channels > 1
        self.channels = info.num_channels
        self.hidden = hidden
        self.num_layers = layers if layers is not None else (4 if multi else 2)
        self.act = act if act is not None else ("leaky_relu" if multi else "silu")
        self.coords_weight = coords_weight if coords_weight is not None else (3.0 if multi else 1.0)
        self.embed = FrameEmbedding(info.node_feat_dim, hidden, num_frames)
        self.egnn = EGNN(
            hidden, info.edge_attr_dim, info.num_channels, self.num_layers, self.act, self.coords_weight, layer_cls
        )

    def extra_repr(self) -> str:
        return f"channels={self.channels}, hidden={self.hidden}, layers={self.num_layers}, act={self.act}, coords_weight={self.coords_weight}"


class SingleFrameEGNN(_EGNNBase):
    """EGNN-s/m/t: EGNN on one input frame, returning that frame's output coordinates.

    ``x (B, T, N, C, 3)`` -> ``x^{(L)}`` of frame ``frame`` ``(B, N, C, 3)``; initial
    ``h = Linear(z) + e_0`` (the authors' EGNN with ``num_past = 1``).

    Parameters
    ----------
    info:
        The dataset case.
    frame:
        Which frame, see :func:`resolve_frame`.
    hidden, layers, act, coords_weight:
        See the module docstring (``None`` = the authors' default for ``info``).
    """

    name = "egnn-single"

    def __init__(self, info: DatasetInfo, frame: str | int = "last", **kwargs: object) -> None:
        super().__init__(info, num_frames=1, **kwargs)  # type: ignore[arg-type]
        self.frame_spec = frame
        self.frame = resolve_frame(frame, info.history)
        self.history = info.history

    def forward(self, batch: Batch) -> Tensor:
        """``(B, T, N, C, 3)`` -> ``(B, N, C, 3)``."""
        _check_batch(batch, self.channels, self.history, type(self).__name__)
        x = batch.x[:, self.frame]  # (B, N, C, 3)
        h = self.embed(batch.h.to(x.dtype))[0]  # (N, H)
        h = h.unsqueeze(0).expand(x.shape[0], -1, -1)
        _, x = self.egnn(h, x, batch.edge_index, batch.edge_attr)
        return x


class SpatioTemporalEGNN(_EGNNBase):
    """ST_EGNN: EGNN on every past frame + learned softmax-weighted sum over frames.

    ``h(t) = Linear(z) + e_t``; the EGNN runs on the ``B * T`` frames (shared weights, no
    message passing across frames); the output is ``sum_t softmax(w)_t x^{(L)}(t)``
    ``(B, N, C, 3)`` (ESTAG Sec. 5.1, baselines 5).

    Cost: the per-edge tensors ``(B*T, E, H)``.  On AdK (E = 1134, B*T = 1000) each is
    72 MB, far beyond the cache, and the edge gathers and scatters along the middle axis
    became memory-bound (the step cost 28x an EGNN-t step, not the 10x of its ten frames).
    So more than 4 :attr:`chunk_elements` edge features run in chunks of at most that many
    (8 MB; AdK: 10 chunks of 100 frame graphs; molecule and walk sizes: one pass): the same function (tests: float64 outputs and
    gradients equal the unchunked pass to 1e-10), 1.5x less CPU time per AdK step.

    Parameters
    ----------
    info:
        The dataset case (``info.history`` = T sets the embedding and pooling sizes).
    pool_init:
        Initialisation of the temporal logits (:class:`~baselines._temporal.SoftmaxTemporalPooling`).
    hidden, layers, act, coords_weight, layer_cls:
        See :class:`_EGNNBase` and the module docstring.
    """

    name = "st-egnn"
    #: edge rows x hidden per chunk of frames (2M floats: 8 MB in float32)
    chunk_elements = 2_000_000

    def __init__(self, info: DatasetInfo, pool_init: str = "random", **kwargs: object) -> None:
        super().__init__(info, num_frames=info.history, **kwargs)  # type: ignore[arg-type]
        self.history = info.history
        self.pool = SoftmaxTemporalPooling(info.history, init=pool_init)

    def forward(self, batch: Batch) -> Tensor:
        """``(B, T, N, C, 3)`` -> ``(B, N, C, 3)``."""
        _check_batch(batch, self.channels, self.history, type(self).__name__)
        b, t, n, c, _ = batch.x.shape
        x = batch.x.reshape(b * t, n, c, 3)
        h = self.embed(batch.h.to(x.dtype))  # (T, N, H)
        h = h.unsqueeze(0).expand(b, -1, -1, -1).reshape(b * t, n, -1)
        per_frame = max(1, batch.edge_index.shape[1] * self.hidden)
        chunk = max(1, self.chunk_elements // per_frame)
        chunk = -(-(b * t) // -(-(b * t) // chunk))  # equal chunks
        if chunk >= b * t or b * t * per_frame <= 4 * self.chunk_elements:  # small: one pass costs less
            _, x = self.egnn(h, x, batch.edge_index, batch.edge_attr)
        else:
            x = torch.cat([self.egnn(h[i : i + chunk], x[i : i + chunk], batch.edge_index, batch.edge_attr)[1]
                           for i in range(0, b * t, chunk)])
        return self.pool(x.view(b, t, n, c, 3), dim=1)


def _single(info: DatasetInfo, frame: str | int, **hparams: object) -> nn.Module:
    return SingleFrameEGNN(info, frame=frame, **hparams)


@register_model("egnn-s", multichannel=True, symmetry="E3", paper=EGNN_PAPER, frame="first")
def egnn_s(info: DatasetInfo, frame: str | int = "first", **hparams: object) -> nn.Module:
    """EGNN fed only the first input frame (index 0), Satorras et al. 2021."""
    return _single(info, frame, **hparams)


@register_model("egnn-m", multichannel=True, symmetry="E3", paper=EGNN_PAPER, frame="middle")
def egnn_m(info: DatasetInfo, frame: str | int = "middle", **hparams: object) -> nn.Module:
    """EGNN fed only the middle input frame (index (T-1)//2 = 4 for T = 10), Satorras et al. 2021."""
    return _single(info, frame, **hparams)


@register_model("egnn-t", multichannel=True, symmetry="E3", paper=EGNN_PAPER, frame="last")
def egnn_t(info: DatasetInfo, frame: str | int = "last", **hparams: object) -> nn.Module:
    """EGNN fed only the last input frame (index T-1), Satorras et al. 2021."""
    return _single(info, frame, **hparams)


@register_model("st-egnn", multichannel=True, symmetry="E3", paper=EGNN_PAPER)
def st_egnn(info: DatasetInfo, **hparams: object) -> nn.Module:
    """ST_EGNN: EGNN on every frame + learned softmax temporal pooling (ESTAG Sec. 5.1)."""
    return SpatioTemporalEGNN(info, **hparams)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
