"""``--executor process`` (``--jobs N``): cells in worker processes forked from the driver.

Each cell runs in a fresh forked child (one cell per process, ``threads`` torch threads),
so it runs exactly as it would alone: same seed, same numbers as ``--jobs 1``.  The
children inherit the case the driver loaded (no second load).  A child dies with its
driver: on Linux through ``prctl(PR_SET_PDEATHSIG, SIGKILL)``, elsewhere through a thread
that watches the parent's PID; so a ``kill -9`` of the driver leaves no worker training,
and the cells they held are taken over by the next run (their claims are stale).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from ..spec import RunSpec
from ..worker import Failed, run_spec
from . import Outcome

__all__ = ["ProcessExecutor", "die_with_parent"]

PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """Make this (child) process end when ``parent_pid`` does (SIGKILL on Linux, a watch thread elsewhere)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    else:
        def watch() -> None:
            while os.getppid() == parent_pid:
                time.sleep(0.5)
            os._exit(1)

        threading.Thread(target=watch, name="parent watch", daemon=True).start()
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)


def _child(conn: Connection, parent_pid: int, spec: RunSpec, out: Path, kwargs: dict[str, Any]) -> None:
    die_with_parent(parent_pid)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stopped by the driver: release the claim on the way out
    try:
        res: Any = ("ok", run_spec(spec, out, **kwargs))
    except KeyboardInterrupt:
        res = ("interrupted", None)
    except BaseException as exc:  # noqa: BLE001 - sent to the driver, which raises it there
        res = ("error", (exc, traceback.format_exc()))
    try:
        conn.send(res)
    except (BrokenPipeError, ConnectionResetError):  # the driver stopped listening (Ctrl-C)
        return
    except Exception as exc:  # the exception itself could not be pickled
        conn.send(("error", (RuntimeError(f"{type(res[1][0]).__name__}: {res[1][0]}"), str(exc))))
    conn.close()


class ProcessExecutor:
    """Runs cells in ``jobs`` forked worker processes at once (POSIX ``fork``)."""

    name = "process"

    def __init__(self, jobs: int, threads: int = 1) -> None:
        if jobs < 1:
            raise ValueError(f"--jobs must be >= 1, got {jobs}")
        if "fork" not in multiprocessing.get_all_start_methods():
            raise RuntimeError("--jobs > 1 needs the 'fork' start method (Linux or macOS)")
        self.jobs = jobs
        self.threads = threads

    def execute(self, specs: Sequence[RunSpec], out: Path, *, command: str | None = None,
                progress: bool = False, log: Callable[[str], None] | None = None) -> Iterator[Outcome]:
        kwargs = {"executor": self.name, "command": command, "progress": False, "threads": self.threads}
        if self.jobs == 1 or len(specs) <= 1:  # nothing to run side by side: no child
            for spec in specs:
                res = run_spec(spec, out, executor=self.name, command=command, progress=progress, log=log)
                if res is not None:
                    yield res
            return
        ctx = multiprocessing.get_context("fork")
        todo = list(specs)
        running: dict[Connection, tuple[Any, RunSpec]] = {}
        me = os.getpid()
        try:
            while todo or running:
                while todo and len(running) < self.jobs:
                    spec = todo.pop(0)
                    recv, send = ctx.Pipe(duplex=False)
                    proc = ctx.Process(target=_child, args=(send, me, spec, out, kwargs), daemon=True)
                    proc.start()
                    send.close()  # the child's end: an EOF here means the child is gone
                    running[recv] = (proc, spec)
                for conn in wait(list(running)):
                    proc, spec = running.pop(conn)  # type: ignore[index]
                    try:
                        status, payload = conn.recv()
                    except EOFError:
                        status, payload = "died", None
                    conn.close()
                    proc.join()
                    if status == "ok":
                        if payload is not None:
                            yield payload
                    elif status == "interrupted":
                        raise KeyboardInterrupt
                    elif status == "died":
                        what = spec.describe()
                        err = f"its worker process ended without a result (exit code {proc.exitcode}; killed? out of memory?)"
                        yield Failed(spec.key(), what, err)
                    else:
                        exc, tb = payload
                        print(tb, file=sys.stderr) if not isinstance(exc, ValueError | FileNotFoundError) else None
                        raise exc
        finally:
            for proc, _ in running.values():  # Ctrl-C or an error: stop the cells still training
                if proc.is_alive():
                    proc.terminate()
            for proc, _ in running.values():
                proc.join(5)
                if proc.is_alive():
                    proc.kill()
                    proc.join()
