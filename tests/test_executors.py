"""The execution core: RunSpec identity, Record schema, the store's claims and run lock, the
process executor (workers die with their parent), --shard, two drivers on one folder, status."""

from __future__ import annotations

import json
import os
import pickle
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from estagbench.cli import main
from estagbench.data.trajectory import write_trajectory
from estagbench.results import cell_id, config_hash
from estagbench.spec import RunSpec, in_shard, parse_shard
from estagbench.store import Record, ResultStore, pid_alive
from estagbench.train import TrainConfig

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    rng = np.random.default_rng(0)
    t = np.arange(600)[:, None, None]
    pos = np.sin(0.05 * t + rng.normal(size=(1, 4, 3))) + 0.01 * rng.normal(size=(600, 4, 3))
    return write_trajectory(tmp_path_factory.mktemp("toy") / "toy.npz", pos, atomic_numbers=[6, 6, 7, 8], cutoff=10.0)


def _args(toy, out, models, seeds, epochs, *extra):
    return ["run", "--models", models, "--dataset", str(toy), "--epochs", epochs, "--seeds", seeds, "--history", "4",
            "--stride", "2", "--out", str(out), "--no-progress", *extra]


def _default_sigint() -> None:
    """Ctrl-C as at a terminal, even when pytest runs as a background job (which starts with SIGINT ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _driver(args, **kw):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "estagbench.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint, **kw)


def _records(out):
    return {p.stem: json.loads(p.read_text()) for p in (Path(out) / "results").glob("*.json")}


# ------------------------------------------------------------------ spec and record


def test_spec_key_is_the_id_records_had_before_specs():
    train = TrainConfig(epochs=3).as_dict()
    params = {"history": 10, "stride": 10, "split_fractions": (0.3, 0.15, 0.15)}
    spec = RunSpec("estag", "md17", "ethanol", 1, train, params, implementation="fused", default_implementation="fused")
    old = cell_id("estag", "md17", "ethanol", 1,
                  config_hash({"model": "estag", "dataset": "md17", "case": "ethanol", "data_params": params, "train": train}))
    assert spec.key() == old == "estag__md17__ethanol__s1__c0ca362437e7"  # the id 3d92b68 gave this cell
    other = RunSpec("estag", "md17", "ethanol", 1, train, params, implementation="torch", default_implementation="fused")
    assert other.key() != spec.key()  # the PyTorch code's cell is another cell: never averaged with the kernel's
    assert RunSpec("pt-t", "md17", "ethanol", 1, train, params).key() == cell_id(
        "pt-t", "md17", "ethanol", 1,
        config_hash({"model": "pt-t", "dataset": "md17", "case": "ethanol", "data_params": params, "train": train}))
    back = pickle.loads(pickle.dumps(spec))
    assert back == spec and back.key() == spec.key() and hash(back) == hash(spec)
    assert RunSpec.from_dict(json.loads(json.dumps(spec.as_dict()))).key() == spec.key()
    with pytest.raises(AttributeError):
        spec.seed = 2  # frozen


def test_shards_partition_any_grid():
    keys = [f"m__d__c__s{i}__{i:012x}" for i in range(200)]
    parts = [{k for k in keys if in_shard(k, (i, 3))} for i in (1, 2, 3)]
    assert set().union(*parts) == set(keys) and sum(map(len, parts)) == len(keys)
    assert all(parts)
    assert parse_shard("2/4") == (2, 4)
    for bad in ("0/2", "3/2", "x", "1/0"):
        with pytest.raises(ValueError, match="--shard"):
            parse_shard(bad)


def test_v1_records_read_and_round_trip():
    v1 = {"model": "estag", "dataset": "md17", "case": "ethanol", "seed": 1, "config_hash": "abc",
          "metrics": {"test_mse": 1.0}, "something_new": [1, 2]}
    rec = Record.from_dict(v1)
    assert rec.schema_version == 1 and rec.extra == {"something_new": [1, 2]} and rec.implementation is None
    d = rec.to_dict()
    assert {k: d[k] for k in v1} == v1


# ------------------------------------------------------------------ claims and the run lock


def test_claims_are_exclusive_and_a_dead_claimer_is_taken_over(tmp_path):
    store = ResultStore(tmp_path)
    mine = store.try_claim("cell", "local")
    assert mine is not None and store.read_claim("cell").pid == os.getpid()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    store.release(mine)
    assert store.read_claim("cell") is None
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        for who in (live.pid, pid):  # a claim of a live process is respected; of a dead one, taken over
            (tmp_path / "claims" / "cell.claim").write_text(json.dumps(
                {"host": os.uname().nodename, "pid": who, "started": time.time(), "token": "t"}))
            if who == live.pid:
                assert store.try_claim("cell") is None
            else:
                with pytest.warns(RuntimeWarning, match=f"took over the claim of process {pid}"):
                    assert store.try_claim("cell") is not None
    finally:
        live.kill()
        live.wait()
    assert not pid_alive(pid)


# ------------------------------------------------------------------ the process executor


def test_process_executor_same_records_as_local(tmp_path, toy):
    """--executor process (forked workers, one per cell) stores exactly what --executor local stores."""
    a, b = tmp_path / "local", tmp_path / "proc"
    assert main(_args(toy, a, "pt-t,estag", "1,2", "2")) == 0
    assert main(_args(toy, b, "pt-t,estag", "1,2", "2", "--executor", "process", "--jobs", "2")) == 0
    ra, rb = _records(a), _records(b)
    assert sorted(ra) == sorted(rb) and len(ra) == 4
    for k in ra:
        assert ra[k]["metrics"] == rb[k]["metrics"]  # bitwise
        assert rb[k]["execution"]["executor"] == "process" and rb[k]["execution"]["pid"] != os.getpid()
        assert ra[k]["execution"]["executor"] == "local" and ra[k]["execution"]["pid"] == os.getpid()
    assert len({r["execution"]["pid"] for r in rb.values()}) == 4  # a fresh worker per cell


def _wait_for_claims(out, n, proc, timeout=60.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        claims = ResultStore(out).claims()
        if len(claims) >= n:
            return claims
        if proc.poll() is not None:
            raise AssertionError(f"driver ended early: {proc.communicate()}")
        time.sleep(0.05)
    raise AssertionError(f"no {n} claims within {timeout} s")


def test_kill_9_of_a_jobs_2_driver_leaves_no_worker_and_the_next_run_resumes(tmp_path, toy, capsys):
    out = tmp_path / "res"
    args = _args(toy, out, "estag", "1,2", "40", "--jobs", "2")
    proc = _driver(args)
    claims = _wait_for_claims(out, 2, proc)
    workers = [c.pid for c in claims.values()]
    assert proc.pid not in workers
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    deadline = time.time() + 5
    while any(pid_alive(p) for p in workers) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(pid_alive(p) for p in workers), "a worker outlived its killed driver by 5 s"
    assert {c.pid for c in ResultStore(out).claims().values()} == set(workers)  # left behind by the dead workers
    capsys.readouterr()
    assert main(args) == 0  # the same command resumes: the dead run's lock and claims are taken over
    err = capsys.readouterr().err
    assert f"the run of process {proc.pid}" in err and "ended without releasing its lock" in err
    assert len(_records(out)) == 2 and not list((out / "claims").glob("*.claim"))


def test_ctrl_c_of_a_jobs_2_driver_stops_its_workers_and_releases_their_cells(tmp_path, toy):
    out = tmp_path / "res"
    proc = _driver(_args(toy, out, "estag", "1,2", "400", "--jobs", "2"))
    workers = [c.pid for c in _wait_for_claims(out, 2, proc).values()]
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "rerun the same command to resume" in err
    assert not any(pid_alive(p) for p in workers)
    assert not list((out / "claims").glob("*.claim")) and not list((out / "locks").glob("*.json"))


# ------------------------------------------------------------------ several drivers on one folder


def test_two_concurrent_drivers_store_each_cell_once(tmp_path, toy):
    out = tmp_path / "res"
    args = _args(toy, out, "estag", "1,2,3,4", "40")
    first, second = _driver(args), _driver(args)  # started together: the grid takes far longer than start-up jitter
    outs = [p.communicate(timeout=300) for p in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], outs
    assert (f"also used by process {first.pid}" in outs[1][1]) or (f"also used by process {second.pid}" in outs[0][1])
    trained = sum(len(re.findall(r"seed \d+: test MSE", err)) for _, err in outs)  # the line of a trained cell
    recs = _records(out)
    assert len(recs) == 4 and trained == 4  # every cell trained by exactly one of the two
    assert {r["execution"]["pid"] for r in recs.values()} <= {first.pid, second.pid}


def test_shards_in_two_processes_make_the_union(tmp_path, toy):
    full, sharded = tmp_path / "full", tmp_path / "sharded"
    args = _args(toy, sharded, "pt-t,estag", "1,2,3", "2")
    procs = [_driver([*args, "--shard", "1/2"]), _driver([*args, "--shard", "2/2"])]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    from estagbench.runner import plan_run, plan_specs

    plan = plan_run("pt-t,estag", str(toy), None, [1, 2, 3], 2, "paper", full, history=4, stride=2)
    b = _records(sharded)
    assert sorted(b) == sorted(s.key() for s in plan_specs(plan)) and len(b) == 6  # shard 1/2 + 2/2 = the grid
    for key, rec in b.items():  # each cell was run by the process of its shard
        assert rec["execution"]["pid"] == procs[0 if in_shard(key, (1, 2)) else 1].pid


# ------------------------------------------------------------------ status


def test_status_lists_done_running_failed_and_todo(tmp_path, toy, capsys):
    out = tmp_path / "res"
    assert main(_args(toy, out, "pt-t,estag", "1,2", "3")) == 0
    store = ResultStore(out)
    keys = sorted(_records(out))
    est = [k for k in keys if k.startswith("estag")]
    pt = [k for k in keys if k.startswith("pt-t")]
    os.replace(store.path(est[0]), tmp_path / "gone.json")  # to do again
    os.replace(store.path(est[1]), tmp_path / "gone2.json")
    store.put_failure(est[1], "estag seed 2", "training loss became nan at epoch 1", {})
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (out / "claims" / f"{pt[0]}.claim").write_text(json.dumps(
            {"host": os.uname().nodename, "pid": live.pid, "started": time.time(), "executor": "process"}))
        os.replace(store.path(pt[0]), tmp_path / "gone3.json")
        capsys.readouterr()
        assert main(["status", "--out", str(out)]) == 0
    finally:
        live.kill()
        live.wait()
    text = capsys.readouterr().out
    assert f"pid {live.pid}" in text and "running" in text
    assert "failed" in text and "training loss became nan" in text
    assert "4 cells: 1 done, 1 running, 1 failed, 1 to do" in text
    assert "remaining compute: about" in text
    assert main(["status", "--out", str(tmp_path / "nowhere")]) == 2


#: This module declares two implementations for the toy model below, as a module with a compiled fast
#: path and a reference fallback does (ESTAG did until its fused kernel was retired): the runner asks
#: such a model which one a run will use and keys a non-default one apart.
ESTAGBENCH_IMPLEMENTATIONS = ("fast", "reference")


class _TwoPaths(torch.nn.Module):
    """A trainable linear extrapolation with two interchangeable code paths (the env var picks one)."""

    default_implementation = "fast"

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.implementation: str | None = None

    def planned_implementation(self, device: str = "cpu") -> str:  # noqa: ARG002 - one device here
        return os.environ.get("ESTAGBENCH_TEST_PATH", "fast")

    def forward(self, batch):
        self.implementation = self.planned_implementation()
        return batch.x[:, -1] + self.w * (batch.x[:, -1] - batch.x[:, -2])


def _two_paths(info, **_):
    return _TwoPaths()


@pytest.fixture
def two_paths_model(monkeypatch):
    from estagbench import registry

    registry.list_models()  # every built-in registered first, into the registry's own table
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))  # two-paths: registered for this test only
    registry.register_model("two-paths", multichannel=True, symmetry="E3")(_two_paths)
    return "two-paths"


def test_cells_of_two_implementations_are_never_averaged(tmp_path, toy, two_paths_model, monkeypatch, capsys):
    """Issue 20 item 1: a cell trained by a non-default implementation is its own cell, never averaged with the
    default's (at 3d92b68 the second run reused the first record: one cell, one implementation)."""
    from estagbench.results import aggregate, load_results

    out = tmp_path / "res"
    assert main(_args(toy, out, two_paths_model, "1", "1")) == 0
    monkeypatch.setenv("ESTAGBENCH_TEST_PATH", "reference")
    assert main(_args(toy, out, two_paths_model, "1", "1")) == 0
    assert "skip two-paths" not in capsys.readouterr().err  # the fast path's record is not this cell's
    recs = list(_records(out).values())
    assert sorted(r["implementation"] for r in recs) == ["fast", "reference"]
    assert len({r["config_hash"] for r in recs}) == 2
    df = load_results(out)
    assert len(aggregate(df)) == 2 and set(aggregate(df)["n_seeds"]) == {1}
    monkeypatch.setenv("ESTAGBENCH_TEST_PATH", "fast")  # the default again: today's cell, stored, not retrained
    assert main(_args(toy, out, two_paths_model, "1", "1")) == 0
    assert "skip two-paths" in capsys.readouterr().err


def test_implementation_keys_keep_todays_ids_for_models_with_one_implementation(two_paths_model, monkeypatch):
    """Models with one implementation (every built-in since the ESTAG kernel was retired) keep their ids."""
    from estagbench.runner import planned_implementation
    from estagbench.testing import random_info

    train = TrainConfig(epochs=1)
    one, multi = random_info(num_nodes=4, num_channels=1), random_info(num_nodes=4, num_channels=4)
    for model, info in (("estag", one), ("estag", multi), ("stag", one), ("pt-t", one)):
        assert planned_implementation(model, info, train) == (None, None)
    assert planned_implementation(two_paths_model, one, train) == ("fast", "fast")
    monkeypatch.setenv("ESTAGBENCH_TEST_PATH", "reference")
    assert planned_implementation(two_paths_model, one, train) == ("reference", "fast")


def test_the_core_never_imports_ray_or_submitit(tmp_path, toy):
    code = ("import sys\nfrom estagbench.cli import main\n"
            f"rc = main({_args(toy, tmp_path / 'res', 'pt-t', '1,2', '1', '--jobs', '2')!r})\n"
            "assert rc == 0, rc\nbad = [m for m in ('ray', 'submitit') if m in sys.modules]\nassert not bad, bad\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def test_executor_flags_are_checked_before_anything_runs(monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    assert main(["run", "--models", "pt-t", "--dataset", "md17", "--executor", "ray"]) == 2
    assert "pip install 'estagbench[ray]'" in capsys.readouterr().err
    monkeypatch.undo()
    assert main(["run", "--models", "pt-t", "--dataset", "md17", "--executor", "ray", "--jobs", "2"]) == 2
    assert "--jobs 2 applies to --executor process" in capsys.readouterr().err
    assert main(["run", "--models", "pt-t", "--dataset", "md17", "--executor", "local", "--jobs", "2"]) == 2
    assert main(["run", "--models", "pt-t", "--dataset", "md17", "--shard", "3/2"]) == 2
    assert "--shard '3/2'" in capsys.readouterr().err
