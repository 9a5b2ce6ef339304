"""``estagbench bench``: time one training step and one evaluation forward of registered models.

The default size is the paper's aspirin case: batch 100, T = 10, 13 nodes, a
1-hop + 2-hop graph of a random molecule-like point cloud; ``--sizes`` names the
protocol's sizes instead (:data:`SIZES`: ``ethanol`` 3 nodes, ``aspirin`` 13, ``md17``
both, ``walk`` 31, ``adk`` 214 nodes x 4 channels).  At each size every model is
built once, a warm-up step runs, then ``--repeats`` rounds each time every model's
training step (forward + loss + backward + fused Adam) and evaluation forward (eval
mode, no gradient) in turn: interleaved, so a change of machine load hits every
model alike.  Reported: the median and inter-quartile range per model.  Timings are
benchmarks, never pass/fail tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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

__all__ = ["SIZES", "BenchSize", "resolve_sizes", "synthetic_case", "make_train_step", "make_eval_forward",
           "time_train_step", "time_interleaved", "profile_train_step", "machine_note", "add_bench_parser"]


@dataclass(frozen=True)
class BenchSize:
    """One benchmark size: a synthetic case with the node and channel count of a protocol dataset."""

    name: str
    nodes: int
    channels: int = 1
    #: directed edges of the real graph (None: the synthetic molecule's 1-hop + 2-hop bonds)
    edges: int | None = None


#: The protocol's sizes (protocol.md): MD17's smallest and largest molecules (heavy atoms),
#: the CMU walk skeleton, AdK's residues with four backbone channels.
SIZES: dict[str, tuple[BenchSize, ...]] = {
    "ethanol": (BenchSize("ethanol", 3),),
    "aspirin": (BenchSize("aspirin", 13, edges=60),),  # its heavy-atom bonds (13) + 2-hop pairs
    "md17": (BenchSize("ethanol", 3), BenchSize("aspirin", 13, edges=60)),
    "walk": (BenchSize("walk", 31, edges=130),),  # the skeleton's bones + 2-hop pairs
    "adk": (BenchSize("adk", 214, 4, edges=1134),),  # CA pairs within 6 Å
}


def resolve_sizes(text: str) -> list[BenchSize]:
    """``"md17,walk,adk"`` -> the distinct :class:`BenchSize` s, in order."""
    out: list[BenchSize] = []
    for name in (v.strip() for v in text.split(",") if v.strip()):
        if name not in SIZES:
            raise ValueError(f"unknown size {name!r}; valid: {', '.join(SIZES)}")
        out.extend(z for z in SIZES[name] if z not in out)
    if not out:
        raise ValueError(f"no size selected by {text!r}; valid: {', '.join(SIZES)}")
    return out


def machine_note() -> str:
    """CPU model, CPUs this process may use, and the 1/5/15-minute load average (timings depend on them)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        ncpu = len(os.sched_getaffinity(0))
    except AttributeError:
        ncpu = os.cpu_count() or 1
    load = "/".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return f"{cpu}, {ncpu} CPU(s) available, load average {load}"


def synthetic_case(num_nodes: int = 13, history: int = P.HISTORY, batch_size: int = P.BATCH_SIZE, channels: int = 1,
                   seed: int = 0, edges: int | None = None) -> tuple[DatasetInfo, Batch]:
    """A molecule-sized random case: bonded-looking chain, 1-hop + 2-hop edges.

    With ``edges``: the chain's neighbours ``i±1`` (1-hop) and ``i±2`` (2-hop), plus random
    contacts (as 2-hop) until there are at least ``edges`` directed edges (a skeleton's or a
    protein contact map's size)."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(size=(num_nodes, 3))
    steps = 1.4 * steps / np.linalg.norm(steps, axis=1, keepdims=True)
    points = np.cumsum(steps, axis=0)
    if edges is None:
        adj = cutoff_adjacency(points, P.MD17_CUTOFF)
    else:
        adj = np.zeros((num_nodes, num_nodes), dtype=bool)
        i = np.arange(num_nodes - 1)
        adj[i, i + 1] = adj[i + 1, i] = True
        while (one_and_two_hop(adj)[0].shape[1] if num_nodes > 1 else 0) < edges and num_nodes > 3:
            a, b = rng.integers(num_nodes, size=2)
            if abs(int(a) - int(b)) > 2:
                adj[a, b] = adj[b, a] = True
    edge_index, hop = one_and_two_hop(adj)
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


def make_train_step(name: str, info: DatasetInfo, batch: Batch, device: str = "cpu",
                    **hparams: Any) -> tuple[Callable[[], float], torch.nn.Module]:
    """``(step, model)``: a fresh model ``name`` (seed 0) on ``device`` and a closure running one
    training step on ``batch`` exactly as the trainer does (registry batch transform per batch,
    element-wise MSE, ``hparams`` passed to the model builder, the trainer's optimizer: fused
    Adam, lr 5e-3, weight decay 1e-12); it returns the loss.
    For parameter-free models (Pt-s/m/t) the step is one forward pass.
    """
    entry = get_model_entry(name)
    torch.manual_seed(0)
    model = create_model(name, info, **{"hidden": 16, **hparams}).to(device)
    if str(device) != "cpu":
        batch = batch.to(device)
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


def make_eval_forward(name: str, info: DatasetInfo, batch: Batch, model: torch.nn.Module) -> Callable[[], float]:
    """A closure running one evaluation forward of ``model`` on ``batch`` as the evaluator does
    (eval mode, no gradient, registry batch transform); it returns the batch MSE."""
    entry = get_model_entry(name)

    def forward() -> float:
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                inp = entry.batch_transform(batch, info) if entry.batch_transform else batch
                return float(mse(model(inp), batch.y))
        finally:
            model.train(was_training)

    return forward


def _summary(times: Sequence[float]) -> tuple[float, float, float]:
    q = np.percentile(np.asarray(times) * 1000.0, [25, 50, 75])
    return float(q[1]), float(q[0]), float(q[2])


def time_interleaved(jobs: Sequence[tuple[str, dict[str, Any]]], info: DatasetInfo, batch: Batch, rounds: int = 10,
                     warmup: int = 1, eval_forward: bool = True, device: str = "cpu") -> list[dict[str, Any]]:
    """Train step and eval forward of each ``(model name, hparams)`` in ``jobs``, timed in interleaved rounds.

    Every model is built first (seed 0) and runs ``warmup`` untimed steps; then each of ``rounds``
    rounds times one training step, then one evaluation forward, of every model in turn.  Returns
    one dict per job: ``model``, ``hparams``, ``params``, ``train_ms`` / ``eval_ms`` (medians),
    ``train_q25_ms`` ... ``eval_q75_ms``, ``train_wall_ms`` / ``eval_wall_ms``, ``rounds``, ``clock``;
    or ``model``, ``hparams``, ``error`` if it failed.

    On the CPU the times are the process's CPU time (``time.process_time``): on a shared machine
    a step's wall time grows with the load while its CPU time hardly does, and CPU time is what
    a plan in CPU-hours needs (one torch thread: CPU time = one core's time).  On CUDA they are
    wall times, each timed call ending with a device synchronisation.
    """
    cuda = str(device).startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    prepared: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    for name, hp in jobs:
        try:
            b = batch.to(device) if str(device) != "cpu" else batch
            step, model = make_train_step(name, info, b, device=device, **hp)
            fwd = make_eval_forward(name, info, b, model)
            for _ in range(warmup):
                step()
                if eval_forward:
                    fwd()
            prepared.append({"model": name, "hparams": dict(hp), "step": step, "fwd": fwd, "train": [], "eval": [],
                             "train_wall": [], "eval_wall": [],
                             "params": sum(p.numel() for p in model.parameters() if p.requires_grad)})
        except Exception as exc:  # noqa: BLE001 - report and go on
            out.append({"model": name, "hparams": dict(hp), "error": f"{type(exc).__name__}: {exc}"})
    for _ in range(rounds):
        for job in prepared:
            for kind, fn in (("train", job["step"]), ("eval", job["fwd"])) if eval_forward else (("train", job["step"]),):
                c0, t0 = time.process_time(), time.perf_counter()
                fn()
                sync()
                job[kind].append(time.perf_counter() - t0 if cuda else time.process_time() - c0)
                job[kind + "_wall"].append(time.perf_counter() - t0)
    for job in prepared:
        row = {"model": job["model"], "hparams": job["hparams"], "params": job["params"], "rounds": rounds,
               "clock": "wall" if cuda else "cpu"}
        for kind in ("train", "eval") if eval_forward else ("train",):
            med, q25, q75 = _summary(job[kind])
            row.update({f"{kind}_ms": med, f"{kind}_q25_ms": q25, f"{kind}_q75_ms": q75,
                        f"{kind}_wall_ms": _summary(job[kind + "_wall"])[0]})
        out.append(row)
    order = {(n, json.dumps(h, sort_keys=True)): i for i, (n, h) in enumerate(jobs)}
    return sorted(out, key=lambda r: order[(r["model"], json.dumps(r["hparams"], sort_keys=True))])


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


def _fmt_ms(row: dict[str, Any], kind: str) -> str:
    med, q25, q75 = row[f"{kind}_ms"], row[f"{kind}_q25_ms"], row[f"{kind}_q75_ms"]
    return f"{med:10.2f} {q25:9.2f}-{q75:<9.2f}"


def cmd_bench(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    names = list_models(args.models.split(",")) if args.models != "all" else list_models()
    if not names:
        raise ValueError(f"no registered model matches {args.models!r}; `estagbench models` lists them all")
    sizes = resolve_sizes(args.sizes) if args.sizes else [BenchSize(f"{args.nodes} nodes", args.nodes)]
    clock = "wall-clock ms" if args.device.startswith("cuda") else "CPU ms (process time, robust to machine load)"
    print(f"machine: {machine_note()}; torch threads {torch.get_num_threads()}, device {args.device}; times: {clock}")
    saved: dict[str, Any] = {"machine": machine_note(), "threads": torch.get_num_threads(), "device": args.device,
                             "batch_size": args.batch_size, "history": args.history, "rounds": args.repeats, "sizes": {},
                             "times": []}
    for size in sizes:
        info, batch = synthetic_case(size.nodes, args.history, args.batch_size, channels=size.channels, edges=size.edges)
        print(f"\n[{size.name}] batch {args.batch_size}, T {args.history}, {size.nodes} nodes, {info.num_edges} edges, "
              f"torch threads {torch.get_num_threads()}, {size.channels} channel(s); {args.repeats} interleaved rounds")
        print(f"{'model':18s} {'train ms':>10s} {'IQR':^19s} {'eval ms':>10s} {'IQR':^19s} {'params':>8s}")
        jobs = [(n, {}) for n in names if size.channels == 1 or get_model_entry(n).multichannel]
        for n in names:
            if (n, {}) not in jobs:
                print(f"{n:18s} skipped: single-channel model, {size.channels} channels here")
        rows = time_interleaved(jobs, info, batch, rounds=args.repeats, warmup=1, device=args.device)
        saved["sizes"][size.name] = {"nodes": size.nodes, "channels": size.channels, "edges": info.num_edges}
        for r in rows:
            if "error" in r:
                print(f"{r['model']:18s} failed: {r['error']}")
                continue
            print(f"{r['model']:18s} {_fmt_ms(r, 'train')} {_fmt_ms(r, 'eval')} {r['params']:8d}")
            saved["times"].append({"size": size.name, "nodes": size.nodes, "channels": size.channels,
                                   "history": args.history, **r})
        if args.profile:
            for n, _ in jobs:
                prof = profile_train_step(n, info, batch)
                ops = sum(r["calls"] for r in prof)
                print(f"  {n}: top {args.profile} of {len(prof)} operators ({ops:.0f} profiler events per step), "
                      f"self CPU time per step under the profiler")
                for r in prof[: args.profile]:
                    print(f"  {r['op'][:44]:44s} {r['calls']:7.1f} calls {r['self_ms']:8.3f} ms {100 * r['share']:5.1f}%")
    if args.save:
        args.save.parent.mkdir(parents=True, exist_ok=True)
        args.save.write_text(json.dumps(saved, indent=1) + "\n")
        print(f"\nsaved: {args.save} (estagbench plan --step-times {args.save} reads it)")
    return 0


def add_bench_parser(sub: Any) -> None:
    from pathlib import Path

    p = sub.add_parser("bench", help="time each model's training step and eval forward (interleaved rounds)")
    p.add_argument("--models", default="all", help="'all' or comma list of fnmatch patterns")
    p.add_argument("--sizes", default=None,
                   help=f"comma list of protocol sizes ({', '.join(SIZES)}; md17 = ethanol + aspirin); "
                        "default: one synthetic case of --nodes nodes")
    p.add_argument("--nodes", type=positive_int, default=13, help="graph size (3 = an ethanol-like 3-node, 6-edge graph)")
    p.add_argument("--history", type=positive_int, default=P.HISTORY)
    p.add_argument("--batch-size", type=positive_int, default=P.BATCH_SIZE)
    p.add_argument("--repeats", type=positive_int, default=20, help="interleaved timing rounds (after one warm-up)")
    p.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads (default 1, as `estagbench run`)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--save", type=Path, default=None, metavar="JSON", help="also write the timings (for `estagbench plan`)")
    p.add_argument("--profile", type=nonnegative_int, default=0, metavar="N",
                   help="also print the N operators with the most self CPU time per step (torch.profiler)")
    p.set_defaults(func=cmd_bench)
