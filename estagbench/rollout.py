"""Long-term recurrent forecasting (Appendix D.4 of Wu et al. 2023, Figure 5).

A one-step model predicts frame ``T`` from frames ``0 .. T-1`` (stride Δ).  A rollout
feeds each prediction back: the window slides by one frame (drop the oldest, append
the prediction) and the model predicts the next frame, ``steps`` times.  Step ``j``
(1-based) is compared with the true frame ``s + (T - 1 + j) Δ`` of the window that
started at ``s``; its MSE is the element-wise mean over samples, nodes, channels and
coordinates (protocol.md's metric).

The paper rolls ESTAG out with full (non-causal) attention: use the registered
``estag-full-attn``.  Any registered model works, including models with a
``batch_transform`` (they get the same adapted batch as in training).

Library use::

    x, y = rollout_windows(case_data, "test", steps=10)     # (S, T, N, C, 3), (S, 10, N, C, 3)
    per_step = rollout_mse(model, case.info, x, y)          # (10,) float64

Command line (trains the models through the runner, reusing stored runs)::

    estagbench rollout --models estag-full-attn,st-egnn --dataset md17 --molecules ethanol \\
        --split-margin 0 --split-fractions 0.3,0.15,0.15 --steps 10 --seeds 1,2,3

writes ``<out>/rollout/rollout-<dataset>-<case>.csv`` with columns
``model, dataset, case, seed, step, mse, samples`` (read by ``estagbench plot rollout``).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from . import protocol as P
from ._argtypes import positive_int
from .data.base import CaseData
from .types import Batch, DatasetInfo

__all__ = ["rollout", "rollout_windows", "rollout_mse", "rollout_case", "add_rollout_parser"]

BatchTransform = Callable[[Batch, DatasetInfo], Any]


def _transform_of(model: nn.Module) -> BatchTransform | None:
    entry = getattr(model, "estagbench_entry", None)
    return getattr(entry, "batch_transform", None)


@torch.no_grad()
def rollout(
    model: nn.Module,
    info: DatasetInfo,
    x: Tensor,
    steps: int,
    batch_transform: BatchTransform | None = None,
) -> Tensor:
    """Recurrent prediction with a sliding window.

    Parameters
    ----------
    model:
        A model mapping a :class:`Batch` (or its ``batch_transform``) to ``(B, N, C, 3)``.
    info:
        The case (graph, node and edge features).
    x:
        ``(B, T, N, C, 3)`` true history windows.
    steps:
        Number of frames to predict (>= 1).
    batch_transform:
        The model's batch adapter; default: the one of its registry entry, if any.

    Returns
    -------
    ``(B, steps, N, C, 3)``: prediction ``j`` (0-based) is the frame ``T + j`` of the window.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if x.dim() != 5:
        raise ValueError(f"x must be (B, T, N, C, 3), got shape {tuple(x.shape)}")
    transform = batch_transform if batch_transform is not None else _transform_of(model)
    was_training = model.training
    model.eval()
    h = info.node_features.to(device=x.device)
    ei = info.edge_index.to(x.device)
    ea = info.edge_attr.to(device=x.device)
    window = x
    preds = []
    try:
        for _ in range(steps):
            batch = Batch(x=window, h=h.to(window.dtype), edge_index=ei, edge_attr=ea.to(window.dtype))
            pred = model(transform(batch, info) if transform else batch)
            if pred.shape != window.shape[:1] + window.shape[2:]:
                raise ValueError(f"model output has shape {tuple(pred.shape)}, expected {tuple(window.shape[:1] + window.shape[2:])}")
            preds.append(pred)
            window = torch.cat([window[:, 1:], pred.unsqueeze(1)], dim=1)
    finally:
        model.train(was_training)
    return torch.stack(preds, dim=1)


def rollout_windows(
    data: CaseData, split: str = "test", steps: int = 10, dtype: torch.dtype = torch.float32
) -> tuple[Tensor, Tensor]:
    """History windows of ``split`` and their next ``steps`` true frames.

    Windows whose last target frame ``s + (T - 1 + steps) Δ`` lies beyond the end of
    their trajectory are left out.

    Returns
    -------
    x: ``(S, T, N, C, 3)``; y: ``(S, steps, N, C, 3)``.
    """
    if split not in data.windows:
        raise KeyError(f"unknown split {split!r}; valid: {sorted(data.windows)}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    T, d = data.history, data.stride
    offsets = np.arange(T + steps) * d
    xs, ys = [], []
    for traj_id, start in np.asarray(data.windows[split], dtype=np.int64).reshape(-1, 2):
        traj = data.trajectories[int(traj_id)]
        if start + offsets[-1] >= traj.shape[0]:
            continue
        seq = traj[start + offsets]
        xs.append(seq[:T])
        ys.append(seq[T:])
    if not xs:
        raise ValueError(
            f"{data.dataset}/{data.case}: no {split} window has {steps} future frames "
            f"(T={T}, Δ={d}); use fewer --steps"
        )
    return torch.as_tensor(np.stack(xs), dtype=dtype), torch.as_tensor(np.stack(ys), dtype=dtype)


@torch.no_grad()
def rollout_mse(
    model: nn.Module,
    info: DatasetInfo,
    x: Tensor,
    y: Tensor,
    batch_size: int = P.BATCH_SIZE,
    batch_transform: BatchTransform | None = None,
) -> Tensor:
    """Per-step MSE ``(steps,)`` (float64) of a rollout from ``x`` against ``y (S, steps, N, C, 3)``."""
    if x.dim() != 5 or y.dim() != 5 or x.shape[0] != y.shape[0] or x.shape[2:] != y.shape[2:]:
        raise ValueError(f"x {tuple(x.shape)} and y {tuple(y.shape)} disagree (expected (S, T, N, C, 3) and (S, steps, N, C, 3))")
    steps = int(y.shape[1])
    total = torch.zeros(steps, dtype=torch.float64)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    for i in range(0, x.shape[0], batch_size):
        xb = x[i : i + batch_size].to(device)
        pred = rollout(model, info, xb, steps, batch_transform)
        err = (pred - y[i : i + batch_size].to(pred.device)) ** 2
        total += err.double().sum(dim=(0, 2, 3, 4)).cpu()
    count = y.shape[0] * y.shape[2] * y.shape[3] * y.shape[4]
    return total / count


def _retrain_for_weights(rec: dict[str, Any], data: Any, run_dir: Path) -> None:
    """Train a stored cell again to get the ``best.pt`` its run did not keep (same seed, same numbers).

    The stored record is not touched; a retrained test MSE that differs from it (another machine,
    changed code) is an error rather than a rollout of weights other than the stored result's.
    """
    from .train import TrainConfig, train_model

    print(f"rollout: {rec['model']} seed {rec['seed']}: no best.pt ({rec['checkpoint']}); training it again to get "
          "the weights (same seed, same numbers)", file=sys.stderr)
    out = train_model(rec["model"], data.prepare(), int(rec["seed"]), TrainConfig(**rec["config"]), run_dir=run_dir,
                      checkpoints="all")
    if out.metrics["test_mse"] != rec["metrics"]["test_mse"]:
        (run_dir / "best.pt").unlink(missing_ok=True)
        raise ValueError(f"rollout: retraining {rec['model']} seed {rec['seed']} for its weights gave test MSE "
                         f"{out.metrics['test_mse']!r}, the stored record has {rec['metrics']['test_mse']!r} (another "
                         "machine or changed code); rerun `estagbench run ... --checkpoints all` for that cell")


def rollout_case(
    models: list[str],
    dataset: str,
    cases: list[str] | None = None,
    seeds: list[int] | None = None,
    steps: int = 10,
    out: Path = Path("estagbench-results"),
    split: str = "test",
    epochs: int | None = None,
    data_dir: Path | None = None,
    progress: bool = False,
    **data_opts: Any,
) -> list[dict[str, Any]]:
    """Train (or reuse stored runs of) ``models`` with the runner, roll each out on ``split``.

    Returns one row per (model, case, seed, step) and writes them to
    ``<out>/rollout/rollout-<dataset>-<case>.csv`` (``...-<case>-<split>.csv`` for a split other than
    test), keeping the rows of models and seeds rolled out earlier into the same file.
    """
    from .data import load_case
    from .registry import create_model
    from .results import cell_id
    from .runner import plan_run, run_plan

    plan = plan_run(",".join(models), dataset, cases, seeds, epochs, "paper", out, data_dir, **data_opts)
    records = run_plan(plan, progress=progress)
    if plan.failed:  # a rollout table without some seeds would not say so: stop before writing any
        raise ValueError(f"rollout: {len(plan.failed)} cell(s) diverged in training, no rollout table written: "
                         + "; ".join(f"{what}: {err}" for what, err in plan.failed))
    rows: list[dict[str, Any]] = []
    for case in plan.cases:
        with warnings.catch_warnings():  # the data's warnings were reported when the runner loaded it
            warnings.simplefilter("ignore")
            data = load_case(plan.dataset, case, data_dir=plan.data_dir, **plan.data_opts)
        info = data.info()
        x, y = rollout_windows(data, split, steps)
        case_rows: list[dict[str, Any]] = []
        for rec in (r for r in records if r["case"] == case):
            run_dir = plan.store.run_dir(cell_id(rec["model"], rec["dataset"], case, rec["seed"], rec["config_hash"]))
            model = create_model(rec["model"], info, **rec.get("hparams", {}))
            ckpt = run_dir / "best.pt"
            if not ckpt.exists() and any(p.requires_grad for p in model.parameters()) and rec.get("checkpoint"):
                _retrain_for_weights(rec, data, run_dir)  # `run` did not keep them (--checkpoints)
            if ckpt.exists():
                model.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"])
            elif any(p.requires_grad for p in model.parameters()):
                raise FileNotFoundError(f"no trained weights for {rec['model']} seed {rec['seed']} in {run_dir}")
            per_step = rollout_mse(model, info, x, y)
            for j, v in enumerate(per_step.tolist(), start=1):
                case_rows.append({"model": rec["model"], "dataset": plan.dataset, "case": case, "seed": rec["seed"],
                                  "step": j, "mse": v, "samples": int(x.shape[0])})
        suffix = "" if split == "test" else f"-{split}"
        path = Path(out) / "rollout" / f"rollout-{Path(plan.dataset).stem}-{case}{suffix}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        fields = ["model", "dataset", "case", "seed", "step", "mse", "samples"]
        kept: list[dict[str, Any]] = []
        if path.exists():  # earlier rollouts of other models / seeds stay; the ones run now replace theirs
            done = {(r["model"], str(r["seed"])) for r in case_rows}
            with open(path, newline="") as fh:
                kept = [r for r in csv.DictReader(fh) if (r.get("model"), r.get("seed")) not in done]
        tmp = path.with_suffix(".part")
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
            w.writeheader()
            w.writerows(kept + case_rows)
        os.replace(tmp, path)
        print(f"rollout table: {path}", file=sys.stderr)
        rows.extend(case_rows)
    return rows


def _cmd_rollout(args: argparse.Namespace) -> int:
    from ._argtypes import data_opts

    if args.threads:
        torch.set_num_threads(args.threads)
    rows = rollout_case(args.models, args.dataset, args.cases, list(args.seeds) if args.seeds else None, args.steps,
                        args.out, args.split, args.epochs, args.data_dir, progress=not args.no_progress, **data_opts(args))
    if rows:
        import pandas as pd

        df = pd.DataFrame(rows).groupby(["model", "case", "step"])["mse"].agg(["mean", "std", "count"]).reset_index()
        print(df.to_string(index=False, float_format=lambda v: f"{v:.6g}"))
    return 0


def add_rollout_parser(sub: Any) -> None:
    """``estagbench rollout``: per-step MSE of recurrent forecasting (Figure 5)."""
    from ._argtypes import add_data_args
    from ._argtypes import ints as _ints
    from ._argtypes import names as _names

    p = sub.add_parser("rollout", help="rollout MSE per step (App. D.4, Figure 5); trains or reuses stored runs")
    p.add_argument("--models", "--model", dest="models", type=_names, required=True,
                   help="comma list, e.g. estag-full-attn,st-egnn (the paper rolls ESTAG out with full attention)")
    add_data_args(p)
    p.add_argument("--steps", type=positive_int, default=10, help="frames predicted recurrently (default 10)")
    p.add_argument("--split", choices=["train", "val", "test"], default="test")
    p.add_argument("--seeds", type=_ints, default=None, help="comma list of seeds (default 1,2,3)")
    p.add_argument("--epochs", type=positive_int, default=None, help=f"training epochs (default {P.EPOCHS})")
    p.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads (default 1, as `estagbench run`)")
    p.add_argument("--out", type=Path, default=Path("estagbench-results"))
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_rollout)
