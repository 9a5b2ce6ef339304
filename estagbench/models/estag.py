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
from torch import Tensor, nn

from estagbench import Batch, DatasetInfo, register_model

from ._estag_layers import _ATTENTION, EDFT, ESM, ETM, _activation, _Graph, dft_matrix  # noqa: F401 - re-exported

__all__ = ["EDFT", "ESM", "ETM", "ESTAG", "STAG", "dft_matrix"]

PAPER = "Wu et al., Equivariant Spatio-Temporal Attentive Graph Networks to Simulate Physical Dynamics, NeurIPS 2023"
_POOLING = ("equivariant", "softmax")


#: The layer file is part of ESTAG's definition: hashed with this one (runner.model_source_sha256).
ESTAGBENCH_EXTRA_SOURCES = ("_estag_layers.py",)


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
