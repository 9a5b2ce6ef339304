"""The ``estagbench`` command line: thin wrappers over the library, no logic here."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ._argtypes import nonnegative_int, positive_int
from .registry import UnknownNameError

__all__ = ["main", "build_parser"]

DEFAULT_OUT = Path("estagbench-results")
#: What ``estagbench download`` fetches (the motion names take their subject's files from CMU).
DOWNLOADABLE = ("md17", "adk", "motion-walk", "motion-walk-35_01", "motion-walk-30fps", "motion-basketball")


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def _hparams(text: str) -> dict[str, Any]:
    """``key=value,key=value`` with values parsed as int, float, bool or string."""
    out: dict[str, Any] = {}
    for item in _names(text):
        if "=" not in item:
            raise argparse.ArgumentTypeError(f"expected key=value, got {item!r}")
        key, raw = item.split("=", 1)
        val: Any = raw
        for conv in (int, float):
            try:
                val = conv(raw)
                break
            except ValueError:
                continue
        if raw.lower() in ("true", "false"):
            val = raw.lower() == "true"
        out[key.strip().replace("-", "_")] = val
    return out


def add_data_args(p: argparse.ArgumentParser, dataset_required: bool = True) -> None:
    """Dataset selection and protocol overrides shared by run/rollout/reproduce."""
    p.add_argument("--dataset", required=dataset_required,
                   help="md17 | adk | adk-mini | motion-walk | motion-walk-30fps | motion-walk-35_01 | motion-basketball | "
                        "peptide-explicit | peptide-implicit | peptide-vacuum | PATH.npz (your trajectory, docs/trajectory-format.md) | "
                        "TOPOLOGY::TRAJECTORY[::TRAJECTORY...] (any protein MDAnalysis reads, as AdK-style residues)")
    p.add_argument("--molecules", "--cases", dest="cases", type=_names, default=None,
                   help="comma list of cases (MD17 molecules); default: all cases of the dataset")
    p.add_argument("--data-dir", type=Path, default=None, help="data cache (default $ESTAGBENCH_DATA or ~/.cache/estagbench)")
    p.add_argument("--history", type=positive_int, default=None, help="T, frames fed to the model (default 10)")
    p.add_argument("--stride", type=positive_int, default=None, help="Δ, frames between two inputs (dataset default)")
    p.add_argument("--split-margin", type=nonnegative_int, default=None,
                   help="frames excluded at both ends of an MD17 trajectory (MD17 default 10000; PATH.npz default 0)")
    p.add_argument("--split-fractions", type=_floats, default=None, help="train,val,test fractions (MD17 default 0.1,0.05,0.05)")
    p.add_argument("--split-caps", type=_ints, default=None, help="train,val,test caps (MD17 default 500,2000,2000)")


def data_opts(args: argparse.Namespace) -> dict[str, Any]:
    return {"history": args.history, "stride": args.stride, "split_margin": args.split_margin,
            "split_fractions": args.split_fractions, "split_caps": args.split_caps}


def cmd_run(args: argparse.Namespace) -> int:
    from .results import aggregate, load_results
    from .runner import make_executor, plan_run, run_plan

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    plan = plan_run(args.models, args.dataset, args.cases, list(args.seeds) if args.seeds else None, args.epochs,
                    args.preset, args.out, args.data_dir, args.device, args.lr, args.batch_size,
                    model_hparams=args.model_hparams, optimizer=args.optimizer, **data_opts(args))
    executor = make_executor(args.jobs, args.threads)
    records = run_plan(plan, executor, progress=not args.no_progress and args.jobs == 1)
    failed = 1 if plan.failed else 0  # exit status 1 when a cell diverged, after the others ran
    if not records:
        print("no results (every model was skipped)" if not failed else "no results (every cell failed)")
        return failed
    df = load_results(args.out)
    keys = {(r["model"], r["dataset"], r["case"], r["config_hash"]) for r in records}
    df = df[[k in keys for k in zip(df.model, df.dataset, df.case, df.config_hash, strict=True)]]
    agg = aggregate(df)
    print(agg[["model", "dataset", "case", "mean", "std", "n_seeds"]].rename(columns={"mean": "test_mse_mean", "std": "test_mse_std"})
          .to_string(index=False, float_format=lambda v: f"{v:.6g}"))
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
    from .data.catalog import DATASETS

    for spec in DATASETS.values():
        cases = ",".join(spec.cases)
        print(f"{spec.name:20s} family={spec.family:8s} lr={spec.lr:g} {'offline ' if spec.offline else ''}"
              f"cases={cases}\n    {spec.description}")
    print("PATH.npz             your own trajectory file (docs/trajectory-format.md)")
    print("TOP::TRAJ[::TRAJ..]  any protein topology + trajectories MDAnalysis reads, as AdK-style residues")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from .data.download import resolve_data_dir

    root = resolve_data_dir(args.data_dir)
    if args.dataset == "md17":
        from .data.md17 import MOLECULES, download_md17

        for mol in args.cases or list(MOLECULES):
            print(f"md17/{mol}: {download_md17(mol, root, force=args.force)}")
    elif args.dataset.startswith("motion-"):
        from .data.mocap import download_motion

        download_motion(args.dataset[len("motion-"):], root)
    elif args.dataset == "adk":
        from .data.adk import download_adk_equilibrium

        download_adk_equilibrium(root, force=args.force)
    else:
        raise UnknownNameError(f"nothing to download for {args.dataset!r}; downloadable: {', '.join(DOWNLOADABLE)}")
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
    ("estagbench.bench", "add_bench_parser"),
    ("estagbench.plan", "add_plan_parser"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="estagbench", description="Benchmark equivariant spatio-temporal dynamics models (ESTAG and baselines)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="train and evaluate models on a dataset (resumes finished cells)")
    p.add_argument("--models", default="all", help="'all' or a comma list (see `estagbench models`)")
    add_data_args(p)
    p.add_argument("--seeds", type=_ints, default=None, help="comma list of seeds (default 1,2,3)")
    p.add_argument("--epochs", type=positive_int, default=None, help="training epochs (preset default: paper 500, quick 10)")
    p.add_argument("--preset", choices=["paper", "quick"], default="paper")
    p.add_argument("--lr", type=float, default=None, help="override the dataset's learning rate")
    p.add_argument("--batch-size", type=positive_int, default=None, help="default 100")
    p.add_argument("--model-hparams", type=_hparams, default=None,
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
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("models", help="list registered models")
    p.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern, e.g. 'st-*'")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("datasets", help="list datasets")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("download", help="download a dataset into the cache")
    p.add_argument("dataset", help=" | ".join(DOWNLOADABLE))
    p.add_argument("--molecules", "--cases", dest="cases", type=_names, default=None)
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
    except KeyboardInterrupt:
        print("estagbench: interrupted; finished cells are stored, rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
