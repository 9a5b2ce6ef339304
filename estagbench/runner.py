"""The grid runner: models × dataset cases × seeds, resumable, through an executor.

:func:`plan_run` turns flags into a :class:`RunPlan`; :func:`run_plan` loads each case once
(to resolve its protocol settings and save its windows), builds one
:class:`~estagbench.spec.RunSpec` per cell, settles the cells already stored, and hands the
rest to an executor (:mod:`estagbench.executors`: ``local``, ``process`` = ``--jobs``,
``ray``, ``slurm``), whose workers run :func:`estagbench.worker.run_spec`.  Each record goes
to the :class:`~estagbench.store.ResultStore` atomically when its cell ends, so an
interrupted run loses at most the cells in flight and a rerun skips every finished cell.
Two runs on one folder share its cells through claim files (each cell trained once).
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import protocol as P
from .compat import incompatibility
from .data import get_dataset_spec, load_case, resolve_cases
from .data.identity import dataset_identity
from .data.splits import LEAKAGE_WARN_SHARE, describe_leakage
from .executors import Executor, LocalExecutor, make_executor
from .executors.process import ProcessExecutor
from .progress import GridProgress
from .registry import create_model, get_model_entry, list_models
from .results import cell_id
from .skips import store_skip
from .spec import RunSpec, in_shard
from .store import Record, ResultStore
from .train import OPTIMIZERS, TrainConfig
from .types import DatasetInfo
from .worker import Failed, cache_case, logger_env, stored_is_current

__all__ = ["PRESETS", "Cell", "Executor", "SequentialExecutor", "ProcessExecutor", "make_executor", "RunPlan",
           "plan_run", "run_plan", "resolve_models", "planned_implementation"]

#: ``--models all`` means the main-table models: ablation variants (Tables 4-9) and
#: interoperability twins are named explicitly or through ``estagbench reproduce``.
ALL_EXCLUDES = ("estag-*", "stag", "*-dgl")

#: Presets: "paper" = the protocol's budget; "quick" = a smoke run (few epochs, one seed).
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {"epochs": P.EPOCHS, "seeds": list(P.SEEDS)},
    "quick": {"epochs": 10, "seeds": [1]},
}

#: The in-process executor under its earlier name.
SequentialExecutor = LocalExecutor

#: ``run`` warns when a cell gets fewer optimiser steps than this in total (the paper's MD17
#: budget is 5 steps × 500 epochs = 2500).
MIN_STEPS = 1000


@dataclass(frozen=True)
class Cell:
    """A cell as the runner named it before :class:`~estagbench.spec.RunSpec` (kept for callers)."""

    model: str
    dataset: str
    case: str
    seed: int
    config: dict[str, Any]
    chash: str

    @property
    def id(self) -> str:
        return cell_id(self.model, self.dataset, self.case, self.seed, self.chash)


def planned_implementation(model: str, info: DatasetInfo, train: TrainConfig) -> tuple[str | None, str | None]:
    """``(implementation, default)`` a training run of ``model`` on ``info`` will use.

    Models whose module declares ``ESTAGBENCH_IMPLEMENTATIONS`` (a model with, say, a compiled
    kernel and a PyTorch fallback; ESTAG had one until its kernel was retired) are built once
    here and asked (``planned_implementation()``, ``default_implementation``); every other model
    has one implementation and gives ``(None, None)``.  Only a cell that runs a non-default
    implementation gets a new key.
    """
    entry = get_model_entry(model)
    impls = getattr(sys.modules.get(entry.module), "ESTAGBENCH_IMPLEMENTATIONS", None)
    if not impls:
        return None, None
    built = create_model(model, info, hidden=train.hidden, **train.model_hparams)
    ask = getattr(built, "planned_implementation", None)
    if ask is None:  # a model of that module with one implementation (STAG)
        return None, None
    return ask(device=train.device), getattr(built, "default_implementation", impls[0])


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
    #: ``(K, N)``: run only the cells of shard K of N (``--shard K/N``); None: all.
    shard: tuple[int, int] | None = None
    #: ``(cell, who)`` of the cells another live process was training when this run ended.
    elsewhere: list[tuple[str, str]] = field(default_factory=list)
    #: ``--logger``: tensorboard | wandb | mlflow | csv (:mod:`estagbench.loggers`), or None
    logger: str | None = None
    #: the dataset as configurations and records name it (a file: its name; see :func:`dataset_identity`)
    label: str = ""
    #: the SHA-256 of a file dataset's content (part of every configuration), None for catalog names
    data_sha256: str | None = None

    def __post_init__(self) -> None:
        if not self.label:
            self.label, self.data_sha256 = dataset_identity(self.dataset)


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
    shard: tuple[int, int] | None = None,
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
                   {k: v for k, v in data_opts.items() if v is not None}, data_dir, ResultStore(out), shard=shard)
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


def _cell_config(plan: RunPlan, model: str, case: str, params: dict[str, Any], legacy: bool = False) -> dict[str, Any]:
    """The configuration hashed into a cell's id: a file dataset is named by its label and content hash, so
    the path's spelling does not matter; ``legacy`` gives the older path-as-typed form (still resumed)."""
    if legacy or plan.data_sha256 is None:
        return {"model": model, "dataset": plan.dataset, "case": case, "data_params": params,
                "train": plan.train.as_dict()}
    return {"model": model, "dataset": plan.label, "data_sha256": plan.data_sha256, "case": case,
            "data_params": params, "train": plan.train.as_dict()}


def _stored_record(plan: RunPlan, spec: RunSpec, say: Callable[[str], None], data_sha256: dict[str, str] | None = None
                   ) -> dict[str, Any] | None:
    """The stored record of ``spec`` if there is one from the current model source and the same data
    files (``data_sha256``: file name -> SHA-256, compared where the record lists them), else None."""
    key = spec.key()
    if not plan.store.has(key):
        return None
    rec = plan.store.get(key)
    why = stored_is_current(rec, model_source_sha256(spec.model), data_sha256 or {})
    if why is None:
        say(f"skip {spec.model} {plan.dataset}/{spec.case} seed {spec.seed}: stored (test MSE {rec['metrics']['test_mse']:.6g})")
        return rec
    say(f"rerun {spec.model} {plan.dataset}/{spec.case} seed {spec.seed}: {why}")
    return None


def plan_specs(plan: RunPlan, say: Callable[[str], None] | None = None) -> list[RunSpec]:
    """The :class:`RunSpec` of every cell of ``plan`` in its shard (loads each case to resolve its settings)."""
    return [s for _, specs in _case_specs(plan, say or (lambda s: None)) for s in specs]


def _case_specs(plan: RunPlan, say: Callable[[str], None], progress_line: GridProgress | None = None) -> Any:
    """Per case: ``(data, specs)`` after loading, windowing and saving the case's windows.  A model that
    cannot run the case is skipped with the reason (said, stored for ``tables``), and the grid goes on."""
    for case in plan.cases:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            data = load_case(plan.dataset, case, data_dir=plan.data_dir, **plan.data_opts)
        for w in caught:
            say(f"warning: {w.message}")
        for note in data.notes:  # deviations the loader made (e.g. a shortened start range): said and stored
            say(f"note: {plan.dataset}/{case}: {note}")
        prepared = data.prepare()
        sizes = data.split_sizes()
        split_file = plan.store.put_split(plan.dataset, case, data.split_hash(), data.windows_json())
        say(f"{plan.dataset}/{case}: {data.num_nodes} nodes × {data.num_channels} channel(s), {data.edge_index.shape[1]} edges, "
            f"splits train/val/test = {sizes['train']}/{sizes['val']}/{sizes['test']} (T={data.history}, Δ={data.stride}); "
            f"windows saved to {split_file}")
        leak = data.leakage()
        units = data.units.as_dict() if data.units is not None else None
        steps_epoch = data.steps_per_epoch(plan.train.batch_size)
        steps = {"per_epoch": steps_epoch, "total": steps_epoch * plan.train.epochs, "batch_size": plan.train.batch_size}
        say(f"{plan.dataset}/{case}: {describe_leakage(leak)}")
        if leak["test_targets_in_train"] > LEAKAGE_WARN_SHARE:
            say(f"warning: {plan.dataset}/{case}: {100 * leak['test_targets_in_train']:.0f}% of test targets lie inside "
                f"training windows (above {100 * LEAKAGE_WARN_SHARE:.0f}%): the test MSE rewards memorising. Fix: split by "
                "trajectory (protocol split 'trajectories', docs/trajectory-format.md) or chronologically (split "
                "'chronological': the validation block is the margin between training and test windows)")
        if units is not None:
            say(f"{plan.dataset}/{case}: units: test MSE in {units['mse_unit']} ({units['mse']}); tables print "
                f"{units['label']}")
        say(f"{plan.dataset}/{case}: {steps_epoch} optimiser step(s) per epoch ({sizes['train']} training windows, "
            f"batch {plan.train.batch_size}) × {plan.train.epochs} epochs = {steps['total']} steps")
        if steps["total"] < MIN_STEPS:
            say(f"warning: {plan.dataset}/{case}: only {steps['total']} optimiser steps in total (below {MIN_STEPS}); "
                "models may be undertrained and rankings unreliable. Fix: raise --epochs or lower --batch-size")
        specs: list[RunSpec] = []
        for model in plan.models:
            why = incompatibility(model, prepared.info, plan.train.hidden, plan.train.model_hparams,
                                  prepared.splits["train"])
            if why is not None:  # this model cannot run this case: reported and noted for `tables`, the grid goes on
                plan.skipped.append((model, f"{plan.dataset}/{case}", why))
                store_skip(plan.store.root, model, plan.dataset, case, data.params, why)
                if progress_line is not None:
                    progress_line.drop(len(plan.seeds))
                continue
            impl, default = planned_implementation(model, prepared.info, plan.train)
            for seed in plan.seeds:
                spec = RunSpec(model, plan.dataset, case, seed, plan.train.as_dict(), data.params, plan.data_opts,
                               None if plan.data_dir is None else str(plan.data_dir), impl, default,
                               plan.label if plan.data_sha256 else None, plan.data_sha256)
                if in_shard(spec.key(), plan.shard):
                    specs.append(spec)
                elif progress_line is not None:
                    progress_line.drop(1)  # another shard's cell
        if specs:
            cache_case(specs[0], data, prepared)  # the workers of this process (and forked ones) reuse it
        yield data, specs


def run_plan(plan: RunPlan, executor: Executor | Any | None = None, progress: bool = True,
             log: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Run every unfinished cell of ``plan``; return all records of the plan (old and new).

    A cell whose training diverges (``FloatingPointError``: NaN/inf loss or output) is reported,
    stores nothing and is listed in ``plan.failed``; the other cells still run.  A cell another
    live process is training (a second run on the same folder) is listed in ``plan.elsewhere``.
    """
    say = log or (lambda s: print(s, file=sys.stderr))
    executor = executor or LocalExecutor()
    if not hasattr(executor, "execute"):
        raise TypeError(f"{type(executor).__name__} has no execute(specs, out); see estagbench.executors")
    records: list[dict[str, Any]] = []
    command = " ".join(sys.argv)
    progress_line = GridProgress(len(plan.cases) * len(plan.models) * len(plan.seeds), say)
    with plan.store.run_lock(say), logger_env(plan.logger):
        for data, specs in _case_specs(plan, say, progress_line):
            plan.store.put_grid(specs)
            todo = []
            data_sha256 = {Path(f.path).name: f.sha256 for f in data.files}
            for spec in specs:  # stored cells are settled here, so only new work reaches the executor
                rec = _stored_record(plan, spec, say, data_sha256)
                if rec is None and spec.data_sha256 is not None and not plan.store.has(spec.key()):
                    rec = _stored_record(plan, spec.legacy(), say, data_sha256)  # stored before content ids
                if rec is None:
                    todo.append(spec)
                else:
                    records.append(rec)
                    progress_line.stored()
            got: dict[str, dict[str, Any]] = {}
            for res in executor.execute(todo, plan.store.root, command=command, progress=progress, log=say):
                progress_line.trained()
                if isinstance(res, Failed):
                    plan.failed.append((res.what, res.error))
                    if res.key not in plan.store.failures():
                        plan.store.put_failure(res.key, res.what, res.error, {"executor": getattr(executor, "name", "")})
                elif isinstance(res, Record):
                    got[res.key or ""] = res.to_dict()
            failed_keys = set(plan.store.failures())
            for spec in todo:  # in plan order, whatever order the executor finished them in
                key = spec.key()
                if key in got:
                    records.append(got[key])
                elif key not in failed_keys:
                    claim = plan.store.read_claim(key)
                    if plan.store.has(key):  # stored by another run meanwhile
                        records.append(plan.store.get(key))
                    elif claim is not None:
                        who = f"process {claim.pid} on {claim.host}"
                        plan.elsewhere.append((spec.describe(), who))
                        say(f"running elsewhere: {spec.describe()} ({who}); rerun later to collect it")
                    elif not getattr(executor, "wait", True):
                        pass  # submitted, not waited for (--slurm-no-wait)
                    else:
                        plan.elsewhere.append((spec.describe(), "another run (finished without storing it)"))
            planned = {s.key() for s in todo}
            records.extend(r for k, r in got.items() if k not in planned)  # stored under another implementation
    for model, where, why in plan.skipped:
        say(f"skipped {model} on {where}: {why}")
    for what, error in plan.failed:
        say(f"failed {what}: {error}")
    return records
