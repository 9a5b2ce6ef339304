"""`estagbench export` / `estagbench import`: bundles round-trip; bad bundles and records are refused by field."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from estagbench.bundle import PROTOCOL, export_bundle, import_bundle
from estagbench.cli import main
from estagbench.results import ResultStore, cell_id, config_hash

ETHANOL_SHA = "1f5919561e69c12754e10b335721be7cc59ce9fbba3970188303f88d462cdd57"


def _record(model: str, seed: int, mse: float, *, sha: str = ETHANOL_SHA, split: str = "sp1", margin: int = 0) -> dict:
    dp = {"history": 10, "stride": 10, "split_margin": margin}
    train = {"epochs": 500, "lr": 5e-3, "hidden": 16, "batch_size": 100, "weight_decay": 1e-12, "model_hparams": {}}
    chash = config_hash({"model": model, "dataset": "md17", "case": "ethanol", "data_params": dp, "train": train})
    return {
        "model": model, "dataset": "md17", "case": "ethanol", "seed": seed, "config": train, "config_hash": chash,
        "data_params": dp, "metrics": {"test_mse": mse, "val_mse": mse, "best_epoch": 5}, "split_hash": split,
        "data_files": [{"path": "/data/md17/md17_ethanol.npz", "sha256": sha}], "official_data": False,
        "provenance": {"git_commit": "abc", "versions": {"torch": "2.13.0"}, "machine": {"cpu_count": 64}},
        "finished_at": "2026-12-01T10:00:00+0000",
    }


def _put(store: ResultStore, rec: dict) -> None:
    store.put(cell_id(rec["model"], rec["dataset"], rec["case"], rec["seed"], rec["config_hash"]), rec)


@pytest.fixture
def remote(tmp_path):
    """A store made elsewhere (a GPU box): ESTAG and ST_EGNN, seeds 1-3."""
    store = ResultStore(tmp_path / "remote")
    for model, base in (("estag", 6.8e-5), ("st-egnn", 2.8e-4)):
        for seed in (1, 2, 3):
            _put(store, _record(model, seed, base * (1 + 0.05 * seed)))
    return store


def test_export_import_round_trip(remote, tmp_path, capsys):
    bundle = tmp_path / "bundle.zip"
    assert main(["export", "--out", str(bundle), "--results", str(remote.root)]) == 0
    manifest = json.loads(zipfile.ZipFile(bundle).read("manifest.json"))
    assert manifest["protocol"] == PROTOCOL and len(manifest["records"]) == 6
    assert "versions" in manifest["exported_by"] and "machine" in manifest["exported_by"]
    local = ResultStore(tmp_path / "local")
    _put(local, _record("estag", 1, 7.0e-5))  # already here: kept as it is
    assert main(["import", str(bundle), "--results", str(local.root)]) == 0
    assert "5 imported, 1 already stored (kept), 0 refused" in capsys.readouterr().out
    recs = {(r["model"], r["seed"]): r for r in local.records()}
    assert len(recs) == 6 and recs[("estag", 1)]["metrics"]["test_mse"] == 7.0e-5
    assert recs[("st-egnn", 2)] == _record("st-egnn", 2, 2.8e-4 * 1.1)  # byte-for-byte the same record
    assert main(["import", str(bundle), "--results", str(local.root)]) == 0  # idempotent
    assert "0 imported, 6 already stored" in capsys.readouterr().out


def _rewrite(bundle: Path, out: Path, change) -> Path:
    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            dst.writestr(name, change(name, data))
    return out


def test_records_that_claim_another_cell_are_refused_by_field(remote, tmp_path, capsys):
    bundle = tmp_path / "b.zip"
    export_bundle(remote.root, bundle)
    local = ResultStore(tmp_path / "local")
    _put(local, _record("pt-t", 1, 6e-4))  # this store's ethanol data and windows

    def tamper(name: str, data: bytes) -> bytes:
        if "st-egnn" in name and "__s1__" in name:  # settings edited after the run
            rec = json.loads(data)
            rec["data_params"]["split_margin"] = 10000
            return json.dumps(rec).encode()
        if "st-egnn" in name and "__s2__" in name:  # computed on another data file
            return json.dumps({**json.loads(data), "data_files": [{"path": "x/md17_ethanol.npz", "sha256": "0" * 64}]}).encode()
        if "st-egnn" in name and "__s3__" in name:  # other windows
            return json.dumps({**json.loads(data), "split_hash": "other"}).encode()
        if "estag" in name and "__s3__" in name:
            rec = json.loads(data)
            del rec["metrics"]["test_mse"]
            return json.dumps(rec).encode()
        return data

    assert main(["import", str(_rewrite(bundle, tmp_path / "t.zip", tamper)), "--results", str(local.root)]) == 1
    captured = capsys.readouterr()
    err = captured.err.splitlines()
    assert len(err) == 4 and all(line.startswith("estagbench: refused records/") for line in err)
    assert any("'config_hash'" in e and "st-egnn" in e and "__s1__" in e for e in err)
    assert any("'data_files'" in e and "__s2__" in e for e in err)
    assert any("'split_hash'" in e and "__s3__" in e for e in err)
    assert any("'metrics.test_mse' is missing" in e for e in err)
    assert "2 imported, 0 already stored (kept), 4 refused" in captured.out
    assert {(r["model"], r["seed"]) for r in local.records()} == {("pt-t", 1), ("estag", 1), ("estag", 2)}


def test_bad_bundles_are_one_clear_line_and_change_nothing(remote, tmp_path, capsys):
    local = ResultStore(tmp_path / "local")
    _put(local, _record("pt-t", 1, 6e-4))
    before = sorted(p.read_bytes() for p in local.results_dir.iterdir())
    good = tmp_path / "b.zip"
    export_bundle(remote.root, good)
    corrupt = tmp_path / "corrupt.zip"
    corrupt.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    other = _rewrite(good, tmp_path / "other.zip", lambda n, d: json.dumps(
        {**json.loads(d), "protocol": "someone-else/v7"}).encode() if n == "manifest.json" else d)
    plain = tmp_path / "plain.zip"
    with zipfile.ZipFile(plain, "w") as zf:
        zf.writestr("hello.txt", "hi")
    cases = [(corrupt, "not a readable zip bundle"), (other, "field 'protocol' is 'someone-else/v7'"),
             (plain, "no manifest.json"), (tmp_path / "missing.zip", "no such bundle")]
    for path, msg in cases:
        assert main(["import", str(path), "--results", str(local.root)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("estagbench: error: ") and msg in err and err.count("\n") == 1, err
    assert sorted(p.read_bytes() for p in local.results_dir.iterdir()) == before


def test_export_needs_records(tmp_path, capsys):
    assert main(["export", "--out", str(tmp_path / "b.zip"), "--results", str(tmp_path / "none")]) == 2
    assert "no results store there" in capsys.readouterr().err
    (tmp_path / "empty" / "results").mkdir(parents=True)
    assert main(["export", "--out", str(tmp_path / "b.zip"), "--results", str(tmp_path / "empty")]) == 2
    assert "no records to export" in capsys.readouterr().err
    assert not (tmp_path / "b.zip").exists()


def test_import_of_a_real_run(tmp_path):
    """Records written by `estagbench run` (Pt-t: no training) pass the checks as they are."""
    import os

    data = Path(os.environ.get("ESTAGBENCH_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    if not (data / "md17" / "md17_ethanol.npz").is_file():
        if os.environ.get("ESTAGBENCH_REQUIRE_DATA") == "1":
            pytest.fail(f"no md17/md17_ethanol.npz under {data}")
        pytest.skip(f"no md17/md17_ethanol.npz under {data}")
    src = tmp_path / "src"
    assert main(["run", "--models", "pt-t", "--dataset", "md17", "--molecules", "ethanol", "--split-margin", "0",
                 "--split-fractions", "0.3,0.15,0.15", "--seeds", "1,2", "--out", str(src), "--data-dir", str(data),
                 "--no-progress"]) == 0
    export_bundle(src, tmp_path / "b.zip")
    report = import_bundle(tmp_path / "b.zip", tmp_path / "dst")
    assert len(report.imported) == 2 and not report.refused
