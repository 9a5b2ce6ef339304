"""Graph construction: 1-hop edges from a cutoff or a bond list, plus 2-hop edges.

Implements the graphs of Section 5 of Wu et al. 2023 and protocol.md: nodes closer
than λ in the first frame are 1-hop neighbours; pairs joined through one
intermediate node are 2-hop neighbours; both kinds are directed edges i ≠ j.
"""

from __future__ import annotations

import numpy as np

__all__ = ["cutoff_adjacency", "adjacency_from_pairs", "one_and_two_hop", "edge_features_z_hop"]


def cutoff_adjacency(points: np.ndarray, cutoff: float) -> np.ndarray:
    """``(N, N)`` bool adjacency of ``points (N, 3)`` with distance < ``cutoff`` (no self loops)."""
    if not cutoff > 0:
        raise ValueError(f"graph cutoff must be a positive distance, got {cutoff}")
    d = np.linalg.norm(points[:, None, :] - points[None, :, :], axis=-1)
    adj = d < cutoff
    np.fill_diagonal(adj, False)
    return adj


def adjacency_from_pairs(num_nodes: int, pairs: np.ndarray) -> np.ndarray:
    """Symmetric ``(N, N)`` bool adjacency from undirected ``pairs (E, 2)``."""
    adj = np.zeros((num_nodes, num_nodes), dtype=bool)
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    adj[pairs[:, 0], pairs[:, 1]] = True
    adj[pairs[:, 1], pairs[:, 0]] = True
    np.fill_diagonal(adj, False)
    return adj


def one_and_two_hop(adj: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Directed edges of the 1-hop + 2-hop graph of a bool adjacency.

    Returns
    -------
    edge_index : ``(2, E)`` int64 ``[src, dst]``, row-major order over (src, dst).
    hop : ``(E,)`` int64, 1 for 1-hop edges, 2 for pairs joined through one
        intermediate node that are not 1-hop neighbours.
    """
    adj = adj.astype(bool)
    two = (adj.astype(np.int64) @ adj.astype(np.int64)) > 0
    two &= ~adj
    np.fill_diagonal(two, False)
    hop = np.where(adj, 1, np.where(two, 2, 0))
    src, dst = np.nonzero(hop)
    return np.stack([src, dst]).astype(np.int64), hop[src, dst].astype(np.int64)


def edge_features_z_hop(node_scalar: np.ndarray, edge_index: np.ndarray, hop: np.ndarray) -> np.ndarray:
    """Edge features ``[z_i, z_j, hop]`` ``(E, 3)`` (protocol.md, MD17 and Motion)."""
    z = np.asarray(node_scalar, dtype=np.float64).reshape(-1)
    return np.stack([z[edge_index[0]], z[edge_index[1]], hop.astype(np.float64)], axis=1)
