"""The figures (matplotlib, Agg canvas, never ``pyplot``): curves, rollout, attention, T sweep, sample."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # matplotlib is imported when a figure is drawn, not by every CLI start-up (~0.5 s)
    from matplotlib.figure import Figure

from ._stored import find_records, read_curve

__all__ = ["save_figure", "plot_curves", "plot_rollout", "plot_attention", "plot_tsweep", "plot_sample"]


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
    from ..tables import build_table, get_table_spec

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
    up_axis: str = "z",
) -> Figure:
    """True (red) and predicted (blue) positions of one sample in 3D, one panel per model.

    ``truth`` and each prediction are ``(N, 3)``; ``edges`` ``(2, E)`` are drawn as
    bonds/bones.  Each panel's title gives the sample's MSE.  ``up_axis`` (the data's
    vertical axis) is drawn upwards (the axes are permuted cyclically, so handedness is kept).
    """
    n = len(predictions)
    if n == 0:
        raise ValueError("no predictions to plot")
    order = {"x": [1, 2, 0], "y": [2, 0, 1], "z": [0, 1, 2]}[up_axis]
    mse_of = {name: float(np.mean((pred - truth) ** 2)) * scale for name, pred in predictions.items()}
    truth = truth[:, order]
    predictions = {name: pred[:, order] for name, pred in predictions.items()}
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
        mse = mse_of[name]
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


