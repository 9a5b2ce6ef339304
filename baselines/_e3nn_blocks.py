"""The e3nn building blocks of the TFN-family baselines (ST_TFN, ST_SE(3)-Tr): edge geometry (spherical
harmonics and radial bases, computed once per graph), the channel-wise tensor product and convolution, and
the gated nonlinearity.  Hashed with the models that use them (``ESTAGBENCH_EXTRA_SOURCES``).
"""

from __future__ import annotations

import math

import torch
from e3nn import o3
from e3nn.nn import Gate
from torch import Tensor, nn

from estagbench import Batch
from estagbench.nn import MLP

__all__ = ["SH_IRREPS", "hidden_irreps", "split_frames", "EdgeGeometry", "ChannelwiseTensorProduct",
           "ChannelwiseConvolution", "GatedBlock"]


#: Spherical harmonics of the edge direction used as filters: degrees 0, 1, 2.
SH_IRREPS = o3.Irreps("1x0e + 1x1o + 1x2e")


def hidden_irreps(hidden: int, mul1: int | None = None, mul2: int | None = None, lmax: int = 2) -> o3.Irreps:
    """Hidden feature irreps ``hidden x 0e + mul1 x 1o + mul2 x 2e`` (degrees up to ``lmax``).

    Defaults ``mul1 = hidden // 2``, ``mul2 = hidden // 4`` (at least 1 each).
    """
    if hidden < 1:
        raise ValueError(f"hidden must be >= 1, got {hidden}")
    if lmax not in (0, 1, 2):
        raise ValueError(f"lmax must be 0, 1 or 2 (the paper ran l <= 2), got {lmax}")
    mul1 = max(1, hidden // 2) if mul1 is None else mul1
    mul2 = max(1, hidden // 4) if mul2 is None else mul2
    parts = [f"{hidden}x0e"]
    if lmax >= 1 and mul1 > 0:
        parts.append(f"{mul1}x1o")
    if lmax >= 2 and mul2 > 0:
        parts.append(f"{mul2}x2e")
    return o3.Irreps(" + ".join(parts))


def split_frames(batch: Batch, info_channel: int = 0) -> Tensor:
    """Positions of a single-channel batch as ``(B, T, N, 3)``.

    Raises
    ------
    ValueError
        If the batch has more than one position channel (these models are
        single-channel: ``multichannel=False`` in the registry).
    """
    if batch.x.dim() != 5 or batch.x.shape[-1] != 3:
        raise ValueError(f"expected batch.x of shape (B, T, N, C, 3), got {tuple(batch.x.shape)}")
    if batch.num_channels != 1:
        raise ValueError(f"this model handles single-channel nodes only, got C={batch.num_channels} position channels")
    return batch.x[..., info_channel, :]


class EdgeGeometry(nn.Module):
    """Spherical harmonics and invariant edge scalars of every frame's graph.

    Parameters
    ----------
    irreps_sh:
        Irreps of the filters' angular part (default ``0e + 1o + 2e``).

    Forward
    -------
    pos ``(N, G, 3)`` (node-major: G graphs = samples x frames), edge_index ``(2, E)``
    (``[src j, dst i]``), edge_attr ``(E, D)`` -> ``sh (E, G, dim_sh)``,
    ``scalars (E, G, 1 + D)`` = ``[|r_ij|, a_ij]`` with ``r_ij = x_j - x_i``.
    ``Y(R r) = D(R) Y(r)`` for every orthogonal ``R``.
    """

    def __init__(self, irreps_sh: o3.Irreps = SH_IRREPS) -> None:
        super().__init__()
        self.irreps_sh = o3.Irreps(irreps_sh)

    def forward(self, pos: Tensor, edge_index: Tensor, edge_attr: Tensor) -> tuple[Tensor, Tensor]:
        src, dst = edge_index[0], edge_index[1]
        vec = pos[src] - pos[dst]  # (E, G, 3): from receiver i to sender j
        dist = vec.norm(dim=-1, keepdim=True)
        # normalise by hand with a floor so coincident points give a finite (zero) direction
        unit = vec / dist.clamp_min(1e-9)
        sh = o3.spherical_harmonics(self.irreps_sh, unit, normalize=False, normalization="component")
        attr = edge_attr.to(pos.dtype).unsqueeze(1).expand(-1, pos.shape[1], -1)
        return sh, torch.cat([dist, attr], dim=-1)


def _channelwise_paths(
    irreps_in: o3.Irreps, irreps_sh: o3.Irreps, irreps_target: o3.Irreps
) -> list[list[tuple[int, o3.Irrep]]]:
    """Paths of a channel-wise tensor product, grouped by input irrep.

    Entry ``b`` lists ``(i2, ir_out)`` for input irrep ``b``: every filter degree
    ``irreps_sh[i2]`` and every ``ir_out`` in ``ir_in x ir_sh`` (parity included) that
    occurs in ``irreps_target``.
    """
    wanted = {ir for _, ir in irreps_target}
    paths = [
        [(i2, ir_out) for i2, (_, ir2) in enumerate(irreps_sh) for ir_out in ir1 * ir2 if ir_out in wanted]
        for _, ir1 in irreps_in
    ]
    if not any(paths):
        raise ValueError(f"no tensor-product path from {irreps_in} x {irreps_sh} reaches {irreps_target}")
    return paths


class ChannelwiseTensorProduct(nn.Module):
    r"""e3nn's ``uvu`` tensor product ``f (x) Y`` with per-edge weights, fused for speed.

    For input irrep ``u x l1`` and every path ``(l2, l_out)``:

    .. math::

        z_{u,k} = \sqrt{2 l_{out} + 1}\; w_{u,p} \sum_{i,j} C^{l_1 l_2 l_{out}}_{ijk}\, f_{u,i}\, Y_j

    with ``C = o3.wigner_3j``: exactly ``o3.TensorProduct(irreps_in, irreps_sh,
    irreps_mid, [(b, i2, p, "uvu", True), ...], shared_weights=False)`` with e3nn's
    default component/element normalisation (one path per output irrep), which the
    tests check.  Instead of one einsum per path it contracts ``Y`` with the
    Clebsch-Gordan coefficients once per input irrep (``M = Y C``, ``(..., d1, K)``)
    and applies ``f @ M``: a handful of large matmuls instead of dozens of small
    ops, about an order of magnitude faster on CPU at this size.

    Parameters
    ----------
    irreps_in, irreps_sh, irreps_target:
        Input irreps, filter irreps (one copy of each degree) and the irreps the
        output may contain.

    Attributes
    ----------
    irreps_out:
        Output irreps in *path-major* layout (see :meth:`to_e3nn_layout`).
    weight_numel:
        Number of weights per edge, ``sum_b mul_b * paths_b``.

    Forward
    -------
    ``f (..., dim_in)``, ``sh (..., dim_sh)``, ``weight (..., weight_numel)`` ->
    ``(..., dim_out)`` in path-major layout: for each input irrep ``b`` a
    ``(mul_b, K_b)`` block, ``K_b = sum_p (2 l_out + 1)``.
    """

    def __init__(self, irreps_in: o3.Irreps, irreps_sh: o3.Irreps, irreps_target: o3.Irreps) -> None:
        super().__init__()
        self.irreps_in = o3.Irreps(irreps_in)
        self.irreps_sh = o3.Irreps(irreps_sh)
        if any(mul != 1 for mul, _ in self.irreps_sh):
            raise ValueError(f"irreps_sh must hold one copy of each irrep, got {self.irreps_sh}")
        self.paths = _channelwise_paths(self.irreps_in, self.irreps_sh, o3.Irreps(irreps_target))
        sh_slices = self.irreps_sh.slices()
        in_slices = self.irreps_in.slices()
        self.blocks: list[tuple[int, int, int, int, int, int]] = []  # (b, start, mul, d1, K, n_paths)
        e3nn_irreps: list[tuple[int, o3.Irrep]] = []
        e3nn_index: list[Tensor] = []  # path-major position of each e3nn-layout component
        offset = 0
        bases: list[Tensor] = []
        for b, ((mul, ir1), paths) in enumerate(zip(self.irreps_in, self.paths, strict=True)):
            if not paths:
                continue
            k_total = sum(ir.dim for _, ir in paths)
            basis = torch.zeros(self.irreps_sh.dim, ir1.dim, k_total, dtype=torch.float64)
            path_of_k = []
            k0 = 0
            for p, (i2, ir_out) in enumerate(paths):
                ir2 = self.irreps_sh[i2].ir
                cg = o3.wigner_3j(ir1.l, ir2.l, ir_out.l, dtype=torch.float64)  # (d1, d2, d_out)
                basis[sh_slices[i2], :, k0 : k0 + ir_out.dim] = math.sqrt(ir_out.dim) * cg.permute(1, 0, 2)
                path_of_k += [p] * ir_out.dim
                # e3nn layout of this path's output: (mul, d_out), from block (mul, K) column k0..
                idx = offset + torch.arange(mul)[:, None] * k_total + k0 + torch.arange(ir_out.dim)[None, :]
                e3nn_index.append(idx.reshape(-1))
                e3nn_irreps.append((mul, ir_out))
                k0 += ir_out.dim
            bases.append(basis.reshape(self.irreps_sh.dim, ir1.dim * k_total))
            # (n_paths, K) 0/1 matrix spreading each path's weight over its output components
            # (a matmul: much faster on CPU than index_select along the last axis)
            spread = torch.nn.functional.one_hot(torch.tensor(path_of_k), len(paths)).T
            self.register_buffer(f"spread_{b}", spread.to(torch.get_default_dtype()))
            self.blocks.append((b, in_slices[b].start, mul, ir1.dim, k_total, len(paths)))
            offset += mul * k_total
        self.dim_out = offset
        self.in_sizes = [mul * ir.dim for mul, ir in self.irreps_in]
        self.basis_sizes = [basis.shape[1] for basis in bases]
        self.weight_sizes = [mul * n_paths for _, _, mul, _, _, n_paths in self.blocks]
        self.register_buffer("basis", torch.cat(bases, dim=1).to(torch.get_default_dtype()))
        #: irreps of :meth:`to_e3nn_layout`'s output, one entry per path (unsorted)
        self.irreps_mid = o3.Irreps(e3nn_irreps)
        self.register_buffer("e3nn_index", torch.cat(e3nn_index))
        self.register_buffer("fused_index", torch.argsort(self.e3nn_index))
        self.weight_numel = sum(mul * n_paths for _, _, mul, _, _, n_paths in self.blocks)

    def couple(self, f: Tensor, sh: Tensor) -> list[Tensor]:
        """Unweighted products ``sum_ij C_ijk f_ui Y_j`` per input irrep: ``(..., mul_b, K_b)`` each.

        Shared by several weightings of the same ``f (x) Y`` (keys and values of
        :class:`~baselines.se3_transformer.SE3AttentionLayer`).
        """
        lead = f.shape[:-1]
        # split (not slice): the backward of a split is one cat, a slice's is a zero-filled copy
        parts = f.split(self.in_sizes, dim=-1)
        cg = (sh @ self.basis).split(self.basis_sizes, dim=-1)  # all blocks' Y C in one matmul
        outs = []
        for (b, _, mul, d1, k_total, _), m in zip(self.blocks, cg, strict=True):
            outs.append(parts[b].reshape(*lead, mul, d1) @ m.reshape(*lead, d1, k_total))
        return outs

    def weigh(self, coupled: list[Tensor], weight: Tensor) -> Tensor:
        """Apply per-path, per-channel weights ``(..., weight_numel)`` to :meth:`couple`'s output."""
        outs = []
        for z, w, (b, _, mul, _, k_total, n_paths) in zip(
            coupled, weight.split(self.weight_sizes, dim=-1), self.blocks, strict=True
        ):
            # e3nn's weight order: path-major, then channel
            w = w.reshape(*w.shape[:-1], n_paths, mul).transpose(-1, -2)
            z = z * (w @ getattr(self, f"spread_{b}"))
            outs.append(z.reshape(*z.shape[:-2], mul * k_total))
        return torch.cat(outs, dim=-1) if len(outs) > 1 else outs[0]

    def forward(self, f: Tensor, sh: Tensor, weight: Tensor) -> Tensor:
        return self.weigh(self.couple(f, sh), weight)

    def to_e3nn_layout(self, z: Tensor) -> Tensor:
        """Reorder path-major features ``(..., dim_out)`` to e3nn layout of :attr:`irreps_mid`."""
        return z.index_select(-1, self.e3nn_index)

    def from_e3nn_layout(self, z: Tensor) -> Tensor:
        """Inverse of :meth:`to_e3nn_layout`: e3nn layout of :attr:`irreps_mid` to path-major."""
        return z.index_select(-1, self.fused_index)

    def reference(self) -> o3.TensorProduct:
        """The plain e3nn ``o3.TensorProduct`` this module equals (for tests)."""
        instr: list[tuple[int, int, int, str, bool]] = []
        for b, paths in enumerate(self.paths):
            for i2, _ in paths:
                instr.append((b, i2, len(instr), "uvu", True))
        return o3.TensorProduct(
            self.irreps_in, self.irreps_sh, self.irreps_mid, instr, shared_weights=False, internal_weights=False
        )


class ChannelwiseConvolution(nn.Module):
    """TFN point convolution with self-interaction (Thomas et al. 2018, Eqs. 4-6).

    .. math::

        \\mathbf f'_i = \\operatorname{Lin}_{\\text{self}}(\\mathbf f_i) +
        \\operatorname{Lin}_{\\text{msg}}\\Bigl(\\frac{1}{\\sqrt{\\bar d}}\\sum_{j}
        R(\\lVert r_{ij}\\rVert, a_{ij}) \\odot (\\mathbf f_j \\otimes Y(\\hat r_{ij}))\\Bigr)

    The tensor product is the channel-wise (e3nn ``uvu``) product
    :class:`ChannelwiseTensorProduct` whose per-edge weights come from the radial MLP
    ``R``; ``Lin`` are ``o3.Linear`` (channel mixing within each irrep).  The sum over
    neighbours runs in the fused layout, the reordering to e3nn's layout on nodes.
    E(3)-equivariant in ``f``, invariant in the edge scalars.

    Parameters
    ----------
    irreps_in, irreps_out:
        Node feature irreps before and after.
    irreps_sh:
        Filter irreps (spherical harmonics).
    edge_scalar_dim:
        Width of the invariant edge input of the radial MLP.
    radial_hidden:
        Hidden width of the radial MLP.
    avg_degree:
        Mean in-degree used to normalise the neighbour sum.

    Forward
    -------
    ``f (N, G, dim_in)``, ``sh (E, G, dim_sh)``, ``scalars (E, G, S)``,
    ``edge_index (2, E)`` -> ``(N, G, dim_out)``.  Node-major layout: gathers and the
    ``index_add_`` scatter run along the leading axis, which is contiguous.
    """

    def __init__(
        self,
        irreps_in: o3.Irreps,
        irreps_out: o3.Irreps,
        irreps_sh: o3.Irreps,
        edge_scalar_dim: int,
        radial_hidden: int = 32,
        avg_degree: float = 1.0,
    ) -> None:
        super().__init__()
        self.irreps_in = o3.Irreps(irreps_in)
        self.irreps_out = o3.Irreps(irreps_out)
        self.tp = ChannelwiseTensorProduct(self.irreps_in, irreps_sh, self.irreps_out)
        self.radial = MLP(edge_scalar_dim, radial_hidden, self.tp.weight_numel, layers=2)
        self.lin_msg = o3.Linear(self.tp.irreps_mid, self.irreps_out)
        self.lin_self = o3.Linear(self.irreps_in, self.irreps_out)
        self.norm = 1.0 / math.sqrt(max(avg_degree, 1.0))

    def forward(self, f: Tensor, sh: Tensor, scalars: Tensor, edge_index: Tensor) -> Tensor:
        src, dst = edge_index[0], edge_index[1]
        msg = self.tp(f[src], sh, self.radial(scalars))  # (E, G, dim_mid), fused layout
        agg = torch.zeros(f.shape[0], f.shape[1], msg.shape[-1], dtype=msg.dtype, device=msg.device)
        agg.index_add_(0, dst, msg)
        return self.lin_self(f) + self.lin_msg(self.tp.to_e3nn_layout(agg) * self.norm)


class GatedBlock(nn.Module):
    """e3nn ``Gate`` preceded by the layer producing its input (Weiler et al. 2018).

    ``irreps_hidden`` (``a x 0e + b x 1o + c x 2e``) is the output; the wrapped layer must
    produce ``irreps_gate_in`` = scalars + ``b + c`` gate scalars + the gated irreps.
    Scalars go through SiLU, gates through a sigmoid that multiplies each gated irrep.
    """

    def __init__(self, irreps_hidden: o3.Irreps) -> None:
        super().__init__()
        irreps_hidden = o3.Irreps(irreps_hidden)
        scalars = o3.Irreps([(m, ir) for m, ir in irreps_hidden if ir.l == 0])
        gated = o3.Irreps([(m, ir) for m, ir in irreps_hidden if ir.l > 0])
        gates = o3.Irreps(f"{gated.num_irreps}x0e") if gated.num_irreps > 0 else o3.Irreps("")
        self.gate = Gate(scalars, [nn.functional.silu], gates, [torch.sigmoid] * len(gates), gated)
        self.irreps_in = self.gate.irreps_in
        self.irreps_out = self.gate.irreps_out

    def forward(self, f: Tensor) -> Tensor:
        return self.gate(f)
