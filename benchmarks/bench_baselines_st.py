"""pytest-benchmark cases: one training step of st-gnn, stgcn, agl-stan (and st-gnn-dgl).

One step = forward + MSE + backward + Adam step (lr 5e-3) at the MD17 aspirin size of
the paper's protocol: batch 100, T = 10 past frames, 13 nodes, one channel, a 1-hop +
2-hop graph with about 100 directed edges and edge features ``[z_i, z_j, hop]``.
``st-gnn-dgl`` is timed with the DGLGraph built inside the step (as the runner does per
batch) and skips when DGL is not installed.  The three models are also timed with
four channels (the AdK-like multi-channel path) at the same size.

Run with ``pytest benchmarks/bench_baselines_st.py --benchmark-only`` (the repository's
``addopts`` skip benchmarks otherwise).  ``ESTAGBENCH_BENCH_THREADS`` pins torch's
intra-op threads for the run (default: torch's own choice).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
import torch

from estagbench import Batch, DatasetInfo, create_model, get_model_entry

BATCH, HISTORY, NODES = 100, 10, 13


@pytest.fixture(autouse=True, scope="module")
def _threads():
    threads = os.environ.get("ESTAGBENCH_BENCH_THREADS")
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    yield
    torch.set_num_threads(before)


def aspirin_sized_info(channels: int = 1, seed: int = 0) -> DatasetInfo:
    """13 nodes: a ring plus seeded random chords as 1-hop bonds until 1-hop + 2-hop reach ~100 directed edges."""
    g = torch.Generator().manual_seed(seed)
    n = NODES
    idx = torch.arange(n)
    adj = torch.zeros(n, n, dtype=torch.bool)
    adj[idx, (idx + 1) % n] = True
    adj |= adj.T.clone()

    def two_hop(a: torch.Tensor) -> torch.Tensor:
        t = ((a.double() @ a.double()) > 0) & ~a
        t.fill_diagonal_(False)
        return t

    while int(adj.sum() + two_hop(adj).sum()) < 96:
        i, j = torch.randint(n, (2,), generator=g).tolist()
        if i != j:
            adj[i, j] = adj[j, i] = True
    two = two_hop(adj)
    (s1, d1), (s2, d2) = adj.nonzero(as_tuple=True), two.nonzero(as_tuple=True)
    edge_index = torch.stack([torch.cat([s1, s2]), torch.cat([d1, d2])])
    z = torch.tensor([6.0, 6.0, 8.0] * n)[:n].unsqueeze(1)
    hop = torch.cat([torch.ones(s1.numel()), 2 * torch.ones(s2.numel())]).unsqueeze(1)
    return DatasetInfo(
        dataset="bench",
        case="aspirin-sized",
        num_nodes=n,
        num_channels=channels,
        node_features=z if channels == 1 else z.repeat(1, channels),
        edge_index=edge_index,
        edge_attr=torch.cat([z[edge_index[0]], z[edge_index[1]], hop], dim=1),
        history=HISTORY,
        stride=10,
        ca_channel=1 if channels == 4 else 0,
    )


def make_train_step(name: str, info: DatasetInfo) -> Callable[[], float]:
    torch.manual_seed(0)
    model = create_model(name, info, hidden=16)
    model.train()
    optim = torch.optim.Adam(model.parameters(), lr=5e-3, weight_decay=1e-12, fused=True)
    start = torch.randn(BATCH, 1, info.num_nodes, info.num_channels, 3)
    x = start + 0.02 * torch.randn(BATCH, HISTORY, info.num_nodes, info.num_channels, 3).cumsum(1)
    y = x[:, -1] + 0.02 * torch.randn_like(x[:, -1])
    batch = Batch.from_info(info, x, y)
    transform = get_model_entry(name).batch_transform

    def step() -> float:
        inp = transform(batch, info) if transform else batch
        loss = ((model(inp) - y) ** 2).mean()
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        return float(loss.detach())

    step()  # warm-up
    return step


def test_graph_is_aspirin_sized() -> None:
    info = aspirin_sized_info()
    assert info.num_nodes == 13
    assert 90 <= info.num_edges <= 120, info.num_edges


@pytest.mark.parametrize("name", ["st-gnn", "stgcn", "agl-stan", "st-gnn-dgl"])
def test_bench_train_step_aspirin(benchmark, name: str) -> None:
    if name.endswith("-dgl"):
        from baselines._dgl_adapter import dgl_available

        if not dgl_available():
            pytest.skip("dgl is not importable (pip install estagbench[dgl])")
    step = make_train_step(name, aspirin_sized_info())
    benchmark.extra_info.update({"batch": BATCH, "history": HISTORY, "nodes": NODES, "channels": 1})
    loss = benchmark(step)
    assert loss == loss  # NaN != NaN


@pytest.mark.parametrize("name", ["st-gnn", "stgcn", "agl-stan"])
def test_bench_train_step_four_channel(benchmark, name: str) -> None:
    step = make_train_step(name, aspirin_sized_info(channels=4))
    benchmark.extra_info.update({"batch": BATCH, "history": HISTORY, "nodes": NODES, "channels": 4})
    loss = benchmark(step)
    assert loss == loss
