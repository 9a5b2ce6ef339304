"""Runner, results store and trainer: resume, atomic records, determinism, CLI errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from estagbench import register_model
from estagbench.cli import main
from estagbench.data.trajectory import write_trajectory
from estagbench.results import load_results
from estagbench.train import TrainConfig, train_model


class _Drift(nn.Module):
    """x(T-1) + a learned per-node drift: small, trainable, E(3)-naive (test only)."""

    def __init__(self, n: int, hidden: int):
        super().__init__()
        self.lin = nn.Linear(1, hidden)
        self.out = nn.Linear(hidden, 3)

    def forward(self, batch):
        v = batch.x[:, -1] - batch.x[:, -2]
        return batch.x[:, -1] + v * self.out(torch.tanh(self.lin(batch.h))).mean(-1, keepdim=True)[None, :, None, :]


@register_model("zz-test-drift", multichannel=True)
def _drift(info, hidden=16, **kw):
    return _Drift(info.num_nodes, hidden)


@pytest.fixture
def traj_file(tmp_path):
    rng = np.random.default_rng(0)
    t = np.arange(600)[:, None, None]
    pos = np.sin(0.05 * t + rng.normal(size=(1, 4, 3))) + 0.01 * rng.normal(size=(600, 4, 3))
    return write_trajectory(tmp_path / "toy.npz", pos, atomic_numbers=[6, 6, 7, 8], cutoff=10.0)


def _run(out, traj, *extra):
    return main(["run", "--models", "pt-t,zz-test-drift", "--dataset", str(traj), "--epochs", "3", "--seeds", "1,2",
                 "--history", "4", "--stride", "2", "--out", str(out), "--no-progress", *extra])


def test_run_stores_records_and_resumes(tmp_path, traj_file, capsys):
    out = tmp_path / "res"
    assert _run(out, traj_file) == 0
    files = sorted((out / "results").glob("*.json"))
    assert len(files) == 4
    rec = json.loads(files[-1].read_text())
    for key in ("metrics", "timings", "split_hash", "provenance", "data_files", "config_hash", "seed"):
        assert key in rec
    assert rec["provenance"]["versions"]["torch"] == torch.__version__
    assert len(list((out / "splits").glob("*.json"))) == 1
    mtimes = {f: f.stat().st_mtime_ns for f in files}
    capsys.readouterr()
    assert _run(out, traj_file) == 0
    assert "skip zz-test-drift" in capsys.readouterr().err
    assert {f: f.stat().st_mtime_ns for f in files} == mtimes  # nothing recomputed
    df = load_results(out)
    assert set(df.columns) >= {"model", "dataset", "case", "seed", "test_mse", "val_mse", "best_epoch",
                               "train_seconds_per_epoch"}
    assert len(df) == 4


def test_interrupted_run_keeps_finished_cells(tmp_path, traj_file, monkeypatch):
    import estagbench.worker as runner  # where the cells are trained

    out = tmp_path / "res"
    calls = {"n": 0}
    real = runner.train_model

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(runner, "train_model", flaky)
    assert _run(out, traj_file) == 130
    assert len(list((out / "results").glob("*.json"))) == 2
    assert not list((out / "results").glob("*.part"))
    monkeypatch.setattr(runner, "train_model", real)
    assert _run(out, traj_file) == 0
    assert len(list((out / "results").glob("*.json"))) == 4


def test_same_seed_same_numbers(tmp_path, traj_file):
    from estagbench.data import load_case

    case = load_case(str(traj_file), history=4, stride=2).prepare()
    cfg = TrainConfig(epochs=4, eval_every=2)
    a = train_model("zz-test-drift", case, 5, cfg)
    b = train_model("zz-test-drift", case, 5, cfg)
    c = train_model("zz-test-drift", case, 6, cfg)
    def numbers(out):
        return [(r["train_loss"], r["val_mse"], r["test_mse"]) for r in out.curve]

    assert str(numbers(a)) == str(numbers(b))  # bitwise (str keeps nan == nan)
    assert a.metrics == b.metrics
    assert numbers(a) != numbers(c)


def test_best_val_selection(tmp_path, traj_file):
    from estagbench.data import load_case

    case = load_case(str(traj_file), history=4, stride=2).prepare()
    out = train_model("zz-test-drift", case, 1, TrainConfig(epochs=6, eval_every=2), run_dir=tmp_path)
    evals = [r for r in out.curve if not np.isnan(r["val_mse"])]
    best = min(evals, key=lambda r: r["val_mse"])
    assert out.metrics["best_epoch"] == best["epoch"] and out.metrics["test_mse"] == best["test_mse"]
    assert (tmp_path / "log.csv").exists() and (tmp_path / "best.pt").exists()


def test_log_is_written_during_training(tmp_path, traj_file):
    """log.csv follows a long run: after each evaluation it holds every epoch so far."""
    import pandas as pd

    from estagbench.data import load_case

    case = load_case(str(traj_file), history=4, stride=2).prepare()
    seen: dict[int, int] = {}

    def on_epoch(row):
        path = tmp_path / "log.csv"
        seen[int(row["epoch"])] = len(pd.read_csv(path)) if path.exists() else 0

    out = train_model("zz-test-drift", case, 1, TrainConfig(epochs=6, eval_every=2), run_dir=tmp_path, on_epoch=on_epoch)
    assert seen == {1: 0, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4}  # the last epoch's rows land in the final write
    final = pd.read_csv(tmp_path / "log.csv")
    assert len(final) == 6 and final["test_mse"].iloc[-1] == pytest.approx(out.curve[-1]["test_mse"], rel=1e-12)
    assert not list(tmp_path.glob("*.part"))


def test_unknown_names_exit_2_with_list(capsys):
    assert main(["run", "--models", "estgg", "--dataset", "md17"]) == 2
    assert "Valid models" in capsys.readouterr().err
    assert main(["run", "--models", "pt-t", "--dataset", "md71"]) == 2
    assert "Did you mean 'md17'" in capsys.readouterr().err


def test_bad_trajectory_file_names_the_file(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    pos = np.random.rand(50, 3, 3)
    pos[3, 1, 2] = np.nan
    np.savez(bad, positions=pos)
    assert main(["run", "--models", "pt-t", "--dataset", str(bad), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "NaN" in err
    assert not (tmp_path / "r" / "results").exists()


def test_jobs_run_cells_in_worker_processes_with_the_same_numbers(tmp_path, traj_file, capsys):
    """``--jobs 2``: every cell stored once, bitwise the numbers of a sequential run, and a rerun skips them."""
    seq, par = tmp_path / "seq", tmp_path / "par"
    assert _run(seq, traj_file) == 0
    assert _run(par, traj_file, "--jobs", "2") == 0
    a, b = load_results(seq), load_results(par)
    key = ["model", "seed"]
    a, b = a.sort_values(key).reset_index(drop=True), b.sort_values(key).reset_index(drop=True)
    assert len(b) == 4
    for col in ("test_mse", "val_mse", "best_epoch"):
        assert a[col].tolist() == b[col].tolist(), col
    capsys.readouterr()
    assert _run(par, traj_file, "--jobs", "2") == 0
    assert capsys.readouterr().err.count("skip ") == 4


def test_jobs_must_be_positive(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--models", "pt-t", "--dataset", "md17", "--jobs", "0"])
    assert "positive integer" in capsys.readouterr().err


class _Diverges(nn.Module):
    """Predicts NaN: its training loss is NaN from the first step (test only)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(float("nan")))

    def forward(self, batch):
        return batch.x[:, -1] * self.w


@register_model("zz-test-diverges", multichannel=True)
def _diverges(info, **kw):
    return _Diverges()


def test_a_diverging_cell_is_reported_and_the_others_still_run(tmp_path, traj_file, capsys):
    out = tmp_path / "res"
    rc = main(["run", "--models", "pt-t,zz-test-diverges,zz-test-drift", "--dataset", str(traj_file), "--epochs", "2",
               "--seeds", "1", "--history", "4", "--stride", "2", "--out", str(out), "--no-progress"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "failed zz-test-diverges" in err and "training loss became nan at epoch 1" in err
    assert sorted(load_results(out).model) == ["pt-t", "zz-test-drift"]  # stored; nothing for the failed cell


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [("--epochs", "0", "positive integer"), ("--epochs", "-1", "positive integer"),
     ("--batch-size", "0", "positive integer"), ("--history", "0", "positive integer"),
     ("--stride", "0", "positive integer"), ("--split-margin", "-5", "integer >= 0"), ("--threads", "two", "an integer")],
)
def test_flag_values_are_checked_before_anything_runs(flag, value, message, capsys):
    with pytest.raises(SystemExit):
        main(["run", "--models", "pt-t", "--dataset", "md17", flag, value])
    err = capsys.readouterr().err
    assert f"argument {flag}: expected" in err and message in err


def test_a_damaged_record_is_named_and_its_cell_recomputed(tmp_path, traj_file, capsys):
    out = tmp_path / "res"
    assert _run(out, traj_file) == 0
    damaged = sorted((out / "results").glob("zz-test-drift*s2*.json"))[0]
    damaged.write_text(damaged.read_text()[:300])
    with pytest.warns(RuntimeWarning, match=f"{damaged.name}: unreadable result record, left out"):
        df = load_results(out)
    assert len(df) == 3
    capsys.readouterr()
    assert _run(out, traj_file) == 0  # the damaged cell counts as unfinished and runs again
    assert capsys.readouterr().err.count("skip ") == 3
    assert len(load_results(out)) == 4


def test_a_failed_rerun_moves_the_record_of_the_earlier_model_source_aside(tmp_path, traj_file, capsys):
    """A cell reran because its model source changed and then diverged: the old record is not this
    code's result, so it must not stay in the store to be aggregated."""
    out = tmp_path / "res"
    argv = ["run", "--models", "zz-test-diverges", "--dataset", str(traj_file), "--epochs", "2", "--seeds", "1",
            "--history", "4", "--stride", "2", "--out", str(out), "--no-progress"]
    assert main(argv) == 1
    (cid,) = [p.name for p in (out / "runs").iterdir()]
    old = out / "results" / f"{cid}.json"
    old.parent.mkdir(exist_ok=True)
    old.write_text(json.dumps({"model": "zz-test-diverges", "dataset": "toy", "case": "toy", "seed": 1,
                               "config_hash": cid.rsplit("__", 1)[-1], "model_source_sha256": "0" * 64,
                               "metrics": {"test_mse": 1.0, "val_mse": 1.0, "best_epoch": 1}}))
    capsys.readouterr()
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "source changed" in err and f"moved to {cid}.json.stale" in err
    assert not old.exists() and (out / "results" / f"{cid}.json.stale").exists()
    assert load_results(out).empty


def test_rollout_stops_when_a_cell_diverges(tmp_path, traj_file, capsys):
    rc = main(["rollout", "--models", "zz-test-diverges", "--dataset", str(traj_file), "--epochs", "2", "--seeds", "1",
               "--history", "4", "--stride", "2", "--steps", "2", "--out", str(tmp_path / "res"), "--no-progress"])
    assert rc == 2
    assert "diverged in training, no rollout table written" in capsys.readouterr().err
    assert not (tmp_path / "res" / "rollout").exists()


def test_long_dataset_names_give_short_unique_file_names():
    """``TOPOLOGY::TRAJ::TRAJ`` with absolute paths is a legal --dataset; its file names must stay under
    the 255-byte limit (and distinct), while short names keep their readable form."""
    from estagbench.results import cell_id

    base = "/very/long/path/to/a/protein/simulation/folder/" * 3
    a = cell_id("estag", f"{base}top.psf::{base}run1.dcd::{base}run2.dcd", "adk", 1, "abcdef123456")
    b = cell_id("estag", f"{base}top.psf::{base}run1.dcd::{base}run3.dcd", "adk", 1, "abcdef123456")
    assert len(a) < 200 and len(b) < 200 and a != b
    assert cell_id("estag", "md17", "ethanol", 1, "abc") == "estag__md17__ethanol__s1__abc"


def test_naming_a_model_outside_the_papers_datasets_runs_it_with_a_note(tmp_path, capsys):
    from estagbench.runner import plan_run

    plan = plan_run("st-gmn", "md17", ["ethanol"], [1], 1, "paper", tmp_path)  # ST_GMN: AdK only in the paper
    assert plan.models == ["st-gmn"]
    assert "note: the paper did not run st-gmn on md17" in capsys.readouterr().err
    assert "st-gmn" not in plan_run("all", "md17", ["ethanol"], [1], 1, "paper", tmp_path).models


def test_rollout_tables_keep_earlier_models_and_seeds(tmp_path, traj_file):
    import pandas as pd

    out = tmp_path / "res"
    base = ["rollout", "--models", "zz-test-drift", "--dataset", str(traj_file), "--epochs", "2", "--history", "4",
            "--stride", "2", "--steps", "2", "--out", str(out), "--no-progress"]
    assert main([*base, "--seeds", "1"]) == 0
    assert main([*base, "--seeds", "2"]) == 0
    assert main([*base, "--seeds", "1"]) == 0  # again: replaces seed 1's rows, does not add a second copy
    table = pd.read_csv(out / "rollout" / "rollout-toy-toy.csv")
    assert sorted(table.groupby("seed").size().items()) == [(1, 2), (2, 2)]
    assert main([*base, "--seeds", "1", "--split", "val"]) == 0  # another split: its own file
    assert (out / "rollout" / "rollout-toy-toy-val.csv").exists()
    assert len(pd.read_csv(out / "rollout" / "rollout-toy-toy.csv")) == 4


def test_patterns_matching_no_model_are_errors(capsys):
    assert main(["models", "zzz*"]) == 2
    assert main(["bench", "--models", "nosuch"]) == 2
    err = capsys.readouterr().err
    assert err.count("no registered model matches") == 2


def test_results_table_tells_configurations_apart(tmp_path, traj_file, capsys):
    import io

    import pandas as pd

    out = tmp_path / "res"
    assert _run(out, traj_file) == 0
    capsys.readouterr()
    assert main(["results", "--results", str(out), "--format", "csv"]) == 0
    df = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert {"history", "stride", "lr", "model_hparams"} <= set(df.columns)
    assert set(df["history"]) == {4} and set(df["stride"]) == {2}


def test_a_stored_result_is_not_reused_for_changed_data(tmp_path, traj_file, capsys):
    out = tmp_path / "res"
    assert _run(out, traj_file) == 0
    rec = json.loads(sorted((out / "results").glob("zz-test-drift*s1*.json"))[0].read_text())
    assert "data_notes" in rec and rec["data_files"][0]["sha256"]
    capsys.readouterr()
    assert _run(out, traj_file) == 0
    assert capsys.readouterr().err.count("skip ") == 4  # same files: every cell reused
    pos = np.load(traj_file)["positions"] * 1.01  # the same trajectory file, other content
    write_trajectory(traj_file, pos, atomic_numbers=[6, 6, 7, 8], cutoff=10.0)
    before = len(list((out / "results").glob("*.json")))
    assert _run(out, traj_file) == 0
    err = capsys.readouterr().err
    # a file is identified by its content (SHA-256 in the configuration): new content, new cells
    assert err.count("skip ") == 0 and len(list((out / "results").glob("*.json"))) == 2 * before


def test_unchecked_data_is_recorded_as_unverified_not_official(tmp_path, traj_file):
    out = tmp_path / "res"
    assert _run(out, traj_file) == 0  # a user's trajectory: no official checksum exists
    recs = [json.loads(p.read_text()) for p in (out / "results").glob("*.json")]
    assert {r["official_data"] for r in recs} == {None}
