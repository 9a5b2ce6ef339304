"""The results folder: layout, atomic writes, the run lock, per-cell claims, queries.

Layout under ``<out>/``::

    results/<key>.json       one :class:`Record` per finished cell (atomic: temp file + rename)
    runs/<key>/              log.csv and best.pt of the cell
    splits/                  the windows of every case (``put_split``)
    grid/<key>.json          the spec of every cell a driver planned (what ``status`` lists)
    claims/<key>.claim       host, PID, start and heartbeat of the process training the cell
    failed/<key>.json        the error of a cell that failed (removed when it is stored later)
    locks/run-<host>-<pid>.json   one per live driver (PID, host, start time, command)

Concurrency: two drivers (or Slurm array tasks, or shards) on one folder share its cells:
a worker creates the cell's claim file (atomically, by a hard link) before training and skips a cell
another live process holds, so every cell is trained and stored once.  A claim is stale
when its process is dead (same host) or its heartbeat is older than
:data:`STALE_SECONDS` (another host); a stale claim is taken over.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .data.trajectory import atomic_write_bytes
from .results import ResultStore as _BaseStore

__all__ = ["read_json_folder", "Record", "SCHEMA_VERSION", "ResultStore", "Claim", "STALE_SECONDS", "HEARTBEAT_SECONDS", "pid_alive"]

#: Version of the stored record's schema.  1: records written before this field existed
#: (read as they are); 2: adds ``schema_version``, ``implementation`` in the identity and ``execution``.
SCHEMA_VERSION = 2
#: A claim whose heartbeat is older than this (seconds) is stale when its host is not this one.
STALE_SECONDS = 600.0
#: How often a worker refreshes the heartbeat of its claim.
HEARTBEAT_SECONDS = 30.0


def _slurm_job() -> str | None:
    if os.environ.get("SLURM_ARRAY_JOB_ID"):
        return f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ.get('SLURM_ARRAY_TASK_ID', '')}"
    return os.environ.get("SLURM_JOB_ID")


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (a zombie counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (killed, not yet reaped) no longer trains anything
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True



def read_json_folder(folder: Path) -> dict[str, dict[str, Any]]:
    """``file stem -> content`` of every ``*.json`` in ``folder`` (sorted; unreadable files left out, none if absent):
    the store's side folders (``grid/``, ``failed/``, ``skipped/``) are written atomically and read this way."""
    out: dict[str, dict[str, Any]] = {}
    for p in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            out[p.stem] = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            continue
    return out

@dataclass
class Record:
    """One stored result (the JSON under ``results/``).  Unknown keys are kept in ``extra``
    and written back, so a record written by a newer or older suite round-trips unchanged."""

    model: str
    dataset: str
    case: str
    seed: int
    config_hash: str
    metrics: dict[str, Any]
    config: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, Any] = field(default_factory=dict)
    model_source_sha256: str | None = None
    family: str | None = None
    data_params: dict[str, Any] = field(default_factory=dict)
    split_hash: str | None = None
    split_sizes: dict[str, int] = field(default_factory=dict)
    split_file: str | None = None
    num_params: int | None = None
    #: Test-in-train leakage of the split (:func:`estagbench.data.splits.leakage`), the MSE's units, and the
    #: optimiser steps (per epoch, total, batch size); None in records made before they were measured.
    leakage: dict[str, Any] | None = None
    units: dict[str, Any] | None = None
    optimiser_steps: dict[str, Any] | None = None
    #: A file dataset's content SHA-256 (its identity); None for registered datasets.
    data_sha256: str | None = None
    #: The best-validation checkpoint kept for this cell (None: not kept, see ``--checkpoints``).
    checkpoint: str | None = None
    hparams: dict[str, Any] = field(default_factory=dict)
    implementation: str | None = None
    data_files: list[dict[str, Any]] = field(default_factory=list)
    official_data: bool | None = None
    data_notes: list[str] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)
    command: str = ""
    finished_at: str = ""
    wall_seconds: float | None = None
    #: Where the cell ran: ``executor``, ``host``, ``pid`` and ``slurm_job_id`` (or None).
    execution: dict[str, Any] = field(default_factory=dict)
    #: The cell's key (file name without ``.json``); v1 records did not store it.
    key: str | None = None
    schema_version: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Record:
        """Read a stored record of any schema version (v1: no ``schema_version``)."""
        names = {f.name for f in fields(cls)} - {"extra"}
        known = {k: v for k, v in d.items() if k in names}
        known.setdefault("schema_version", 1)
        known.setdefault("metrics", {})
        return cls(**known, extra={k: v for k, v in d.items() if k not in names})

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        out.update(self.extra)
        return out


@dataclass
class Claim:
    """Who trains a cell now: the content of ``claims/<key>.claim``."""

    key: str
    host: str
    pid: int
    started: float
    heartbeat: float
    executor: str = ""
    token: str = ""
    #: The Slurm job (``JOBID`` or ``ARRAYJOBID_TASK``) of the claimer: a requeued job takes its own claim back.
    job: str | None = None

    def stale(self, now: float | None = None) -> bool:
        if self.job is not None and self.job == _slurm_job():
            return True  # this very Slurm job, requeued (preempted or timed out): its earlier run is gone
        if self.host == socket.gethostname():
            return not pid_alive(self.pid)
        return (now or time.time()) - self.heartbeat > STALE_SECONDS


class ResultStore(_BaseStore):
    """A results folder (see the module docstring for its layout)."""

    # ------------------------------------------------------------------ records
    def record(self, key: str) -> Record:
        return Record.from_dict(self.get(key))

    def put_record(self, key: str, record: Record | dict[str, Any]) -> Path:
        d = record.to_dict() if isinstance(record, Record) else dict(record)
        d.setdefault("key", key)
        path = self.put(key, d)
        try:
            (self.root / "failed" / f"{key}.json").unlink()
        except FileNotFoundError:
            pass
        return path

    def records(self, spec_filter: Callable[[Record], bool] | None = None, **equal: Any) -> list[dict[str, Any]]:  # type: ignore[override]
        """Stored records as dictionaries (as before), optionally those :meth:`query` selects."""
        if spec_filter is None and not equal:
            return list(super().records())
        return [r.to_dict() for r in self.query(spec_filter, **equal)]

    def query(self, spec_filter: Callable[[Record], bool] | None = None, **equal: Any) -> list[Record]:
        """Stored records as :class:`Record`, those passing ``spec_filter`` and with each
        ``field=value`` of ``equal`` (e.g. ``store.query(model="estag", seed=1)``)."""
        out = []
        for d in super().records():
            rec = Record.from_dict(d)
            if all(getattr(rec, k, rec.extra.get(k)) == v for k, v in equal.items()) and (
                spec_filter is None or spec_filter(rec)
            ):
                out.append(rec)
        return out

    # ------------------------------------------------------------------ the planned grid
    def put_grid(self, specs: list[Any]) -> None:
        """Remember the planned cells (``status`` lists them); unchanged files are not rewritten."""
        for s in specs:
            p = self.root / "grid" / f"{s.key()}.json"
            if not p.exists():
                blob = json.dumps(s.as_dict(), sort_keys=True, default=str).encode()
                atomic_write_bytes(p, lambda fh, b=blob: fh.write(b))

    def grid(self) -> list[dict[str, Any]]:
        return list(read_json_folder(self.root / "grid").values())

    # ------------------------------------------------------------------ failures
    def put_failure(self, key: str, what: str, error: str, execution: dict[str, Any]) -> None:
        blob = json.dumps({"key": key, "cell": what, "error": error, "execution": execution,
                           "failed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, sort_keys=True).encode()
        atomic_write_bytes(self.root / "failed" / f"{key}.json", lambda fh: fh.write(blob))

    def failures(self) -> dict[str, dict[str, Any]]:
        return read_json_folder(self.root / "failed")

    # ------------------------------------------------------------------ claims
    def _claim_path(self, key: str) -> Path:
        return self.root / "claims" / f"{key}.claim"

    def read_claim(self, key: str) -> Claim | None:
        try:
            d = json.loads(self._claim_path(key).read_text())
            hb = self._claim_path(key).stat().st_mtime
        except (OSError, json.JSONDecodeError):
            return None
        return Claim(key, d["host"], int(d["pid"]), float(d["started"]), max(hb, float(d["started"])),
                     d.get("executor", ""), d.get("token", ""), d.get("job"))

    def claims(self) -> dict[str, Claim]:
        d = self.root / "claims"
        out = {}
        for p in sorted(d.glob("*.claim")) if d.is_dir() else []:
            c = self.read_claim(p.name[: -len(".claim")])
            if c is not None:
                out[c.key] = c
        return out

    def try_claim(self, key: str, executor: str = "", say: Callable[[str], None] | None = None) -> Claim | None:
        """Claim cell ``key`` for this process: the :class:`Claim` on success, None when a live
        process holds it.  A stale claim (dead process) is taken over with a warning."""
        path = self._claim_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        now = time.time()
        mine = Claim(key, socket.gethostname(), os.getpid(), now, now, executor, uuid.uuid4().hex, _slurm_job())
        blob = json.dumps({"host": mine.host, "pid": mine.pid, "started": now, "executor": executor,
                           "token": mine.token, "job": mine.job}).encode()
        for _ in range(3):
            # the claim appears whole or not at all: written beside it, then hard-linked into place
            # (link fails if the name exists; atomic on local filesystems and NFS, unlike O_EXCL on old NFS)
            tmp = path.with_name(f"{path.name}.{mine.token}.part")
            tmp.write_bytes(blob)
            try:
                os.link(tmp, path)
            except FileExistsError:
                tmp.unlink(missing_ok=True)
                held = self.read_claim(key)
                if held is None:  # removed (released) just now: try again
                    continue
                if held.host == mine.host and held.pid == mine.pid and held.job == mine.job:
                    return held  # this process holds it already (a retried call)
                if not held.stale():
                    return None
                # take the stale claim over: move it aside under a unique name (one winner), then retry
                aside = path.with_name(f"{path.name}.stale-{mine.token}")
                try:
                    os.rename(path, aside)
                except FileNotFoundError:
                    continue
                again = self._read_claim_file(aside)
                if again is not None and (again.host, again.pid) != (held.host, held.pid):  # moved a fresh one: give back
                    os.rename(aside, path)
                    return None
                aside.unlink(missing_ok=True)
                msg = (f"{path}: took over the claim of process {held.pid} on {held.host} "
                       f"(dead or silent since {time.strftime('%H:%M:%S', time.localtime(held.heartbeat))})")
                if say is not None:
                    say(f"warning: {msg}")
                else:
                    warnings.warn(msg, RuntimeWarning, stacklevel=2)
                continue
            tmp.unlink(missing_ok=True)
            return mine
        return None

    def _read_claim_file(self, path: Path) -> Claim | None:
        try:
            d = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        return Claim("", d["host"], int(d["pid"]), float(d["started"]), float(d["started"]))

    def release(self, claim: Claim) -> None:
        """Remove ``claim`` if it is still this process's (not taken over meanwhile)."""
        held = self.read_claim(claim.key)
        if held is not None and held.token == claim.token:
            self._claim_path(claim.key).unlink(missing_ok=True)

    @contextmanager
    def heartbeat(self, claim: Claim, every: float = HEARTBEAT_SECONDS) -> Iterator[None]:
        """Refresh ``claim``'s heartbeat (the file's mtime) every ``every`` seconds while the block runs."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(every):
                try:
                    os.utime(self._claim_path(claim.key))
                except OSError:
                    return

        t = threading.Thread(target=beat, name=f"heartbeat {claim.key}", daemon=True)
        t.start()
        try:
            yield
        finally:
            stop.set()

    # ------------------------------------------------------------------ the run lock
    def drivers(self) -> list[dict[str, Any]]:
        """The run locks under ``locks/`` (live and stale)."""
        d = self.root / "locks"
        out = []
        for p in sorted(d.glob("run-*.json")) if d.is_dir() else []:
            try:
                info = json.loads(p.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            info["path"] = str(p)
            info["alive"] = pid_alive(int(info["pid"])) if info.get("host") == socket.gethostname() else None
            out.append(info)
        return out

    @contextmanager
    def run_lock(self, say: Callable[[str], None] | None = None) -> Iterator[Path]:
        """Hold the run lock of this folder while the block runs.

        A second driver on the same folder does not wait: it is told who else runs and the two
        share the remaining cells through the claim files.  The lock of a driver that died
        (``kill -9``) is taken over with a warning naming its PID, host and start time; its
        claims are stale too and their cells run again.
        """
        say = say or (lambda s: print(s, file=sys.stderr))
        host, pid = socket.gethostname(), os.getpid()
        for other in self.drivers():
            if other.get("host") == host and other.get("pid") == pid:
                continue
            when = other.get("started_at", "?")
            if other["alive"] is False:
                say(f"warning: {self.root}: the run of process {other['pid']} on {host} (started {when}) ended "
                    "without releasing its lock (killed?); taking over, its unfinished cells run again")
                Path(other["path"]).unlink(missing_ok=True)
            else:
                say(f"note: {self.root} is also used by process {other['pid']} on {other.get('host')} (started {when}); "
                    "the two runs share the remaining cells (each cell is trained once)")
        path = self.root / "locks" / f"run-{host}-{pid}.json"
        blob = json.dumps({"pid": pid, "host": host, "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                           "started": time.time(), "command": " ".join(sys.argv)}).encode()
        atomic_write_bytes(path, lambda fh: fh.write(blob))
        try:
            yield path
        finally:
            path.unlink(missing_ok=True)
