"""Figures from stored results, written as PNG and PDF (matplotlib, Agg canvas).

* :func:`plot_curves`: training loss and validation MSE per epoch, one line per
  model (mean over seeds, band = min..max), from ``<results>/runs/<cell>/log.csv``.
* :func:`plot_rollout`: rollout MSE per step (the paper's Figure 5), from the
  per-step table that ``estagbench rollout`` writes.
* :func:`plot_attention`: ESTAG's temporal attention map per block (Eq. 10) and the
  temporal pooling weights (Eq. 13), as in Figure 7, from a trained checkpoint.
* :func:`plot_tsweep`: test MSE against the history length T (Figure 12, Table 6).
* :func:`plot_sample`: a test sample's true and predicted positions in 3D, one
  panel per model (Figures 8 and 10).

Figures are built with :class:`matplotlib.figure.Figure` on an Agg canvas, never
through ``pyplot``, so importing this module changes no global backend state.
"""

from __future__ import annotations

import argparse
import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from ._argtypes import nonnegative_int, positive_int

if TYPE_CHECKING:  # matplotlib is imported when a figure is drawn, not by every CLI start-up (~0.5 s)
    from matplotlib.figure import Figure

__all__ = [
    "save_figure",
    "find_records",
    "read_curve",
    "load_trained",
    "predict",
    "attention_summary",
    "plot_curves",
    "plot_rollout",
    "plot_attention",
    "plot_tsweep",
    "plot_sample",
    "add_plot_arguments",
    "run_plot_command",
]

PLOT_KINDS = ("curves", "rollout", "attention", "tsweep", "sample")
_LOAD_OPTS = ("history", "stride", "split_margin", "split_fractions", "split_caps")


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, out_dir: str | Path, stem: str) -> list[Path]:
    """Write ``<out_dir>/<stem>.png`` and ``.pdf``; return both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "pdf"):
        p = out / f"{stem}.{ext}"
        fig.savefig(p, dpi=150 if ext == "png" else None)
        paths.append(p)
    return paths


# --------------------------------------------------------------------------- stored runs
def find_records(
    results: str | Path,
    model: str,
    dataset: str,
    case: str | None = None,
    *,
    seeds: Sequence[int] | None = None,
    epochs: int | None = None,
    history: int | None = None,
    model_hparams: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The stored records of one (model, dataset, case), newest configuration, sorted by seed.

    Filters as in the tables: ``epochs``, ``seeds``, ``history`` (default: the protocol's
    T = 10) and ``model_hparams`` (default: the registered defaults).  Each returned
    record carries ``"_cell_id"`` (its run folder name).
    """
    from .results import ResultStore, cell_id
    from .tables._records import canonical_hparams
    from .tables._specs import DEFAULT_HISTORY, ESTAG_DEFAULT_HPARAMS

    want_h = DEFAULT_HISTORY if history is None else history
    want_hp = canonical_hparams(model_hparams or {}, ESTAG_DEFAULT_HPARAMS)
    out = []
    for r in ResultStore(Path(results)).records():
        if r.get("model") != model or r.get("dataset") != dataset or (case and r.get("case") != case):
            continue
        cfg = r.get("config") or {}
        if int((r.get("data_params") or {}).get("history", DEFAULT_HISTORY)) != want_h:
            continue
        if canonical_hparams(cfg.get("model_hparams") or {}, ESTAG_DEFAULT_HPARAMS) != want_hp:
            continue
        if epochs is not None and cfg.get("epochs") != epochs:
            continue
        if seeds and r.get("seed") not in seeds:
            continue
        out.append(r)
    if not out:
        return []
    newest: dict[str, str] = {}
    for r in out:
        newest[r["config_hash"]] = max(newest.get(r["config_hash"], ""), r.get("finished_at") or "")
    chash = max(newest, key=lambda k: newest[k])
    chosen = sorted((r for r in out if r["config_hash"] == chash), key=lambda r: r["seed"])
    for r in chosen:
        r["_cell_id"] = cell_id(r["model"], r["dataset"], r["case"], int(r["seed"]), r["config_hash"])
    return chosen


def read_curve(results: str | Path, record: dict[str, Any]) -> pd.DataFrame:
    """The per-epoch log (``epoch, train_loss, val_mse, test_mse, ...``) of a stored run."""
    path = Path(results) / "runs" / record["_cell_id"] / "log.csv"
    if not path.exists():
        raise FileNotFoundError(f"no training log {path} for {record['model']} seed {record['seed']}")
    return pd.read_csv(path)


def load_trained(
    results: str | Path, record: dict[str, Any], data_dir: str | Path | None = None
) -> tuple[torch.nn.Module, Any]:
    """Rebuild the model of a stored run with its best-validation weights, and its prepared case.

    The case is loaded with the record's own protocol settings; its split hash must
    equal the record's, so predictions are made on exactly the windows it was tested on.
    """
    from .data import load_case
    from .registry import create_model

    dp = record.get("data_params") or {}
    opts = {k: (tuple(v) if isinstance(v, list) else v) for k, v in dp.items() if k in _LOAD_OPTS}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = load_case(record["dataset"], record["case"], data_dir=data_dir, **opts)
    if record.get("split_hash") and data.split_hash() != record["split_hash"]:
        raise ValueError(
            f"{record['dataset']}/{record['case']}: the data found gives split hash {data.split_hash()}, "
            f"the stored run used {record['split_hash']}; point --data-dir at the data it was trained on"
        )
    prepared = data.prepare()
    cfg = record.get("config") or {}
    model = create_model(
        record["model"], prepared.info, hidden=cfg.get("hidden", 16), **(cfg.get("model_hparams") or {})
    )
    ckpt = Path(results) / "runs" / record["_cell_id"] / "best.pt"
    if ckpt.exists():
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        model.load_state_dict(state["state_dict"])
    elif sum(p.numel() for p in model.parameters() if p.requires_grad) > 0:
        raise FileNotFoundError(f"no checkpoint {ckpt} for the trained model {record['model']} seed {record['seed']}")
    model.eval()
    return model, prepared


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    prepared: Any,
    split: str = "test",
    index: Sequence[int] | None = None,
    details: bool = False,
) -> tuple[torch.Tensor, dict[str, Any] | None]:
    """Predictions ``(S, N, C, 3)`` on ``split`` (all samples or ``index``), optionally ESTAG's details."""
    from .evaluate import Evaluator

    s = prepared.splits[split]
    idx = torch.arange(len(s)) if index is None else torch.as_tensor(list(index), dtype=torch.long)
    ev = Evaluator(
        prepared.info, batch_transform=getattr(getattr(model, "estagbench_entry", None), "batch_transform", None)
    )
    batch = ev.make_batch(s.x[idx])
    if details:
        pred, det = model(batch, return_details=True)
        return pred, det
    return model(batch), None


def attention_summary(details: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """ESTAG's attention ``(L, T, T)`` averaged over samples and nodes, and the pooling weights ``(T,)``."""
    att = details.get("attention") or []
    maps = np.stack([a.detach().float().mean(dim=(0, 1)).cpu().numpy() for a in att]) if att else np.zeros((0, 0, 0))
    pool = details.get("pool_weights")
    pool = np.asarray(pool.detach().cpu().numpy() if torch.is_tensor(pool) else pool, dtype=float).reshape(-1)
    return maps, pool


# --------------------------------------------------------------------------- figures
def plot_curves(
    results: str | Path,
    dataset: str,
    case: str | None,
    models: Sequence[str],
    *,
    seeds: Sequence[int] | None = None,
    epochs: int | None = None,
    scale: float = 1.0,
    scale_label: str = "",
) -> Figure:
    """Training loss and validation MSE against epoch, one line per model (mean over seeds).

    Models that do not train (Pt-s/m/t) are dashed horizontal lines at their
    validation MSE.  ``scale`` multiplies MSE values (1e3 for MD17's ×10⁻³).
    """
    fig = _figure(11, 4.2)
    ax_tr, ax_val = fig.subplots(1, 2)
    plotted = 0
    cmap = _colors(len(models))
    for color, model in zip(cmap, models, strict=False):
        recs = find_records(results, model, dataset, case, seeds=seeds, epochs=epochs)
        curves = []
        for r in recs:
            try:
                curves.append(read_curve(results, r))
            except FileNotFoundError:
                continue
        if not curves:
            continue
        plotted += 1
        label = f"{model} (n={len(curves)})"
        if all(len(c) == 1 and int(c["epoch"].iloc[0]) == 0 for c in curves):
            v = float(np.mean([c["val_mse"].iloc[0] for c in curves])) * scale
            ax_val.axhline(v, color=color, ls="--", lw=1, label=label)
            continue
        for ax, col, only_eval in ((ax_tr, "train_loss", False), (ax_val, "val_mse", True)):
            frames = [c[["epoch", col]].dropna() for c in curves]
            merged = pd.concat(frames).groupby("epoch")[col]
            mean, lo, hi = merged.mean() * scale, merged.min() * scale, merged.max() * scale
            ax.plot(mean.index, mean.values, color=color, lw=1.4, label=label, marker="." if only_eval or len(mean) == 1 else None, ms=3)
            if len(curves) > 1:
                ax.fill_between(mean.index, lo.values, hi.values, color=color, alpha=0.15, lw=0)
    if plotted == 0:
        who = ", ".join(models) if models else "any model"
        raise ValueError(f"no stored runs with logs for {who} on {dataset}/{case} under {results}")
    unit = f" ({scale_label})" if scale_label else ""
    for ax, title in ((ax_tr, "training loss (MSE)"), (ax_val, "validation MSE")):
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel(title + unit)
        ax.grid(True, which="both", alpha=0.3)
    ax_val.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(f"Training curves: {dataset}" + (f"/{case}" if case else ""))
    return fig


def plot_rollout(table: pd.DataFrame, title: str = "Rollout", scale: float = 1.0, scale_label: str = "") -> Figure:
    """MSE per rollout step, one line per model (the paper's Figure 5).

    ``table`` has columns ``model``, ``step``, ``mse`` and optionally ``seed``: seeds
    are averaged, with a min..max band.
    """
    need = {"model", "step", "mse"}
    if not need <= set(table.columns):
        raise ValueError(f"rollout table needs columns {sorted(need)}, got {list(table.columns)}")
    fig = _figure(6, 4.2)
    ax = fig.subplots()
    models = list(dict.fromkeys(table["model"]))
    for color, m in zip(_colors(len(models)), models, strict=False):
        g = table[table["model"] == m].groupby("step")["mse"]
        mean, lo, hi = g.mean() * scale, g.min() * scale, g.max() * scale
        ax.plot(mean.index, mean.values, marker="o", ms=3, color=color, label=m)
        if (g.count() > 1).any():
            ax.fill_between(mean.index, lo.values, hi.values, color=color, alpha=0.15, lw=0)
    ax.set_xlabel("rollout step")
    ax.set_ylabel("MSE" + (f" ({scale_label})" if scale_label else ""))
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title)
    return fig


def plot_attention(maps: np.ndarray, pool: np.ndarray, title: str = "ESTAG") -> Figure:
    """Temporal attention maps ``(L, T, T)`` (row = query frame t, column = key frame s) and pooling weights ``(T,)``."""
    n_maps = int(maps.shape[0]) if maps.ndim == 3 else 0
    fig = _figure(3.4 * (n_maps + 1) + 0.6, 3.6)
    axes = np.atleast_1d(fig.subplots(1, n_maps + 1))
    im = None
    vmax = float(maps.max()) if n_maps else 1.0
    for i in range(n_maps):
        ax = axes[i]
        im = ax.imshow(maps[i], cmap="viridis", vmin=0.0, vmax=vmax, origin="upper")
        ax.set_title(f"attention, block {i + 1}")
        ax.set_xlabel("key frame s")
        ax.set_ylabel("query frame t")
        t = maps.shape[-1]
        ax.set_xticks(range(t))
        ax.set_yticks(range(t))
        ax.tick_params(labelsize=7)
    if im is not None:
        fig.colorbar(im, ax=list(axes[:n_maps]), shrink=0.8)
    ax = axes[-1]
    t = np.arange(len(pool))
    ax.bar(t, pool, color=["tab:red" if v < 0 else "tab:blue" for v in pool])
    ax.axhline(0, color="k", lw=0.6)
    ax.set_title("temporal pooling weights (Eq. 13)")
    ax.set_xlabel("frame t")
    ax.set_xticks(t)
    ax.tick_params(labelsize=7)
    fig.suptitle(title)
    return fig


def plot_tsweep(
    df: pd.DataFrame, *, epochs: int | None = None, seeds: Sequence[int] | None = None, compare_paper: bool = True
) -> Figure:
    """Test MSE (×10⁻⁴) on ethanol against the history T (Figure 12), from Table 6's cells."""
    from .tables import build_table, get_table_spec

    spec = get_table_spec(6)
    table = build_table(spec, df, epochs=epochs, seeds=seeds)
    ts, mean, std, paper_t, paper_v = [], [], [], [], []
    for c in spec.columns:
        t = int(c.label)
        m = table.display("estag", c.key)
        if m is not None:
            ts.append(t)
            mean.append(m)
            std.append(table.display("estag", c.key, "std") or 0.0)
        p = table.paper("estag", c.key)
        if p is not None:
            paper_t.append(t)
            paper_v.append(p)
    if not ts:
        raise ValueError(
            "no stored ESTAG runs on md17/ethanol for any T of Table 6 (run `estagbench reproduce --table 6 ...`)"
        )
    fig = _figure(6, 4)
    ax = fig.subplots()
    ax.errorbar(ts, mean, yerr=std, marker="o", capsize=3, label="estagbench (mean ± std over seeds)")
    if compare_paper:
        ax.plot(paper_t, paper_v, "s--", color="gray", ms=4, label="paper (Table 6)")
    ax.set_xlabel("history length T")
    ax.set_ylabel(f"test MSE ({spec.scale_label})")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("MSE on ethanol w.r.t. T")
    return fig


def plot_sample(
    truth: np.ndarray,
    predictions: dict[str, np.ndarray],
    edges: np.ndarray | None = None,
    title: str = "",
    scale: float = 1.0,
    scale_label: str = "",
) -> Figure:
    """True (red) and predicted (blue) positions of one sample in 3D, one panel per model.

    ``truth`` and each prediction are ``(N, 3)``; ``edges`` ``(2, E)`` are drawn as
    bonds/bones.  Each panel's title gives the sample's MSE.
    """
    n = len(predictions)
    if n == 0:
        raise ValueError("no predictions to plot")
    fig = _figure(4.6 * n, 4.8)
    lo = np.min([truth.min(0)] + [p.min(0) for p in predictions.values()], axis=0)
    hi = np.max([truth.max(0)] + [p.max(0) for p in predictions.values()], axis=0)
    mid, half = (lo + hi) / 2, float(np.max(hi - lo)) / 2 * 1.1 + 1e-9
    for i, (name, pred) in enumerate(predictions.items()):
        ax = fig.add_subplot(1, n, i + 1, projection="3d")
        for pos, color, lab in ((truth, "tab:red", "true"), (pred, "tab:blue", "predicted")):
            if edges is not None and edges.size:
                seg = np.stack([pos[edges[0]], pos[edges[1]]], axis=1)
                for s in seg:
                    ax.plot(s[:, 0], s[:, 1], s[:, 2], color=color, lw=1, alpha=0.6)
            ax.scatter(pos[:, 0], pos[:, 1], pos[:, 2], color=color, s=28, label=lab, depthshade=False)
        mse = float(np.mean((pred - truth) ** 2)) * scale
        ax.set_title(f"{name}\nMSE = {mse:.4g}" + (f" {scale_label}" if scale_label else ""), fontsize=10)
        for setter, c in zip((ax.set_xlim, ax.set_ylim, ax.set_zlim), mid, strict=False):
            setter(c - half, c + half)
        ax.tick_params(labelsize=6)
        if i == 0:
            ax.legend(fontsize=8, loc="upper left")
    if title:
        fig.suptitle(title)
    return fig


def _colors(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(max(n, 1))]


# --------------------------------------------------------------------------- command line
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
    from ._argtypes import DEFAULT_OUT
    from ._argtypes import ints as _ints
    from ._argtypes import names as _names

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
    from .data.registry import get_dataset

    try:
        proto = get_dataset(dataset).protocol
    except KeyError:
        return 1.0, ""
    return proto.scale, proto.unit


def _read_rollout(paths: Sequence[Path]) -> pd.DataFrame:
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
    from .data.registry import resolve_cases

    out = args.out or (Path(args.results) / "figures")
    kind = args.kind
    scale, scale_label = _scale(args.dataset)
    case = args.case
    from .tables._records import load_records

    records = load_records(args.results)  # read once: the default case, the default models and tsweep use it
    stored = records[records["dataset"] == args.dataset]
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
        from .models.estag import ESTAG

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
        )
        return save_figure(fig, out, f"sample-{tag}-{args.index}")
    raise ValueError(f"unknown plot kind {kind!r}; choose one of {', '.join(PLOT_KINDS)}")
