"""``estagbench bench``: time one training step of registered models at a fixed size.

The default size is the paper's aspirin case: batch 100, T = 10, 13 nodes, a
1-hop + 2-hop graph of a random molecule-like point cloud.  Each model runs a few
warm-up steps, then the median (and inter-quartile range) of ``--repeats`` timed
steps (forward + backward + Adam) is reported.  Timings are benchmarks, never
pass/fail tests.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from . import protocol as P
from ._argtypes import nonnegative_int, positive_int
from .data.graphs import cutoff_adjacency, edge_features_z_hop, one_and_two_hop
from .evaluate import mse
from .registry import create_model, get_model_entry, list_models
from .train import TrainConfig, make_optimizer
from .types import Batch, DatasetInfo

__all__ = ["synthetic_case", "make_train_step", "time_train_step", "profile_train_step", "add_bench_parser"]


def synthetic_case(num_nodes: int = 13, history: int = P.HISTORY, batch_size: int = P.BATCH_SIZE, channels: int = 1,
                   seed: int = 0) -> tuple[DatasetInfo, Batch]:
    """A molecule-sized random case: bonded-looking chain, 1-hop + 2-hop edges."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(size=(num_nodes, 3))
    steps = 1.4 * steps / np.linalg.norm(steps, axis=1, keepdims=True)
    points = np.cumsum(steps, axis=0)
    edge_index, hop = one_and_two_hop(cutoff_adjacency(points, P.MD17_CUTOFF))
    z = rng.choice([6.0, 7.0, 8.0], size=num_nodes)
    info = DatasetInfo(
        dataset="md17", case="synthetic", num_nodes=num_nodes, num_channels=channels,
        node_features=torch.tensor(z[:, None], dtype=torch.float32),
        edge_index=torch.tensor(edge_index), edge_attr=torch.tensor(edge_features_z_hop(z, edge_index, hop), dtype=torch.float32),
        history=history, stride=P.MD17_STRIDE, ca_channel=1 if channels == 4 else 0, one_hop_mask=torch.tensor(hop == 1),
    )
    g = torch.Generator().manual_seed(seed)
    base = torch.tensor(points, dtype=torch.float32)[None, None, :, None, :]
    x = base + 0.05 * torch.randn(batch_size, history, num_nodes, channels, 3, generator=g).cumsum(1)
    y = x[:, -1] + 0.05 * torch.randn(batch_size, num_nodes, channels, 3, generator=g)
    return info, Batch.from_info(info, x, y)


def make_train_step(name: str, info: DatasetInfo, batch: Batch, **hparams: Any) -> tuple[Callable[[], float], torch.nn.Module]:
    """``(step, model)``: a fresh model ``name`` (seed 0) and a closure running one training step
    on ``batch`` exactly as the trainer does (registry batch transform per batch, element-wise MSE,
    ``hparams`` passed to the model builder,
    the trainer's optimizer: fused Adam, lr 5e-3, weight decay 1e-12); it returns the loss.
    For parameter-free models (Pt-s/m/t) the step is one forward pass.
    """
    entry = get_model_entry(name)
    torch.manual_seed(0)
    model = create_model(name, info, **{"hidden": 16, **hparams})
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(params, TrainConfig()) if params else None

    def step() -> float:
        inp = entry.batch_transform(batch, info) if entry.batch_transform else batch
        loss = mse(model(inp), batch.y)
        if opt is not None:
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return float(loss.detach())

    return step, model


def time_train_step(name: str, info: DatasetInfo, batch: Batch, repeats: int = 20, warmup: int = 3) -> dict[str, Any]:
    """Median and IQR (ms) of one optimisation step (forward + backward + fused Adam) of model ``name``."""
    step, model = make_train_step(name, info, batch)
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    times = []
    for i in range(warmup + repeats):
        t0 = time.perf_counter()
        step()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    q = np.percentile(times, [25, 50, 75])
    return {"model": name, "median_ms": 1000 * q[1], "iqr_ms": 1000 * (q[2] - q[0]), "params": params}


def profile_train_step(name: str, info: DatasetInfo, batch: Batch, steps: int = 5, warmup: int = 3) -> list[dict[str, Any]]:
    """Where one training step of ``name`` spends its time, per operator (``torch.profiler``).

    Returns one row per operator, largest self CPU time first: ``op``, ``calls`` and
    ``self_ms`` per step, and ``share`` of the step's total self time.  The profiler adds
    its own overhead per operator, so the shares are what to read, not the absolute times.
    """
    from torch.profiler import ProfilerActivity, profile

    step, _ = make_train_step(name, info, batch)
    for _ in range(warmup):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    rows = [{"op": e.key, "calls": e.count / steps, "self_ms": e.self_cpu_time_total / 1000.0 / steps,
             "share": e.self_cpu_time_total / total} for e in events]
    return sorted(rows, key=lambda r: r["self_ms"], reverse=True)


def cmd_bench(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    names = list_models(args.models.split(",")) if args.models != "all" else list_models()
    if not names:
        raise ValueError(f"no registered model matches {args.models!r}; `estagbench models` lists them all")
    info, batch = synthetic_case(args.nodes, args.history, args.batch_size)
    print(f"one training step, batch {args.batch_size}, T {args.history}, {args.nodes} nodes, "
          f"{info.num_edges} edges, torch threads {torch.get_num_threads()}")
    print(f"{'model':18s} {'median ms':>10s} {'IQR ms':>8s} {'params':>8s}")
    for n in names:
        try:
            r = time_train_step(n, info, batch, args.repeats)
        except Exception as exc:  # noqa: BLE001 - report and go on
            print(f"{n:18s} failed: {type(exc).__name__}: {exc}")
            continue
        print(f"{n:18s} {r['median_ms']:10.2f} {r['iqr_ms']:8.2f} {r['params']:8d}")
        if args.profile:
            rows = profile_train_step(n, info, batch)
            ops = sum(r["calls"] for r in rows)
            print(f"  {n}: top {args.profile} of {len(rows)} operators ({ops:.0f} profiler events per step), "
                  f"self CPU time per step under the profiler")
            for r in rows[: args.profile]:
                print(f"  {r['op'][:44]:44s} {r['calls']:7.1f} calls {r['self_ms']:8.3f} ms {100 * r['share']:5.1f}%")
    return 0


def add_bench_parser(sub: Any) -> None:
    p = sub.add_parser("bench", help="time one training step per model (aspirin size by default)")
    p.add_argument("--models", default="all", help="'all' or comma list of fnmatch patterns")
    p.add_argument("--nodes", type=positive_int, default=13, help="graph size (3 = an ethanol-like 3-node, 6-edge graph)")
    p.add_argument("--history", type=positive_int, default=P.HISTORY)
    p.add_argument("--batch-size", type=positive_int, default=P.BATCH_SIZE)
    p.add_argument("--repeats", type=positive_int, default=20)
    p.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads (default 1, as `estagbench run`)")
    p.add_argument("--profile", type=nonnegative_int, default=0, metavar="N",
                   help="also print the N operators with the most self CPU time per step (torch.profiler)")
    p.set_defaults(func=cmd_bench)
