"""Statistics in the tables and `estagbench compare`: checked against scipy on known inputs and the leaderboards."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from estagbench.cli import main
from estagbench.compare import Sample, compare
from estagbench.results import ResultStore, cell_id, config_hash
from estagbench.tables import build_table, get_table_spec, load_records, read_table_csv, to_csv, to_latex, to_markdown
from estagbench.tables._latex import check_latex
from estagbench.tables._stats import (
    Summary,
    against_best,
    bootstrap_interval,
    cohens_d,
    holm,
    seeds_needed,
    t_interval,
    welch,
    welch_power,
)

REPO = Path(__file__).resolve().parents[1]
A = [0.61, 0.72, 0.55, 0.66]
B = [0.48, 0.51, 0.47]


def test_welch_matches_scipy_on_raw_samples():
    res = welch(np.mean(A), np.std(A, ddof=1), len(A), np.mean(B), np.std(B, ddof=1), len(B))
    ref = stats.ttest_ind(A, B, equal_var=False)
    assert res.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-12)
    assert res.df == pytest.approx(ref.df, rel=1e-12)
    assert welch(1.0, 0.1, 1, 2.0, 0.1, 3) is None  # one seed: no test


def test_zero_spread_on_both_sides_is_certain():
    assert welch(1.0, 0.0, 3, 2.0, 0.0, 3).p_value == 0.0
    assert welch(1.0, 0.0, 3, 1.0, 0.0, 3).p_value == 1.0


def test_t_interval_matches_scipy():
    lo, hi = stats.t.interval(0.95, len(A) - 1, loc=np.mean(A), scale=stats.sem(A))
    ci = t_interval(float(np.mean(A)), float(np.std(A, ddof=1)), len(A))
    assert (ci.low, ci.high) == (pytest.approx(lo, rel=1e-12), pytest.approx(hi, rel=1e-12))
    assert t_interval(1.0, 0.1, 1) is None


def test_bootstrap_interval_brackets_the_mean_within_the_data():
    ci = bootstrap_interval(A)
    assert min(A) <= ci.low < np.mean(A) < ci.high <= max(A)
    assert ci.method == "bootstrap" and bootstrap_interval([1.0]) is None


def test_holm_on_a_known_example():
    # sorted 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 -> running max 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([]) == []


def test_against_best_is_welch_then_holm():
    cells = {"a": Summary(1.0, 0.1, 3), "b": Summary(1.3, 0.2, 3), "c": Summary(2.0, 0.1, 3), "d": Summary(5.0, None, 1)}
    best, p = against_best(cells)
    raw = [stats.ttest_ind_from_stats(m, s, 3, 1.0, 0.1, 3, equal_var=False).pvalue for m, s in ((1.3, 0.2), (2.0, 0.1))]
    assert best == "a" and set(p) == {"b", "c"}  # the one-seed cell is not tested
    assert [p["b"], p["c"]] == pytest.approx(holm(raw), rel=1e-12)


def test_cohens_d_and_power_against_a_simulation():
    assert cohens_d(2.0, 1.0, 5, 1.0, 1.0, 5) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    x = rng.normal(0.0, 1.0, (20000, 6))
    y = rng.normal(1.5, 2.0, (20000, 6))
    sim = float(np.mean(stats.ttest_ind(x, y, axis=1, equal_var=False).pvalue < 0.05))
    assert welch_power(1.5, 1.0, 2.0, 6) == pytest.approx(sim, abs=0.03)


def test_seeds_needed_is_the_smallest_n_reaching_the_power():
    n = seeds_needed(0.2, 0.15, 0.1)
    assert welch_power(0.2, 0.15, 0.1, n) >= 0.8 > welch_power(0.2, 0.15, 0.1, n - 1)
    assert seeds_needed(0.0, 0.1, 0.1) is None


# --------------------------------------------------------------------------- tables built from records
def _record(store: ResultStore, model: str, seed: int, mse: float) -> None:
    dp = {"history": 10, "stride": 10, "split_margin": 0}
    train = {"epochs": 500, "lr": 5e-3, "hidden": 16, "batch_size": 100, "weight_decay": 1e-12, "model_hparams": {}}
    chash = config_hash({"model": model, "dataset": "md17", "case": "ethanol", "data_params": dp, "train": train})
    store.put(cell_id(model, "md17", "ethanol", seed, chash), {
        "model": model, "dataset": "md17", "case": "ethanol", "seed": seed, "config": train, "config_hash": chash,
        "data_params": dp, "metrics": {"test_mse": mse, "val_mse": mse, "best_epoch": 5},
        "timings": {"train_seconds_per_epoch": 1.0}, "num_params": 10, "official_data": False, "split_hash": "x",
        "finished_at": "2026-12-01T10:00:00+0000", "provenance": {"git_commit": "abc"},
    })


SEEDS = {
    "estag": [0.060e-3, 0.070e-3, 0.065e-3],
    "st-egnn": [0.062e-3, 0.090e-3, 0.075e-3],  # overlaps ESTAG: not distinguishable
    "egnn-t": [0.50e-3, 0.52e-3, 0.55e-3],  # clearly worse
    "stgcn": [0.3e-3],  # one seed: not tested
}


@pytest.fixture
def ethanol_table(tmp_path):
    store = ResultStore(tmp_path / "res")
    for model, vals in SEEDS.items():
        for seed, v in enumerate(vals, 1):
            _record(store, model, seed, v)
    return store, build_table(get_table_spec(1), load_records(store.root), drop_empty=True)


def test_table_p_values_are_welch_holm_over_the_column(ethanol_table):
    _, t = ethanol_table
    raw = [stats.ttest_ind(SEEDS[m], SEEDS["estag"], equal_var=False).pvalue for m in ("st-egnn", "egnn-t")]
    adj = holm(raw)
    p = t.p_values()
    assert set(p) == {("st-egnn", "ethanol"), ("egnn-t", "ethanol")}
    assert p[("st-egnn", "ethanol")] == pytest.approx(adj[0], rel=1e-9)
    assert p[("egnn-t", "ethanol")] == pytest.approx(adj[1], rel=1e-9)
    assert adj[0] >= 0.05 > adj[1]
    csv = pd.read_csv(__import__("io").StringIO(to_csv(t)), comment="#").set_index("row")
    assert csv.loc["st-egnn", "p_value"] == pytest.approx(adj[0], rel=1e-9)
    assert math.isnan(csv.loc["estag", "p_value"]) and math.isnan(csv.loc["stgcn", "p_value"])
    lo, hi = stats.t.interval(0.95, 2, loc=np.mean(SEEDS["estag"]), scale=stats.sem(SEEDS["estag"]))
    assert (csv.loc["estag", "ci_low"], csv.loc["estag", "ci_high"]) == (pytest.approx(lo), pytest.approx(hi))
    md = to_markdown(t)
    assert next(line for line in md.splitlines() if line.startswith("| ST_EGNN |")).count("†") == 1
    assert "†" not in next(line for line in md.splitlines() if line.startswith("| EGNN-t |"))
    assert "Holm-corrected" in md
    tex = to_latex(t, standalone=True)
    check_latex(tex)
    assert tex.count(r"$^\dagger$") == 2  # the ST_EGNN cell and the caption


def test_tables_command_marks_significance_in_markdown(ethanol_table, capsys):
    store, _ = ethanol_table
    assert main(["tables", "--table", "1", "--results", str(store.root), "--format", "markdown", "--drop-empty"]) == 0
    out = capsys.readouterr().out
    assert next(line for line in out.splitlines() if line.startswith("| ST_EGNN |")).split(" | ")[1].endswith("†")
    assert "Holm-corrected over the column" in out


def test_bootstrap_interval_needs_per_seed_numbers(ethanol_table, tmp_path):
    store, _ = ethanol_table
    t = build_table(get_table_spec(1), load_records(store.root), drop_empty=True, interval="bootstrap")
    ci = t.interval("estag", "ethanol")
    assert ci.method == "bootstrap" and min(SEEDS["estag"]) <= ci.low < ci.high <= max(SEEDS["estag"])
    back = read_table_csv(to_csv(t))
    back.interval_method = "bootstrap"
    with pytest.raises(ValueError, match="per-seed numbers"):
        back.interval("estag", "ethanol")
    with pytest.raises(ValueError, match="unknown interval"):
        build_table(get_table_spec(1), load_records(store.root), interval="jackknife")


def test_compare_from_a_store_lists_seeds(ethanol_table, capsys):
    store, _ = ethanol_table
    assert main(["compare", "estag", "st-egnn", "--dataset", "md17", "--results", str(store.root)]) == 0
    out = capsys.readouterr().out
    ref = stats.ttest_ind(SEEDS["estag"], SEEDS["st-egnn"], equal_var=False)
    assert f"p = {ref.pvalue:.3g}" in out and "not significant" in out
    assert "6e-05" in out and "9e-05" in out  # per-seed values side by side
    assert main(["compare", "estag", "stgcn", "--dataset", "md17", "--results", str(store.root)]) == 2
    assert "at least 2" in capsys.readouterr().err


def test_compare_bad_input_is_one_clear_line(tmp_path, capsys):
    assert main(["compare", "estag", "nope", "--dataset", "md17", "--leaderboards", str(REPO / "leaderboards")]) == 2
    assert "'nope'" in capsys.readouterr().err
    assert main(["compare", "estag", "st-egnn", "--dataset", "md17", "--results", str(tmp_path)]) == 2
    assert "no results store" in capsys.readouterr().err
    assert main(["compare", "estag", "st-egnn", "--dataset", "md17", "--leaderboards", str(tmp_path)]) == 2
    assert "no leaderboard CSV" in capsys.readouterr().err


# --------------------------------------------------------------------------- the committed leaderboards
def _csv_frame(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, comment="#", dtype={"row": str, "column": str})


@pytest.mark.parametrize("path", sorted((REPO / "leaderboards").glob("table*.csv")), ids=lambda p: p.name)
def test_leaderboard_p_values_are_scipy_welch_with_holm(path):
    t = read_table_csv(path)
    df = _csv_frame(path)
    assert "p_value" in df.columns, f"{path.name}: rerender it (leaderboards/README.md)"
    for (rk, ck), p in t.p_values().items():
        got = df[(df["row"] == rk) & (df["column"] == ck)]["p_value"].iloc[0]
        assert got == pytest.approx(p, rel=1e-9), f"{path.name} {rk}/{ck}"
    groups = df[df["p_value"].notna()].groupby("column") if t.spec.rank_axis == "column" else []
    for ck, g in groups:
        col = df[(df["column"] == ck) & df["mean"].notna()]
        best = col.loc[col["mean"].idxmin()]
        raw = [stats.ttest_ind_from_stats(r["mean"], r["std"], r["n_seeds"], best["mean"], best["std"],
                                          best["n_seeds"], equal_var=False).pvalue for _, r in g.iterrows()]
        if best["std"] == 0 and (g["std"] == 0).any():
            continue  # both spreads zero: scipy gives nan, the suite calls it certain (see _stats)
        assert list(g["p_value"]) == pytest.approx(holm(raw), rel=1e-9), f"{path.name}: column {ck}"


def test_table1_markdown_marks_significance():
    t = read_table_csv(REPO / "leaderboards" / "table1.csv")
    md = (REPO / "leaderboards" / "table1.md").read_text()
    df = _csv_frame(REPO / "leaderboards" / "table1.csv").set_index("row")
    for row in t.spec.rows:
        if (row.key, "ethanol") not in t.cells or t.cells[(row.key, "ethanol")].empty:
            continue
        line = next(x for x in md.splitlines() if x.startswith(f"| {row.label} |"))
        p = df.loc[row.key, "p_value"]
        expect = not math.isnan(p) and p >= 0.05 and df.loc[row.key, "mark"] != "best"
        assert ("†" in line) == expect, f"{row.label}: p = {p}"
    assert "†" in md  # Table 1 has rows not distinguishable from its best


def test_compare_reads_the_committed_table1(capsys):
    assert main(["compare", "estag", "st-egnn", "--dataset", "md17", "--case", "ethanol", "--table", "1",
                 "--leaderboards", str(REPO / "leaderboards")]) == 0
    out = capsys.readouterr().out
    df = _csv_frame(REPO / "leaderboards" / "table1.csv").set_index("row")
    a, b = df.loc["estag"], df.loc["st-egnn"]
    ref = stats.ttest_ind_from_stats(a["mean"], a["std"], 3, b["mean"], b["std"], 3, equal_var=False)
    assert f"p = {ref.pvalue:.3g}" in out and "per-seed numbers are not in the leaderboard CSV" in out
    c = compare(Sample("estag", a["mean"], a["std"], 3), Sample("st-egnn", b["mean"], b["std"], 3))
    assert f"power at this difference and these spreads: {c.seeds_for_power}" in out
