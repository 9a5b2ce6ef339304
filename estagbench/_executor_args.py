"""The executor flags shared by ``run`` and ``reproduce``, and the executor they select."""

from __future__ import annotations

import argparse
from typing import Any

from ._argtypes import positive_int

#: The executors ``--executor`` accepts (:mod:`estagbench.executors`; imported only when a run starts).
EXECUTORS = ("local", "process", "ray", "slurm")

__all__ = ["add_executor_args", "executor_from_args", "shard_from_args"]


def _option(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (an sbatch option without the dashes), got {text!r}")
    key, value = text.split("=", 1)
    return key.strip().replace("-", "_"), value


def add_executor_args(p: argparse.ArgumentParser) -> None:
    """``--executor``, ``--shard`` and the Ray / Slurm options."""
    g = p.add_argument_group("where the cells run (README: Running on a cluster)")
    g.add_argument("--executor", choices=EXECUTORS, default=None,
                   help="local (in this process; default with --jobs 1), process (--jobs N forked workers; default "
                        "with --jobs > 1), ray (extra [ray]), slurm (extra [slurm], submitit job arrays)")
    g.add_argument("--shard", default=None, metavar="K/N",
                   help="run only the cells whose stable hash falls in shard K of N (disjoint parts of one grid, "
                        "e.g. one per Slurm array task or CI job, all writing to the same --out)")
    g.add_argument("--ray-address", default=None,
                   help="Ray cluster: auto or HOST:PORT (default: start a local cluster for this run)")
    g.add_argument("--slurm-partition", default=None, help="Slurm partition")
    g.add_argument("--slurm-time", default=None, help="time limit per cell: minutes or [D-]HH:MM[:SS]")
    g.add_argument("--slurm-gpus", type=positive_int, default=None, help="GPUs per cell")
    g.add_argument("--slurm-array-parallelism", type=positive_int, default=None, help="array tasks running at once")
    g.add_argument("--slurm-option", type=_option, action="append", default=None, metavar="KEY=VALUE",
                   help="any other sbatch option, e.g. --slurm-option account=proj (repeatable)")
    g.add_argument("--slurm-cells-per-task", type=positive_int, default=1,
                   help="cells run one after another in each array task (default 1; more for short cells)")
    g.add_argument("--slurm-no-wait", action="store_true",
                   help="exit after submitting; rerun the same command (or `estagbench status`) to collect")


def shard_from_args(args: argparse.Namespace) -> tuple[int, int] | None:
    from .spec import parse_shard

    return parse_shard(args.shard) if getattr(args, "shard", None) else None


def executor_from_args(args: argparse.Namespace) -> Any:
    """The executor the flags ask for (``--executor`` or, without it, ``--jobs``)."""
    from .executors import make_executor

    kind = args.executor
    jobs = getattr(args, "jobs", 1)
    threads = getattr(args, "threads", 1)
    if kind in ("ray", "slurm") and jobs != 1:
        raise ValueError(f"--jobs {jobs} applies to --executor process; with --executor {kind} the cluster decides "
                         "how many cells run at once")
    if kind == "ray":
        return make_executor(jobs, threads, "ray", address=args.ray_address,
                             num_gpus=1 if getattr(args, "device", "cpu") == "cuda" else 0)
    if kind == "slurm":
        gpus = args.slurm_gpus or (1 if getattr(args, "device", "cpu") == "cuda" else None)
        return make_executor(jobs, threads, "slurm", partition=args.slurm_partition, time=args.slurm_time, gpus=gpus,
                             array_parallelism=args.slurm_array_parallelism,
                             options=dict(args.slurm_option or []), wait=not args.slurm_no_wait,
                             cells_per_task=args.slurm_cells_per_task)
    return make_executor(jobs, threads, kind)
