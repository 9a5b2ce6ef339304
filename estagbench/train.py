"""Trainer: seeding, the training loop, evaluation every k epochs, best-val selection.

Protocol (protocol.md): Adam with the dataset's learning rate, weight decay 1e-12,
batch 100, 500 epochs, hidden 16; val every 5 epochs; the reported test MSE is the
one at the epoch of best val MSE.  On CPU a fixed seed gives bitwise identical numbers
on the same machine (deterministic algorithms, seeded shuffling, no data-loader workers).

Evaluation schedule: the test split is evaluated only on an evaluation epoch where the
validation MSE improves (the only epochs whose test MSE can be reported), so a run's
metrics are those of evaluating test at every evaluation epoch (tested), at a fraction of
the cost; ``log.csv`` has ``test_mse`` on those epochs and NaN elsewhere.  Evaluation
batches stay the size of training batches: a larger batch changes some models' float32
outputs in the last bit (ESTAG's EDFT, measured), which would change reported numbers.
"""

from __future__ import annotations

import copy
import csv
import gc
import io
import random
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import protocol as P
from .checkpoints import checkpoint_note, current_policy, keep_checkpoint
from .data.base import PreparedCase
from .data.trajectory import atomic_write_bytes
from .evaluate import Evaluator, iterate_batches, mse
from .registry import create_model, get_model_entry

__all__ = ["TrainConfig", "RunOutput", "OPTIMIZERS", "make_optimizer", "seed_everything", "train_model"]

#: Evaluate the test split only where validation improves (False: at every evaluation epoch, the
#: schedule before 2026-12; kept for the test that shows both give the same metrics).
TEST_ONLY_WHEN_VAL_IMPROVES = True


@dataclass
class TrainConfig:
    """Training hyper-parameters (defaults: the paper's, Appendix D)."""

    epochs: int = P.EPOCHS
    lr: float = P.LR
    weight_decay: float = P.WEIGHT_DECAY
    batch_size: int = P.BATCH_SIZE
    eval_every: int = P.EVAL_EVERY
    hidden: int = P.HIDDEN
    device: str = "cpu"
    model_hparams: dict[str, Any] = field(default_factory=dict)
    #: ``"adam-fused"`` (one fused kernel per step; the default) or ``"adam"`` (PyTorch's
    #: per-tensor loop, which results stored before 2026-12 used).  Same algorithm, different
    #: rounding, so it is part of the configuration hash.
    optimizer: str = "adam-fused"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunOutput:
    """What one training run produced (the trainer's side of a result record)."""

    metrics: dict[str, Any]
    timings: dict[str, float]
    curve: list[dict[str, float]]
    num_params: int
    model: nn.Module
    #: Path of the kept ``best.pt``, or why none was kept; ``None`` when nothing was trained.
    checkpoint: str | None = None


OPTIMIZERS = ("adam-fused", "adam")


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch, and ask torch for deterministic kernels.

    Deterministic mode would also fill every new tensor with NaN (a debugging aid that
    costs a pass over memory per allocation); that fill is switched off, since no kernel
    here reads memory it has not written.

    ``torch.use_deterministic_algorithms`` also sets a flag of torch.compile's inductor,
    importing it (about 1 s of start-up); nothing here compiles, so unless inductor is
    already loaded only the eager flag is set, which is all that eager kernels read.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if "torch._inductor.config" in sys.modules:
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        torch._C._set_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = False


def make_optimizer(params: Any, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam with the configuration's learning rate and weight decay (protocol.md)."""
    if cfg.optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {cfg.optimizer!r}; valid: {', '.join(OPTIMIZERS)}")
    fused = cfg.optimizer == "adam-fused"
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused or None)


def _write_curve(path: Path, curve: list[dict[str, float]]) -> None:
    """``curve`` as CSV at ``path``, atomically: a failed write (disk full) leaves no partial file."""
    if not curve:
        return
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=list(curve[0].keys()))
    w.writeheader()
    w.writerows(curve)
    blob = buf.getvalue().encode()
    atomic_write_bytes(path, lambda fh: fh.write(blob))


def train_model(
    model_name: str,
    case: PreparedCase,
    seed: int,
    config: TrainConfig | None = None,
    run_dir: Path | None = None,
    progress: bool = False,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    checkpoints: str | None = None,
) -> RunOutput:
    """Train ``model_name`` on ``case`` with ``seed``; return metrics at the best-val epoch.

    Writes ``log.csv`` (one row per epoch: train loss, val MSE on evaluation epochs, test
    MSE on evaluation epochs where val improved) and ``best.pt`` (the best-val state dict) into ``run_dir`` when given.
    ``log.csv`` is rewritten (atomically) after every evaluation, so a long run can be
    followed while it trains; ``best.pt`` is written once, at the end.
    Models with ``trains=False`` (Pt-s/m/t) are evaluated once (best_epoch 0).
    ``checkpoints`` (:data:`estagbench.checkpoints.POLICIES`; default ``$ESTAGBENCH_CHECKPOINTS`` or
    ``auto``) decides whether ``best.pt`` is kept; ``RunOutput.checkpoint`` is its path, or why it was
    not kept, or ``None`` when nothing was trained.
    A progress bar (``progress``) is drawn only when stderr is a terminal, never into a log file.
    """
    cfg = config or TrainConfig()
    entry = get_model_entry(model_name)
    seed_everything(seed)
    device = torch.device(cfg.device)
    model = create_model(model_name, case.info, hidden=cfg.hidden, **cfg.model_hparams).to(device)
    num_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    evaluator = Evaluator(case.info, cfg.batch_size, device, entry.batch_transform)
    train, val, test = case.splits["train"], case.splits["val"], case.splits["test"]
    curve: list[dict[str, float]] = []
    log_path = run_dir / "log.csv" if run_dir else None

    def evaluate_all(epoch: int, train_loss: float, epoch_seconds: float, best_val: float = float("inf")) -> dict[str, float]:
        """Val, then test if val beats ``best_val`` (or always, without TEST_ONLY_WHEN_VAL_IMPROVES)."""
        v = evaluator.evaluate(model, val, f"{model_name} seed {seed}, epoch {epoch}, val split: ")
        t = None
        if v.mse < best_val or not TEST_ONLY_WHEN_VAL_IMPROVES:
            t = evaluator.evaluate(model, test, f"{model_name} seed {seed}, epoch {epoch}, test split: ")
        seconds, samples = v.seconds + (t.seconds if t else 0.0), len(val) + (len(test) if t else 0)
        row = {"epoch": epoch, "train_loss": train_loss, "val_mse": v.mse, "test_mse": t.mse if t else float("nan"),
               "epoch_seconds": epoch_seconds, "eval_ms_per_sample": seconds * 1000 / max(samples, 1)}
        return row

    if not entry.trains or num_params == 0 or cfg.epochs == 0:
        row = evaluate_all(0, float("nan"), 0.0)
        curve.append(row)
        if log_path:
            _write_curve(log_path, curve)
        return RunOutput(
            metrics={"test_mse": row["test_mse"], "val_mse": row["val_mse"], "best_epoch": 0},
            timings={"train_seconds_per_epoch": 0.0, "ms_per_sample": row["eval_ms_per_sample"], "total_seconds": 0.0},
            curve=curve, num_params=num_params, model=model,
        )

    optim = make_optimizer(model.parameters(), cfg)
    gen = torch.Generator().manual_seed(seed)
    best = {"val_mse": float("inf"), "test_mse": float("nan"), "best_epoch": -1}
    best_state: dict[str, Any] | None = None
    train_seconds = 0.0
    eval_ms: list[float] = []
    t_start = time.perf_counter()
    bar = None
    checkpoint: str | None = None
    if progress and sys.stderr.isatty():  # a bar redraws with \r: on a terminal only, never into a log file
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.epochs, desc=f"{model_name} s{seed}", leave=False, dynamic_ncols=True, file=sys.stderr)
    model.train()
    # What is alive now (modules, imported libraries, the data) lives for the whole run: frozen out
    # of the collector's view, it is not walked again by the frequent young-generation collections
    # that the training loop's allocations trigger (no effect on the numbers).
    gc.collect()
    gc.freeze()
    try:
        for epoch in range(1, cfg.epochs + 1):
            t0 = time.perf_counter()
            order = torch.randperm(len(train), generator=gen)
            loss_sum, n_seen = 0.0, 0
            for x, y in iterate_batches(train, cfg.batch_size, order):
                y = y.to(device)
                pred = model(evaluator.make_batch(x, y))
                loss = mse(pred, y)
                optim.zero_grad(set_to_none=True)
                loss.backward()
                optim.step()
                loss_sum += float(loss.detach()) * y.shape[0]
                n_seen += y.shape[0]
            epoch_seconds = time.perf_counter() - t0
            train_seconds += epoch_seconds
            train_loss = loss_sum / max(n_seen, 1)
            if not np.isfinite(train_loss):
                raise FloatingPointError(f"{model_name} seed {seed}: training loss became {train_loss} at epoch {epoch}")
            row: dict[str, float] = {"epoch": epoch, "train_loss": train_loss, "val_mse": float("nan"),
                                     "test_mse": float("nan"), "epoch_seconds": epoch_seconds, "eval_ms_per_sample": float("nan")}
            if epoch % cfg.eval_every == 0 or epoch == cfg.epochs:
                row = evaluate_all(epoch, train_loss, epoch_seconds, best["val_mse"])
                eval_ms.append(row["eval_ms_per_sample"])
                if row["val_mse"] < best["val_mse"]:
                    best = {"val_mse": row["val_mse"], "test_mse": row["test_mse"], "best_epoch": epoch}
                    best_state = copy.deepcopy(model.state_dict())
            curve.append(row)
            if log_path and epoch % cfg.eval_every == 0 and epoch != cfg.epochs:
                _write_curve(log_path, curve)  # progress so far; the final write below completes it
            if on_epoch:
                on_epoch(row)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{train_loss:.3e}", best_val=f"{best['val_mse']:.3e}")
    finally:
        gc.unfreeze()
    if bar is not None:
        bar.close()
    total = time.perf_counter() - t_start
    if run_dir:
        _write_curve(run_dir / "log.csv", curve)
        if best_state is not None and keep_checkpoint(checkpoints, num_params):
            ckpt = {"state_dict": best_state, "epoch": best["best_epoch"], "model": model_name,
                    "hparams": getattr(model, "estagbench_hparams", {})}
            checkpoint = str(atomic_write_bytes(run_dir / "best.pt", lambda fh: torch.save(ckpt, fh)))
        elif best_state is not None:  # not kept: an older run's weights must not pass for this run's
            (run_dir / "best.pt").unlink(missing_ok=True)
            checkpoint = checkpoint_note(current_policy(checkpoints), num_params)
    if best_state is not None:
        model.load_state_dict(best_state)
    return RunOutput(
        metrics={**best, "final_train_loss": curve[-1]["train_loss"]},
        timings={"train_seconds_per_epoch": train_seconds / cfg.epochs,
                 "ms_per_sample": float(np.mean(eval_ms)) if eval_ms else float("nan"),
                 "total_seconds": total},
        curve=curve, num_params=num_params, model=model, checkpoint=checkpoint,
    )
