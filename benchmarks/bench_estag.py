"""pytest-benchmark cases: one training step of ESTAG (and its STAG ablation).

One step = forward + MSE + backward + Adam step, batch 100, T = 10:

* aspirin size: 13 nodes, one channel, a 1-hop + 2-hop graph of about 100 directed
  edges with features ``[z_i, z_j, hop]`` (built from a random 3D "molecule" with the
  protocol's 1.6 Å bond cutoff, grown until it has 13 bonded heavy atoms);
* AdK size: 213 residue nodes with 4 channels (N, CA, C, O), a CA-distance graph of
  about 1100 directed edges (sequence neighbours |i - j| <= 2 plus random contacts,
  close to the 1134 edges of the shipped adk-mini case), edge feature = CA distance.

Run with ``pytest benchmarks/bench_estag.py --benchmark-only``.
``ESTAGBENCH_BENCH_THREADS`` pins torch's intra-op threads (default: torch's choice).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import _common
import pytest
import torch
from _common import BATCH, HISTORY

from estagbench import ALLOCATOR, DatasetInfo


def aspirin_like_info(num_nodes: int = 13, seed: int = 0) -> DatasetInfo:
    """Heavy atoms placed one by one at 1.45 Å from a random earlier atom; bonds < 1.6 Å; plus 2-hop pairs."""
    g = torch.Generator().manual_seed(seed)
    pos = torch.zeros(1, 3)
    while pos.shape[0] < num_nodes:
        anchor = pos[torch.randint(pos.shape[0], (1,), generator=g)]
        d = torch.randn(1, 3, generator=g)
        cand = anchor + 1.45 * d / d.norm()
        if torch.cdist(cand, pos).min() > 1.3:  # no clashes
            pos = torch.cat([pos, cand])
    dist = torch.cdist(pos, pos)
    one = (dist < 1.6) & ~torch.eye(num_nodes, dtype=torch.bool)
    two = ((one.float() @ one.float()) > 0) & ~one & ~torch.eye(num_nodes, dtype=torch.bool)
    s1, d1 = one.nonzero(as_tuple=True)
    s2, d2 = two.nonzero(as_tuple=True)
    edge_index = torch.stack([torch.cat([s1, s2]), torch.cat([d1, d2])])
    z = torch.tensor([6.0, 6.0, 8.0, 6.0] * num_nodes)[:num_nodes].unsqueeze(1)
    hop = torch.cat([torch.ones(s1.numel()), 2 * torch.ones(s2.numel())]).unsqueeze(1)
    edge_attr = torch.cat([z[edge_index[0]], z[edge_index[1]], hop], dim=1)
    return DatasetInfo("md17", "aspirin-like", num_nodes, 1, z, edge_index, edge_attr, HISTORY, 10,
                       one_hop_mask=torch.cat([torch.ones(s1.numel()), torch.zeros(s2.numel())]).bool())


def adk_like_info(num_nodes: int = 213, contacts: int = 140, seed: int = 0) -> DatasetInfo:
    g = torch.Generator().manual_seed(seed)
    i = torch.arange(num_nodes)
    adj = torch.zeros(num_nodes, num_nodes, dtype=torch.bool)
    for k in (1, 2):
        adj[i[:-k], i[k:]] = True
    extra = torch.randint(num_nodes, (2, contacts), generator=g)
    adj[extra[0], extra[1]] = True
    adj = (adj | adj.T) & ~torch.eye(num_nodes, dtype=torch.bool)
    src, dst = adj.nonzero(as_tuple=True)
    edge_index = torch.stack([src, dst])
    edge_attr = 3.8 + 2.0 * torch.rand(edge_index.shape[1], 1, generator=g)
    z = torch.tensor([[7.0, 6.0, 6.0, 8.0]]).expand(num_nodes, 4).contiguous()
    return DatasetInfo("adk", "adk-like", num_nodes, 4, z, edge_index, edge_attr, HISTORY, 5, ca_channel=1)


def make_train_step(name: str, info: DatasetInfo, batch_size: int = BATCH) -> Callable[[], float]:
    """One ESTAG-sized training step (see ``_common.make_train_step``) on a wider random walk."""
    return _common.make_train_step(name, info, batch_size, spread=3.0, step_size=0.05)


def test_graph_sizes() -> None:
    a = aspirin_like_info()
    assert a.num_nodes == 13 and 60 <= a.num_edges <= 140, a.num_edges
    p = adk_like_info()
    assert p.num_nodes == 213 and p.num_channels == 4 and 1000 <= p.num_edges <= 1300, p.num_edges


@pytest.mark.parametrize("name", ["estag", "stag"])
def test_bench_train_step_aspirin(benchmark, name: str) -> None:
    info = aspirin_like_info()
    step = make_train_step(name, info)
    benchmark.extra_info.update({"batch": BATCH, "history": HISTORY, "nodes": info.num_nodes, "edges": info.num_edges, "channels": 1,
                                 "allocator": ALLOCATOR})
    loss = benchmark(step)
    assert loss == loss  # NaN != NaN


@pytest.mark.parametrize("name", ["estag"])
def test_bench_train_step_adk(benchmark, name: str) -> None:
    info = adk_like_info()
    step = make_train_step(name, info)
    benchmark.extra_info.update({"batch": BATCH, "history": HISTORY, "nodes": info.num_nodes, "edges": info.num_edges, "channels": 4,
                                 "allocator": ALLOCATOR})
    # the allocator settings (opt-in, ESTAGBENCH_ALLOCATOR=tuned) are recorded with the timing
    assert ALLOCATOR["thp"] == (os.environ.get("ESTAGBENCH_ALLOCATOR") == "tuned" and sys.platform.startswith("linux"))
    loss = benchmark(step)
    assert loss == loss
