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

import pytest
from _common import BATCH, HISTORY, NODES, make_train_step, molecule_like_info


def test_graph_is_aspirin_sized() -> None:
    info = molecule_like_info()
    assert info.num_nodes == 13
    assert 90 <= info.num_edges <= 120, info.num_edges


@pytest.mark.parametrize("name", ["st-gnn", "stgcn", "agl-stan", "st-gnn-dgl"])
def test_bench_train_step_aspirin(benchmark, name: str) -> None:
    if name.endswith("-dgl"):
        from baselines._dgl_adapter import dgl_available

        if not dgl_available():
            pytest.skip("dgl is not importable (pip install estagbench[dgl])")
    step = make_train_step(name, molecule_like_info())
    benchmark.extra_info.update({"batch": BATCH, "history": HISTORY, "nodes": NODES, "channels": 1})
    loss = benchmark(step)
    assert loss == loss  # NaN != NaN


@pytest.mark.parametrize("name", ["st-gnn", "stgcn", "agl-stan"])
def test_bench_train_step_four_channel(benchmark, name: str) -> None:
    step = make_train_step(name, molecule_like_info(channels=4))
    benchmark.extra_info.update({"batch": BATCH, "history": HISTORY, "nodes": NODES, "channels": 4})
    loss = benchmark(step)
    assert loss == loss
