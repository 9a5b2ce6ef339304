"""The cluster executors for real: a local Ray cluster (num_cpus=2, dashboard off) and
submitit's local executor, against ``--executor local`` on the same grid.

A Slurm cluster cannot be reached from CI: the sbatch script the driver's parameters make
is checked instead (README: "Running on a cluster")."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from estagbench.cli import main
from estagbench.data.trajectory import write_trajectory
from estagbench.store import ResultStore, pid_alive

REPO = Path(__file__).resolve().parents[1]
GRID = ("pt-t,estag", "1,2,3")  # 6 cells


def _default_sigint() -> None:
    """Ctrl-C as at a terminal, even when pytest runs as a background job (which starts with SIGINT ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    rng = np.random.default_rng(1)
    t = np.arange(600)[:, None, None]
    pos = np.sin(0.05 * t + rng.normal(size=(1, 4, 3))) + 0.01 * rng.normal(size=(600, 4, 3))
    return write_trajectory(tmp_path_factory.mktemp("toy") / "toy.npz", pos, atomic_numbers=[6, 6, 7, 8], cutoff=10.0)


@pytest.fixture(scope="module")
def ray_cluster():
    """One local Ray cluster for the module (the executor joins it instead of starting its own)."""
    ray = pytest.importorskip("ray")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def local_records(toy, tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    assert main(_args(toy, out, *GRID, "2")) == 0
    return _records(out)


def _args(toy, out, models, seeds, epochs, *extra):
    return ["run", "--models", models, "--dataset", str(toy), "--epochs", epochs, "--seeds", seeds, "--history", "4",
            "--stride", "2", "--out", str(out), "--no-progress", *extra]


def _records(out):
    return {p.stem: json.loads(p.read_text()) for p in (Path(out) / "results").glob("*.json")}


def _same(a, b):
    assert sorted(a) == sorted(b) and len(a) >= 6
    for k in a:
        assert a[k]["metrics"] == b[k]["metrics"], k  # bitwise


def test_ray_grid_stores_what_local_stores(ray_cluster, toy, local_records, tmp_path):
    out = tmp_path / "ray"
    assert main(_args(toy, out, *GRID, "2", "--executor", "ray")) == 0
    recs = _records(out)
    _same(local_records, recs)
    assert {r["execution"]["executor"] for r in recs.values()} == {"ray"}
    assert all(r["execution"]["pid"] != os.getpid() for r in recs.values())
    assert not list((out / "claims").glob("*.claim"))


def test_a_sigkilled_ray_worker_has_its_cell_retried_and_stored_once(ray_cluster, toy, tmp_path):
    out = tmp_path / "ray"
    rc: list[int] = []
    t = threading.Thread(target=lambda: rc.append(main(_args(toy, out, "estag", "1", "40", "--executor", "ray"))))
    t.start()
    deadline = time.time() + 120
    while not ResultStore(out).claims() and time.time() < deadline:
        time.sleep(0.05)
    (claim,) = ResultStore(out).claims().values()
    os.kill(claim.pid, signal.SIGKILL)  # the Ray worker training the cell
    t.join(300)
    assert rc == [0]
    (rec,) = _records(out).values()
    assert rec["execution"]["pid"] != claim.pid  # the retry stored it, once
    assert not list((out / "claims").glob("*.claim"))


def test_reproduce_table_1_with_ray_end_to_end(ray_cluster, tmp_path, shared_data):
    out = tmp_path / "repro"
    rc = main(["reproduce", "--table", "1", "--models", "estag,pt-t", "--molecules", "ethanol", "--epochs", "1",
               "--seeds", "1", "--split-margin", "0", "--split-fractions", "0.3,0.15,0.15", "--data-dir", str(shared_data),
               "--executor", "ray", "--out", str(out), "--no-progress", "--format", "csv"])
    assert rc == 0
    recs = _records(out)
    assert sorted(r["model"] for r in recs.values()) == ["estag", "pt-t"]
    assert {r["execution"]["executor"] for r in recs.values()} == {"ray"}
    from estagbench.tables import read_table_csv

    table = read_table_csv(out / "tables" / "table1.csv")
    for rec in recs.values():  # the table holds the numbers the Ray workers stored
        cell = table.cells[(rec["model"], "ethanol")]
        assert cell.n_seeds == 1 and cell.mean == pytest.approx(rec["metrics"]["test_mse"], rel=1e-9)
    assert all(r["implementation"] in (None, "torch") for r in recs.values())  # which code made the numbers


def _descendants(pid):
    """Every process below ``pid`` (from /proc: parent links)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def test_ctrl_c_of_a_ray_driver_leaves_no_process(toy, tmp_path):
    """The driver starts its own local cluster; SIGINT mid-cell cancels the cells and stops the cluster."""
    pytest.importorskip("ray")
    out = tmp_path / "ray"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "estagbench.cli", *_args(toy, out, "estag", "1,2", "400",
                                                                             "--executor", "ray")],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint)
    deadline = time.time() + 180
    while not ResultStore(out).claims() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert ResultStore(out).claims(), proc.communicate()
    procs = set(_descendants(proc.pid)) | {c.pid for c in ResultStore(out).claims().values()}
    assert procs
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    deadline = time.time() + 15
    while any(pid_alive(p) for p in procs) and time.time() < deadline:
        time.sleep(0.2)
    assert not [p for p in procs if pid_alive(p)], "processes of the Ray driver survived its Ctrl-C"
    assert not _records(out)


# ------------------------------------------------------------------ Slurm through submitit


def test_submitit_local_executor_runs_the_same_grid(toy, local_records, tmp_path):
    pytest.importorskip("submitit")
    from estagbench.executors.slurm import SlurmExecutor
    from estagbench.runner import plan_run, run_plan

    out = tmp_path / "slurm"
    plan = plan_run(GRID[0], str(toy), None, [1, 2, 3], 2, "paper", out, history=4, stride=2)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    run_plan(plan, SlurmExecutor(cluster="local", cells_per_task=3), progress=False)  # 2 array tasks of 3 cells
    recs = _records(out)
    _same(local_records, recs)
    assert {r["execution"]["executor"] for r in recs.values()} == {"slurm"}
    assert len({r["execution"]["pid"] for r in recs.values()}) == 2


def test_slurm_submission_the_driver_builds(tmp_path, monkeypatch):
    """The sbatch script submitit writes from the driver's flags (no cluster needed to build it)."""
    submitit = pytest.importorskip("submitit")
    monkeypatch.setattr(submitit.slurm.slurm.SlurmExecutor, "affinity", staticmethod(lambda: 1))  # no srun here
    from estagbench._executor_args import executor_from_args
    from estagbench.cli import build_parser
    from estagbench.executors.slurm import parse_slurm_time, slurm_parameters

    args = build_parser().parse_args(
        ["run", "--dataset", "md17", "--executor", "slurm", "--slurm-partition", "gpu", "--slurm-time", "1:30:00",
         "--slurm-gpus", "1", "--slurm-array-parallelism", "8", "--slurm-option", "account=proj", "--slurm-option",
         "qos=high", "--threads", "2"])
    ex = executor_from_args(args)
    assert ex.params == slurm_parameters("gpu", "1:30:00", 1, 8, {"account": "proj", "qos": "high"}, 2)
    assert ex.params["timeout_min"] == 90 and ex.params["cpus_per_task"] == 2
    assert [parse_slurm_time(t) for t in ("45", "2:00", "2-00:00:00", "00:10:30")] == [45, 120, 2880, 11]
    sub = ex.executor(tmp_path)
    script = sub._executor._make_submission_file_text("python -m submitit.core._submit x", "uid")
    for line in ("#SBATCH --partition=gpu", "#SBATCH --time=90", "#SBATCH --gpus-per-node=1", "#SBATCH --cpus-per-task=2",
                 "#SBATCH --account=proj", "#SBATCH --qos=high", "#SBATCH --job-name=estagbench"):
        assert line in script, line
    assert main(["run", "--dataset", "md17", "--executor", "slurm", "--slurm-time", "soon"]) == 2
