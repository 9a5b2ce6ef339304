"""Shared pieces of the ``ST_X`` baselines: frame-index embedding and softmax pooling.

The paper's "typical GNNs with trivial spatio-temporal aggregation" (Wu et al. 2023,
ESTAG, Sec. 5.1, baselines 5; ``protocol.md``, "Baselines as the paper ran them") run a
backbone X on every past frame with the frame index embedded in the node features, then
predict the next frame as a learned softmax-weighted sum over the frames:

.. math::

    \\mathbf h_i^{(0)}(t) = W \\mathbf h_i + \\mathbf e_t, \\qquad
    \\vec{\\mathbf x}_i^{*}(T) = \\sum_{t=0}^{T-1} \\operatorname{softmax}(\\mathbf w)_t\\,
    \\vec{\\mathbf x}_i^{(L)}(t).

Public API (import with ``from baselines._temporal import ...``):

* :class:`FrameEmbedding` -- ``FrameEmbedding(in_features, hidden, num_frames)``;
  ``forward(h)`` maps node features ``(N, F)`` (or ``(..., N, F)``) to
  ``(T, N, hidden)`` (or ``(..., T, N, hidden)``): ``Linear(h) + Embedding(t)``.
* :class:`SoftmaxTemporalPooling` -- ``SoftmaxTemporalPooling(num_frames, init="random")``;
  ``forward(x, dim=1)`` returns ``sum_t softmax(w)_t x.select(dim, t)``, i.e. the frame
  axis ``dim`` is reduced away (``(B, T, N, C, 3) -> (B, N, C, 3)`` by default).
  ``.weights`` gives the current softmax weights ``(T,)``.

Symmetry: the embedding acts on invariant features only.  The pooling weights are
non-negative and sum to one, so the pooled output is a convex combination of the
frames: E(3)-equivariant (rotations, reflections *and* translations) whenever each
frame is, and permutation-equivariant in the nodes.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["FrameEmbedding", "SoftmaxTemporalPooling"]

_POOL_INITS = ("random", "uniform", "last")


class FrameEmbedding(nn.Module):
    """Initial per-frame node features ``Linear(h) + e_t`` (ESTAG Sec. 5.1, baselines 5).

    Parameters
    ----------
    in_features:
        F, the node-feature dimension.
    hidden:
        Output width.
    num_frames:
        T, the number of past frames (rows of the learned embedding table).

    Notes
    -----
    The same initialisation ESTAG uses for its own ``h(t)`` (``protocol.md``, "ESTAG
    details"): a linear map of the static node features plus a learned embedding of
    the frame index ``t = 0 .. T-1``.
    """

    def __init__(self, in_features: int, hidden: int, num_frames: int) -> None:
        super().__init__()
        if in_features < 1 or hidden < 1 or num_frames < 1:
            raise ValueError(
                f"FrameEmbedding needs in_features, hidden, num_frames >= 1, got {in_features}, {hidden}, {num_frames}"
            )
        self.num_frames = num_frames
        self.linear = nn.Linear(in_features, hidden)
        self.frame = nn.Embedding(num_frames, hidden)

    def forward(self, h: Tensor, num_frames: int | None = None) -> Tensor:
        """Embed node features for every frame.

        Parameters
        ----------
        h:
            ``(..., N, F)`` node features.
        num_frames:
            T' <= T frames to embed (default: all ``num_frames``).

        Returns
        -------
        Tensor
            ``(..., T', N, hidden)``.
        """
        t = self.num_frames if num_frames is None else num_frames
        if not 1 <= t <= self.num_frames:
            raise ValueError(f"FrameEmbedding built for {self.num_frames} frames, asked for {t}")
        base = self.linear(h).unsqueeze(-3)  # (..., 1, N, H)
        emb = self.frame.weight[:t].to(base.dtype).unsqueeze(-2)  # (T', 1, H)
        return base + emb


class SoftmaxTemporalPooling(nn.Module):
    """Learned convex combination of frames, ``sum_t softmax(w)_t x(t)``.

    Parameters
    ----------
    num_frames:
        T, length of the frame axis to pool.
    init:
        ``"random"`` (default): logits drawn from U(-1, 1) with the global torch RNG,
        as the ESTAG authors' code initialises the temporal weights of its ST_
        baselines (their ``theta.data.uniform_(-1, 1)``); ``"uniform"``: ``w = 0``,
        every frame weighted ``1/T`` at the start; ``"last"``: ``w = 0`` except a
        logit of 5 on the last frame, so training starts near "predict the last frame".

    Notes
    -----
    Equivariance: softmax weights are positive and sum to 1, so for any orthogonal
    ``Q`` and translation ``g``, ``sum_t a_t (Q x_t + g) = Q sum_t a_t x_t + g``.
    """

    def __init__(self, num_frames: int, init: str = "random") -> None:
        super().__init__()
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        if init not in _POOL_INITS:
            raise ValueError(f"init must be one of {_POOL_INITS}, got {init!r}")
        w = torch.zeros(num_frames)
        if init == "random":
            w.uniform_(-1.0, 1.0)
        elif init == "last":
            w[-1] = 5.0
        self.logits = nn.Parameter(w)

    @property
    def weights(self) -> Tensor:
        """Softmax weights ``(T,)``."""
        return torch.softmax(self.logits, dim=0)

    def forward(self, x: Tensor, dim: int = 1) -> Tensor:
        """Pool the frame axis ``dim`` of ``x`` (e.g. ``(B, T, N, C, 3) -> (B, N, C, 3)``)."""
        if x.shape[dim] != self.logits.shape[0]:
            raise ValueError(
                f"SoftmaxTemporalPooling built for T={self.logits.shape[0]} frames, "
                f"got a frame axis (dim {dim}) of size {x.shape[dim]} in shape {tuple(x.shape)}"
            )
        w = torch.softmax(self.logits.to(x.dtype), dim=0)
        shape = [1] * x.dim()
        shape[dim] = -1
        return (x * w.view(shape)).sum(dim=dim)
