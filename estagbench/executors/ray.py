"""``--executor ray``: one Ray task per cell (``pip install 'estagbench[ray]'``).

``--ray-address auto|HOST:PORT`` joins a running cluster; without it a local cluster is
started for the run (dashboard off, once per command) and shut down at its end.  A cell asks for one CPU
(``num_gpus`` 1 with ``--device cuda``) and is retried at most ``max_retries`` times (1 by
default: a task whose worker died, e.g. SIGKILL or out of memory; an exception raised by
the cell is not retried).  Ctrl-C cancels every task (forcefully: their workers are
killed) and, for a cluster this run started, stops it, leaving no process behind.

Workers store their records in ``--out`` themselves when it is a shared filesystem.
Otherwise the record comes back to the driver, which stores it; the cell's ``runs/``
folder (log.csv, best.pt) stays on the worker's machine, and the driver says so.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ..spec import RunSpec
from ..store import Record, ResultStore
from ..worker import Failed, run_spec
from . import Outcome

__all__ = ["RayExecutor"]


def _ray_cell(spec: RunSpec, out: str, kwargs: dict[str, Any]) -> Any:
    return run_spec(spec, out, **kwargs)


class RayExecutor:
    """Runs cells as Ray tasks."""

    name = "ray"

    def __init__(self, address: str | None = None, threads: int = 1, num_cpus: float = 1, num_gpus: float = 0,
                 max_retries: int = 1, init_options: dict[str, Any] | None = None) -> None:
        self.address = address
        self.threads = threads
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.max_retries = max_retries
        self.init_options = dict(init_options or {})

    def _connect(self) -> None:
        """Connect to (or start) the cluster once; one this executor started is stopped at exit (or on Ctrl-C),
        so ``reproduce`` with several runner calls starts it once."""
        import atexit

        import ray

        if ray.is_initialized():
            return
        if self.address in (None, "", "local"):
            ray.init(include_dashboard=False, **self.init_options)
        else:
            ray.init(address=self.address, **self.init_options)
        self._started = True
        atexit.register(self.close)

    def close(self) -> None:
        """Stop the cluster this executor started, or disconnect from the one it joined."""
        import ray

        if getattr(self, "_started", False):
            self._started = False
            ray.shutdown()

    def execute(self, specs: Sequence[RunSpec], out: Path, *, command: str | None = None,
                progress: bool = False, log: Callable[[str], None] | None = None) -> Iterator[Outcome]:
        import ray

        say = log or (lambda s: print(s, file=sys.stderr))
        if not specs:
            return
        self._connect()
        store = ResultStore(Path(out))
        remote = ray.remote(_ray_cell).options(num_cpus=self.num_cpus, num_gpus=self.num_gpus,
                                               max_retries=self.max_retries, retry_exceptions=False)
        kwargs = {"executor": self.name, "command": command, "progress": False, "threads": self.threads}
        refs = {remote.remote(spec, str(Path(out).resolve()), kwargs): spec for spec in specs}
        here = socket.gethostname()
        warned = False
        try:
            while refs:
                done, _ = ray.wait(list(refs), num_returns=1)
                for ref in done:
                    spec = refs.pop(ref)
                    try:
                        res = ray.get(ref)
                    except ray.exceptions.RayTaskError as exc:
                        raise exc.as_instanceof_cause() from None
                    except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
                            ray.exceptions.OutOfMemoryError) as exc:
                        yield Failed(spec.key(), spec.describe(),
                                     f"its Ray worker died {self.max_retries + 1} time(s): {type(exc).__name__}")
                        continue
                    if isinstance(res, Record) and not store.has(res.key or spec.key()):
                        store.put_record(res.key or spec.key(), res)  # no shared filesystem: the driver stores it
                        if not warned and res.execution.get("host") != here:
                            warned = True
                            say(f"warning: {out} is not shared with the Ray workers (e.g. {res.execution.get('host')}): "
                                "records are stored by this driver, but the cells' logs and checkpoints (runs/) stay "
                                "on the workers' machines")
                    if res is not None:
                        yield res
        except BaseException:
            for ref in refs:  # Ctrl-C or an error: stop every cell still queued or running
                ray.cancel(ref, force=True)
            self.close()
            raise
