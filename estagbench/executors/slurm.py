"""``--executor slurm``: the grid as one Slurm job array through submitit (``pip install 'estagbench[slurm]'``).

Each array task runs one cell with :func:`estagbench.worker.run_spec` and writes its record
into ``--out``, which must be on a filesystem the compute nodes share with the driver.
submitit's files (scripts, logs, pickled tasks) go to ``<out>/slurm/``.

- ``--slurm-partition``, ``--slurm-time`` (minutes or ``[D-]HH:MM[:SS]``), ``--slurm-gpus``
  (per task), ``--slurm-array-parallelism`` (tasks at once) and ``--slurm-option KEY=VALUE``
  (any other sbatch option, repeatable, e.g. ``--slurm-option account=proj``).
- Preemption or timeout: submitit requeues the task (``checkpoint`` below); the cell then
  starts again **from scratch** (training keeps no mid-run checkpoint), taking its own claim back.
- ``--slurm-cells-per-task N``: N cells run one after another in each array task (default 1): short
  cells then share one Python start-up and one case load.
- ``--slurm-no-wait``: the driver exits after submitting; a later ``run`` (or ``status``)
  with the same ``--out`` sees the finished cells, skips them and resumes the others.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ..spec import RunSpec
from ..worker import Failed, run_spec
from . import Outcome

__all__ = ["SlurmExecutor", "slurm_parameters", "parse_slurm_time", "SlurmCell"]


def parse_slurm_time(text: str | int | None) -> int | None:
    """``--slurm-time`` in minutes: ``90``, ``1:30`` (H:MM), ``01:30:00`` or ``2-00:00:00``."""
    if text is None or isinstance(text, int):
        return text
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if not m:
        raise ValueError(f"--slurm-time {text!r}: expected minutes or [D-]HH:MM[:SS], e.g. --slurm-time 4:00:00")
    d, a, b, c = m.groups()
    if b is None and d is None:
        return int(a)  # plain minutes
    hours, minutes, seconds = int(a), int(b or 0), int(c or 0)
    return int(d or 0) * 1440 + hours * 60 + minutes + (1 if seconds else 0)


def slurm_parameters(
    partition: str | None = None,
    time: str | int | None = None,
    gpus: int | None = None,
    array_parallelism: int | None = None,
    options: dict[str, Any] | None = None,
    threads: int = 1,
    job_name: str = "estagbench",
) -> dict[str, Any]:
    """The parameters given to ``submitit.AutoExecutor.update_parameters`` for one cell per array task."""
    params: dict[str, Any] = {"name": job_name, "nodes": 1, "tasks_per_node": 1, "cpus_per_task": threads}
    minutes = parse_slurm_time(time)
    if minutes is not None:
        params["timeout_min"] = minutes
    if gpus:
        params["gpus_per_node"] = gpus
    if partition:
        params["slurm_partition"] = partition
    if array_parallelism:
        params["slurm_array_parallelism"] = array_parallelism
    if options:
        params["slurm_additional_parameters"] = dict(options)
    return params


class SlurmCell:
    """What each array task runs: one or more cells in turn (``--slurm-cells-per-task``); submitit
    calls :meth:`checkpoint` on preemption/timeout and requeues the task."""

    def __call__(self, specs: list[RunSpec], out: str, kwargs: dict[str, Any]) -> list[Any]:
        return [run_spec(spec, out, **kwargs) for spec in specs]  # a requeued task skips the cells it stored

    def checkpoint(self, specs: list[RunSpec], out: str, kwargs: dict[str, Any]) -> Any:
        import submitit

        return submitit.helpers.DelayedSubmission(SlurmCell(), specs, out, kwargs)  # the cell in flight starts over


class SlurmExecutor:
    """Submits the cells as one job array and (unless ``wait`` is False) collects the results."""

    name = "slurm"

    def __init__(self, threads: int = 1, partition: str | None = None, time: str | int | None = None,
                 gpus: int | None = None, array_parallelism: int | None = None, options: dict[str, Any] | None = None,
                 wait: bool = True, cluster: str | None = "slurm", cells_per_task: int = 1) -> None:
        if cells_per_task < 1:
            raise ValueError(f"--slurm-cells-per-task must be >= 1, got {cells_per_task}")
        self.cells_per_task = cells_per_task
        self.threads = threads
        self.params = slurm_parameters(partition, time, gpus, array_parallelism, options, threads)
        self.wait = wait
        #: ``"slurm"``, or ``"local"`` (submitit's local executor: tests, a machine without Slurm)
        self.cluster = cluster

    def executor(self, folder: Path) -> Any:
        import submitit

        ex = submitit.AutoExecutor(folder=folder / "%j", cluster=self.cluster)
        params = dict(self.params)
        if self.cluster != "slurm":  # the local executor knows the generic parameters only
            params = {k: v for k, v in params.items() if not k.startswith("slurm_") and k != "name"}
        ex.update_parameters(**params)
        return ex

    def execute(self, specs: Sequence[RunSpec], out: Path, *, command: str | None = None,
                progress: bool = False, log: Callable[[str], None] | None = None) -> Iterator[Outcome]:
        say = log or (lambda s: print(s, file=sys.stderr))
        if not specs:
            return
        out = Path(out).resolve()
        ex = self.executor(out / "slurm")
        kwargs = {"executor": self.name, "command": command, "progress": False, "threads": self.threads}
        k = self.cells_per_task
        chunks = [list(specs[i:i + k]) for i in range(0, len(specs), k)]
        n = len(chunks)
        jobs = ex.map_array(SlurmCell(), chunks, [str(out)] * n, [kwargs] * n)
        say(f"submitted {len(specs)} cell(s) as {n} array task(s) of job {', '.join(sorted({str(j.job_id).split('_')[0] for j in jobs}))}; "
            f"submitit files in {out / 'slurm'}")
        if not self.wait:
            say(f"not waiting (--slurm-no-wait): `estagbench status --out {out}` shows the grid; "
                "rerun the same command to collect and resume")
            return
        try:
            for job, chunk in zip(jobs, chunks, strict=True):
                try:
                    results = job.result()
                except Exception as exc:  # submitit's FailedJobError / UncompletedJobError: the task died
                    why = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
                    for spec in chunk:
                        yield Failed(spec.key(), spec.describe(), f"Slurm job {job.job_id}: {why}")
                    continue
                for res in results:
                    if res is not None:
                        yield res
        except KeyboardInterrupt:
            for job in jobs:
                job.cancel(check=False)
            say("cancelled the submitted jobs")
            raise
