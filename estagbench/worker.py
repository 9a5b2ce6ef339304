"""Run one cell anywhere: :func:`run_spec` is what every executor calls (in this process, a
forked worker, a Ray task or a Slurm array task).

It needs nothing but the :class:`~estagbench.spec.RunSpec`, the results folder and the
data folder: the case is loaded and windowed once per process and cached, the cell is
claimed in the store (so that two drivers never train it twice), trained, and its
:class:`~estagbench.store.Record` written atomically.  The numbers are those of the
sequential run: the same ``train_model`` call on the same tensors.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .loggers import open_logger
from .spec import RunSpec
from .store import Record, ResultStore
from .train import TrainConfig, train_model

if TYPE_CHECKING:
    from .data.base import CaseData, PreparedCase

__all__ = ["run_spec", "Failed", "load_prepared", "cache_case", "execution_info", "stored_is_current", "official_data"]

#: (dataset, case, data_dir, options) -> the loaded case and its windows, once per process.
_CASES: dict[tuple[str, str, str | None, str], tuple[CaseData, PreparedCase]] = {}
_PROVENANCE: dict[str, Any] = {}


@dataclass(frozen=True)
class Failed:
    """A cell that ran and failed (diverged): nothing stored for it but ``failed/<key>.json``."""

    key: str
    what: str
    error: str


def _case_key(spec: RunSpec) -> tuple[str, str, str | None, str]:
    return (spec.dataset, spec.case, spec.data_dir, json.dumps(spec.data_opts, sort_keys=True, default=str))


def cache_case(spec: RunSpec, data: CaseData, prepared: PreparedCase) -> None:
    """Put a case the driver loaded already into this process's cache (forked workers inherit it)."""
    _CASES[_case_key(spec)] = (data, prepared)


def load_prepared(spec: RunSpec) -> tuple[CaseData, PreparedCase]:
    """The case of ``spec``, loaded from the data folder and windowed once per process."""
    k = _case_key(spec)
    if k not in _CASES:
        from .data import load_case

        with warnings.catch_warnings():  # the driver said these already
            warnings.simplefilter("ignore")
            data = load_case(spec.dataset, spec.case, data_dir=spec.data_dir, **spec.data_opts)
        if data.params != spec.data_params and json.loads(json.dumps(data.params, default=str)) != json.loads(
            json.dumps(spec.data_params, default=str)
        ):
            raise ValueError(f"{spec.dataset}/{spec.case}: the data folder {spec.data_dir or '(default)'} gives other "
                             f"protocol settings here ({data.params}) than where the grid was planned ({spec.data_params}); "
                             "point --data-dir at the same data on every machine")
        _CASES[k] = (data, data.prepare())
    return _CASES[k]


#: The environment variable naming the ``--logger`` of the running command, so that it reaches
#: every worker process (forked, Ray or Slurm) as the checkpoint policy does.
LOGGER_ENV = "ESTAGBENCH_LOGGER"


@contextlib.contextmanager
def logger_env(kind: str | None) -> Iterator[None]:
    """Set :data:`LOGGER_ENV` to ``kind`` (``--logger``) for the duration of a run, then restore it."""
    old = os.environ.get(LOGGER_ENV)
    if kind:
        os.environ[LOGGER_ENV] = kind
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(LOGGER_ENV, None)
        else:
            os.environ[LOGGER_ENV] = old


def _steps(data: CaseData, cfg: TrainConfig) -> dict[str, int]:
    per_epoch = data.steps_per_epoch(cfg.batch_size)
    return {"per_epoch": per_epoch, "total": per_epoch * cfg.epochs, "batch_size": cfg.batch_size}


def official_data(data: CaseData) -> bool | None:
    """True only when every file matched a known checksum; None when some could not be checked."""
    if any(f.official is False for f in data.files):
        return False
    return True if all(f.official is True for f in data.files) else None


def execution_info(executor: str) -> dict[str, Any]:
    """Where this process runs: executor, host, PID and the Slurm job id (None outside Slurm)."""
    job = os.environ.get("SLURM_JOB_ID")
    if os.environ.get("SLURM_ARRAY_JOB_ID"):
        job = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ.get('SLURM_ARRAY_TASK_ID', '')}"
    return {"executor": executor, "host": socket.gethostname(), "pid": os.getpid(), "slurm_job_id": job}


def stored_is_current(rec: dict[str, Any], model_sha: str | None, data_sha256: dict[str, str]) -> str | None:
    """None when stored record ``rec`` is a result of the current model source and data files,
    else the reason it must be recomputed."""
    stored_files = {Path(f["path"]).name: f.get("sha256") for f in rec.get("data_files") or [] if f.get("path")}
    changed = sorted(n for n, h in stored_files.items() if n in data_sha256 and h and data_sha256[n] != h)
    if changed:
        return f"data file(s) {', '.join(changed)} differ (SHA-256) from the ones the stored result was computed on"
    stored = rec.get("model_source_sha256")
    if stored is not None and stored != model_sha:
        return "its source changed since the stored result"
    return None


def _provenance() -> dict[str, Any]:
    if not _PROVENANCE:
        from .results import provenance

        _PROVENANCE.update(provenance())
    return dict(_PROVENANCE)


def run_spec(
    spec: RunSpec,
    out: str | Path,
    *,
    executor: str = "local",
    command: str | None = None,
    progress: bool = False,
    threads: int | None = None,
    log: Any = None,
) -> Record | Failed | None:
    """Train and store cell ``spec`` in the results folder ``out``.

    Returns the stored :class:`Record`, a :class:`Failed` (training diverged: reported and
    written to ``failed/``, the grid goes on), or None when another live process holds the
    cell's claim (it is being trained elsewhere).  A cell stored meanwhile by another
    process is not trained again: its record is returned.
    """
    from .runner import model_source_sha256

    say = log or (lambda s: print(s, file=sys.stderr))
    if threads:
        import torch

        torch.set_num_threads(threads)
    store = ResultStore(Path(out))
    key = spec.key()
    claim = store.try_claim(key, executor, say)
    if claim is None:
        return None
    try:
        data, prepared = load_prepared(spec)
        source = model_source_sha256(spec.model)
        if store.has(key):  # stored by another process since the driver looked (the driver reruns only stale ones)
            rec = store.get(key)
            if stored_is_current(rec, source, {Path(f.path).name: f.sha256 for f in data.files}) is None:
                return Record.from_dict(rec)
        info = execution_info(executor)
        cfg = TrainConfig(**spec.train)
        t0 = time.time()
        lg = open_logger(os.environ.get(LOGGER_ENV) or None, store.root, key,
                         {"model": spec.model, "dataset": spec.dataset, "case": spec.case, "data_params": data.params,
                          "train": dict(spec.train), "seed": spec.seed})
        with store.heartbeat(claim):
            try:
                out_ = train_model(spec.model, prepared, spec.seed, cfg, run_dir=store.run_dir(key), progress=progress,
                                   on_epoch=lg.epoch)
                lg.summary({**out_.metrics, **out_.timings, "num_params": out_.num_params})
            except FloatingPointError as exc:  # this cell diverged: report it, keep the others going
                what = spec.describe()
                old = store.path(key)
                if old.exists():  # a record of an earlier model source (why the cell reran): not this code's result
                    os.replace(old, old.with_name(old.name + ".stale"))
                    what += f" (its record from the earlier model source moved to {old.name}.stale)"
                store.put_failure(key, what, str(exc), info)
                say(f"error: {what} failed, nothing stored for it: {exc}")
                return Failed(key, what, str(exc))
            finally:
                lg.close()
        implementation = getattr(out_.model, "implementation", None)
        if spec.implementation is not None and implementation not in (None, spec.implementation):
            say(f"warning: {spec.describe()} was planned with the {spec.implementation} implementation but ran with "
                f"{implementation}; stored as that implementation's cell")
            spec = dataclasses.replace(spec, implementation=implementation)
            moved = store.root / "runs" / spec.key()
            if not moved.exists():  # its log and checkpoint go with it
                os.replace(store.run_dir(key), moved)
        data_files = [f.as_dict() for f in data.files]
        rec = Record(
            model=spec.model, dataset=spec.name, case=spec.case, seed=spec.seed, config_hash=spec.config_hash(),
            metrics=out_.metrics, config=dict(spec.train), timings=out_.timings, model_source_sha256=source,
            family=data.dataset, data_params=data.params, split_hash=data.split_hash(), split_sizes=data.split_sizes(),
            split_file=str(store.put_split(spec.dataset, spec.case, data.split_hash(), data.windows_json())),
            num_params=out_.num_params, checkpoint=out_.checkpoint, leakage=data.leakage(),
            units=data.units.as_dict() if data.units is not None else None, data_sha256=spec.data_sha256,
            optimiser_steps=_steps(data, cfg), hparams=getattr(out_.model, "estagbench_hparams", {}),
            implementation=implementation, data_files=data_files, official_data=official_data(data),
            data_notes=list(data.notes), provenance=_provenance(), command=command if command is not None else " ".join(sys.argv),
            finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"), wall_seconds=time.time() - t0, execution=info,
            key=spec.key(),
        )
        store.put_record(spec.key(), rec)
        say(f"{spec.model:>16s} {spec.dataset}/{spec.case} seed {spec.seed}: test MSE {out_.metrics['test_mse']:.6g} "
            f"(val {out_.metrics['val_mse']:.6g}, epoch {out_.metrics['best_epoch']}, "
            f"{out_.timings['train_seconds_per_epoch']:.3f} s/epoch)")
        return rec
    finally:
        store.release(claim)
