"""The ``estagbench`` command line: thin wrappers over the library, no logic here."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import protocol as P
from ._argtypes import DEFAULT_OUT, add_data_args, data_opts, hparams, ints, names, positive_int
from ._executor_args import add_executor_args
from .registry import UnknownNameError

__all__ = ["main", "build_parser", "add_data_args", "data_opts", "DEFAULT_OUT"]



def cmd_run(args: argparse.Namespace) -> int:
    from . import preflight
    from ._executor_args import executor_from_args, shard_from_args
    from .checkpoints import checkpoint_policy
    from .runner import plan_run, resolve_models, run_plan
    from .summary import run_summary

    # bad input is refused here, in one line each, before any data is loaded or anything trained
    models, note = preflight.dedupe(preflight.check_models_arg(args.models).split(","), "--models")
    if note:
        print(f"note: {note}", file=sys.stderr)
    seeds = None
    if args.seeds:
        seeds, note = preflight.dedupe(list(args.seeds), "--seeds")
        if note:
            print(f"note: {note}", file=sys.stderr)
    if args.cases:
        args.cases, note = preflight.dedupe(list(args.cases), "--molecules/--cases")
        if note:
            print(f"note: {note}", file=sys.stderr)
    preflight.check_device(args.device)
    preflight.check_model_hparams(resolve_models(",".join(models)), args.model_hparams, args.history or 10)
    preflight.check_out(args.out)  # last: it creates the folder
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    executor = executor_from_args(args)
    plan = plan_run(",".join(models), args.dataset, args.cases, seeds, args.epochs,
                    args.preset, args.out, args.data_dir, args.device, args.lr, args.batch_size,
                    model_hparams=args.model_hparams, optimizer=args.optimizer, shard=shard_from_args(args),
                    **data_opts(args))
    plan.logger = args.logger
    with checkpoint_policy("none" if args.no_checkpoints else args.checkpoints):  # reaches every worker process
        records = run_plan(plan, executor, progress=not args.no_progress and executor.name == "local")
        failed = 1 if plan.failed else 0  # exit status 1 when a cell diverged, after the others ran
        print(run_summary(records, plan, Path(args.out)))  # only the cells asked for now: their seeds and configurations
    units = {(r.get("units") or {}).get("mse_unit") for r in records} - {None}
    if units:
        print(f"test MSE in {', '.join(sorted(units))} (unscaled; mean over seeds ± unbiased std)")
    return failed


def cmd_models(args: argparse.Namespace) -> int:
    from .registry import get_model_entry, list_models

    rows = []
    names = list_models(args.pattern)
    if not names:
        raise UnknownNameError(f"no registered model matches {args.pattern!r}; `estagbench models` lists them all")
    for n in names:
        e = get_model_entry(n)
        rows.append((n, e.symmetry, "yes" if e.multichannel else "no", "yes" if e.trains else "no",
                     ",".join(e.datasets) if e.datasets else "all", e.module, e.description))
    head = ("name", "symmetry", "multichannel", "trains", "datasets", "module", "description")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(6)]
    for r in [head, *rows]:
        print("  ".join(str(v).ljust(w) for v, w in zip(r[:6], widths, strict=True)) + "  " + r[6])
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from .data.registry import data_card, dataset_entries

    if args.info:
        print(data_card(args.info))
        return 0

    names = [*args.names, *([args.dataset] if args.dataset else [])]
    if names:  # window counts per split, leakage, units and steps per epoch of the named datasets
        from .data.overview import describe_dataset

        for name in names:
            print("\n".join(describe_dataset(name, args.data_dir, cases=args.cases, **data_opts(args))))
        return 0

    for ds in dataset_entries():
        cases = ",".join(ds.cases)
        p = ds.protocol
        table = f" table={ds.table}" if ds.table else ""
        print(f"{ds.name:20s} family={ds.family:8s} T={p.history} Δ={p.stride} lr={p.lr:g}{table} "
              f"{'offline ' if ds.offline else ''}cases={cases}\n    {ds.description}")
    for ds in dataset_entries(patterns=True)[len(dataset_entries()):]:
        usage, _, what = ds.description.partition(": ")
        print(f"{usage:20s} {what}")
    print("`estagbench datasets NAME|PATH …` loads them and shows windows per split, leakage, units and steps per epoch")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from .data.download import resolve_data_dir
    from .data.registry import get_dataset, resolve_cases

    root = resolve_data_dir(args.data_dir)
    ds = get_dataset(args.dataset)
    for case in resolve_cases(args.dataset, args.cases):
        paths = ds.download(case, root, force=args.force)
        print(f"{ds.name}/{case}: {', '.join(str(p) for p in paths) or 'nothing to download'}")
    return 0


def cmd_results(args: argparse.Namespace) -> int:
    import json

    from .results import RESULT_COLUMNS
    from .tables import load_records

    if not (Path(args.out) / "results").is_dir():
        print(f"estagbench: note: no results under {args.out}/results", file=sys.stderr)
    rec = load_records(args.out)
    # the store's columns, then what tells two configurations of one model apart besides the hash
    df = rec[RESULT_COLUMNS + ["history", "stride"]].copy()
    df["lr"] = [c.get("lr") for c in rec["train_config"]]
    df["model_hparams"] = [json.dumps(h, sort_keys=True) if h else "" for h in rec["model_hparams"]]
    if args.format == "csv":
        sys.stdout.write(df.to_csv(index=False))
    else:
        sys.stdout.write(df.to_markdown(index=False) if hasattr(df, "to_markdown") and _has_tabulate() else _md(df))
        sys.stdout.write("\n")
    return 0


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


def _md(df: Any) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join("" if v is None else (f"{v:.6g}" if isinstance(v, float) else str(v)) for v in row) + " |")
    return "\n".join(lines)


#: Sub-commands contributed by optional modules: (module, function adding the parser).
PLUGGABLE: list[tuple[str, str]] = [
    ("estagbench.rollout", "add_rollout_parser"),
    ("estagbench.simulate.cli", "add_simulate_parser"),
    ("estagbench.tables.cli", "add_table_parsers"),
    ("estagbench.plots.cli", "add_plot_parser"),
    ("estagbench.bench", "add_bench_parser"),
    ("estagbench.status", "add_status_parser"),
    ("estagbench.compare", "add_compare_parser"),
    ("estagbench.site", "add_site_parser"),
    ("estagbench.bundle", "add_bundle_parsers"),
    ("estagbench.convert", "add_convert_parser"),
    ("estagbench.plan", "add_plan_parser"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="estagbench", description="Benchmark equivariant spatio-temporal dynamics models (ESTAG and baselines)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="train and evaluate models on a dataset (resumes finished cells)")
    p.add_argument("--models", default="all", help="'all' or a comma list (see `estagbench models`)")
    add_data_args(p)
    p.add_argument("--seeds", type=ints, default=None,
                   help=f"comma list of seeds (default {','.join(map(str, P.SEEDS))})")
    p.add_argument("--epochs", type=positive_int, default=None,
                   help=f"training epochs (preset default: paper {P.EPOCHS}, quick 10)")
    p.add_argument("--preset", choices=["paper", "quick"], default="paper")
    p.add_argument("--lr", type=float, default=None, help="override the dataset's learning rate")
    p.add_argument("--batch-size", type=positive_int, default=None, help=f"default {P.BATCH_SIZE}")
    p.add_argument("--model-hparams", type=hparams, default=None,
                   help="model hyper-parameters, e.g. layers=3 (part of the config hash)")
    p.add_argument("--optimizer", choices=["adam-fused", "adam"], default="adam-fused",
                   help="Adam as one fused kernel (default) or PyTorch's per-tensor loop (results stored before 2026-12)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--threads", type=positive_int, default=1,
                   help="torch CPU threads (default 1: the graphs are small, and one thread is faster and reproducible)")
    p.add_argument("--jobs", type=positive_int, default=1,
                   help="cells run at once, each in its own process with --threads threads (default 1); "
                        "e.g. --jobs 2 --threads 1 on 2 cores. Same numbers as --jobs 1; no progress bars")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results directory (default ./estagbench-results)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bars (they are drawn only on a terminal anyway, never into a log file)")
    p.add_argument("--checkpoints", choices=["auto", "all", "none"], default="auto",
                   help="which best-validation checkpoints (runs/<cell>/best.pt) to keep: auto (default) keeps those "
                        "of models up to 1 M parameters (what rollout and plot load; rollout retrains others), "
                        "all, or none")
    p.add_argument("--no-checkpoints", action="store_true", help="keep no checkpoint (same as --checkpoints none)")
    add_executor_args(p)
    p.add_argument("--logger", choices=["tensorboard", "wandb", "mlflow", "csv"], default=None,
                   help="also log each cell's config, per-epoch losses, val/test MSE and seconds per epoch "
                        "(optional extras: pip install '.[loggers]'; see estagbench/loggers.py for where logs go)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("models", help="list registered models")
    p.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern, e.g. 'st-*'")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("datasets", help="list datasets; with names: their window counts per split, leakage and units")
    p.add_argument("names", nargs="*", help="dataset names or PATH.npz: load them and show windows per split, leakage, "
                                            "units and optimiser steps per epoch")
    add_data_args(p, dataset_required=False)
    p.add_argument("--info", metavar="NAME", default=None, help="print the data card of dataset NAME (e.g. md17-xtb)")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("download", help="download a dataset into the cache")
    p.add_argument("dataset", help="a registered dataset (`estagbench datasets`); offline ones have nothing to fetch")
    p.add_argument("--molecules", "--cases", dest="cases", type=names, default=None)
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--force", action="store_true", help="download again even if the file exists")
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("results", help="table of stored results")
    p.add_argument("--results", "--out", dest="out", type=Path, default=DEFAULT_OUT,
                   help="results store (default ./estagbench-results; --out, as in `run`, is the same flag)")
    p.add_argument("--format", choices=["csv", "markdown"], default="markdown")
    p.set_defaults(func=cmd_results)

    for module, func in PLUGGABLE:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and module.startswith(exc.name):
                continue  # that part of the suite is not there
            raise
        adder: Callable[[Any], None] | None = getattr(mod, func, None)
        if adder is not None:
            adder(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (UnknownNameError, KeyError) as exc:
        msg = exc.args[0] if exc.args else str(exc)
        print(f"estagbench: error: {msg}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError) as exc:
        print(f"estagbench: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a write failed (disk full, read-only folder): one line, nothing partial left
        from .preflight import describe_os_error

        print(f"estagbench: error: {describe_os_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("estagbench: interrupted; finished cells are stored, rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
