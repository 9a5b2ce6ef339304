"""Sub-commands ``tables`` and ``reproduce``, added to the ``estagbench`` CLI.

:func:`add_table_parsers` is called by :func:`estagbench.cli.build_parser`; the
commands are thin wrappers over :mod:`estagbench.tables` (``plot`` is added by
:mod:`estagbench.plots` itself: tables never import plots).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .._argtypes import DEFAULT_OUT, floats, hparams, ints, names, nonnegative_int, positive_int

__all__ = ["add_table_parsers"]


def _cmd_tables(args: argparse.Namespace) -> int:
    from . import build_tables, get_table_spec, load_records, parse_table_selector, render
    from ._dataset import dataset_table, is_paper_dataset
    from ._latex import check_latex
    from ._reproduce import command_line, provenance_of_cells, write_table

    if not (Path(args.results) / "results").is_dir():
        print(f"estagbench: note: no results under {args.results}/results; every cell will be '–'", file=sys.stderr)
    df = load_records(args.results)
    meta = {"results": str(args.results), "command": command_line(args._parser, args, "tables")}
    written: list[Path] = []
    own = [d for d in args.dataset or [] if not is_paper_dataset(d)]  # datasets no paper table has: their own table
    tables = [dataset_table(d, df, args.results, meta=meta, epochs=args.epochs, seeds=args.seeds) for d in own]
    for n in parse_table_selector(args.table) if not own else []:
        spec = get_table_spec(n)
        tables += build_tables(
            spec,
            df,
            args.dataset,
            epochs=args.epochs,
            seeds=args.seeds,
            compare_paper=args.compare_paper,
            meta=meta,
            drop_empty=args.drop_empty,
            interval=args.interval,
        )
    for table in tables:
        table.meta.update(provenance_of_cells(table, df))
        if args.out:
            formats = [args.format] if args.format != "all" else ["csv", "markdown", "latex"]
            written += write_table(table, args.out, formats, standalone=args.standalone)
        else:
            fmt = "markdown" if args.format == "all" else args.format
            text = render(table, fmt, standalone=args.standalone)
            if fmt == "latex":
                check_latex(text)
            sys.stdout.write(text + "\n")
    for p in written:
        print(p)
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from .._executor_args import executor_from_args, shard_from_args
    from . import get_table_spec, parse_table_selector
    from ._reproduce import command_line, reproduce_table, write_table

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    out_tables = args.tables_out or (Path(args.out) / "tables")
    formats = ["csv", "markdown", "latex"] if args.format == "all" else [args.format]
    status = 0
    executor = executor_from_args(args)
    shard = shard_from_args(args)
    for n in parse_table_selector(args.table):
        table = reproduce_table(
            get_table_spec(n),
            preset=args.preset,
            out=Path(args.out),
            data_dir=args.data_dir,
            seeds=list(args.seeds) if args.seeds else None,
            epochs=args.epochs,
            datasets=args.dataset,
            cases=args.cases,
            models=args.models,
            model_hparams=args.model_hparams,
            device=args.device,
            lr=args.lr,
            batch_size=args.batch_size,
            data_opts={
                "stride": args.stride,
                "split_margin": args.split_margin,
                "split_fractions": args.split_fractions,
                "split_caps": args.split_caps,
            },
            compare_paper=args.compare_paper,
            command=command_line(args._parser, args, "reproduce"),
            progress=not args.no_progress and executor.name == "local",
            executor=executor,
            shard=shard,
        )
        for p in write_table(table, out_tables, formats, standalone=True):
            print(p)
        if "failed (diverged" in table.meta.get("run_notes", ""):
            status = 1  # the table is written without the diverged cells; say so in the exit status
    return status


def add_table_parsers(subparsers: Any) -> None:
    """Add ``tables``, ``reproduce`` and ``plot`` to the ``estagbench`` sub-command parser."""
    from .._executor_args import add_executor_args

    p = subparsers.add_parser("tables", help="the paper's Tables 1-9 from stored results (csv, markdown, latex)")
    p.add_argument("--table", default="all", help="1..9, a comma list, or 'all' (default)")
    p.add_argument(
        "--format",
        choices=["csv", "markdown", "latex", "all"],
        default="markdown",
        help="output format (with --out: 'all' writes the three)",
    )
    p.add_argument("--results", type=Path, default=DEFAULT_OUT, help="results store (default ./estagbench-results)")
    p.add_argument("--out", type=Path, default=None, help="write <out>/table<N>[-variant].<ext> instead of printing")
    p.add_argument(
        "--compare-paper", action="store_true", help="the paper's number and the relative difference beside each cell"
    )
    p.add_argument("--epochs", type=positive_int, default=None, help="only records trained for this many epochs")
    p.add_argument("--seeds", type=ints, default=None, help="only these seeds")
    p.add_argument(
        "--dataset",
        type=names,
        default=None,
        help="preferred dataset variant(s) of the paper tables, e.g. adk-mini or motion-walk-30fps (default: one table "
             "per stored variant); a dataset no paper table has (PATH.npz, motion-walk-35_01, peptide-*): its own "
             "model × case table instead",
    )
    p.add_argument("--drop-empty", action="store_true", help="omit columns without any stored result")
    p.add_argument("--standalone", action="store_true", help="LaTeX: a complete compilable document")
    p.add_argument(
        "--interval",
        choices=["t", "bootstrap"],
        default="t",
        help="95%% interval of each cell's mean in the CSV (ci_low, ci_high): Student-t (default) or a "
        "percentile bootstrap over the seeds",
    )
    p.set_defaults(func=_cmd_tables, _parser=p)

    p = subparsers.add_parser(
        "reproduce", help="run exactly the cells of a paper table (resuming), then write the table"
    )
    p.add_argument("--table", required=True, help="1..9 (or a comma list, or 'all')")
    p.add_argument(
        "--preset",
        choices=["paper", "quick"],
        default="paper",
        help="paper: 500 epochs, seeds 1,2,3; quick: 10 epochs, seed 1",
    )
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results store (default ./estagbench-results)")
    p.add_argument("--tables-out", type=Path, default=None, help="where the table files go (default <out>/tables)")
    p.add_argument("--format", choices=["csv", "markdown", "latex", "all"], default="all")
    p.add_argument(
        "--data-dir", type=Path, default=None, help="data cache (default $ESTAGBENCH_DATA or ~/.cache/estagbench)"
    )
    p.add_argument("--seeds", type=ints, default=None, help="comma list of seeds (preset default)")
    p.add_argument(
        "--epochs", type=positive_int, default=None, help="training epochs for every model of the table (preset default)"
    )
    p.add_argument(
        "--dataset",
        type=names,
        default=None,
        help="dataset(s) to run, each filling its column (adk-mini, motion-walk-30fps); default the paper's",
    )
    p.add_argument(
        "--molecules", "--cases", dest="cases", type=names, default=None, help="MD17 molecules (columns) to run"
    )
    p.add_argument("--models", type=names, default=None, help="only these rows (registry names)")
    p.add_argument(
        "--model-hparams",
        type=hparams,
        default=None,
        help="extra model hyper-parameters for every cell, key=value,... (recorded in the config)",
    )
    p.add_argument("--stride", type=positive_int, default=None, help="Δ override")
    p.add_argument(
        "--split-margin", type=nonnegative_int, default=None,
        help="frames excluded at both ends of an MD17 trajectory (MD17 default 10000; PATH.npz default 0)"
    )
    p.add_argument(
        "--split-fractions", type=floats, default=None, help="train,val,test fractions (MD17 default 0.1,0.05,0.05)"
    )
    p.add_argument("--split-caps", type=ints, default=None, help="train,val,test caps")
    p.add_argument("--lr", type=float, default=None, help="override the dataset's learning rate")
    p.add_argument("--batch-size", type=positive_int, default=None)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads (default 1, as `estagbench run`)")
    p.add_argument("--jobs", type=positive_int, default=1, help="cells run at once in worker processes, as `estagbench run`")
    p.add_argument("--compare-paper", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    add_executor_args(p)
    p.set_defaults(func=_cmd_reproduce, _parser=p)

