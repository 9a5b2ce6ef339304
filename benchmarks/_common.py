"""What the benchmark modules share: the aspirin-sized graph and one timed training step.

One step = forward + MSE + backward + fused Adam step (the trainer's optimizer), batch 100,
T = 10 past frames, on a fixed random trajectory; the step itself is
``estagbench.bench.make_train_step`` (the one ``estagbench bench`` times), which applies the
registry's batch transform (DGL models) inside the step, as the runner does per batch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from estagbench import Batch, DatasetInfo
from estagbench.bench import make_train_step as bench_step

BATCH, HISTORY, NODES = 100, 10, 13
TARGET_EDGES = 96


def molecule_like_info(num_nodes: int = NODES, channels: int = 1, seed: int = 0, dataset: str = "bench") -> DatasetInfo:
    """A ring plus seeded random chords as 1-hop bonds, plus their 2-hop pairs: ~100 directed edges.

    Edge features ``[z_i, z_j, hop]`` as in MD17; with ``channels=4`` the node feature is
    repeated per channel and channel 1 is the CA channel (the AdK-like multi-channel path).
    """
    g = torch.Generator().manual_seed(seed)
    ring = torch.arange(num_nodes)
    adj = torch.zeros(num_nodes, num_nodes, dtype=torch.bool)
    adj[ring, (ring + 1) % num_nodes] = True
    adj = adj | adj.T

    def two_hop(a: torch.Tensor) -> torch.Tensor:
        t = ((a.float() @ a.float()) > 0) & ~a
        t.fill_diagonal_(False)
        return t

    while int(adj.sum() + two_hop(adj).sum()) < TARGET_EDGES:
        i, j = torch.randint(num_nodes, (2,), generator=g).tolist()
        if i != j:
            adj[i, j] = adj[j, i] = True
    two = two_hop(adj)
    src1, dst1 = adj.nonzero(as_tuple=True)
    src2, dst2 = two.nonzero(as_tuple=True)
    edge_index = torch.stack([torch.cat([src1, src2]), torch.cat([dst1, dst2])])
    z = torch.tensor([6.0, 6.0, 6.0, 8.0] * num_nodes)[:num_nodes].unsqueeze(1)
    hop = torch.cat([torch.ones(src1.numel()), 2 * torch.ones(src2.numel())]).unsqueeze(1)
    return DatasetInfo(
        dataset=dataset,
        case="bench",
        num_nodes=num_nodes,
        num_channels=channels,
        node_features=z if channels == 1 else z.repeat(1, channels),
        edge_index=edge_index,
        edge_attr=torch.cat([z[edge_index[0]], z[edge_index[1]], hop], dim=1),
        history=HISTORY,
        stride=10,
        ca_channel=1 if channels == 4 else 0,
    )


def make_train_step(
    name: str, info: DatasetInfo, batch_size: int = BATCH, spread: float = 1.0, step_size: float = 0.02,
    **hparams: object,
) -> Callable[[], float]:
    """``estagbench.bench.make_train_step`` on a random-walk batch; the closure returns the loss.

    The history is a random walk: start ``spread * N(0, 1)``, increments ``step_size * N(0, 1)``.
    The closure is called once before it is returned (allocations, lazy initialisation).
    """
    torch.manual_seed(0)
    start = spread * torch.randn(batch_size, 1, info.num_nodes, info.num_channels, 3)
    x = start + step_size * torch.randn(batch_size, HISTORY, info.num_nodes, info.num_channels, 3).cumsum(1)
    y = x[:, -1] + step_size * torch.randn_like(x[:, -1])
    step, _ = bench_step(name, info, Batch.from_info(info, x, y), **hparams)
    step()
    return step
