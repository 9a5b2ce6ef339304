"""`estagbench bench`: the synthetic case, the step timer and the per-operator profile (estagbench.bench).

Only structure is asserted here; timings are never pass/fail.
"""

from __future__ import annotations

import pytest
import torch

from estagbench.bench import make_train_step, profile_train_step, synthetic_case, time_train_step
from estagbench.cli import main


def test_synthetic_case_shapes() -> None:
    info, batch = synthetic_case(num_nodes=13, history=10, batch_size=8)
    assert batch.x.shape == (8, 10, 13, 1, 3) and batch.y.shape == (8, 13, 1, 3)
    assert info.edge_index.shape[0] == 2 and info.edge_attr.shape == (info.num_edges, 3)
    assert not (info.edge_index[0] == info.edge_index[1]).any()
    # three nodes: a bonded chain 0-1-2 plus the 2-hop pair, both directions: the ethanol graph's size
    small, _ = synthetic_case(num_nodes=3, batch_size=2)
    assert small.num_edges == 6


def test_time_train_step_reports_params_and_times() -> None:
    info, batch = synthetic_case(num_nodes=5, batch_size=4)
    r = time_train_step("estag", info, batch, repeats=2, warmup=1)
    from estagbench import create_model

    expected = sum(p.numel() for p in create_model("estag", info, hidden=16).parameters())
    assert r["model"] == "estag" and r["params"] == expected and r["median_ms"] > 0 and r["iqr_ms"] >= 0
    baseline = time_train_step("pt-t", info, batch, repeats=2, warmup=1)  # parameter-free: forward only
    assert baseline["params"] == 0 and baseline["median_ms"] > 0


def test_time_train_step_really_trains() -> None:
    """The timed closure is a real optimisation step of a seeded model: same start, then the parameters move."""
    info, batch = synthetic_case(num_nodes=4, batch_size=4)
    before = [p.detach().clone() for p in make_train_step("estag", info, batch)[1].parameters()]
    step, model = make_train_step("estag", info, batch)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    first = step()
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert step() != first  # the loss moves too


def test_profile_train_step_rows() -> None:
    info, batch = synthetic_case(num_nodes=3, batch_size=4)
    rows = profile_train_step("stag", info, batch, steps=2, warmup=1)
    ops = {r["op"] for r in rows}
    assert "aten::mm" in ops or "aten::addmm" in ops  # STAG's MLPs
    assert any("backward" in op.lower() for op in ops)  # the backward pass is profiled too
    times = [r["self_ms"] for r in rows]
    assert times == sorted(times, reverse=True) and times[0] > 0
    assert sum(r["share"] for r in rows) == pytest.approx(1.0)
    assert all(r["calls"] > 0 for r in rows)


def test_bench_cli_prints_timing_and_profile(capsys: pytest.CaptureFixture[str]) -> None:
    threads = torch.get_num_threads()
    try:
        assert main(["bench", "--models", "estag", "--nodes", "3", "--batch-size", "4", "--repeats", "2",
                     "--profile", "3"]) == 0
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "3 nodes, 6 edges, torch threads 1" in out
    lines = out.splitlines()
    timing = [ln for ln in lines if ln.startswith("estag ")]
    assert len(timing) == 1 and float(timing[0].split()[1]) > 0
    assert "top 3 of" in out and sum(" calls " in ln for ln in lines) == 3


def test_bench_sizes_interleaved_and_saved(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    """--sizes runs each protocol size; single-channel models skip AdK's 4 channels; --save is plan's input."""
    import json

    from estagbench.bench import SIZES, resolve_sizes

    assert [z.name for z in resolve_sizes("md17,walk,adk")] == ["ethanol", "aspirin", "walk", "adk"]
    with pytest.raises(ValueError, match="unknown size"):
        resolve_sizes("md17,nope")
    info, _ = synthetic_case(SIZES["adk"][0].nodes, batch_size=1, channels=4, edges=SIZES["adk"][0].edges)
    assert info.num_nodes == 214 and 1134 <= info.num_edges <= 1200  # AdK's CA contact graph size
    threads = torch.get_num_threads()
    try:
        assert main(["bench", "--models", "egnn-t,eqmotion", "--sizes", "ethanol,adk", "--batch-size", "2",
                     "--repeats", "2", "--save", str(tmp_path / "b.json")]) == 0
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "eqmotion           skipped: single-channel model, 4 channels here" in out
    saved = json.loads((tmp_path / "b.json").read_text())
    got = {(r["model"], r["size"]) for r in saved["times"]}
    assert got == {("egnn-t", "ethanol"), ("eqmotion", "ethanol"), ("egnn-t", "adk")}
    for r in saved["times"]:
        assert r["rounds"] == 2 and r["train_q25_ms"] <= r["train_ms"] <= r["train_q75_ms"]
        assert r["eval_q25_ms"] <= r["eval_ms"] <= r["eval_q75_ms"] and r["params"] > 0


def test_time_interleaved_reports_failures_and_keeps_order() -> None:
    from estagbench.bench import time_interleaved

    info, batch = synthetic_case(num_nodes=4, batch_size=2)
    rows = time_interleaved([("egnn-t", {}), ("estag", {"layers": 0}), ("estag", {"layers": 1})], info, batch, rounds=1)
    assert [r["model"] for r in rows] == ["egnn-t", "estag", "estag"]
    assert "error" in rows[1] and "layers" in rows[1]["error"]
    assert rows[2]["hparams"] == {"layers": 1} and rows[2]["train_ms"] > 0 and rows[2]["eval_ms"] > 0
