"""The grid runner: models × dataset cases × seeds, resumable, through an executor.

Each cell is one training run; its result record goes to the :class:`ResultStore`
atomically when the run ends, so an interrupted ``run`` loses at most the cell in
flight and a rerun skips every finished cell.  Cells run through a small
:class:`Executor` interface: one after another in this process by default, or in
``jobs`` forked worker processes (:class:`ProcessExecutor`, ``--jobs``), each cell then
being the same single-threaded run it would be alone (same seed, same numbers).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from . import protocol as P
from .data import PreparedCase, get_dataset_spec, load_case, resolve_cases
from .registry import get_model_entry, list_models
from .results import ResultStore, cell_id, config_hash, provenance
from .train import OPTIMIZERS, TrainConfig, train_model

__all__ = ["PRESETS", "Cell", "Executor", "SequentialExecutor", "ProcessExecutor", "make_executor", "RunPlan",
           "plan_run", "run_plan", "resolve_models"]

#: ``--models all`` means the main-table models: ablation variants (Tables 4-9) and
#: interoperability twins are named explicitly or through ``estagbench reproduce``.
ALL_EXCLUDES = ("estag-*", "stag", "*-dgl")

#: Presets: "paper" = the protocol's budget; "quick" = a smoke run (few epochs, one seed).
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {"epochs": P.EPOCHS, "seeds": list(P.SEEDS)},
    "quick": {"epochs": 10, "seeds": [1]},
}


@dataclass(frozen=True)
class Cell:
    model: str
    dataset: str
    case: str
    seed: int
    config: dict[str, Any]
    chash: str

    @property
    def id(self) -> str:
        return cell_id(self.model, self.dataset, self.case, self.seed, self.chash)


class Executor(Protocol):
    def map(self, fn: Callable[[Cell], dict[str, Any] | None], cells: Iterable[Cell]) -> list[dict[str, Any] | None]: ...


class SequentialExecutor:
    """Runs cells one after another in this process."""

    def map(self, fn: Callable[[Cell], dict[str, Any] | None], cells: Iterable[Cell]) -> list[dict[str, Any] | None]:
        return [fn(c) for c in cells]


#: The cell function of the :class:`ProcessExecutor` whose pool is running: forked workers
#: inherit it, so closures (which cannot be pickled) work.  Only one pool runs at a time.
_FORKED_FN: Callable[[Cell], dict[str, Any] | None] | None = None


def _run_forked(job: tuple[int, Cell]) -> dict[str, Any] | None:
    threads, cell = job
    import torch

    torch.set_num_threads(threads)
    os.environ.setdefault("ESTAGBENCH_KERNEL_THREADS", str(threads))  # the fused ESTAG kernel: no oversubscription
    assert _FORKED_FN is not None, "ProcessExecutor worker started without a cell function"
    return _FORKED_FN(cell)


class ProcessExecutor:
    """Runs cells in ``jobs`` worker processes forked from this one (POSIX ``fork``).

    Each worker runs one cell at a time with ``threads`` torch threads and is replaced
    after every cell, so a cell runs exactly as it would alone.  Records are stored by
    the workers as each cell ends, so an interrupted pool loses only the cells in flight.
    Results come back in the order of ``cells``.
    """

    def __init__(self, jobs: int, threads: int = 1) -> None:
        if jobs < 1:
            raise ValueError(f"jobs must be >= 1, got {jobs}")
        if "fork" not in multiprocessing.get_all_start_methods():
            raise RuntimeError("--jobs > 1 needs the 'fork' start method (Linux or macOS)")
        self.jobs = jobs
        self.threads = threads

    def map(self, fn: Callable[[Cell], dict[str, Any] | None], cells: Iterable[Cell]) -> list[dict[str, Any] | None]:
        global _FORKED_FN
        cells = list(cells)
        if self.jobs == 1 or len(cells) <= 1:  # nothing to run side by side: no pool
            return [fn(c) for c in cells]
        _FORKED_FN = fn
        try:
            ctx = multiprocessing.get_context("fork")
            with ctx.Pool(min(self.jobs, len(cells)), maxtasksperchild=1) as pool:
                return pool.map(_run_forked, [(self.threads, c) for c in cells], chunksize=1)
        finally:
            _FORKED_FN = None


def make_executor(jobs: int = 1, threads: int = 1) -> Executor:
    """Sequential for ``jobs == 1``, else a :class:`ProcessExecutor` with ``jobs`` workers."""
    return SequentialExecutor() if jobs == 1 else ProcessExecutor(jobs, threads)


def model_source_sha256(name: str) -> str | None:
    """SHA-256 of the source file that defines model ``name``, and of the files its module
    names in ``ESTAGBENCH_EXTRA_SOURCES`` (paths beside it, e.g. a C kernel): a stored result
    whose model code has changed since is stale and is recomputed, never reused."""
    import hashlib
    import inspect

    try:
        builder = get_model_entry(name).builder
        path = inspect.getsourcefile(builder)
        if not path:
            return None
        digest = hashlib.sha256(Path(path).read_bytes())
        module = inspect.getmodule(builder)
        for extra in getattr(module, "ESTAGBENCH_EXTRA_SOURCES", ()):
            digest.update(b"\0" + extra.encode() + b"\0" + (Path(path).parent / extra).read_bytes())
        return digest.hexdigest()
    except (OSError, TypeError):
        return None


def resolve_models(spec: str, family: str | None = None, multichannel: bool | None = None) -> list[str]:
    """``all`` (models the paper ran on this family), or a comma list validated by the registry."""
    if spec.strip() == "all":
        names = list_models(exclude=ALL_EXCLUDES, dataset=family)
        if multichannel:
            names = [n for n in names if get_model_entry(n).multichannel]
        return names
    names = [s.strip() for s in spec.split(",") if s.strip()]
    for n in names:
        get_model_entry(n)  # raises with the valid names
    return names


@dataclass
class RunPlan:
    dataset: str
    cases: list[str]
    models: list[str]
    seeds: list[int]
    train: TrainConfig
    data_opts: dict[str, Any]
    data_dir: Path | None
    store: ResultStore
    skipped: list[tuple[str, str, str]] = field(default_factory=list)
    #: ``(cell, error)`` of every cell whose training diverged (NaN/inf) in :func:`run_plan`.
    failed: list[tuple[str, str]] = field(default_factory=list)


def plan_run(
    models: str,
    dataset: str,
    cases: list[str] | None,
    seeds: list[int] | None,
    epochs: int | None,
    preset: str,
    out: Path,
    data_dir: Path | None = None,
    device: str = "cpu",
    lr: float | None = None,
    batch_size: int | None = None,
    model_hparams: dict[str, Any] | None = None,
    optimizer: str = "adam-fused",
    **data_opts: Any,
) -> RunPlan:
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; valid: {', '.join(PRESETS)}")
    spec = get_dataset_spec(dataset)
    case_list = resolve_cases(dataset, cases)
    names = resolve_models(models, None)
    p = PRESETS[preset]
    cfg = TrainConfig(
        epochs=p["epochs"] if epochs is None else epochs,
        lr=spec.lr if lr is None else lr,
        batch_size=P.BATCH_SIZE if batch_size is None else batch_size,
        device=device,
        model_hparams=dict(model_hparams or {}),
        optimizer=optimizer,
    )
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; valid: {', '.join(OPTIMIZERS)}")
    plan = RunPlan(dataset, case_list, [], list(seeds or p["seeds"]), cfg,
                   {k: v for k, v in data_opts.items() if v is not None}, data_dir, ResultStore(out))
    for n in names:
        entry = get_model_entry(n)
        if not entry.runs_on(spec.family):
            if models.strip() == "all":
                plan.skipped.append((n, dataset, f"the paper did not run {n} on {spec.family}"))
                continue
            print(f"note: the paper did not run {n} on {spec.family} (its registry entry lists "
                  f"{', '.join(entry.datasets or ())}); running it as asked", file=sys.stderr)
        plan.models.append(n)
    return plan


def _cell_config(plan: RunPlan, model: str, case: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"model": model, "dataset": plan.dataset, "case": case, "data_params": params, "train": plan.train.as_dict()}


def _stored_record(
    plan: RunPlan, cell: Cell, say: Callable[[str], None], data_sha256: dict[str, str] | None = None
) -> dict[str, Any] | None:
    """The stored record of ``cell`` if there is one from the current model source and the same data
    files (``data_sha256``: file name -> SHA-256, compared where the record lists them), else None."""
    if not plan.store.has(cell.id):
        return None
    rec = plan.store.get(cell.id)
    stored_files = {Path(f["path"]).name: f.get("sha256") for f in rec.get("data_files") or [] if f.get("path")}
    now = data_sha256 or {}
    changed = sorted(n for n, h in stored_files.items() if n in now and h and now[n] != h)
    if changed:
        say(f"rerun {cell.model} {plan.dataset}/{cell.case} seed {cell.seed}: data file(s) {', '.join(changed)} "
            "differ (SHA-256) from the ones the stored result was computed on")
        return None
    stored = rec.get("model_source_sha256")
    if stored is None or stored == model_source_sha256(cell.model):
        say(f"skip {cell.model} {plan.dataset}/{cell.case} seed {cell.seed}: stored (test MSE {rec['metrics']['test_mse']:.6g})")
        return rec
    say(f"rerun {cell.model} {plan.dataset}/{cell.case} seed {cell.seed}: its source changed since the stored result")
    return None


def run_plan(plan: RunPlan, executor: Executor | None = None, progress: bool = True, log: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Run every unfinished cell of ``plan``; return all records of the plan (old and new).

    A cell whose training diverges (``FloatingPointError``: NaN/inf loss or output) is reported,
    stores nothing and is listed in ``plan.failed``; the other cells still run.
    """
    say = log or (lambda s: print(s, file=sys.stderr))
    executor = executor or SequentialExecutor()
    records: list[dict[str, Any]] = []
    prov = provenance()
    for case in plan.cases:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            data = load_case(plan.dataset, case, data_dir=plan.data_dir, **plan.data_opts)
        for w in caught:
            say(f"warning: {w.message}")
        for note in data.notes:  # deviations the loader made (e.g. a shortened start range): said and stored
            say(f"note: {plan.dataset}/{case}: {note}")
        # True only when every file matched a known checksum; None when some could not be checked
        official = False if any(f.official is False for f in data.files) else (
            True if all(f.official is True for f in data.files) else None)
        prepared: PreparedCase = data.prepare()
        sizes = data.split_sizes()
        shash = data.split_hash()
        split_file = plan.store.put_split(plan.dataset, case, shash, data.windows_json())
        say(f"{plan.dataset}/{case}: {data.num_nodes} nodes × {data.num_channels} channel(s), {data.edge_index.shape[1]} edges, "
            f"splits train/val/test = {sizes['train']}/{sizes['val']}/{sizes['test']} (T={data.history}, Δ={data.stride}); "
            f"windows saved to {split_file}")
        cells: list[Cell] = []
        for model in plan.models:
            entry = get_model_entry(model)
            if data.num_channels > 1 and not entry.multichannel:
                plan.skipped.append((model, f"{plan.dataset}/{case}", "single-channel model on multi-channel data"))
                continue
            for seed in plan.seeds:
                conf = _cell_config(plan, model, case, data.params)
                cells.append(Cell(model, plan.dataset, case, seed, conf, config_hash(conf)))

        def run_cell(
            cell: Cell, data: Any = data, prepared: PreparedCase = prepared, sizes: dict[str, int] = sizes,
            shash: str = shash, split_file: Path = split_file, official: bool = official,
        ) -> dict[str, Any] | None:  # this case's values bound as defaults; trains and stores one cell
            source = model_source_sha256(cell.model)
            t0 = time.time()
            try:
                out = train_model(cell.model, prepared, cell.seed, plan.train, run_dir=plan.store.run_dir(cell.id),
                                  progress=progress)
            except FloatingPointError as exc:  # this cell diverged: report it, keep the others going
                what = f"{cell.model} {plan.dataset}/{cell.case} seed {cell.seed}"
                old = plan.store.path(cell.id)
                if old.exists():  # a record of an earlier model source (why the cell reran): not this code's result
                    os.replace(old, old.with_name(old.name + ".stale"))
                    what += f" (its record from the earlier model source moved to {old.name}.stale)"
                say(f"error: {what} failed, nothing stored for it: {exc}")
                return {"failed": what, "error": str(exc)}
            rec = {
                "model": cell.model, "dataset": plan.dataset, "case": cell.case, "seed": cell.seed,
                "model_source_sha256": source,
                "family": data.dataset, "config": plan.train.as_dict(), "config_hash": cell.chash,
                "data_params": data.params, "split_hash": shash, "split_sizes": sizes, "split_file": str(split_file),
                "metrics": out.metrics, "timings": out.timings, "num_params": out.num_params,
                "hparams": getattr(out.model, "estagbench_hparams", {}),
                "implementation": getattr(out.model, "implementation", None),
                "data_files": [f.as_dict() for f in data.files], "official_data": official,
                "data_notes": list(data.notes),
                "provenance": prov, "command": " ".join(sys.argv), "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "wall_seconds": time.time() - t0,
            }
            plan.store.put(cell.id, rec)
            say(f"{cell.model:>16s} {plan.dataset}/{cell.case} seed {cell.seed}: test MSE {out.metrics['test_mse']:.6g} "
                f"(val {out.metrics['val_mse']:.6g}, epoch {out.metrics['best_epoch']}, "
                f"{out.timings['train_seconds_per_epoch']:.3f} s/epoch)")
            return rec

        todo = []
        data_sha256 = {Path(f.path).name: f.sha256 for f in data.files}
        for cell in cells:  # stored cells are settled here, so only new work reaches the executor
            rec = _stored_record(plan, cell, say, data_sha256)
            if rec is None:
                todo.append(cell)
            else:
                records.append(rec)
        for rec in executor.map(run_cell, todo):
            if rec is not None and "failed" in rec:
                plan.failed.append((rec["failed"], rec["error"]))
            elif rec is not None:
                records.append(rec)
    for model, where, why in plan.skipped:
        say(f"skipped {model} on {where}: {why}")
    for what, error in plan.failed:
        say(f"failed {what}: {error}")
    return records
