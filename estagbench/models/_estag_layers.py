"""The building blocks of ESTAG (Wu et al., NeurIPS 2023, Sec. 4): EDFT (Eqs. 3-6), ESM (Eqs. 7-9) and
ETM (Eqs. 10-12), with the per-graph precomputation they share (:class:`_Graph`).

:mod:`estagbench.models.estag` assembles them into the model (Eq. 13) and registers its variants; this
file is hashed with it (``ESTAGBENCH_EXTRA_SOURCES``), so a stored result of changed layer code is stale.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["EDFT", "ESM", "ETM", "dft_matrix"]

_ATTENTION = ("causal", "full", "none")
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
