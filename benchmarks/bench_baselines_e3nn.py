"""pytest-benchmark cases: one training step of ST_TFN, ST_SE(3)-Transformer and EqMotion.

One step = forward + MSE + backward + Adam step at the MD17 aspirin size of the paper's
protocol: batch 100, T = 10 past frames, 13 nodes, one channel, a 1-hop + 2-hop graph with
about 100 directed edges and edge features ``[z_i, z_j, hop]``.  The graph and the step are
those of ``_common.py``, so the medians compare directly with the
EGNN family and with ESTAG's benchmark.

Run with ``pytest benchmarks/bench_baselines_e3nn.py --benchmark-only`` (the repository's
``addopts`` skip benchmarks otherwise).  ``ESTAGBENCH_BENCH_THREADS`` pins torch's intra-op
threads (default: torch's own choice).  The e3nn models take seconds per step on CPU, so
the rounds are capped.
"""

from __future__ import annotations

import pytest
from _common import BATCH, HISTORY, NODES, make_train_step, molecule_like_info


@pytest.mark.parametrize("name", ["st-tfn", "st-se3", "eqmotion"])
def test_bench_train_step_aspirin(benchmark, name: str) -> None:
    step = make_train_step(name, molecule_like_info())
    benchmark.extra_info.update({"batch": BATCH, "history": HISTORY, "nodes": NODES, "channels": 1})
    loss = benchmark.pedantic(step, rounds=5, iterations=1, warmup_rounds=0)
    assert loss == loss  # NaN != NaN
