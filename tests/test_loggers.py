"""`estagbench run --logger ...`: a real 2-epoch run logged and read back offline (TensorBoard events, a local
MLflow file store, W&B offline mode, CSV).  Each logger's package is an optional extra: its test skips without it,
unless CI (ESTAGBENCH_REQUIRE_DATA=1, which installs `.[loggers]`) runs it."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from estagbench.cli import main

DATA = Path(os.environ.get("ESTAGBENCH_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
EPOCHS = 5  # one evaluation epoch (every 5)


def _need(package: str) -> None:
    if importlib.util.find_spec(package) is None:
        if os.environ.get("ESTAGBENCH_REQUIRE_DATA") == "1":
            pytest.fail(f"{package} is not installed (pip install '.[loggers]')")
        pytest.skip(f"{package} is not installed (pip install '.[loggers]')")
    if not (DATA / "md17" / "md17_ethanol.npz").is_file():
        if os.environ.get("ESTAGBENCH_REQUIRE_DATA") == "1":
            pytest.fail(f"no md17/md17_ethanol.npz under {DATA}")
        pytest.skip(f"no md17/md17_ethanol.npz under {DATA}")


def _run(out: Path, logger: str) -> dict:
    argv = ["run", "--models", "egnn-t", "--dataset", "md17", "--molecules", "ethanol", "--split-margin", "0",
            "--split-fractions", "0.3,0.15,0.15", "--seeds", "1", "--epochs", str(EPOCHS), "--out", str(out),
            "--data-dir", str(DATA), "--no-progress", "--logger", logger]
    assert main(argv) == 0
    (rec,) = [json.loads(p.read_text()) for p in (out / "results").glob("*.json")]
    return rec


def _cell(rec: dict) -> str:
    from estagbench.results import cell_id

    return cell_id(rec["model"], rec["dataset"], rec["case"], rec["seed"], rec["config_hash"])


def test_csv_logger(tmp_path):
    _need("torch")
    rec = _run(tmp_path, "csv")
    d = tmp_path / "runs" / _cell(rec)
    rows = list(csv.DictReader((d / "logger.csv").open()))
    losses = [r for r in rows if r["key"] == "train/loss"]
    assert [int(r["epoch"]) for r in losses] == list(range(1, EPOCHS + 1))
    assert [float(r["value"]) for r in rows if r["key"] == "val/mse"] == [pytest.approx(rec["metrics"]["val_mse"])]
    best = {r["key"]: float(r["value"]) for r in rows if r["epoch"] == "best"}
    assert best["test_mse"] == rec["metrics"]["test_mse"]
    assert best["train_seconds_per_epoch"] == pytest.approx(rec["timings"]["train_seconds_per_epoch"])
    assert json.loads((d / "logger-config.json").read_text())["train"]["epochs"] == EPOCHS


def test_tensorboard_event_files_read_back(tmp_path):
    _need("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    rec = _run(tmp_path, "tensorboard")
    acc = EventAccumulator(str(tmp_path / "tensorboard" / _cell(rec)))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert {"train/loss", "val/mse", "test/mse", "time/epoch_seconds", "best/test_mse"} <= set(tags)
    assert [e.step for e in acc.Scalars("train/loss")] == list(range(1, EPOCHS + 1))
    assert acc.Scalars("best/test_mse")[0].value == pytest.approx(rec["metrics"]["test_mse"], rel=1e-6)
    assert acc.Scalars("val/mse")[0].value == pytest.approx(rec["metrics"]["val_mse"], rel=1e-6)


def test_mlflow_local_file_store(tmp_path, monkeypatch):
    _need("mlflow")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    rec = _run(tmp_path, "mlflow")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=(tmp_path / "mlruns").resolve().as_uri())
    exp = client.get_experiment_by_name("estagbench")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.run_name == _cell(rec) and run.info.status == "FINISHED"
    assert run.data.params["train.epochs"] == str(EPOCHS) and run.data.params["model"] == "egnn-t"
    assert run.data.metrics["best_test_mse"] == pytest.approx(rec["metrics"]["test_mse"])
    hist = client.get_metric_history(run.info.run_id, "train_loss")
    assert sorted(m.step for m in hist) == list(range(1, EPOCHS + 1))


def _wandb_records(path: Path) -> list:
    """The protobuf records of an offline ``.wandb`` file: a 7-byte W&B header, then LevelDB-log framing
    (32 KiB blocks; per chunk CRC32C, length, type FULL=1/FIRST=2/MIDDLE=3/LAST=4)."""
    import struct

    from wandb.proto import wandb_internal_pb2

    raw = path.read_bytes()
    assert raw[:4] == b":W&B", f"{path} is not a W&B transaction log"
    pos, chunks, part = 7, [], b""
    while pos + 7 <= len(raw):
        left = 32768 - pos % 32768
        if left < 7:
            pos += left
            continue
        _crc, n, kind = struct.unpack("<IHB", raw[pos:pos + 7])
        data, pos = raw[pos + 7:pos + 7 + n], pos + 7 + n
        if kind == 1:
            chunks.append(data)
        elif kind == 2:
            part = data
        elif kind == 3:
            part += data
        elif kind == 4:
            chunks.append(part + data)
        else:
            break
    out = []
    for c in chunks:
        rec = wandb_internal_pb2.Record()
        rec.ParseFromString(c)
        out.append(rec)
    return out


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)


def test_wandb_offline(tmp_path, monkeypatch):
    _need("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    rec = _run(tmp_path, "wandb")
    (log,) = list((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
    records = _wandb_records(log)
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert run.display_name == _cell(rec)
    config = {i.key: json.loads(i.value_json) for i in run.config.update}
    assert config["model"] == "egnn-t" and config["train"]["epochs"] == EPOCHS
    history = [{_key(i): json.loads(i.value_json) for i in r.history.item} for r in records
               if r.WhichOneof("record_type") == "history"]
    assert [h["_step"] for h in history] == list(range(1, EPOCHS + 1))
    assert all("train/loss" in h and "time/epoch_seconds" in h for h in history)
    assert history[-1]["val/mse"] == pytest.approx(rec["metrics"]["val_mse"])
    summary = {_key(i): json.loads(i.value_json) for r in records if r.WhichOneof("record_type") == "summary"
               for i in r.summary.update}
    assert summary["best/test_mse"] == pytest.approx(rec["metrics"]["test_mse"])


def test_the_core_never_imports_the_loggers():
    code = ("import sys, estagbench.cli, estagbench.runner, estagbench.train, estagbench.loggers; "
            "print(sorted(m for m in ('tensorboard', 'mlflow', 'wandb', 'torch.utils.tensorboard') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"
