"""pytest-benchmark cases: one training step of each EGNN-family baseline.

One step = forward + MSE + backward + Adam step, at the MD17 aspirin size of the paper's
protocol: batch 100, T = 10 past frames, 13 nodes, one channel, a 1-hop + 2-hop graph
with about 100 directed edges and edge features ``[z_i, z_j, hop]``.  ``st-gmn`` is also
timed at its own (protein) setting on a 4-channel graph, and ESTAG on the aspirin case
as the reference for side-by-side medians.

Run with ``pytest benchmarks/bench_baselines_egnn.py --benchmark-only`` (the repository's
``addopts`` skip benchmarks otherwise).  ``ESTAGBENCH_BENCH_THREADS`` pins torch's
intra-op threads for the run (default: torch's own choice).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
import torch

from estagbench import Batch, DatasetInfo, create_model, list_models

BATCH, HISTORY, NODES = 100, 10, 13
TARGET_EDGES = 96


@pytest.fixture(autouse=True, scope="module")
def _threads():
    threads = os.environ.get("ESTAGBENCH_BENCH_THREADS")
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    yield
    torch.set_num_threads(before)


def molecule_like_info(num_nodes: int = NODES, channels: int = 1, seed: int = 0, dataset: str = "bench") -> DatasetInfo:
    """A ring plus random chords as 1-hop bonds, plus its 2-hop pairs: ~100 directed edges."""
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
    edge_attr = torch.cat([z[edge_index[0]], z[edge_index[1]], hop], dim=1)
    return DatasetInfo(
        dataset=dataset,
        case="bench",
        num_nodes=num_nodes,
        num_channels=channels,
        node_features=z if channels == 1 else z.repeat(1, channels),
        edge_index=edge_index,
        edge_attr=edge_attr,
        history=HISTORY,
        stride=10,
        ca_channel=1 if channels == 4 else 0,
    )


def make_train_step(name: str, info: DatasetInfo, batch_size: int = BATCH) -> Callable[[], float]:
    torch.manual_seed(0)
    model = create_model(name, info, hidden=16)
    optim = torch.optim.Adam(model.parameters(), lr=5e-3, weight_decay=1e-12, fused=True)
    start = torch.randn(batch_size, 1, info.num_nodes, info.num_channels, 3)
    x = start + 0.01 * torch.randn(batch_size, HISTORY, info.num_nodes, info.num_channels, 3).cumsum(1)
    y = x[:, -1] + 0.01 * torch.randn_like(x[:, -1])
    batch = Batch.from_info(info, x, y)

    def step() -> float:
        loss = ((model(batch) - y) ** 2).mean()
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        return float(loss.detach())

    step()  # warm-up (allocations, lazy init)
    return step


def test_graph_is_aspirin_sized() -> None:
    info = molecule_like_info()
    assert info.num_nodes == 13
    assert 80 <= info.num_edges <= 120, info.num_edges


@pytest.mark.parametrize("name", ["egnn-s", "egnn-m", "egnn-t", "st-egnn", "st-gmn"])
def test_bench_train_step_aspirin(benchmark, name: str) -> None:
    step = make_train_step(name, molecule_like_info())
    benchmark.extra_info.update({"batch": BATCH, "history": HISTORY, "nodes": NODES, "channels": 1})
    loss = benchmark(step)
    assert loss == loss  # finite-ness is checked by the comparison with itself (NaN != NaN)


def test_bench_train_step_aspirin_reference_estag(benchmark) -> None:
    """ESTAG on the same case, so the medians can be read side by side in one session."""
    if "estag" not in list_models("estag"):
        pytest.skip("ESTAG is not registered in this checkout")
    step = make_train_step("estag", molecule_like_info())
    benchmark.extra_info.update({"batch": BATCH, "history": HISTORY, "nodes": NODES, "channels": 1})
    loss = benchmark(step)
    assert loss == loss


@pytest.mark.parametrize("name", ["egnn-t", "st-egnn", "st-gmn"])
def test_bench_train_step_four_channel(benchmark, name: str) -> None:
    """The multi-channel path (AdK-like C = 4) at the same 13-node size."""
    step = make_train_step(name, molecule_like_info(channels=4, dataset="adk"))
    benchmark.extra_info.update({"batch": BATCH, "history": HISTORY, "nodes": NODES, "channels": 4})
    loss = benchmark(step)
    assert loss == loss
