"""``estagbench plot``: the sub-command (added by :func:`estagbench.cli.build_parser`) and its dispatch."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._argtypes import nonnegative_int, positive_int

if TYPE_CHECKING:  # matplotlib is imported when a figure is drawn, not by every CLI start-up (~0.5 s)
    pass

__all__ = ["PLOT_KINDS", "add_plot_parser", "add_plot_arguments", "run_plot_command"]

PLOT_KINDS = ("curves", "rollout", "attention", "tsweep", "sample")


def add_plot_parser(subparsers: Any) -> None:
    """Add ``estagbench plot`` (called by :func:`estagbench.cli.build_parser`)."""
    p = subparsers.add_parser("plot", help="figures (PNG + PDF): curves, rollout, attention, tsweep, sample")
    add_plot_arguments(p)
    p.set_defaults(func=_cmd_plot)


def _cmd_plot(args: argparse.Namespace) -> int:
    for path in run_plot_command(args):
        print(path)
    return 0


def add_plot_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of ``estagbench plot``."""
    from .._argtypes import DEFAULT_OUT
    from .._argtypes import ints as _ints
    from .._argtypes import names as _names

    p.add_argument("kind", choices=PLOT_KINDS, help="curves | rollout | attention | tsweep | sample")
    p.add_argument("--results", type=Path, default=DEFAULT_OUT, help="results store (default ./estagbench-results)")
    p.add_argument("--out", type=Path, default=None, help="figure folder (default <results>/figures)")
    p.add_argument("--dataset", default="md17", help="dataset name (default md17)")
    p.add_argument(
        "--case", "--molecule", dest="case", default=None, help="case (MD17 molecule; default: the dataset's first)"
    )
    p.add_argument(
        "--models",
        type=_names,
        default=None,
        help="models (curves: default every stored model; sample: default estag,st-egnn; attention: default estag)",
    )
    p.add_argument("--seeds", type=_ints, default=None, help="curves: only these seeds")
    p.add_argument("--seed", type=int, default=1, help="attention/sample: the run's seed (default 1)")
    p.add_argument("--epochs", type=positive_int, default=None, help="only runs trained for this many epochs")
    p.add_argument("--data-dir", type=Path, default=None, help="attention/sample: data the runs were trained on")
    p.add_argument("--index", type=nonnegative_int, default=0, help="sample: index of the test sample (default 0)")
    p.add_argument(
        "--split", choices=["train", "val", "test"], default="test", help="attention/sample: split (default test)"
    )
    p.add_argument(
        "--input",
        type=Path,
        nargs="*",
        default=None,
        help="rollout: per-step CSV file(s) of `estagbench rollout` (columns model, step, mse; "
        "default <results>/rollout/rollout-<dataset>-<case>.csv)",
    )
    p.add_argument("--no-paper", action="store_true", help="tsweep: without the paper's curve")


def _scale(dataset: str) -> tuple[float, str]:
    """The table scale and its label declared by ``dataset``'s registration (1 and "" if unknown)."""
    from ..data.registry import get_dataset

    try:
        proto = get_dataset(dataset).protocol
    except KeyError:
        return 1.0, ""
    return proto.scale, proto.unit


def _read_rollout(paths: Sequence[Path]) -> pd.DataFrame:
    import pandas as pd

    frames = []
    for p in dict.fromkeys(Path(q).resolve() for q in paths):  # a file named twice counts once
        try:
            if p.suffix == ".json":
                obj = json.loads(p.read_text())
                rows = obj if isinstance(obj, list) else obj.get("rows") or obj.get("steps") or []
                frames.append(pd.DataFrame(rows))
            else:
                frames.append(pd.read_csv(p, comment="#"))
        except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
            raise ValueError(f"{p}: not a rollout table written by `estagbench rollout` ({type(exc).__name__}: {exc})") from exc
    if not frames:
        raise ValueError("plot rollout needs --input FILE(s) written by `estagbench rollout`")
    return pd.concat(frames, ignore_index=True)


def run_plot_command(args: argparse.Namespace) -> list[Path]:
    """Dispatch ``estagbench plot <kind>``; return the written files."""

    from ..data.registry import resolve_cases
    from ._figures import plot_attention, plot_curves, plot_rollout, plot_sample, plot_tsweep, save_figure
    from ._stored import attention_summary, find_records, load_trained, predict

    out = args.out or (Path(args.results) / "figures")
    kind = args.kind
    scale, scale_label = _scale(args.dataset)
    case = args.case
    from ..tables._records import load_records

    records = load_records(args.results)  # read once: the default case, the default models and tsweep use it
    from ..data.identity import same_dataset

    stored = records[records["dataset"].astype(str).map(lambda d: same_dataset(d, args.dataset)).astype(bool)]
    if kind in ("curves", "attention", "sample", "rollout") and case is None:
        cases = resolve_cases(args.dataset, None)
        case = next((c for c in cases if c in set(stored["case"])), cases[0])  # the first case with stored runs
    tag = f"{Path(args.dataset).stem}-{case}" if case else Path(args.dataset).stem
    if kind == "curves":
        models = args.models or list(dict.fromkeys(stored.loc[stored["case"] == case, "model"]))
        fig = plot_curves(
            args.results,
            args.dataset,
            case,
            models,
            seeds=args.seeds,
            epochs=args.epochs,
            scale=scale,
            scale_label=scale_label,
        )
        return save_figure(fig, out, f"curves-{tag}")
    if kind == "tsweep":
        fig = plot_tsweep(records, epochs=args.epochs, compare_paper=not args.no_paper)
        return save_figure(fig, out, "tsweep-md17-ethanol")
    if kind == "rollout":
        inputs = args.input or [Path(args.results) / "rollout" / f"rollout-{tag}.csv"]
        missing = [str(p) for p in inputs if not Path(p).exists()]
        if missing:
            raise FileNotFoundError(
                f"no rollout table {', '.join(missing)}; run `estagbench rollout` first or pass --input"
            )
        table = _read_rollout(inputs)
        if args.input and {"dataset", "case"} <= set(table.columns):
            named = table[["dataset", "case"]].drop_duplicates()
            if len(named) == 1:  # the table says what it is: name and scale the figure by it
                dataset, case = str(named.iloc[0, 0]), str(named.iloc[0, 1])
                scale, scale_label = _scale(dataset)
                tag = f"{Path(dataset).stem}-{case}"
        fig = plot_rollout(table, title=f"Rollout MSE per step: {tag}", scale=scale, scale_label=scale_label)
        return save_figure(fig, out, f"rollout-{tag}")
    if kind == "attention":
        model_name = (args.models or ["estag"])[0]
        recs = find_records(args.results, model_name, args.dataset, case, seeds=[args.seed], epochs=args.epochs)
        if not recs:
            raise ValueError(
                f"no stored run of {model_name} on {args.dataset}/{case} seed {args.seed} under {args.results}"
            )
        model, prepared = load_trained(args.results, recs[0], args.data_dir)
        from ..models.estag import ESTAG

        if not isinstance(model, ESTAG):
            raise ValueError(f"plot attention draws ESTAG's temporal attention and pooling weights; {model_name} is "
                             "not an ESTAG variant (e.g. estag, estag-full-attn, estag-no-edft)")
        _, det = predict(model, prepared, args.split, details=True)
        maps, pool = attention_summary(det or {})
        fig = plot_attention(maps, pool, title=f"{model_name} on {tag} (seed {args.seed}, {args.split} split mean)")
        return save_figure(fig, out, f"attention-{model_name}-{tag}")
    if kind == "sample":
        models = args.models or ["estag", "st-egnn"]
        preds: dict[str, np.ndarray] = {}
        truth = edges = None
        for m in models:
            recs = find_records(args.results, m, args.dataset, case, seeds=[args.seed], epochs=args.epochs)
            if not recs:
                raise ValueError(f"no stored run of {m} on {args.dataset}/{case} seed {args.seed} under {args.results}")
            model, prepared = load_trained(args.results, recs[0], args.data_dir)
            split = prepared.splits[args.split]
            if not 0 <= args.index < len(split):
                raise ValueError(f"--index {args.index} out of range: the {args.split} split has {len(split)} samples")
            pred, _ = predict(model, prepared, args.split, [args.index])
            ch = prepared.info.ca_channel if prepared.info.num_channels > 1 else 0
            preds[m] = pred[0, :, ch].double().numpy()
            truth = split.y[args.index, :, ch].double().numpy()
            ei = prepared.info.edge_index
            mask = prepared.info.one_hop_mask
            edges = (ei[:, mask] if mask is not None else ei).numpy()
        if truth is None:
            raise ValueError("plot sample needs at least one model (--models)")
        fig = plot_sample(
            truth,
            preds,
            edges,
            title=f"{tag}: {args.split} sample {args.index} (seed {args.seed})",
            scale=scale,
            scale_label=scale_label,
            up_axis=prepared.data.up_axis,
        )
        return save_figure(fig, out, f"sample-{tag}-{args.index}")
    raise ValueError(f"unknown plot kind {kind!r}; choose one of {', '.join(PLOT_KINDS)}")
