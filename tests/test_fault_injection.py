"""Every bad input and fault of issue 20 in one table: what ``estagbench run`` must do.

Each row starts from a store holding one finished cell (seed 1), then runs a command that
asks for seeds 1 and 2 with one fault injected.  For every row: the exit status (2 bad
input or environment, 1 failed cells, 0 otherwise), one ``estagbench: error:`` line naming
the flag, path or value (no traceback) where the command fails, the stored record
byte-for-byte untouched, no partial file (``*.part``, empty file) anywhere in the store, and
(where the fault is gone) a rerun that resumes and completes the grid.
"""

from __future__ import annotations

import builtins
import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from estagbench import register_model
from estagbench.cli import main
from estagbench.data.trajectory import write_trajectory


class _Tiny(nn.Module):
    def __init__(self, value: float = 0.0) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(value))

    def forward(self, batch):
        return batch.x[:, -1] * (1 + self.w)


@register_model("zz-fault-tiny", multichannel=True)
def _tiny(info, hidden=16, layers: int = 1, **kw):
    if not isinstance(layers, int):
        raise TypeError(f"layers must be an int, got {layers!r}")
    if kw:
        raise TypeError(f"unexpected hyper-parameter(s) {sorted(kw)}")
    return _Tiny()


@register_model("zz-fault-nan", multichannel=True)
def _nan(info, **kw):
    return _Tiny(float("nan"))


@register_model("zz-fault-needs-9", multichannel=True)
def _needs_nine(info, **kw):
    if info.history < 9:
        raise ValueError(f"zz-fault-needs-9 needs T >= 9, got T={info.history}")
    return _Tiny()


@pytest.fixture
def traj_file(tmp_path):
    rng = np.random.default_rng(0)
    t = np.arange(400)[:, None, None]
    pos = np.sin(0.05 * t + rng.normal(size=(1, 4, 3))) + 0.01 * rng.normal(size=(400, 4, 3))
    return write_trajectory(tmp_path / "toy.npz", pos, atomic_numbers=[6, 6, 7, 8], cutoff=10.0)


def _argv(traj: Path, out: Path, models: str = "zz-fault-tiny", seeds: str = "1,2", *extra: str) -> list[str]:
    return ["run", "--models", models, "--dataset", str(traj), "--epochs", "2", "--seeds", seeds, "--history", "4",
            "--stride", "2", "--out", str(out), "--no-progress", *extra]


# --------------------------------------------------------------------------- the faults
def _disk_full(monkeypatch: pytest.MonkeyPatch, store: Path, code: int = errno.ENOSPC) -> None:
    """Every write of a file under ``store`` fails with ENOSPC (or ``code``) after the file is created
    (as a full disk does: the name exists, no byte fits), through ``open`` and ``os.fdopen`` alike."""
    real_open, real_fdopen = builtins.open, os.fdopen

    class Full:
        def __init__(self, fh: Any, name: str) -> None:
            self.fh, self.name = fh, name

        def write(self, data: Any) -> int:
            raise OSError(code, os.strerror(code))

        def __getattr__(self, key: str) -> Any:
            return getattr(self.fh, key)

        def __enter__(self) -> Full:
            return self

        def __exit__(self, *exc: Any) -> None:
            self.fh.close()

    def full_open(file: Any, mode: str = "r", *a: Any, **k: Any) -> Any:
        fh = real_open(file, mode, *a, **k)
        if any(m in mode for m in "wax") and isinstance(file, (str, os.PathLike)) and str(store) in str(file):
            return Full(fh, str(file))
        return fh

    def full_fdopen(fd: int, mode: str = "r", *a: Any, **k: Any) -> Any:
        fh = real_fdopen(fd, mode, *a, **k)
        name = os.readlink(f"/proc/self/fd/{fd}") if os.path.exists(f"/proc/self/fd/{fd}") else ""
        return Full(fh, name) if "w" in mode and str(store) in name else fh

    monkeypatch.setattr(builtins, "open", full_open)
    monkeypatch.setattr(os, "fdopen", full_fdopen)


def _read_only_mid_run(monkeypatch: pytest.MonkeyPatch, store: Path) -> None:
    """The store's file system turns read-only while the run trains (EROFS on every write)."""
    _disk_full(monkeypatch, store, errno.EROFS)


def _cpu_only_torch(monkeypatch: pytest.MonkeyPatch, store: Path) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", None)


def _no_fault(monkeypatch: pytest.MonkeyPatch, store: Path) -> None:
    pass


def _read_only_out(tmp_path: Path) -> Path:
    """A folder nobody may write in: a chmod 555 one, or (root ignores modes) one in read-only sysfs."""
    if os.geteuid() == 0:
        return Path("/sys/kernel/estagbench-out")
    d = tmp_path / "read-only"
    d.mkdir()
    d.chmod(0o555)
    return d


def _a_file(tmp_path: Path) -> Path:
    f = tmp_path / "a-file"
    f.write_text("not a folder")
    return f


Case = tuple[
    Callable[[Path, Path, Path], list[str]],  # (traj, store, tmp_path) -> argv
    Callable[[pytest.MonkeyPatch, Path], None],  # the fault, injected for the bad run only
    int,  # exit status
    str,  # what stderr's error line (rc 2) or stdout (rc 0/1) must contain
    bool,  # whether a rerun without the fault resumes and completes seeds 1 and 2
]

CASES: dict[str, Case] = {
    "out is read-only": (lambda tr, st, tmp: _argv(tr, _read_only_out(tmp)), _no_fault, 2,
                         "cannot write there", False),
    "out is a file": (lambda tr, st, tmp: _argv(tr, _a_file(tmp)), _no_fault, 2, "a-file: is a file, not a folder", False),
    "out is below a file": (lambda tr, st, tmp: _argv(tr, _a_file(tmp) / "sub"), _no_fault, 2,
                            "a-file is a file, not a folder", False),
    "disk full": (lambda tr, st, tmp: _argv(tr, st), _disk_full, 2, "No space left on device writing", True),
    "disk full in --jobs workers": (lambda tr, st, tmp: _argv(tr, st, "zz-fault-tiny", "1,2,3", "--jobs", "2"),
                                    _disk_full, 2, "No space left on device writing", True),
    "file system turns read-only mid-run": (lambda tr, st, tmp: _argv(tr, st), _read_only_mid_run, 2,
                                            "Read-only file system writing", True),
    "cuda on a CPU-only torch": (lambda tr, st, tmp: _argv(tr, st, "zz-fault-tiny", "1,2", "--device", "cuda"),
                                 _cpu_only_torch, 2, "--device cuda: this torch is a CPU-only build", True),
    "hparam of the wrong type": (lambda tr, st, tmp: _argv(tr, st, "zz-fault-tiny", "1,2", "--model-hparams", "layers=abc"),
                                 _no_fault, 2, "--model-hparams layers=abc: model zz-fault-tiny refuses it", False),
    "unknown hparam": (lambda tr, st, tmp: _argv(tr, st, "zz-fault-tiny", "1,2", "--model-hparams", "foo=1"),
                       _no_fault, 2, "--model-hparams foo=1: model zz-fault-tiny refuses it", False),
    "empty models": (lambda tr, st, tmp: _argv(tr, st, ""), _no_fault, 2, "--models '' names no model", False),
    "unknown model": (lambda tr, st, tmp: _argv(tr, st, "zz-fault-tinny"), _no_fault, 2, "zz-fault-tiny", False),
    "duplicate models and seeds": (lambda tr, st, tmp: _argv(tr, st, "zz-fault-tiny,zz-fault-tiny", "1,2,2"),
                                   _no_fault, 0, "zz-fault-tiny  toy", True),
    "model cannot run the case": (lambda tr, st, tmp: _argv(tr, st, "zz-fault-needs-9,zz-fault-tiny"), _no_fault, 0,
                                  "skipped zz-fault-needs-9 on", True),
    "a cell diverges": (lambda tr, st, tmp: _argv(tr, st, "zz-fault-nan,zz-fault-tiny"), _no_fault, 1,
                        "failed zz-fault-nan", True),
}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()} if root.exists() else {}


@pytest.mark.parametrize("name", list(CASES))
def test_fault(name: str, tmp_path: Path, traj_file: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    make_argv, inject, rc, expected, resumes = CASES[name]
    store = tmp_path / "store"
    assert main(_argv(traj_file, store, "zz-fault-tiny", "1")) == 0  # one finished cell to keep
    before = {k: v for k, v in _files(store).items() if k.startswith("results/")}
    assert len(before) == 1
    argv = make_argv(traj_file, store, tmp_path)
    capsys.readouterr()
    with monkeypatch.context() as m:
        inject(m, store)
        got = main(argv)
    out, err = capsys.readouterr()
    assert got == rc, f"{name}: exit {got}, expected {rc}\n{err}"
    assert "Traceback" not in err
    if rc == 2:
        errors = [line for line in err.splitlines() if line.startswith("estagbench: error:")]
        assert len(errors) == 1 and expected in errors[0], f"{name}: {errors}"
    else:
        assert expected in out, f"{name}: {out}"
    after = _files(store)
    assert {k: after.get(k) for k in before} == before, f"{name}: a stored record was touched"
    partial = [k for k, v in after.items() if k.endswith(".part") or ".part" in Path(k).name or not v]
    assert not partial, f"{name}: partial files left: {partial}"
    if resumes:  # the fault gone, the same command completes the grid without redoing the stored cell
        assert main(_argv(traj_file, store, "zz-fault-tiny", "1,2")) == 0
        done = _files(store)
        assert {k: done[k] for k in before} == before
        assert len([k for k in done if k.startswith("results/zz-fault-tiny")]) == 2
