"""Hand a dense :class:`~estagbench.Batch` to a model written against DGL.

Many published dynamics models are written with DGL's message passing.  A model
registered with ``batch_transform=batch_to_dgl`` (see :func:`estagbench.register_model`)
receives, instead of the dense batch, one batched ``dgl.DGLGraph`` holding the B
copies of the case's graph:

* ``g.batch_size == B``; node ``b * N + i`` is node ``i`` of sample ``b``; the edges
  of sample ``b`` are ``edge_index + b * N`` (same order in every copy);
* ``g.ndata["x"]``: ``(B*N, T, C, 3)`` positions of every past frame;
* ``g.ndata["h"]``: ``(B*N, F)`` node features;
* ``g.ndata["y"]``: ``(B*N, C, 3)`` target positions, when the batch has them;
* ``g.edata["a"]``: ``(B*E, D)`` edge features.

The model returns the usual dense ``(B, N, C, 3)`` prediction (use
:func:`dense_nodes` to fold node tensors back).

DGL is an optional dependency (``pip install estagbench[dgl]``, ``dgl==1.1.3``, the
newest release with Linux wheels that works with torch 2.13; backend
``DGLBACKEND=pytorch``).  This module, like the rest of the package, imports DGL only
inside functions: importing it without DGL installed is fine, and
:func:`require_dgl` raises a clear ``ImportError`` when a DGL model is built or fed.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

import torch
from torch import Tensor

from estagbench import Batch, DatasetInfo

__all__ = ["DGL_INSTALL_HINT", "require_dgl", "dgl_available", "batch_to_dgl", "dense_nodes"]

DGL_INSTALL_HINT = (
    "this model needs DGL: `pip install estagbench[dgl]` (dgl==1.1.3) and the PyTorch backend (DGLBACKEND=pytorch)"
)


def require_dgl() -> ModuleType:
    """Import and return ``dgl`` (PyTorch backend), or raise ``ImportError`` with the install hint."""
    os.environ.setdefault("DGLBACKEND", "pytorch")
    if os.environ["DGLBACKEND"] != "pytorch":
        raise ImportError(f"DGLBACKEND={os.environ['DGLBACKEND']!r}, but estagbench models need 'pytorch'")
    try:
        import dgl  # noqa: PLC0415 - optional dependency, imported lazily on purpose
    except Exception as exc:  # ModuleNotFoundError, or a broken binary (OSError, ImportError)
        raise ImportError(f"{DGL_INSTALL_HINT}; importing dgl failed with {type(exc).__name__}: {exc}") from exc
    return dgl


def dgl_available() -> bool:
    """True when ``dgl`` imports with the PyTorch backend."""
    try:
        require_dgl()
    except ImportError:
        return False
    return True


def batch_to_dgl(batch: Batch, info: DatasetInfo | None = None) -> Any:
    """Build the batched ``dgl.DGLGraph`` of ``batch`` (layout in the module docstring).

    Parameters
    ----------
    batch:
        Dense batch, ``x (B, T, N, C, 3)``, shared ``edge_index (2, E)``.
    info:
        Unused (accepted so the function can serve as a registry ``batch_transform``).

    Returns
    -------
    dgl.DGLGraph
        B graphs of N nodes and E edges each, on ``batch.x.device``.
    """
    dgl = require_dgl()
    x = batch.x
    B, T, N, C, _ = x.shape
    edge_index = batch.edge_index.to(device=x.device, dtype=torch.int64)
    E = int(edge_index.shape[1])
    offsets = torch.arange(B, device=x.device, dtype=torch.int64).repeat_interleave(E) * N
    src = edge_index[0].repeat(B) + offsets
    dst = edge_index[1].repeat(B) + offsets
    g = dgl.graph((src, dst), num_nodes=B * N, device=x.device)
    g.set_batch_num_nodes(torch.full((B,), N, dtype=torch.int64, device=x.device))
    g.set_batch_num_edges(torch.full((B,), E, dtype=torch.int64, device=x.device))
    g.ndata["x"] = x.permute(0, 2, 1, 3, 4).reshape(B * N, T, C, 3)
    g.ndata["h"] = batch.h.to(device=x.device, dtype=x.dtype).repeat(B, 1)
    if batch.y is not None:
        g.ndata["y"] = batch.y.reshape(B * N, C, 3)
    g.edata["a"] = batch.edge_attr.to(device=x.device, dtype=x.dtype).repeat(B, 1)
    return g


def dense_nodes(t: Tensor, batch_size: int) -> Tensor:
    """Fold a node tensor ``(B*N, ...)`` back to ``(B, N, ...)``."""
    if t.shape[0] % batch_size:
        raise ValueError(f"{t.shape[0]} nodes do not split into {batch_size} graphs of equal size")
    return t.reshape(batch_size, t.shape[0] // batch_size, *t.shape[1:])
