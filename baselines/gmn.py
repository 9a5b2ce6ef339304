"""ST_GMN (``st-gmn``): GMN's multi-channel equivariant message passing + temporal pooling.

GMN is the Graph Mechanics Network of Huang, Han, Rong, Xu, Sun & Huang, "Equivariant Graph
Mechanics Networks with Constraints", ICLR 2022 (arXiv:2203.06442).  Its core is a general
orthogonality-equivariant message: for a 3 x C matrix of relative vectors
:math:`\\vec Z_{ij}`, an equivariant output is :math:`\\vec Z_{ij}\\,\\Phi(\\cdot)` with the
C x C matrix :math:`\\Phi` computed from invariants only, among them
:math:`\\vec Z_{ij}^\\top \\vec Z_{ij}`.  ESTAG (Wu et al. 2023, Sec. 4.4 and Appendix C.1)
runs it on AdK residues with the four backbone atoms as channels:

.. math::

    \\mathbf m_{ij} &= \\phi_m\\Big(\\mathbf h_i, \\mathbf h_j,
        \\frac{\\vec Z_{ij}^\\top \\vec Z_{ij}}{\\|\\vec Z_{ij}^\\top \\vec Z_{ij}\\|_F}, a_{ij}\\Big), \\\\
    \\vec X_i' &= \\vec X_i + \\frac{c}{|\\mathcal N(i)|} \\sum_{j \\in \\mathcal N(i)}
        \\vec Z_{ij}\\, \\Phi_X(\\mathbf m_{ij}), \\qquad \\Phi_X(\\mathbf m) \\in \\mathbb R^{C \\times C}, \\\\
    \\mathbf h_i' &= \\mathbf h_i + \\phi_h\\big(\\mathbf h_i, \\textstyle\\sum_j \\mathbf m_{ij}\\big),

where :math:`\\vec Z_{ij} = \\vec X_i - \\vec X_j`.  ST_GMN then applies the same frame-index
embedding and learned softmax pooling over the T frames as ST_EGNN (ESTAG Sec. 5.2: "GMN is
implemented by further adding the weighted temporal pooling similar to ST_EGNN").

Choices and deviations (documented, see also :mod:`baselines.egnn`):

* **Channel mixing.**  ``mixing="full"`` (default) uses the full C x C matrix
  :math:`\\Phi_X` of GMN's general form and of ESTAG Appendix C.1 (``X_ij phi_X(m_ij)``);
  ``mixing="diagonal"`` uses one weight per channel, which is what a public derivative of
  the ESTAG authors' code (github.com/miao2y/STEGMN, ``GMNL``) does and which makes it
  identical to the multi-channel ``st-egnn``.
* **No constraints/velocities.**  GMN's forward-kinematics objects (sticks, hinges) and
  velocity inputs are not defined for protein residues in this protocol; only the
  constraint-free message passing above is used (as ESTAG did).
* **Defaults** follow the authors' protein script: 4 layers, LeakyReLU(0.2), ``c = 3``,
  hidden 16; ``phi_X``'s last layer has no bias and Xavier gain 0.001.  Their per-component
  clamp of the update to [-100, 100] is left out (it is not rotation-equivariant).
* For C = 1 the normalised Gram matrix is the constant 1, so the radial input falls back to
  ``||x_ij||^2`` and the layer is EGNN's.  The paper ran ST_GMN on AdK only, so the
  registry restricts it to the ``adk`` family.

Shapes: ``x (B, T, N, C, 3)`` -> ``(B, N, C, 3)``.  Symmetry: E(3)-equivariant.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from estagbench import DatasetInfo, register_model

from .egnn import EGNNLayer, SpatioTemporalEGNN

__all__ = ["GMNLayer", "DiagonalGMNLayer", "SpatioTemporalGMN"]

# Files besides this one whose code computes ST_GMN (hashed with it, so stored results of other code rerun).
ESTAGBENCH_EXTRA_SOURCES = ("egnn.py",)

GMN_PAPER = "Huang et al., Equivariant Graph Mechanics Networks with Constraints, ICLR 2022, arXiv:2203.06442"
_MIXINGS = ("full", "diagonal")


class GMNLayer(EGNNLayer):
    """Multi-channel GMN layer with a full C x C channel-mixing coordinate map.

    Same message and node updates as :class:`~baselines.egnn.EGNNLayer` (``radial`` is the
    Frobenius-normalised ``Z^T Z`` for C > 1); the coordinate update of channel ``c`` is
    ``sum_k Phi[k, c] Z_ij[:, k]``, i.e. :math:`\\vec Z_{ij}\\Phi_X(\\mathbf m_{ij})`.

    Parameters
    ----------
    hidden, edge_dim, channels, act, coords_weight:
        As for :class:`~baselines.egnn.EGNNLayer`.
    """

    def _coord_head(self, hidden: int) -> nn.Linear:
        head = nn.Linear(hidden, self.channels * self.channels, bias=False)
        nn.init.xavier_uniform_(head.weight, gain=0.001)
        return head

    def coord_update(self, diff: Tensor, m: Tensor) -> Tensor:
        """``diff (L, E, C, 3)``, ``m (L, E, H)`` -> ``Z_ij Phi(m_ij)`` as ``(L, E, C, 3)``."""
        c = self.channels
        phi = self.coord_mlp(m).unflatten(-1, (c, c))  # (L, E, C_in, C_out)
        return torch.einsum("...kc,...kd->...cd", phi, diff)


class DiagonalGMNLayer(EGNNLayer):
    """GMN layer with one coordinate weight per channel (``mixing="diagonal"``)."""


class SpatioTemporalGMN(SpatioTemporalEGNN):
    """ST_GMN: GMN on every past frame + learned softmax-weighted sum over frames.

    Parameters
    ----------
    info:
        The dataset case (C = 4 on AdK).
    mixing:
        ``"full"`` (C x C coordinate map, GMN's general form) or ``"diagonal"``.
    pool_init, hidden, layers, act, coords_weight:
        As for :class:`~baselines.egnn.SpatioTemporalEGNN` (``None`` = the authors'
        protein-script defaults for C > 1).
    """

    name = "st-gmn"

    def __init__(self, info: DatasetInfo, mixing: str = "full", **kwargs: object) -> None:
        if mixing not in _MIXINGS:
            raise ValueError(f"st-gmn: mixing must be one of {_MIXINGS}, got {mixing!r}")
        layer_cls = GMNLayer if mixing == "full" else DiagonalGMNLayer
        super().__init__(info, layer_cls=layer_cls, **kwargs)
        self.mixing = mixing

    def extra_repr(self) -> str:
        return super().extra_repr() + f", mixing={self.mixing}"


@register_model("st-gmn", multichannel=True, symmetry="E3", datasets=("adk",), paper=GMN_PAPER)
def st_gmn(info: DatasetInfo, **hparams: object) -> nn.Module:
    """ST_GMN: GMN (multi-channel equivariant MP) on every frame + softmax temporal pooling."""
    return SpatioTemporalGMN(info, **hparams)
