"""Tables 1-9: paper transcription, cell selection, statistics, marks, formats, reproduce, leaderboards."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from estagbench.cli import main
from estagbench.results import ResultStore, cell_id, config_hash
from estagbench.tables import (
    TABLES,
    build_table,
    build_tables,
    check_latex,
    get_table_spec,
    load_records,
    paper_results,
    parse_table_selector,
    read_table_csv,
    render,
    to_csv,
    to_latex,
    to_markdown,
)

from .conftest import REPO, data_root, require_data

# --------------------------------------------------------------------------- the paper's numbers
_ROW_KEYS = {
    "pt-s": "pt-s",
    "pt-m": "pt-m",
    "pt-t": "pt-t",
    "egnn-s": "egnn-s",
    "egnn-m": "egnn-m",
    "egnn-t": "egnn-t",
    "st_tfn": "st-tfn",
    "st_gnn": "st-gnn",
    "st_se(3)tr": "st-se3",
    "st_egnn": "st-egnn",
    "st_gmn": "st-gmn",
    "eqmotion": "eqmotion",
    "stgcn": "stgcn",
    "agl-stan": "agl-stan",
    "estag": "estag",
    "w/oedft": "estag-no-edft",
    "w/oattention": "estag-no-attn",
    "w/oequivariance": "stag",
    "w/otemporal": "estag-no-pool",
    "w/ow_k": "estag-no-wk",
}


def _norm(label: str) -> str:
    return re.sub(r"<[^>]+>|\$|\s", "", label).lower()


def _paper_cell(text: str) -> tuple[float | None, str]:
    text = text.strip()
    mark = "best" if "<b>" in text else "second" if "<u>" in text else ""
    plain = re.sub(r"<[^>]+>", "", text).strip()
    return (None if plain in ("-", "–", "") else float(plain)), mark


def _paper_blocks(md: str) -> dict[int, list[list[str]]]:
    """Table number -> rows of tab-separated cells, read from the paper's markdown."""
    lines = md.splitlines()
    out: dict[int, list[list[str]]] = {}
    i = 0
    while i < len(lines):
        nums = [int(n) for n in re.findall(r"Table (\d+):", lines[i])] if lines[i].startswith("Table ") else []
        if not nums:
            i += 1
            continue
        blocks: list[list[list[str]]] = []
        j, cur = i + 1, []
        while j < len(lines):
            if "\t" in lines[j]:
                cur.append(lines[j].split("\t"))
            elif lines[j].strip() == "":
                if cur:
                    blocks.append(cur)
                    cur = []
            else:
                break
            j += 1
        if cur:
            blocks.append(cur)
        for n, b in zip(nums, blocks, strict=False):
            out[n] = b
        i = j
    return out


def _paper_cells(md: str) -> dict[tuple[int, str, str], tuple[float, str]]:
    cells = {}
    for n, rows in _paper_blocks(md).items():
        header = rows[0]
        if n in (5, 6):  # transposed sweeps: header "$L$ 1 2 ...", one data row
            prefix = "L" if n == 5 else "T"
            for h, v in zip(header[1:], rows[1][1:], strict=False):
                val, mark = _paper_cell(v)
                cells[(n, "estag", f"{prefix}{h.strip()}")] = (val, mark)
            continue
        cols = []
        for h in header[1:]:
            k = _norm(h)
            cols.append("time" if k == "time(s)" else "mse" if k.startswith("mse") else k)
        for r in rows[1:]:
            key = _ROW_KEYS[_norm(r[0])]
            for c, v in zip(cols, r[1:], strict=False):
                val, mark = _paper_cell(v)
                if val is not None:
                    cells[(n, key, c)] = (val, mark)
    return cells


@pytest.fixture(scope="module")
def paper_md() -> str:
    path = data_root().parent / "paper" / "estag-paper.md"
    if not path.exists():
        msg = f"paper text missing at {path} (expected beside the data folder)"
        if os.environ.get("ESTAGBENCH_REQUIRE_DATA") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return path.read_text()


def test_paper_transcription_matches_text(paper_md):
    parsed = _paper_cells(paper_md)
    assert set(TABLES) == {n for n, _, _ in parsed}, "every one of Tables 1-9 is found in the paper text"
    df = paper_results()
    ours = {
        (int(t), r, c): (float(v), m)
        for t, r, c, v, m in zip(df.table, df.row, df.column, df.value, df["mark"], strict=False)
    }
    assert set(ours) == set(parsed), f"missing {set(parsed) - set(ours)}; extra {set(ours) - set(parsed)}"
    for key, (val, mark) in parsed.items():
        assert ours[key][0] == pytest.approx(val, abs=0, rel=1e-12), key
        assert ours[key][1] == mark, key


def test_paper_csv_fits_the_specs():
    df = paper_results()
    assert len(df) == 243
    for t, r, c, e in zip(df.table, df.row, df.column, df.exponent, strict=False):
        spec = get_table_spec(t)
        spec.row(r)
        col = spec.column(c)
        assert e == (0 if col.metric != "test_mse" else spec.exponent)


def test_table_selector_and_unknown_table():
    assert parse_table_selector("all") == list(range(1, 10))
    assert parse_table_selector("1,4") == [1, 4]
    with pytest.raises(KeyError, match="Tables 1, 2"):
        parse_table_selector("10")


# --------------------------------------------------------------------------- a synthetic store
def _put(
    store: ResultStore,
    model,
    dataset,
    case,
    seed,
    mse,
    *,
    epochs=500,
    history=10,
    hparams=None,
    finished="2026-11-25T10:00:00+0000",
    secs=1.0,
    params=1,
    split_margin=0,
    val=None,
):
    dp = {"history": history, "stride": 10, "split_margin": split_margin}
    train = {
        "epochs": epochs,
        "lr": 5e-3,
        "hidden": 16,
        "batch_size": 100,
        "weight_decay": 1e-12,
        "model_hparams": dict(hparams or {}),
    }
    conf = {"model": model, "dataset": dataset, "case": case, "data_params": dp, "train": train}
    chash = config_hash(conf)
    rec = {
        "model": model,
        "dataset": dataset,
        "case": case,
        "seed": seed,
        "config": train,
        "config_hash": chash,
        "data_params": dp,
        "metrics": {"test_mse": mse, "val_mse": mse if val is None else val, "best_epoch": 5},
        "timings": {"train_seconds_per_epoch": secs if params else 0.0, "ms_per_sample": 0.1},
        "num_params": params,
        "official_data": False,
        "split_hash": "abc",
        "finished_at": finished,
        "provenance": {"git_commit": "deadbeef", "versions": {"torch": "x"}, "machine": {}},
        "wall_seconds": 2.0,
    }
    store.put(cell_id(model, dataset, case, seed, chash), rec)
    return chash


@pytest.fixture
def store(tmp_path):
    s = ResultStore(tmp_path / "res")
    rng = np.random.default_rng(0)
    vals = {}
    for model, base in (("pt-t", 0.606e-3), ("egnn-t", 0.42e-3), ("st-egnn", 0.29e-3), ("estag", 0.085e-3)):
        params = 0 if model == "pt-t" else 100
        v = base * (1 + 0.05 * rng.standard_normal(3)) if params else np.full(3, base)
        vals[model] = v
        for seed, x in zip((1, 2, 3), v, strict=False):
            _put(s, model, "md17", "ethanol", seed, float(x), params=params)
    return s, vals


def test_cells_are_mean_and_unbiased_std_scaled_and_marked(store):
    s, vals = store
    t = build_table(get_table_spec(1), load_records(s.root))
    for model, v in vals.items():
        c = t.cells[(model, "ethanol")]
        assert c.n_seeds == 3 and c.seeds == "1,2,3"
        assert c.mean == pytest.approx(float(np.mean(v)), rel=1e-12)
        if model != "pt-t":
            assert c.std == pytest.approx(float(np.std(v, ddof=1)), rel=1e-9)
        assert t.display(model, "ethanol") == pytest.approx(1e3 * float(np.mean(v)))
    assert t.cells[("estag", "aspirin")].empty and t.display("estag", "aspirin") is None
    marks = t.marks()
    assert marks[("estag", "ethanol")] == "best" and marks[("st-egnn", "ethanol")] == "second"
    assert ("pt-t", "ethanol") not in marks
    md = to_markdown(t)
    assert f"**{1e3 * np.mean(vals['estag']):.3f} ± " in md
    assert f"<u>{1e3 * np.mean(vals['st-egnn']):.3f} ± " in md
    assert "| ST_SE(3)-Tr | – |" in md  # a row with nothing stored
    row = next(line for line in md.splitlines() if line.startswith("| Pt-t |"))
    assert "0.606 ± 0.000" in row


def test_ties_share_marks_as_in_the_paper(tmp_path):
    s = ResultStore(tmp_path / "res")
    for m, v in (
        ("estag", 0.0031e-3),
        ("estag-no-edft", 0.0029e-3),
        ("estag-no-pool", 0.0034e-3),
        ("estag-no-attn", 0.004e-3),
        ("stag", 0.114e-3),
    ):
        _put(s, m, "md17", "benzene", 1, v)
    t = build_table(get_table_spec(4), load_records(s.root))
    marks = t.marks()
    assert {k[0] for k, m in marks.items() if m == "best"} == {"estag", "estag-no-edft", "estag-no-pool"}
    assert {k[0] for k, m in marks.items() if m == "second"} == {"estag-no-attn"}
    assert t.cells[("estag", "benzene")].std is None  # one seed: no std
    assert "0.003 ±" not in to_markdown(t)


def test_newest_configuration_wins_and_epochs_filter(tmp_path):
    s = ResultStore(tmp_path / "res")
    _put(s, "estag", "md17", "ethanol", 1, 1e-4, epochs=500, finished="2026-11-25T10:00:00+0000")
    _put(s, "estag", "md17", "ethanol", 1, 3e-4, epochs=50, finished="2026-11-25T12:00:00+0000")
    _put(s, "pt-t", "md17", "ethanol", 1, 6e-4, epochs=500, params=0)
    df = load_records(s.root)
    t = build_table(get_table_spec(1), df)
    assert t.cells[("estag", "ethanol")].epochs == 50 and t.cells[("estag", "ethanol")].n_configs == 2
    assert "newest used: estag/ethanol" in t.meta["notes"]
    t500 = build_table(get_table_spec(1), df, epochs=500)
    assert t500.cells[("estag", "ethanol")].mean == pytest.approx(1e-4)
    t50 = build_table(get_table_spec(1), df, epochs=50)
    assert t50.cells[("pt-t", "ethanol")].mean == pytest.approx(6e-4), "epochs does not filter untrained models"
    assert t50.meta["epochs"] == "50"


def test_history_and_layers_select_sweep_cells(tmp_path):
    s = ResultStore(tmp_path / "res")
    _put(s, "estag", "md17", "ethanol", 1, 1.0e-4)  # T=10, default L=2
    _put(s, "estag", "md17", "ethanol", 1, 1.1e-4, hparams={"layers": 3})
    _put(s, "estag", "md17", "ethanol", 1, 1.7e-4, history=3)
    df = load_records(s.root)
    t1 = build_table(get_table_spec(1), df)
    assert (
        t1.cells[("estag", "ethanol")].mean == pytest.approx(1.0e-4) and t1.cells[("estag", "ethanol")].n_configs == 1
    )
    t5 = build_table(get_table_spec(5), df)
    assert t5.display("estag", "L2") == pytest.approx(1.0) and t5.display("estag", "L3") == pytest.approx(1.1)
    assert t5.display("estag", "L1") is None
    t6 = build_table(get_table_spec(6), df)
    assert t6.display("estag", "T3") == pytest.approx(1.7) and t6.display("estag", "T10") == pytest.approx(1.0)
    assert t6.marks()[("estag", "T10")] == "best"  # sweeps rank along the row


def test_protein_variants_and_time_column(tmp_path):
    s = ResultStore(tmp_path / "res")
    for ds, scale in (("adk", 1.0), ("adk-mini", 0.1)):
        _put(s, "pt-t", ds, "equilibrium" if ds == "adk" else "mini", 1, 2.0 * scale, params=0)
        _put(s, "estag", ds, "equilibrium" if ds == "adk" else "mini", 1, 1.5 * scale, secs=6.5)
    df = load_records(s.root)
    tables = build_tables(get_table_spec(2), df)
    assert [t.stem for t in tables] == ["table2-adk", "table2-adk-mini"]
    mini = tables[1]
    assert mini.display("estag", "mse") == pytest.approx(0.15) and mini.display("estag", "time") == pytest.approx(6.5)
    assert mini.display("pt-t", "time") is None  # Pt: nothing trained, "–" as in the paper
    assert ("estag", "time") not in mini.marks()
    assert "adk-mini differ" in mini.meta["notes"]
    only = build_tables(get_table_spec(2), df, ["adk-mini"])
    assert len(only) == 1 and only[0].stem == "table2-adk-mini"


def test_csv_roundtrip_rebuilds_markdown_and_latex(store):
    s, _ = store
    for compare in (False, True):
        t = build_table(
            get_table_spec(1),
            load_records(s.root),
            compare_paper=compare,
            drop_empty=True,
            meta={"command": "estagbench tables --table 1", "wall_time": "1 s"},
        )
        back = read_table_csv(to_csv(t))
        assert to_markdown(back) == to_markdown(t)
        assert to_latex(back, standalone=True) == to_latex(t, standalone=True)
        assert back.cells[("estag", "ethanol")].mean == t.cells[("estag", "ethanol")].mean  # exact floats


def test_compare_paper_shows_paper_value_and_difference(store):
    s, vals = store
    t = build_table(get_table_spec(1), load_records(s.root), compare_paper=True)
    ours = 1e3 * float(np.mean(vals["estag"]))
    rel = (ours - 0.099) / 0.099 * 100
    md = to_markdown(t)
    assert f"(paper 0.099, {rel:+.1f}%)" in md
    assert "– (paper 0.063)" in md  # aspirin: not stored here, paper's number still shown
    assert t.rel_diff("estag", "ethanol") == pytest.approx(rel / 100)
    csv = pd.read_csv(__import__("io").StringIO(to_csv(t)), comment="#")
    r = csv[(csv.row == "estag") & (csv.column == "ethanol")].iloc[0]
    assert r.paper == 0.099 and r.mark == "best"


# --------------------------------------------------------------------------- LaTeX
@pytest.mark.parametrize("number", list(TABLES))
def test_every_table_latex_parses(store, number):
    s, _ = store
    df = load_records(s.root)
    for t in build_tables(get_table_spec(number), df, compare_paper=True):
        for standalone in (False, True):
            info = check_latex(to_latex(t, standalone=standalone))
            assert info.n_columns == len(t.columns) + 1
            assert len(info.rows) == len(t.spec.rows)
            assert info.standalone is standalone
    assert "ST\\_EGNN" in to_latex(build_table(get_table_spec(1), df))


@pytest.mark.parametrize("breakage", ["drop_amp", "underscore", "rule", "brace", "booktabs", "env"])
def test_latex_checker_rejects_broken_tables(store, breakage):
    s, _ = store
    tex = to_latex(build_table(get_table_spec(1), load_records(s.root)), standalone=True)
    check_latex(tex)
    broken = {
        "drop_amp": lambda x: x.replace("Pt-t & ", "Pt-t ", 1),
        "underscore": lambda x: x.replace("ST\\_EGNN", "ST_EGNN", 1),
        "rule": lambda x: x.replace("\\bottomrule\n", "", 1),
        "brace": lambda x: x.replace("\\textbf{", "\\textbf{{", 1),
        "booktabs": lambda x: x.replace("\\usepackage{booktabs}\n", "", 1),
        "env": lambda x: x.replace("\\end{table}", "\\end{tabular}", 1),
    }[breakage](tex)
    assert broken != tex
    with pytest.raises(ValueError):
        check_latex(broken)


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
def test_standalone_latex_compiles(store, tmp_path):
    s, _ = store
    t = build_table(get_table_spec(1), load_records(s.root), compare_paper=True)
    (tmp_path / "t.tex").write_text(to_latex(t, standalone=True))
    r = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout[-2000:]
    assert (tmp_path / "t.pdf").exists()


# --------------------------------------------------------------------------- command line
def test_tables_command_writes_nine_latex_tables(store, tmp_path, capsys):
    s, _ = store
    out = tmp_path / "tables"
    assert (
        main(
            [
                "tables",
                "--table",
                "all",
                "--format",
                "latex",
                "--results",
                str(s.root),
                "--out",
                str(out),
                "--standalone",
            ]
        )
        == 0
    )
    files = sorted(out.glob("*.tex"))
    assert {int(re.match(r"table(\d)", f.name).group(1)) for f in files} == set(range(1, 10))
    for f in files:
        check_latex(f.read_text())
    assert main(["tables", "--table", "1", "--compare-paper", "--results", str(s.root), "--drop-empty"]) == 0
    text = capsys.readouterr().out
    assert "(paper 0.099" in text and "| Method | Ethanol |" in text
    assert re.search(r"- commit: deadbeef \(\d+ records\)", text) and "- versions: torch x" in text
    assert main(["tables", "--table", "12", "--results", str(s.root)]) == 2


# --------------------------------------------------------------------------- reproduce on real data
def _ethanol_opts(root: Path) -> list[str]:
    return [
        "--molecules",
        "ethanol",
        "--split-margin",
        "0",
        "--split-fractions",
        "0.3,0.15,0.15",
        "--data-dir",
        str(root),
        "--no-progress",
    ]


def test_reproduce_table1_on_ethanol_runs_resumes_and_writes(tmp_path, capsys):
    root = require_data("md17/md17_ethanol.npz")
    out, tabs = tmp_path / "res", tmp_path / "tabs"
    argv = [
        "reproduce",
        "--table",
        "1",
        "--models",
        "pt-s,pt-t,egnn-t",
        "--seeds",
        "1,2",
        "--epochs",
        "5",
        "--out",
        str(out),
        "--tables-out",
        str(tabs),
        *_ethanol_opts(root),
    ]
    assert main(argv) == 0
    recs = sorted((out / "results").glob("*.json"))
    assert len(recs) == 6
    assert all(json.loads(p.read_text())["config"]["epochs"] == 5 for p in recs), "one budget for every model"
    mtimes = {p: p.stat().st_mtime_ns for p in recs}
    assert main(argv) == 0  # resumes: nothing retrained
    assert {p: p.stat().st_mtime_ns for p in sorted((out / "results").glob("*.json"))} == mtimes
    csv_text = (tabs / "table1.csv").read_text()
    md = (tabs / "table1.md").read_text()
    check_latex((tabs / "table1.tex").read_text())
    for key in ("command", "budget", "commit", "versions", "machine", "wall_time", "official_data"):
        assert f"# {key}: " in csv_text and f"- {key}: " in md
    assert "estagbench reproduce --table 1" in md and "epochs 5, seeds 1,2" in md
    assert "| Method | Ethanol |" in md  # only the column that was run
    table = read_table_csv(tabs / "table1.csv")
    assert to_markdown(table) == md
    # Pt-t's cell equals an independent computation: last input frame vs target, element-wise MSE
    from estagbench.data import load_case

    data = load_case("md17", "ethanol", data_dir=root, split_margin=0, split_fractions=(0.3, 0.15, 0.15)).prepare()
    test = data.splits["test"]
    expect = float(((test.x[:, -1].double() - test.y.double()) ** 2).mean())
    assert table.cells[("pt-t", "ethanol")].mean == pytest.approx(expect, rel=1e-6)
    assert table.cells[("egnn-t", "ethanol")].n_seeds == 2
    assert table.cells[("estag", "ethanol")].empty  # not asked for
    # a smaller seed list: the table averages only those seeds, though the store holds more
    assert main([*argv[:argv.index("--seeds") + 1], "1", *argv[argv.index("--seeds") + 2:]]) == 0
    one = read_table_csv(tabs / "table1.csv")
    assert one.cells[("egnn-t", "ethanol")].n_seeds == 1 and one.cells[("egnn-t", "ethanol")].seeds == "1"
    assert "- seeds: 1\n" in (tabs / "table1.md").read_text()


def test_reproduce_rejects_what_the_table_does_not_have(tmp_path):
    assert main(["reproduce", "--table", "2", "--dataset", "md17", "--out", str(tmp_path)]) == 2
    assert main(["reproduce", "--table", "1", "--models", "st-gmn", "--out", str(tmp_path)]) == 2


# --------------------------------------------------------------------------- committed leaderboards
LEADERBOARDS = REPO / "leaderboards"


def _leaderboard_csvs() -> list[Path]:
    return sorted(LEADERBOARDS.glob("table*.csv")) if LEADERBOARDS.is_dir() else []


@pytest.mark.skipif(not _leaderboard_csvs(), reason="no committed leaderboard CSV under leaderboards/ yet")
def test_leaderboards_agree_with_their_csv():
    for path in _leaderboard_csvs():
        table = read_table_csv(path)
        md = path.with_suffix(".md")
        tex = path.with_suffix(".tex")
        assert md.exists() and tex.exists(), f"{path.name}: Markdown and LaTeX must sit beside the CSV"
        assert to_markdown(table) == md.read_text(), f"{md.name} differs from what its CSV renders"
        assert render(table, "latex", standalone=True) == tex.read_text(), f"{tex.name} differs from its CSV"
        check_latex(tex.read_text())
        for key in ("command", "budget", "commit", "versions", "machine", "wall_time"):
            assert table.meta.get(key), f"{path.name}: header lacks {key}"
        assert table.meta["command"].startswith("estagbench reproduce"), f"{path.name} was not made by reproduce"


def test_plan_table_groups_the_cells_each_table_needs():
    from estagbench.tables._reproduce import plan_table

    groups, _, _ = plan_table(get_table_spec(5), cases=["ethanol"], model_hparams={"layers": 2})
    assert [g.hparams for g in groups] == [
        {"layers": 1},
        {},
        {"layers": 3},
        {"layers": 4},
        {"layers": 5},
        {"layers": 6},
    ]
    assert all(g.models == ["estag"] and g.cases == ["ethanol"] and g.history == 10 for g in groups)
    groups, _, _ = plan_table(get_table_spec(6))
    assert [g.history for g in groups] == [3, 5, 8, 10, 20, 30, 40, 50, 60, 70]
    groups, _, _ = plan_table(get_table_spec(1), cases=["ethanol"])
    assert len(groups) == 1 and groups[0].cases == ["ethanol"] and groups[0].columns == ["ethanol"]
    assert groups[0].models[0] == "pt-s" and groups[0].models[-1] == "estag"
    groups, _, _ = plan_table(get_table_spec(3), datasets=["motion-walk-30fps"])
    assert [(g.dataset, g.columns) for g in groups] == [("motion-walk-30fps", ["walk"])]  # no basketball here
    groups, _, _ = plan_table(get_table_spec(2), datasets=["adk-mini"])
    assert "st-gmn" in groups[0].models  # ST_GMN is a protein-only row
    with pytest.raises(ValueError, match="no row"):
        plan_table(get_table_spec(1), models=["st-gmn"])
    with pytest.raises(ValueError, match="no case"):
        plan_table(get_table_spec(1), cases=["caffeine"])


def test_a_lone_value_is_not_marked(tmp_path):
    s = ResultStore(tmp_path / "res")
    _put(s, "estag", "motion-walk-30fps", "walk-30fps", 1, 0.0046)
    (t,) = build_tables(get_table_spec(9), load_records(s.root))
    assert t.stem == "table9-motion-walk-30fps" and t.display("estag", "mse") == pytest.approx(0.046)
    assert t.marks() == {}
    assert not [line for line in to_markdown(t).splitlines() if line.startswith("|") and "**" in line]


def test_header_names_only_the_data_behind_the_numbers(tmp_path, capsys):
    store = ResultStore(tmp_path / "res")
    for seed in (1, 2):
        _put(store, "estag", "md17", "ethanol", seed, 1e-4 * seed)
    assert main(["tables", "--table", "1", "--results", str(store.root)]) == 0  # every column kept ('–' elsewhere)
    head = capsys.readouterr().out.splitlines()[0]
    assert "Data: md17 (ethanol);" in head and "aspirin" not in head
