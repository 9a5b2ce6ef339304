"""ESTAG: Equivariant Spatio-Temporal Attentive Graph network (Wu et al., NeurIPS 2023).

The model maps T past frames of a geometric graph to the next frame (Eq. 1):

1. **EDFT** (Eq. 3-5, :class:`EDFT`): a DFT over the T frames of every node's
   position, centred per graph and frame; the k = 0 term is dropped.  From the
   spectrum it builds the invariant frequency cross-correlation ``A_ij`` (edge
   feature) and the amplitude ``c_i`` (node feature), each filtered by a learned
   ``w_k(h_i)`` and normalised to sum to one over k.
2. L blocks of
   **ESM** (Eq. 6-9, :class:`ESM`): an EGNN layer run on every frame with shared
   weights, ``A_ij`` as edge feature and ``c_i`` in the node update; and
   **ETM** (Eq. 10-12, :class:`ETM`): per-node attention over frames (forward,
   i.e. causal, by default) updating ``h`` and ``x``.
3. **Equivariant temporal pooling** (Eq. 13): ``x*(T) = x(T-1) + sum_t w_t (x(t) - x(T-1))``
   with ``w`` initialised at zero.

Multi-channel nodes (AdK residues, C = 4 backbone atoms; Appendix C.1) use the
normalised ``Z^T Z`` invariant in place of ``||x_ij||^2``, channel-wise
coordinate updates, and the EDFT of the CA channel only (``info.ca_channel``).

Details the equations leave open follow ``shared/docs/protocol.md`` and the
behaviour of the authors' public code (read for facts, nothing copied):

* ``h_i(t) = Linear(node feature) + Embedding(t)``.
* ``w_k(h_i) = sigmoid(Linear(h_i(k)))`` for k = 1 .. T-1 (the initial features).
* ESM (single channel): messages see ``||x_ij||^2``; the coordinate update uses the
  unit vector ``x_ij / ||x_ij||`` times ``phi_x(m_ij)``, averaged over neighbours;
  the last layer of ``phi_x`` has no bias and starts tiny (Xavier gain 1e-3).
* ESM (multi channel): messages see ``vec(Z_ij Z_ij^T) / ||.||_F``; the update is
  ``Z_ij[c] * phi_X(m_ij)[c]`` (no unit normalisation), averaged over neighbours.
* ETM: q, k, v are two-layer MLPs with the activation after both layers;
  scores are plain dot products; the temporal displacement ``x(t) - x(s)`` is not
  normalised.
* Activation: SiLU for single-channel data, LeakyReLU(0.2) for multi-channel data.
* ``c_i``: Eq. 5's ``||f_i(k)||^2`` by default (``amplitude="paper"``); the authors' code
  uses ``|sum_d f_id(k)^2|`` (``amplitude="authors"``, also invariant).  Both reach the same
  error on the ethanol slice (3 seeds each, see the project notes), so the paper's form is kept.

Implementation (dense batches, no per-sample graph offsets, node-major layout): node
tensors are laid out ``(N, B, T, H)``, edge tensors ``(E, B, T, H)`` and coordinates
``(N, C, 3, B, T)``, so that a gather along the edges is one ``index_select`` of whole
contiguous rows, a scatter one ``index_add_``, and every coordinate update a vectorised
product with a per-(edge or node, sample, frame) scalar.  Terms that do not depend on the
sample or the frame are computed once at that size (``h(0)`` at batch size 1, ``A_ij`` and
``c_i`` once per sample for all frames), the first layer of every MLP is split so that node
terms are computed per node before being gathered per edge, the DFT is one matmul with a
precomputed ``(2(T-1), T)`` matrix, the second layers of the q, k, v MLPs are one batched
product, and the ETM coordinate update shares the attention product with the feature
update.  The last block skips the feature updates whose result the pooling never reads.

Cost: on molecule-sized graphs (3-31 nodes) a step is a few hundred small PyTorch operators,
so per-operator overhead, not arithmetic, dominates; at AdK (214 nodes x 4 channels) the
edge MLPs and the ``index_add_`` scatters dominate, on edge tensors of 72 MB per batch of
100 that do not fit in the cache: so batches of more than 4 :attr:`ESTAG.chunk_elements` edge
features run in chunks of at most that many (AdK: 10 chunks of 10 samples; MD17, walk: one pass), measured
2x less CPU time per AdK step, the same function (tests: float64 outputs and gradients to 1e-10).  (A fused C kernel of the single-channel
model was retired in 2026-12: measured on one core it was 1.3-1.5x slower than this code.)

Inspecting a trained model (Figure 7 of the paper): ``model(batch, return_details=True)``
returns ``(prediction, details)`` with ``details["attention"]`` a list of L tensors
``(B, N, T, T)`` (ETM weights, row t = query frame, column s = key frame),
``details["pool_weights"]`` the ``(T,)`` frame weights of Eq. 13 (the last frame's
weight is ``1 - sum`` of the others), and ``details["A"]`` / ``details["c"]`` the EDFT
features ``(B, E, T-1)`` / ``(B, N, T-1)``.  :meth:`ESTAG.pool_weights` gives the
pooling weights alone.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from estagbench import Batch, DatasetInfo, register_model

__all__ = ["EDFT", "ESM", "ETM", "ESTAG", "STAG", "dft_matrix"]

PAPER = "Wu et al., Equivariant Spatio-Temporal Attentive Graph Networks to Simulate Physical Dynamics, NeurIPS 2023"
_ATTENTION = ("causal", "full", "none")
_POOLING = ("equivariant", "softmax")
_AMPLITUDE = ("paper", "authors")


# --------------------------------------------------------------------------- helpers
def _activation(name: str) -> nn.Module:
    table = {"silu": nn.SiLU, "relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(0.2), "gelu": nn.GELU}
    try:
        return table[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; expected one of {sorted(table)}") from None


def _tiny_linear(in_dim: int, out_dim: int) -> nn.Linear:
    """Bias-free output layer of a coordinate MLP, initialised close to zero (Xavier gain 1e-3)."""
    layer = nn.Linear(in_dim, out_dim, bias=False)
    nn.init.xavier_uniform_(layer.weight, gain=0.001)
    return layer


def dft_matrix(history: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """Real form of the DFT over ``T = history`` frames, without the k = 0 term.

    Returns ``M`` of shape ``(2 (T-1), T)``: rows ``0 .. T-2`` hold
    ``cos(2 pi k t / T)`` and rows ``T-1 .. 2T-3`` hold ``-sin(2 pi k t / T)`` for
    ``k = 1 .. T-1``, so that ``M @ x`` stacks the real and imaginary parts of
    ``torch.fft.fft(x, dim=0)[1:]`` (Eq. 3).  A matmul with this precomputed matrix
    is equivalent to ``torch.fft`` and is cheaper for the small T used here.
    """
    if history < 2:
        raise ValueError(f"EDFT needs at least 2 frames, got history={history}")
    t = torch.arange(history, dtype=torch.float64)
    k = torch.arange(1, history, dtype=torch.float64)
    ang = 2.0 * math.pi * torch.outer(k, t) / history
    return torch.cat([torch.cos(ang), -torch.sin(ang)], dim=0).to(dtype)


class _Graph:
    """Edge bookkeeping for one shared graph in the node-major layout.

    Every per-node tensor has the node axis first, ``(N, ...)``, and every per-edge
    tensor the edge axis first, ``(E, ...)``: a gather is one ``index_select`` of whole
    contiguous rows and a scatter one ``index_add_``.  Edges are ``[row, col] = [i, j]``
    and messages flow from ``j`` into ``i`` (the EGNN convention).
    """

    def __init__(self, edge_index: Tensor, num_nodes: int, dtype: torch.dtype) -> None:
        if edge_index.dim() != 2 or edge_index.shape[0] != 2:
            raise ValueError(f"edge_index must have shape (2, E), got {tuple(edge_index.shape)}")
        self.row = edge_index[0].long()
        self.col = edge_index[1].long()
        self.num_nodes = num_nodes
        deg = torch.zeros(num_nodes, dtype=dtype, device=edge_index.device)
        deg.index_add_(0, self.row, torch.ones_like(self.row, dtype=dtype))
        self.inv_deg = 1.0 / deg.clamp(min=1.0)

    def src(self, t: Tensor) -> Tensor:
        """``(N, ...) -> (E, ...)``: the value at ``i`` for every edge ``(i, j)``."""
        return t.index_select(0, self.row)

    def dst(self, t: Tensor) -> Tensor:
        """``(N, ...) -> (E, ...)``: the value at ``j`` for every edge ``(i, j)``."""
        return t.index_select(0, self.col)

    def sum(self, e: Tensor) -> Tensor:
        """``(E, ...) -> (N, ...)``: sum of the messages arriving at each node."""
        return e.new_zeros((self.num_nodes,) + tuple(e.shape[1:])).index_add_(0, self.row, e)

    def mean(self, e: Tensor) -> Tensor:
        """``(E, ...) -> (N, ...)``: mean over each node's incoming edges (0 if none)."""
        s = self.sum(e)
        return s * self.inv_deg.view((-1,) + (1,) * (s.dim() - 1))


# --------------------------------------------------------------------------- EDFT
class EDFT(nn.Module):
    r"""Equivariant discrete Fourier transform features (Eq. 3-5 of Wu et al. 2023).

    .. math::
        \vec f_i(k) = \sum_t e^{-i 2\pi k t / T} (\vec x_i(t) - \bar{\vec x}(t)),\quad
        A_{ij}(k) = w_k(h_i) w_k(h_j) |\langle \vec f_i(k), \vec f_j(k)\rangle|,\quad
        c_i(k) = w_k(h_i) \|\vec f_i(k)\|^2,

    for k = 1 .. T-1, each then divided by its sum over k.  ``A`` and ``c`` are
    E(3)-invariant (translation is removed by the per-graph centring; the complex
    inner product is unchanged by a real orthogonal map).

    Parameters
    ----------
    hidden:
        Width of ``h``.
    history:
        T.
    use_filter:
        Learn ``w_k(h_i) = sigmoid(Linear(h_i(k)))``; if False, ``w_k = 1`` (Table 7, "w/o w_k").
    amplitude:
        ``"paper"``: ``c_i(k) = w_k ||f_i(k)||^2 = w_k sum_d |f_id|^2`` (Eq. 5);
        ``"authors"``: ``w_k |sum_d f_id^2|`` as in the authors' code (also invariant).
    eps:
        Added to the sums over k before dividing.
    """

    def __init__(self, hidden: int, history: int, use_filter: bool = True, amplitude: str = "paper", eps: float = 1e-9) -> None:
        super().__init__()
        if amplitude not in _AMPLITUDE:
            raise ValueError(f"amplitude must be one of {_AMPLITUDE}, got {amplitude!r}")
        self.history = history
        self.amplitude = amplitude
        self.eps = eps
        self.filter = nn.Linear(hidden, 1) if use_filter else None
        self.register_buffer("dft", dft_matrix(history), persistent=False)

    def spectrum(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Real and imaginary parts of Eq. 3 for ``x`` ``(N, 3, B, T)``: two ``(N, 3, B, T-1)``."""
        xc = x - x.mean(dim=0, keepdim=True)  # centre each frame of each graph
        f = torch.matmul(xc, self.dft.to(x.dtype).t())  # (N, 3, B, 2(T-1))
        k = self.history - 1
        return f[..., :k], f[..., k:]

    def forward(self, x: Tensor, h0: Tensor, graph: _Graph) -> tuple[Tensor, Tensor, Tensor]:
        """EDFT features.

        Parameters
        ----------
        x: ``(N, 3, B, T)`` positions (the CA channel for multi-channel data).
        h0: ``(N, 1 or B, T, H)`` initial node features (for ``w_k``).
        graph: the shared edges.

        Returns
        -------
        A: ``(E, B, T-1)``, c: ``(N, B, T-1)``, w: ``(N, 1 or B, T-1)`` (the filter).
        """
        re, im = self.spectrum(x)
        if self.filter is not None:
            w = torch.sigmoid(self.filter(h0[:, :, 1:])).squeeze(-1)  # (N, .., T-1)
        else:
            w = x.new_ones((x.shape[0], 1, self.history - 1))
        re_i, im_i, re_j, im_j = graph.src(re), graph.src(im), graph.dst(re), graph.dst(im)  # (E, 3, B, K)
        # <f_i, f_j> = sum_d conj(f_id) f_jd
        dot_re = (re_i * re_j + im_i * im_j).sum(1)
        dot_im = (re_i * im_j - im_i * re_j).sum(1)
        a = torch.sqrt(dot_re.square() + dot_im.square()) * (graph.src(w) * graph.dst(w))  # (E, B, K)
        if self.amplitude == "paper":
            c = (re.square() + im.square()).sum(1)
        else:  # |sum_d f_d^2|
            c = torch.sqrt((re.square() - im.square()).sum(1).square() + (2.0 * re * im).sum(1).square())
        c = c * w  # (N, B, K)
        a = a / (a.sum(-1, keepdim=True) + self.eps)
        c = c / (c.sum(-1, keepdim=True) + self.eps)
        return a, c, w


# --------------------------------------------------------------------------- ESM
class ESM(nn.Module):
    r"""Equivariant spatial module: one EGNN layer on every frame (Eq. 6-9; App. C.1).

    .. math::
        m_{ij} = \phi_m(h_i, h_j, \rho_{ij}, a_{ij}),\quad
        h_i \leftarrow h_i + \phi_h(h_i, \textstyle\sum_j m_{ij}, c_i),\quad
        \vec x_i \leftarrow \vec x_i + \frac{1}{|\mathcal N(i)|}\sum_j \vec u_{ij}\, \phi_x(m_{ij}),

    with, for C = 1, ``rho = ||x_ij||^2`` and ``u = x_ij / ||x_ij||``; for C > 1,
    ``rho = vec(Z_ij Z_ij^T) / ||Z_ij Z_ij^T||_F`` and ``u = Z_ij`` with one scalar per
    channel.  ``a_ij`` (the EDFT ``A_ij`` or the dataset's edge features) and ``c_i``
    do not depend on the frame.  E(3)-equivariant in ``x``, invariant in ``h``.

    Shapes (node-major, see :class:`_Graph`): ``h (N, B|1, T, H)``, ``x (N, C, 3, B, T)``,
    ``a (E, B|1, Da)``, ``c (N, B, Dc)`` or None.
    """

    def __init__(self, hidden: int, edge_dim: int, node_attr_dim: int, channels: int, act: str) -> None:
        super().__init__()
        self.hidden = hidden
        self.channels = channels
        self.radial_dim = 1 if channels == 1 else channels * channels
        self.edge_dim = edge_dim
        self.node_attr_dim = node_attr_dim
        # phi_m: Linear([h_i, h_j, rho, a]) -> act -> Linear -> act
        self.edge_in = nn.Linear(2 * hidden + self.radial_dim + edge_dim, hidden)
        self.edge_out = nn.Linear(hidden, hidden)
        # phi_h: Linear([h, sum m, c]) -> act -> Linear
        self.node_in = nn.Linear(2 * hidden + node_attr_dim, hidden)
        self.node_out = nn.Linear(hidden, hidden)
        # phi_x: Linear -> act -> Linear(no bias, tiny)
        self.coord_in = nn.Linear(hidden, hidden)
        self.coord_out = _tiny_linear(hidden, channels)
        self.act = _activation(act)

    def forward(
        self, h: Tensor, x: Tensor, a: Tensor | None, c: Tensor | None, graph: _Graph, update_h: bool = True
    ) -> tuple[Tensor, Tensor]:
        """One ESM layer on all frames; ``update_h=False`` skips the (then unused) feature update."""
        H, C = self.hidden, self.channels
        w = self.edge_in.weight
        # The first layer of phi_m is applied piecewise: node terms at node level, then gathered.
        pre = graph.src(F.linear(h, w[:, :H], self.edge_in.bias)) + graph.dst(F.linear(h, w[:, H : 2 * H]))
        z = graph.src(x) - graph.dst(x)  # (E, C, 3, B, T)  x_ij = x_i - x_j
        if C == 1:
            radial = z.square().sum(2)  # ||x_ij||^2, (E, 1, B, T)
            inv_norm = radial.clamp_min(1e-24).rsqrt()  # 1 / max(||x_ij||, 1e-12)
            pre = torch.addcmul(pre, radial.squeeze(1).unsqueeze(-1), w[:, 2 * H])  # (E, B, T, H)
        else:
            zr = z.permute(0, 3, 4, 1, 2).reshape(-1, C, 3)  # (E*B*T, C, 3)
            gram = torch.bmm(zr, zr.transpose(1, 2)).view(z.shape[0], z.shape[3], z.shape[4], C * C)  # Z_ij Z_ij^T
            radial = F.normalize(gram, p=2.0, dim=-1)  # (E, B, T, C*C)
            pre = pre + F.linear(radial, w[:, 2 * H : 2 * H + self.radial_dim])
        if self.edge_dim:
            if a is None:
                raise ValueError("ESM was built with edge features but got none")
            pre = pre + F.linear(a, w[:, 2 * H + self.radial_dim :]).unsqueeze(2)  # same for all frames
        m = self.act(self.edge_out(self.act(pre)))  # (E, B, T, H)

        phi = self.coord_out(self.act(self.coord_in(m)))  # (E, B, T, C)
        if C == 1:
            scale = phi.squeeze(-1).unsqueeze(1) * inv_norm  # unit vector x_ij/||x_ij|| times phi; (E, 1, B, T)
            dx = graph.mean(z * scale.unsqueeze(2))  # (N, 1, 3, B, T)
        else:
            dx = graph.mean(z * phi.permute(0, 3, 1, 2).unsqueeze(2))  # (N, C, 3, B, T)
        x = x + dx
        if not update_h:
            return h, x

        wn = self.node_in.weight
        agg = graph.sum(m)  # (N, B, T, H)
        pre_h = F.linear(h, wn[:, :H], self.node_in.bias) + F.linear(agg, wn[:, H : 2 * H])
        if self.node_attr_dim:
            if c is None:
                raise ValueError("ESM was built with node attributes but got none")
            pre_h = pre_h + F.linear(c, wn[:, 2 * H :]).unsqueeze(2)
        h = h + self.node_out(self.act(pre_h))
        return h, x


# --------------------------------------------------------------------------- ETM
class ETM(nn.Module):
    r"""Equivariant temporal module: per-node attention over frames (Eq. 10-12; App. C.1).

    .. math::
        \alpha_i(t,s) = \mathrm{softmax}_{s \le t}\, q_i(t)^\top k_i(s),\quad
        h_i(t) \leftarrow h_i(t) + \sum_s \alpha_i(t,s) v_i(s),\quad
        \vec x_i(t) \leftarrow \vec x_i(t) + \sum_s \alpha_i(t,s)(\vec x_i(t) - \vec x_i(s))\,\phi_x(v_i(s)),

    with ``s <= t`` (forward attention) when ``causal`` and all s otherwise (the
    full attention of App. D.4).  For C > 1, ``phi_x`` gives one scalar per channel.
    E(3)-equivariant in ``x`` (translations cancel in ``x(t) - x(s)``), invariant in ``h``.

    Shapes (node-major): ``h (N, B, T, H)``, ``x (N, C, 3, B, T)``; also returns
    ``alpha (N, B, T, T)`` (row t = query frame, column s = key frame).
    """

    def __init__(self, hidden: int, channels: int, act: str, causal: bool = True) -> None:
        super().__init__()
        self.hidden = hidden
        self.causal = causal
        self.q = nn.Sequential(nn.Linear(hidden, hidden), _activation(act), nn.Linear(hidden, hidden), _activation(act))
        self.k = nn.Sequential(nn.Linear(hidden, hidden), _activation(act), nn.Linear(hidden, hidden), _activation(act))
        self.v = nn.Sequential(nn.Linear(hidden, hidden), _activation(act), nn.Linear(hidden, hidden), _activation(act))
        self.coord = nn.Sequential(nn.Linear(hidden, hidden), _activation(act), _tiny_linear(hidden, channels))

    def _qkv(self, h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The three MLPs ``act(L2(act(L1(h))))`` evaluated together: the first layers stacked
        into one ``(3H, H)`` layer, the second ones as one batched product of three ``(H, H)``."""
        H, act = self.hidden, self.q[1]
        l1, l2 = (self.q[0], self.k[0], self.v[0]), (self.q[2], self.k[2], self.v[2])
        u = act(F.linear(h, torch.cat([m.weight for m in l1]), torch.cat([m.bias for m in l1])))  # (.., 3H)
        u3 = u.reshape(-1, 3, H).transpose(0, 1)  # (3, R, H)
        w2 = torch.stack([m.weight.t() for m in l2])  # (3, H, H)
        b2 = torch.stack([m.bias for m in l2]).unsqueeze(1)  # (3, 1, H)
        q, k, v = act(torch.baddbmm(b2, u3, w2)).view((3,) + h.shape).unbind(0)
        return q, k, v

    @staticmethod
    def _causal_mask_key_major(t: int, like: Tensor) -> Tensor:
        """``(T, T)`` additive mask indexed ``[s, t]``: 0 where ``s <= t``, ``-inf`` below the diagonal."""
        return torch.full((t, t), float("-inf"), dtype=like.dtype, device=like.device).tril_(-1)

    def forward(
        self, h: Tensor, x: Tensor, return_alpha: bool = False, update_h: bool = True
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """One ETM layer; ``update_h=False`` skips the feature update (unused after the last block).

        Returns the new ``h``, ``x`` and, if ``return_alpha``, the attention ``(N, B, T, T)``.
        """
        H, C, T = self.hidden, x.shape[1], h.shape[2]
        q, k, v = self._qkv(h)  # (N, B, T, H) each
        phi = self.coord(v)  # (N, B, T, C): one scalar per key frame s (and channel)
        # Scores are laid out key-major, (N, B, S, T) with row s (key) and column t (query), and
        # normalised over dim -2: PyTorch's CPU softmax over a last dimension as short as T is several
        # times slower (fwd + bwd) than over a middle one.  ``alpha`` is the (N, B, T, S) view of it.
        scores = torch.matmul(k, q.transpose(-1, -2))  # q_t . k_s, no 1/sqrt(d)
        if self.causal:
            scores = scores + self._causal_mask_key_major(T, scores)
        alpha = torch.softmax(scores, dim=-2).transpose(-1, -2)  # (N, B, T, S): row t (query), column s (key)
        # sum_s a_ts (x_t - x_s) phi_s = x_t (sum_s a_ts phi_s) - sum_s a_ts (phi_s x_s): both sums are
        # attention-weighted values, so they share one product with v.
        phi_cm = phi.permute(0, 3, 1, 2).unsqueeze(2)  # (N, C, 1, B, T)
        px = (x * phi_cm).permute(0, 3, 4, 1, 2).flatten(-2)  # (N, B, T, 3C)
        vals = torch.cat([v, phi, px] if update_h else [phi, px], dim=-1)  # (N, B, T, [H +] 4C)
        out = torch.matmul(alpha, vals)
        off = H if update_h else 0
        if update_h:
            h = h + out[..., :H]
        s_phi = out[..., off : off + C].permute(0, 3, 1, 2).unsqueeze(2)  # (N, C, 1, B, T)
        s_px = out[..., off + C :].unflatten(-1, (C, 3)).permute(0, 3, 4, 1, 2)  # (N, C, 3, B, T)
        x = x + x * s_phi - s_px
        return h, x, (alpha if return_alpha else None)


# --------------------------------------------------------------------------- ESTAG
class ESTAG(nn.Module):
    """ESTAG (Wu et al. 2023), Eq. 3-13, single- and multi-channel (Appendix C.1).

    Parameters
    ----------
    info:
        The dataset case (N, C, T, node and edge features, graph).
    hidden:
        Width of the invariant features (16 in the paper).
    layers:
        Number L of ESTAG blocks, each one ESM + one ETM (2 in the paper; Table 5).
    attention:
        ``"causal"`` (forward attention, Eq. 10), ``"full"`` (App. D.4, rollout) or
        ``"none"`` (no ETM; Table 4 "w/o Attention").
    edft:
        Use the EDFT features; if False, ESM gets the dataset's edge features
        ``info.edge_attr`` and no ``c_i`` (Table 4 "w/o EDFT").
    spectral_filter:
        Learn ``w_k(h_i)``; False gives Table 7 "w/o w_k".
    pooling:
        ``"equivariant"`` (Eq. 13, weights start at 0) or ``"softmax"`` (a softmax-weighted
        mean of the T output frames, logits start at 0; Table 4 "w/o Temporal").
    amplitude:
        ``"paper"`` (Eq. 5) or ``"authors"``; see :class:`EDFT`.
    act:
        Activation name; default ``"silu"`` for C = 1 and ``"leaky_relu"`` (slope 0.2) for C > 1.
    ``forward(batch)`` maps ``batch.x (B, T, N, C, 3)`` to ``(B, N, C, 3)``.
    """

    def __init__(
        self,
        info: DatasetInfo,
        hidden: int = 16,
        layers: int = 2,
        attention: str = "causal",
        edft: bool = True,
        spectral_filter: bool = True,
        pooling: str = "equivariant",
        amplitude: str = "paper",
        act: str | None = None,
    ) -> None:
        super().__init__()
        if attention not in _ATTENTION:
            raise ValueError(f"attention must be one of {_ATTENTION}, got {attention!r}")
        if pooling not in _POOLING:
            raise ValueError(f"pooling must be one of {_POOLING}, got {pooling!r}")
        if layers < 1:
            raise ValueError(f"layers must be >= 1, got {layers}")
        if info.history < 2:
            raise ValueError(f"ESTAG needs history T >= 2, got {info.history}")
        if not 0 <= info.ca_channel < info.num_channels:
            raise ValueError(f"ca_channel {info.ca_channel} out of range for {info.num_channels} channels")
        self.history = info.history
        self.num_nodes = info.num_nodes
        self.channels = info.num_channels
        self.ca_channel = info.ca_channel
        self.hidden = hidden
        self.attention = attention
        self.pooling = pooling
        act = act or ("silu" if self.channels == 1 else "leaky_relu")
        self.act_name = act

        self.embed = nn.Linear(info.node_feat_dim, hidden)
        self.time_embed = nn.Embedding(self.history, hidden)
        k = self.history - 1
        if edft:
            eps = 1e-9 if self.channels == 1 else 1e-6
            self.edft: EDFT | None = EDFT(hidden, self.history, spectral_filter, amplitude, eps)
            edge_dim, node_attr_dim = k, k
        else:
            self.edft = None
            edge_dim, node_attr_dim = info.edge_attr_dim, 0
        self.esm = nn.ModuleList(ESM(hidden, edge_dim, node_attr_dim, self.channels, act) for _ in range(layers))
        if attention == "none":
            self.etm = None
        else:
            self.etm = nn.ModuleList(ETM(hidden, self.channels, act, causal=attention == "causal") for _ in range(layers))
        # Eq. 13: one weight per frame t = 0 .. T-2 (equivariant) or logits for all T (softmax).
        n_w = k if pooling == "equivariant" else self.history
        self.pool = nn.Parameter(torch.zeros(n_w))
        #: the code that ran the last forward pass (recorded with results); one implementation now
        self.implementation = "torch"

    #: edges x frames x hidden per chunk of samples (2M: 8 MB per edge tensor in float32)
    chunk_elements = 2_000_000

    def pool_weights(self) -> Tensor:
        """The ``(T,)`` weights the output gives to the T frames of the last block.

        Equivariant pooling: ``[w_0, ..., w_{T-2}, 1 - sum w]`` (they sum to one, so the
        result is an affine combination, Eq. 13); softmax pooling: ``softmax(logits)``.
        """
        if self.pooling == "equivariant":
            return torch.cat([self.pool, (1.0 - self.pool.sum()).unsqueeze(0)])
        return torch.softmax(self.pool, 0)

    def forward(self, batch: Batch, return_details: bool = False) -> Tensor | tuple[Tensor, dict[str, Any]]:
        x_in = batch.x
        if x_in.dim() != 5 or x_in.shape[1] != self.history or x_in.shape[3] != self.channels or x_in.shape[4] != 3:
            raise ValueError(
                f"ESTAG was built for x of shape (B, {self.history}, N, {self.channels}, 3), got {tuple(x_in.shape)}"
            )
        per_sample = max(1, batch.edge_index.shape[1] * self.history * self.hidden)
        chunk = max(1, self.chunk_elements // per_sample)
        chunk = -(-x_in.shape[0] // -(-x_in.shape[0] // chunk))  # equal chunks (100 = 50 + 50, not 90 + 10)
        # only batches well beyond the budget (AdK): below, the extra operators cost more than the cache saves
        if x_in.shape[0] * per_sample > 4 * self.chunk_elements and chunk < x_in.shape[0] and not return_details:  # samples are independent: chunks keep edge tensors in cache
            return torch.cat([self.forward(Batch(x_in[i : i + chunk], batch.h, batch.edge_index, batch.edge_attr))
                              for i in range(0, x_in.shape[0], chunk)])
        n = x_in.shape[2]
        graph = _Graph(batch.edge_index, n, x_in.dtype)  # a few tiny ops (no cache: torch.compile can trace it)
        x = x_in.permute(2, 3, 4, 0, 1).contiguous()  # (N, C, 3, B, T): node-major, coordinates before samples
        # h_i(t) = Linear(z_i) + Emb(t): the same for every sample, so kept at batch size 1.
        h = (self.embed(batch.h.to(x.dtype)).unsqueeze(1) + self.time_embed.weight.to(x.dtype)).unsqueeze(1)  # (N, 1, T, H)

        details: dict[str, Any] = {}
        if self.edft is not None:
            a, c, w = self.edft(x[:, self.ca_channel], h, graph)  # (E, B, K), (N, B, K)
            if return_details:
                details.update(A=a.transpose(0, 1), c=c.transpose(0, 1), w=w.transpose(0, 1))
        else:
            a, c = batch.edge_attr.to(x.dtype).unsqueeze(1), None  # (E, 1, D)
        attn = []
        for i, esm in enumerate(self.esm):
            last = i == len(self.esm) - 1
            h, x = esm(h, x, a, c, graph, update_h=not last or self.etm is not None)
            if self.etm is not None:
                h, x, alpha = self.etm[i](h, x, return_alpha=return_details, update_h=not last)
                attn.append(None if alpha is None else alpha.transpose(0, 1))

        last = x[..., -1]  # (N, C, 3, B)
        if self.pooling == "equivariant":
            out = last + torch.matmul(x[..., :-1] - last.unsqueeze(-1), self.pool.to(x.dtype))
        else:
            out = torch.matmul(x, torch.softmax(self.pool, 0).to(x.dtype))
        out = out.permute(3, 0, 1, 2)  # (B, N, C, 3)
        if return_details:
            details.update(attention=attn, pool_weights=self.pool_weights().detach())
            return out, details
        return out


# --------------------------------------------------------------------------- STAG
class STAG(nn.Module):
    """STAG: the non-equivariant spatio-temporal attentive network (Table 4 "w/o Equivariance").

    Each node and frame starts from ``Linear([node feature, x_i(t) (C*3 numbers)]) + Emb(t)``
    (raw coordinates, so neither rotation- nor translation-equivariant).  L blocks of a
    plain message-passing layer (``m_ij = MLP([h_i, h_j, e_ij])``, ``h_i += MLP([h_i, sum_j m_ij])``,
    on every frame) and a per-node temporal attention (forward or full, as in :class:`ETM`
    but on ``h`` only) follow.  The read-out maps the T final features of a node to the
    residual ``x(T) - x(T-1)`` with one linear layer (the authors' STAG predicts that residual too).
    """

    def __init__(self, info: DatasetInfo, hidden: int = 16, layers: int = 2, attention: str = "causal", act: str | None = None) -> None:
        super().__init__()
        if attention not in _ATTENTION:
            raise ValueError(f"attention must be one of {_ATTENTION}, got {attention!r}")
        self.history = info.history
        self.channels = info.num_channels
        self.hidden = hidden
        self.causal = attention == "causal"
        act = act or ("silu" if self.channels == 1 else "leaky_relu")
        self.embed = nn.Linear(info.node_feat_dim + 3 * self.channels, hidden)
        self.time_embed = nn.Embedding(self.history, hidden)
        e = info.edge_attr_dim
        self.edge_mlps = nn.ModuleList(
            nn.Sequential(nn.Linear(2 * hidden + e, hidden), _activation(act), nn.Linear(hidden, hidden), _activation(act))
            for _ in range(layers)
        )
        self.node_mlps = nn.ModuleList(
            nn.Sequential(nn.Linear(2 * hidden, hidden), _activation(act), nn.Linear(hidden, hidden)) for _ in range(layers)
        )
        self.attn = (
            nn.ModuleList(nn.Linear(hidden, 3 * hidden) for _ in range(layers)) if attention != "none" else None
        )
        self.readout = nn.Linear(self.history * hidden, 3 * self.channels)

    def forward(self, batch: Batch) -> Tensor:
        x = batch.x  # (B, T, N, C, 3)
        B, T, N, C, _ = x.shape
        if T != self.history or C != self.channels:
            raise ValueError(f"STAG was built for T={self.history}, C={self.channels}; got x of shape {tuple(x.shape)}")
        graph = _Graph(batch.edge_index, N, x.dtype)
        feats = torch.cat([batch.h.to(x.dtype).expand(B, T, N, -1), x.flatten(-2)], -1)  # (B, T, N, F + 3C)
        h = (self.embed(feats) + self.time_embed.weight.to(x.dtype)[None, :, None]).permute(2, 0, 1, 3)  # (N, B, T, H)
        e = batch.edge_attr.to(x.dtype)[:, None, None].expand(-1, B, T, -1)  # (E, B, T, D)
        for i, (edge_mlp, node_mlp) in enumerate(zip(self.edge_mlps, self.node_mlps, strict=True)):
            m = edge_mlp(torch.cat([graph.src(h), graph.dst(h), e], -1))
            h = h + node_mlp(torch.cat([h, graph.sum(m)], -1))
            if self.attn is not None:
                q, k, v = self.attn[i](h).chunk(3, -1)
                s = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.hidden)
                if self.causal:
                    s = s.masked_fill(torch.ones(T, T, dtype=torch.bool, device=x.device).triu_(1), float("-inf"))
                h = h + torch.matmul(torch.softmax(s, -1), v)
        res = self.readout(h.flatten(-2)).transpose(0, 1).reshape(B, N, C, 3)
        return x[:, -1] + res


# --------------------------------------------------------------------------- registry
_ESTAG_KW = ("hidden", "layers", "attention", "edft", "spectral_filter", "pooling", "amplitude", "act")


def _build_estag(info: DatasetInfo, **hp: Any) -> ESTAG:
    unknown = set(hp) - set(_ESTAG_KW)
    if unknown:
        raise ValueError(f"unknown ESTAG hyper-parameter(s) {sorted(unknown)}; valid: {list(_ESTAG_KW)}")
    return ESTAG(info, **hp)


@register_model("estag", multichannel=True, symmetry="E3", paper=PAPER)
def estag(info: DatasetInfo, **hp: Any) -> nn.Module:
    """ESTAG: EDFT + L x (ESM + forward-attention ETM) + equivariant temporal pooling."""
    return _build_estag(info, **hp)


@register_model("estag-no-edft", multichannel=True, symmetry="E3", paper=PAPER, edft=False)
def estag_no_edft(info: DatasetInfo, **hp: Any) -> nn.Module:
    """ESTAG w/o EDFT (Table 4): the dataset's edge features instead of A_ij, no c_i."""
    return _build_estag(info, **hp)


@register_model("estag-no-attn", multichannel=True, symmetry="E3", paper=PAPER, attention="none")
def estag_no_attn(info: DatasetInfo, **hp: Any) -> nn.Module:
    """ESTAG w/o Attention (Table 4): no ETM."""
    return _build_estag(info, **hp)


@register_model("estag-no-pool", multichannel=True, symmetry="E3", paper=PAPER, pooling="softmax")
def estag_no_pool(info: DatasetInfo, **hp: Any) -> nn.Module:
    """ESTAG w/o Temporal pooling (Table 4): softmax-weighted mean of the output frames."""
    return _build_estag(info, **hp)


@register_model("estag-no-wk", multichannel=True, symmetry="E3", paper=PAPER, spectral_filter=False)
def estag_no_wk(info: DatasetInfo, **hp: Any) -> nn.Module:
    """ESTAG w/o the spectral filter w_k (Table 7)."""
    return _build_estag(info, **hp)


@register_model("estag-full-attn", multichannel=True, symmetry="E3", paper=PAPER, attention="full")
def estag_full_attn(info: DatasetInfo, **hp: Any) -> nn.Module:
    """ESTAG with full (non-causal) temporal attention, as used for rollout (App. D.4)."""
    return _build_estag(info, **hp)


@register_model("stag", multichannel=True, symmetry="none", paper=PAPER)
def stag(info: DatasetInfo, hidden: int = 16, layers: int = 2, attention: str = "causal", act: str | None = None) -> nn.Module:
    """STAG: ESTAG w/o Equivariance (Table 4), a non-equivariant spatio-temporal attentive GNN."""
    return STAG(info, hidden=hidden, layers=layers, attention=attention, act=act)
