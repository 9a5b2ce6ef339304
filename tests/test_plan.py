"""`estagbench plan`: the cost model's arithmetic, with injected step times (no timing is asserted)."""

from __future__ import annotations

import json
import math

import pytest

from estagbench.cli import main
from estagbench.plan import PROTOCOL_CASES, StepKey, cell_seconds, format_plan, plan_tables, step_keys, table_cells


def _flat(key: StepKey) -> tuple[float, float]:
    return 0.010, 0.005  # 10 ms per training step, 5 ms per eval forward


def test_table1_by_hand() -> None:
    plan = plan_tables([1], _flat)
    # per trained model and molecule, one seed: 500 epochs x 5 steps x 10 ms + 100 evaluations x (20 + 20) x 5 ms
    trained = 500 * 5 * 0.010 + 100 * 40 * 0.005
    untrained = 40 * 0.005  # Pt-s/m/t: one evaluation
    assert plan["tables"][1]["estag"] == pytest.approx(8 * 3 * trained / 3600)
    assert plan["tables"][1]["pt-s"] == pytest.approx(8 * 3 * untrained / 3600)
    expected = (11 * trained + 3 * untrained) * 8 * 3 / 3600
    assert plan["total"] == pytest.approx(expected)
    assert sum(plan["columns"][1].values()) == pytest.approx(expected)


def test_adk_walk_window_counts_and_seeds() -> None:
    adk = [c for c in table_cells([2])[2] if c.model == "estag"]
    assert len(adk) == 1  # Table 2's MSE and TIME columns are one run
    # ceil(2482 / 100) = 25 steps per epoch; ceil(827 / 100) = 9 eval batches per split
    assert cell_seconds(adk[0], _flat, epochs=10, eval_every=5) == pytest.approx(10 * 25 * 0.010 + 2 * 18 * 0.005)
    # an epoch count that is not a multiple of eval_every still evaluates at the last epoch
    assert cell_seconds(adk[0], _flat, epochs=7, eval_every=5) == pytest.approx(7 * 25 * 0.010 + 2 * 18 * 0.005)
    walk = plan_tables([3], _flat, epochs=500, seeds=1)["columns"][3]["walk"]
    one = 500 * 11 * 0.010 + 100 * 12 * 0.005  # 1100 / 600 / 600 windows
    assert walk == pytest.approx((11 * one + 3 * 12 * 0.005) / 3600)
    assert plan_tables([3], _flat, seeds=3)["total"] == pytest.approx(3 * plan_tables([3], _flat, seeds=1)["total"])


def test_md17_sizes_interpolate_between_ethanol_and_aspirin() -> None:
    def by_nodes(key: StepKey) -> tuple[float, float]:
        assert key.nodes in (3, 13)  # only the two measured MD17 sizes are ever asked for
        return (0.003, 0.001) if key.nodes == 3 else (0.013, 0.011)

    cells = {c.case.case: c for c in table_cells([1])[1] if c.model == "egnn-t"}
    toluene = cells["toluene"]  # 7 heavy atoms: 40 % of the way from 3 to 13
    assert PROTOCOL_CASES[("md17", "toluene")].nodes == 7
    assert cell_seconds(toluene, by_nodes, epochs=5, eval_every=5) == pytest.approx(5 * 5 * 0.007 + 40 * 0.005)
    keys = step_keys(table_cells([1])[1])
    assert {k.nodes for k in keys} == {3, 13}


def test_shared_cells_count_once_in_the_total() -> None:
    both = plan_tables([1, 4, 7], _flat)
    separate = sum(plan_tables([n], _flat)["total"] for n in (1, 4, 7))
    assert both["total"] < separate  # ESTAG's MD17 runs fill Tables 1, 4 and 7 once
    estag_md17 = both["tables"][1]["estag"]
    assert both["total"] == pytest.approx(separate - 2 * estag_md17)


def test_format_ends_with_the_total_line() -> None:
    lines = format_plan(plan_tables([2], _flat), jobs=4, cores=2)
    assert lines[-1].startswith("total: ") and lines[-1].endswith(" CPU-hours")
    assert "at least" in lines[-2] and "(2 core(s) busy)" in lines[-2]
    assert math.isclose(float(lines[-1].split()[1]), plan_tables([2], _flat)["total"], abs_tol=0.005)


def test_plan_cli_reads_saved_step_times(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    keys = step_keys(table_cells([2])[2])
    saved = {"times": [{"model": k.model, "nodes": k.nodes, "channels": k.channels, "history": k.history,
                        "hparams": dict(k.hparams), "train_ms": 10.0, "eval_ms": 5.0} for k in keys]}
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(saved))
    assert main(["plan", "--table", "2", "--step-times", str(path)]) == 0
    out = capsys.readouterr().out
    assert "measuring" not in out  # every step time came from the file
    assert out.splitlines()[-1] == f"total: {plan_tables([2], _flat)['total']:.2f} CPU-hours"
    # a second file overrides the first: ESTAG twice as slow
    over = tmp_path / "estag.json"
    over.write_text(json.dumps({"times": [dict(r, train_ms=20.0, eval_ms=10.0) for r in saved["times"]
                                          if r["model"] == "estag"]}))
    assert main(["plan", "--table", "2", "--step-times", str(path), "--step-times", str(over)]) == 0
    plan = plan_tables([2], lambda k: (0.020, 0.010) if k.model == "estag" else (0.010, 0.005))
    assert capsys.readouterr().out.splitlines()[-1] == f"total: {plan['total']:.2f} CPU-hours"
