"""ST_GNN written with DGL's message passing (``st-gnn-dgl``): the DGL interoperability proof.

The same model as :mod:`baselines.st_gnn` (Gilmer et al. 2017 per frame, frame-index
embedding, softmax temporal pooling; Wu et al. 2023, ESTAG, Sec. 5 baselines item 5),
but registered with ``batch_transform=batch_to_dgl``: the runner hands it a batched
``dgl.DGLGraph`` (node data ``x (B*N, T, C, 3)``, ``h (B*N, F)``; edge data
``a (B*E, D)``, see :mod:`baselines._dgl_adapter`) and each layer's messages are
computed with DGL's built-ins (``g.apply_edges(u_add_v)`` for the node terms of the
first message layer, then the message MLP on the edges) and summed with
``g.update_all(copy_e, sum)``.

:class:`STGNNDGL` subclasses :class:`~baselines.st_gnn.STGNN` and only swaps
:meth:`~baselines.st_gnn.STGNN.propagate`; it creates its parameters in the same order,
so with the same seed both models hold identical weights and give the same outputs
(and the same training losses) up to float summation order.

DGL is imported lazily: importing this module never needs DGL; building the model
without it raises ``ImportError`` naming ``pip install estagbench[dgl]``.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from estagbench import Batch, DatasetInfo, register_model

from ._dgl_adapter import batch_to_dgl, dense_nodes, require_dgl
from .st_gnn import GCL, STGNN

__all__ = ["STGNNDGL", "st_gnn_dgl"]


class STGNNDGL(STGNN):
    """:class:`~baselines.st_gnn.STGNN` whose message passing runs on a batched ``dgl.DGLGraph``.

    ``forward(g)`` takes the graph built by :func:`~baselines._dgl_adapter.batch_to_dgl`
    (a dense :class:`~estagbench.Batch` is converted on the fly) and returns
    ``(B, N, C, 3)``.
    """

    def propagate(self, layer: GCL, h: Tensor, graph: Any) -> Tensor:
        """``sum_{j -> i} m_ij`` with DGL: ``h (B, T, N, H)`` -> ``(B, T, N, H)``."""
        fn = require_dgl().function
        B, T, N, H = h.shape
        p_dst, p_src = layer.project(h.permute(0, 2, 1, 3).reshape(B * N, T, H))
        with graph.local_scope():
            graph.ndata["p_dst"], graph.ndata["p_src"] = p_dst, p_src
            graph.apply_edges(fn.u_add_v("p_src", "p_dst", "pre"))
            pre = graph.edata["pre"] + layer.edge_term(graph.edata["a"]).unsqueeze(1)  # (B*E, T, H)
            graph.edata["m"] = layer.message(pre)
            graph.update_all(fn.copy_e("m", "m"), fn.sum("m", "agg"))
            agg = graph.ndata["agg"]
        return agg.reshape(B, N, T, H).permute(0, 2, 1, 3)

    def forward(self, graph: Any) -> Tensor:  # type: ignore[override]
        """Predict ``x(T)`` ``(B, N, C, 3)`` from a batched DGLGraph (or a dense Batch)."""
        if isinstance(graph, Batch):
            graph = batch_to_dgl(graph)
        B = int(graph.batch_size)
        x = dense_nodes(graph.ndata["x"], B).permute(0, 2, 1, 3, 4)  # (B, T, N, C, 3)
        h = dense_nodes(graph.ndata["h"], B)  # (B, N, F)
        return self.run(x, h, graph)


@register_model(
    "st-gnn-dgl",
    multichannel=True,
    symmetry="none",
    batch_transform=batch_to_dgl,
    paper="Gilmer et al. 2017 (ICML), as the ST_GNN baseline of Wu et al. 2023 (ESTAG); DGL backend",
)
def st_gnn_dgl(
    info: DatasetInfo,
    hidden: int = 16,
    layers: int = 2,
    decode: str = "displacement",
    pool_init: str = "random",
    **unused: Any,
) -> STGNNDGL:
    """ST_GNN with DGL message passing (same weights as `st-gnn` for the same seed)."""
    require_dgl()
    if unused:
        raise ValueError(f"st-gnn-dgl: unknown hyper-parameter(s) {sorted(unused)}")
    return STGNNDGL(info, hidden=hidden, layers=layers, decode=decode, pool_init=pool_init)
