"""Executors: where the cells of a grid run.  One interface, four kinds.

``execute(specs, out) -> Iterator[Record | Failed]`` runs every :class:`~estagbench.spec.RunSpec`
through :func:`estagbench.worker.run_spec` and yields each outcome as it arrives (a cell
another process holds yields nothing; the driver reports it).  Workers store their records
themselves; the driver stores a returned record again only where the worker's folder is not
the driver's (a Ray cluster without a shared filesystem).

=========  ==========================================================================
local      in this process, one cell after another (the default)
process    ``--jobs N`` forked worker processes on this machine; they die with the driver
ray        a Ray cluster (``--ray-address``; default: a local one), extra ``[ray]``
slurm      Slurm job arrays through submitit, extra ``[slurm]``
=========  ==========================================================================

The modules of the Ray and Slurm executors import their library only when used.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from ..spec import RunSpec
from ..store import Record
from ..worker import Failed, run_spec

__all__ = ["EXECUTORS", "Executor", "LocalExecutor", "Outcome", "make_executor"]

EXECUTORS = ("local", "process", "ray", "slurm")
Outcome = Record | Failed


class Executor(Protocol):
    """What the grid runner needs from an executor."""

    name: str

    def execute(self, specs: Sequence[RunSpec], out: Path, *, command: str | None = None,
                progress: bool = False, log: Callable[[str], None] | None = None) -> Iterator[Outcome]: ...


class LocalExecutor:
    """Runs the cells one after another in this process."""

    name = "local"

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads

    def execute(self, specs: Sequence[RunSpec], out: Path, *, command: str | None = None,
                progress: bool = False, log: Callable[[str], None] | None = None) -> Iterator[Outcome]:
        for spec in specs:
            res = run_spec(spec, out, executor=self.name, command=command, progress=progress, log=log)
            if res is not None:
                yield res

    def map(self, fn: Callable[[Any], Any], cells: Iterable[Any]) -> list[Any]:
        """The executor interface before specs (kept for callers of ``SequentialExecutor().map``)."""
        return [fn(c) for c in cells]


def make_executor(jobs: int = 1, threads: int = 1, kind: str | None = None, **options: Any) -> Any:
    """The executor ``kind`` (``local``, ``process``, ``ray``, ``slurm``).

    Without ``kind`` (as before): ``local`` for ``jobs == 1``, else ``process`` with ``jobs``
    workers.  ``options`` go to the Ray (``address``, ``num_cpus``, ``num_gpus``,
    ``max_retries``) or Slurm (:func:`~estagbench.executors.slurm.slurm_parameters`) executor.
    """
    kind = kind or ("local" if jobs == 1 else "process")
    if kind == "local":
        if jobs != 1:
            raise ValueError(f"--executor local runs one cell at a time; drop --jobs {jobs} or use --executor process")
        return LocalExecutor(threads)
    if kind == "process":
        from .process import ProcessExecutor

        return ProcessExecutor(jobs, threads)
    if kind in ("ray", "slurm"):
        import importlib.util

        lib = {"ray": "ray", "slurm": "submitit"}[kind]
        if importlib.util.find_spec(lib) is None:
            raise ValueError(f"--executor {kind} needs {lib}, which is not installed: pip install 'estagbench[{kind}]'")
    if kind == "ray":
        from .ray import RayExecutor

        return RayExecutor(threads=threads, **options)
    if kind == "slurm":
        from .slurm import SlurmExecutor

        return SlurmExecutor(threads=threads, **options)
    raise ValueError(f"--executor {kind!r}: unknown executor; valid: {', '.join(EXECUTORS)}")


def _say(log: Callable[[str], None] | None) -> Callable[[str], None]:
    return log or (lambda s: print(s, file=sys.stderr))
