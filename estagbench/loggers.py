"""Experiment loggers for ``estagbench run --logger tensorboard|wandb|mlflow|csv``.

Each cell (model, dataset, case, seed, configuration) becomes one logged run: its
configuration once, then per epoch the training loss, the seconds of that epoch and,
on evaluation epochs, val (and, where it was evaluated, test) MSE, and at the end the
metrics of the best-validation epoch.  The trainer calls :meth:`EpochLogger.epoch`
through its ``on_epoch`` hook; nothing else in the suite knows about loggers.

The packages are optional extras (``pip install 'estagbench[loggers]'``) imported only
by the logger that needs them.  Where the logs go, under the results store ``<out>``:

- ``tensorboard``: ``<out>/tensorboard/<cell id>/`` (``tensorboard --logdir <out>/tensorboard``);
- ``mlflow``: ``$MLFLOW_TRACKING_URI`` if set, else the local file store ``<out>/mlruns`` (which
  MLflow 3 allows only with ``MLFLOW_ALLOW_FILE_STORE=true``, so this logger sets it for its
  process unless it is set), experiment ``estagbench``
  (``MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri <out>/mlruns``);
- ``wandb``: ``<out>/wandb``, project ``estagbench``; offline unless ``WANDB_MODE`` says
  otherwise (``wandb sync`` uploads an offline run later);
- ``csv``: ``<out>/runs/<cell id>/logger.csv`` (epoch, key, value) and ``logger-config.json``.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any

__all__ = ["LOGGERS", "EpochLogger", "open_logger"]

#: Per-epoch row keys of the trainer -> logged metric names.
KEYS = {"train_loss": "train/loss", "val_mse": "val/mse", "test_mse": "test/mse", "epoch_seconds": "time/epoch_seconds"}


def _finite(row: dict[str, Any]) -> dict[str, float]:
    out = {}
    for k, name in KEYS.items():
        v = row.get(k)
        if isinstance(v, (int, float)) and math.isfinite(v):
            out[name] = float(v)
    return out


def _flat(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in config.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v if isinstance(v, str) else json.dumps(v, default=str)
    return out


class EpochLogger:
    """No-op base (``--logger`` not given): ``epoch`` per trainer row, ``summary`` at the end, ``close``."""

    def epoch(self, row: dict[str, Any]) -> None:
        pass

    def summary(self, metrics: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


class CsvLogger(EpochLogger):
    def __init__(self, root: Path, cell: str, config: dict[str, Any]) -> None:
        d = root / "runs" / cell
        d.mkdir(parents=True, exist_ok=True)
        (d / "logger-config.json").write_text(json.dumps(config, indent=1, sort_keys=True, default=str))
        self._fh = open(d / "logger.csv", "w", newline="")  # noqa: SIM115 - closed in close()
        self._w = csv.writer(self._fh)
        self._w.writerow(["epoch", "key", "value"])

    def epoch(self, row: dict[str, Any]) -> None:
        for k, v in _finite(row).items():
            self._w.writerow([int(row["epoch"]), k, repr(v)])
        self._fh.flush()

    def summary(self, metrics: dict[str, Any]) -> None:
        for k, v in metrics.items():
            if isinstance(v, (int, float)):
                self._w.writerow(["best", k, repr(float(v))])

    def close(self) -> None:
        self._fh.close()


class TensorBoardLogger(EpochLogger):
    def __init__(self, root: Path, cell: str, config: dict[str, Any]) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self._w = SummaryWriter(log_dir=str(root / "tensorboard" / cell))
        self._w.add_text("config", "```\n" + json.dumps(config, indent=1, sort_keys=True, default=str) + "\n```", 0)

    def epoch(self, row: dict[str, Any]) -> None:
        for k, v in _finite(row).items():
            self._w.add_scalar(k, v, int(row["epoch"]))

    def summary(self, metrics: dict[str, Any]) -> None:
        for k, v in metrics.items():
            if isinstance(v, (int, float)):
                self._w.add_scalar(f"best/{k}", float(v), 0)

    def close(self) -> None:
        self._w.close()


class MlflowLogger(EpochLogger):
    def __init__(self, root: Path, cell: str, config: dict[str, Any]) -> None:
        from mlflow.tracking import MlflowClient

        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:  # a local file store: MLflow 3 keeps it behind an opt-in (a SQLite store costs ~30 s to set up)
            uri = (root / "mlruns").resolve().as_uri()
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self._c = MlflowClient(tracking_uri=uri)
        exp = self._c.get_experiment_by_name("estagbench")
        exp_id = exp.experiment_id if exp is not None else self._c.create_experiment("estagbench")
        self._run = self._c.create_run(exp_id, run_name=cell).info.run_id
        for k, v in _flat(config).items():
            self._c.log_param(self._run, k, v[:6000])

    def epoch(self, row: dict[str, Any]) -> None:
        for k, v in _finite(row).items():
            self._c.log_metric(self._run, k.replace("/", "_"), v, step=int(row["epoch"]))

    def summary(self, metrics: dict[str, Any]) -> None:
        for k, v in metrics.items():
            if isinstance(v, (int, float)):
                self._c.log_metric(self._run, f"best_{k}", float(v))

    def close(self) -> None:
        self._c.set_terminated(self._run)


class WandbLogger(EpochLogger):
    def __init__(self, root: Path, cell: str, config: dict[str, Any]) -> None:
        import wandb

        (root / "wandb").mkdir(parents=True, exist_ok=True)
        self._run = wandb.init(project="estagbench", name=cell, config=config, dir=str(root),
                               mode=os.environ.get("WANDB_MODE", "offline"), reinit="create_new")

    def epoch(self, row: dict[str, Any]) -> None:
        self._run.log(_finite(row), step=int(row["epoch"]))

    def summary(self, metrics: dict[str, Any]) -> None:
        self._run.summary.update({f"best/{k}": v for k, v in metrics.items() if isinstance(v, (int, float))})

    def close(self) -> None:
        import wandb

        self._run.finish()
        wandb.teardown()  # waits for the background service to write the run out (offline: the .wandb file)


LOGGERS: dict[str, type[EpochLogger]] = {
    "csv": CsvLogger,
    "tensorboard": TensorBoardLogger,
    "mlflow": MlflowLogger,
    "wandb": WandbLogger,
}
_PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}


def open_logger(kind: str | None, root: Path, cell: str, config: dict[str, Any]) -> EpochLogger:
    """The logger ``kind`` for one cell (a no-op one for ``None``); a missing package names the extra to install."""
    if kind is None:
        return EpochLogger()
    if kind not in LOGGERS:
        raise ValueError(f"--logger {kind!r}: unknown; choose one of {', '.join(LOGGERS)}")
    try:
        return LOGGERS[kind](Path(root), cell, config)
    except ImportError as exc:
        raise ValueError(f"--logger {kind} needs the package {_PACKAGES.get(kind, kind)!r} ({exc}); install it with "
                         "pip install 'estagbench[loggers]'") from None
