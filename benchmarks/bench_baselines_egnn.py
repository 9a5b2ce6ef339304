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

import pytest
from _common import BATCH, HISTORY, NODES, make_train_step, molecule_like_info

from estagbench import list_models


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
