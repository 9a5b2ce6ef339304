"""A user's own data: format v2 (several trajectories), `convert`, split rules, leakage, units,
content-hash identity and `tables --dataset` (issue 24)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from estagbench.cli import main
from estagbench.data import DataError, load_case
from estagbench.data.splits import leakage, md17_split
from estagbench.data.trajectory import read_trajectory, write_trajectory

WALKS = [f"35_{k:02d}" for k in range(1, 8)]


def _assert_windows_inside_trajectories(data, file_offsets=None):
    """Every window's frames s … s + T·Δ lie in its own trajectory (and, with the file's offsets, between
    that trajectory's first and last frame of the concatenated positions)."""
    span = data.history * data.stride
    for name, win in data.windows.items():
        for traj, start in win:
            n = data.trajectories[traj].shape[0]
            assert 0 <= start and start + span < n, (name, traj, start, n)
            if file_offsets is not None:
                lo, hi = file_offsets[traj], file_offsets[traj + 1]
                assert lo <= lo + start and lo + start + span < hi


def test_multi_trial_amc_file_split_by_trajectory(tmp_path, shared_data, capsys):
    """Real CMU trials → one v2 file (one trajectory per AMC) → split by trajectory: no window crosses a
    boundary, the splits share no trial, the leakage is nil; the joints are the motion datasets' FK."""
    from estagbench.data.mocap import parse_amc, parse_asf, skeleton_fk

    folder = shared_data / "cmu_mocap" / "35_30fps"
    out = tmp_path / "walks.npz"
    rc = main(["convert", "--from", "amc", "--skeleton", str(folder / "35.asf"), *[str(folder / f"{t}.amc") for t in WALKS],
               "--out", str(out), "--stride", "1", "--train", ",".join(WALKS[:4]), "--val", ",".join(WALKS[4:6]),
               "--test", WALKS[6]])
    assert rc == 0, capsys.readouterr().err
    traj = read_trajectory(out)
    assert traj.names == WALKS and traj.num_trajectories == 7 and traj.format_version == 2
    assert traj.length_unit == "ASF unit" and traj.up_axis == "y" and traj.edges.shape == (30, 2)
    sk = parse_asf(folder / "35.asf")
    fk = skeleton_fk(sk, parse_amc(folder / "35_03.amc", sk))
    np.testing.assert_allclose(traj.trajectories()[2][:, :, 0], fk - fk.mean())

    data = load_case(str(out))
    assert len(data.trajectories) == 7 and data.stride == 1
    _assert_windows_inside_trajectories(data, traj.bounds)
    trials = {k: {WALKS[t] for t in np.unique(v[:, 0])} for k, v in data.windows.items()}
    assert trials == {"train": set(WALKS[:4]), "val": set(WALKS[4:6]), "test": {WALKS[6]}}
    # every start of each test trial is used: all of 35_07's frames minus one window span
    assert len(data.windows["test"]) == data.trajectories[6].shape[0] - 10
    leak = data.leakage()
    assert leak["test_targets_in_train"] == 0.0 and leak["min_gap_frames"] is None
    assert data.units.label == "MSE ×10⁻¹ ASF unit²"


@pytest.mark.parametrize("protocol", [
    {"split": "windows"},
    {"split": "chronological"},
    {"split": "trajectories"},
    {"split": "trajectories", "train": ["c", "a"], "val": ["b"], "test": [3]},
])
def test_windows_never_cross_a_trajectory_boundary(tmp_path, protocol):
    rng = np.random.default_rng(0)
    lengths = [40, 61, 35, 52]
    parts = [rng.normal(size=(n, 5, 3)) + 100.0 * k for k, n in enumerate(lengths)]  # jumps between trajectories
    p = write_trajectory(tmp_path / "m.npz", parts, trajectory_names=["a", "b", "c", "d"], protocol={**protocol, "stride": 2})
    data = load_case(str(p))
    assert [t.shape[0] for t in data.trajectories] == lengths
    _assert_windows_inside_trajectories(data, read_trajectory(p).bounds)
    prepared = data.prepare()
    for name in data.windows:  # a window's frames all come from one trajectory: no jump of 100 inside it
        x, y = prepared.splits[name].x, prepared.splits[name].y
        assert float((x - y[:, None]).abs().max()) < 50, name
    if "train" in protocol:
        assert sorted(np.unique(data.windows["train"][:, 0])) == [0, 2]


def test_leakage_figures_for_a_leaky_and_a_clean_split():
    # T·Δ = 10. Train windows span frames [0, 10] and [30, 40]; test targets: 35 (inside [30, 40]) and 110.
    leaky = {"train": np.array([[0, 0], [0, 30]]), "val": np.zeros((0, 2)), "test": np.array([[0, 25], [0, 100]])}
    got = leakage(leaky, history=2, stride=5)
    assert got["test_targets_in_train"] == 0.5 and got["test_targets_in_train_count"] == 1
    assert got["min_gap_frames"] == -5  # test window [25, 35] overlaps training window [30, 40] by 5 frames
    # clean: the test windows come from another trajectory
    clean = {"train": np.array([[0, 0], [0, 30]]), "val": np.zeros((0, 2)), "test": np.array([[1, 25], [1, 100]])}
    got = leakage(clean, history=2, stride=5)
    assert got["test_targets_in_train"] == 0.0 and got["min_gap_frames"] is None and got["shared_trajectories"] == 0
    # a gap without overlap: test window [60, 70] is 20 frames after training window [30, 40]
    gap = {"train": np.array([[0, 0], [0, 30]]), "val": np.zeros((0, 2)), "test": np.array([[0, 60]])}
    assert leakage(gap, history=2, stride=5)["min_gap_frames"] == 20


def _run(out, dataset, *extra):
    return main(["run", "--models", "pt-t", "--dataset", dataset, "--epochs", "1", "--seeds", "1", "--out", str(out),
                 "--no-progress", *extra])


def test_run_reports_and_stores_leakage_units_and_steps(tmp_path, capsys):
    rng = np.random.default_rng(1)
    one = write_trajectory(tmp_path / "one.npz", np.cumsum(rng.normal(size=(200, 4, 3)), axis=0), atomic_numbers=[6, 6, 7, 8])
    assert _run(tmp_path / "r1", str(one)) == 0
    err = capsys.readouterr().err
    assert "leakage: 93.3% of test targets (14/15) inside training windows; smallest train-test gap -99 frames" in err
    assert "one.npz/one: 93% of test targets lie inside training windows" in err and "split by trajectory" in err
    assert "units: test MSE in Å²" in err
    assert "1 optimiser step(s) per epoch (30 training windows, batch 100) × 1 epochs = 1 steps" in err
    assert "one.npz/one: only 1 optimiser steps in total" in err
    rec = json.loads(next((tmp_path / "r1" / "results").glob("*.json")).read_text())
    assert rec["leakage"]["test_targets_in_train"] == pytest.approx(14 / 15)
    assert rec["units"]["mse_unit"] == "Å²" and rec["optimiser_steps"] == {"per_epoch": 1, "total": 1, "batch_size": 100}
    split = json.loads(next((tmp_path / "r1" / "splits").glob("*.json")).read_text())
    assert split["leakage"] == rec["leakage"]

    parts = [np.cumsum(rng.normal(size=(60, 4, 3)), axis=0) for _ in range(5)]
    clean = write_trajectory(tmp_path / "clean.npz", parts, atomic_numbers=[6, 6, 7, 8], length_unit="nm",
                             protocol={"split": "trajectories", "stride": 2})
    assert _run(tmp_path / "r2", str(clean)) == 0
    err = capsys.readouterr().err
    assert "leakage: 0.0% of test targets" in err and "no test window shares a trajectory" in err
    assert "inside training windows (above" not in err and "units: test MSE in nm²" in err


def test_v1_files_keep_their_windows_and_configuration(tmp_path):
    pos = np.random.default_rng(2).normal(size=(300, 4, 3))
    p = write_trajectory(tmp_path / "v1.npz", pos, atomic_numbers=[6, 6, 7, 8], metadata={"protocol": {"stride": 5}})
    assert set(np.load(p).files) == {"positions", "atomic_numbers", "metadata"}  # no version-2 key written
    data = load_case(str(p))
    want = md17_split(300, 10, 5, 0, (0.3, 0.15, 0.15), (500, 2000, 2000), 100)
    for k, v in want.items():
        np.testing.assert_array_equal(data.windows[k], np.stack([np.zeros_like(v), v], axis=1))
    assert set(data.params) == {"history", "stride", "split_margin", "split_fractions", "split_caps", "split_seed",
                                "cutoff", "graph"}


def test_relative_and_absolute_paths_resume_the_same_cells(tmp_path, monkeypatch, capsys):
    p = write_trajectory(tmp_path / "toy.npz", np.random.default_rng(3).normal(size=(200, 4, 3)), atomic_numbers=[6, 6, 7, 8])
    monkeypatch.chdir(tmp_path)
    assert _run(tmp_path / "res", "toy.npz") == 0
    capsys.readouterr()
    assert _run(tmp_path / "res", str(p.resolve())) == 0
    assert "skip pt-t" in capsys.readouterr().err
    assert len(list((tmp_path / "res" / "results").glob("*.json"))) == 1
    rec = json.loads(next((tmp_path / "res" / "results").glob("*.json")).read_text())
    assert rec["dataset"] == "toy.npz" and rec["data_sha256"]
    from estagbench.plots import find_records, load_trained  # figures find the run under either spelling

    for spelling in ("toy.npz", str(p.resolve())):
        (found,) = find_records(tmp_path / "res", "pt-t", spelling, epochs=1)
        _, prepared = load_trained(tmp_path / "res", found)
        assert prepared.data.split_hash() == rec["split_hash"]


def test_sample_figure_draws_the_up_axis_upwards():
    pytest.importorskip("matplotlib")
    from estagbench.plots import plot_sample

    truth = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    fig = plot_sample(truth, {"m": truth + 0.5}, up_axis="y")
    ax = fig.axes[0]
    xs, ys, zs = ax.collections[0]._offsets3d  # the "true" points
    assert list(zs) == [2.0, 5.0] and list(xs) == [3.0, 6.0] and list(ys) == [1.0, 4.0]  # (z, x, y): y drawn up
    assert "MSE = 0.25" in ax.get_title()


def test_convert_npy(tmp_path, capsys):
    rng = np.random.default_rng(4)
    folder = tmp_path / "arrays"
    folder.mkdir()
    for k in range(3):
        np.save(folder / f"run{k}.npy", rng.normal(size=(30 + k, 4, 3)))
    assert main(["convert", "--from", "npy", str(folder), "--out", str(tmp_path / "a.npz"), "--length-unit", "nm",
                 "--time-step", "2", "--time-unit", "ps", "--split", "chronological"]) == 0
    t = read_trajectory(tmp_path / "a.npz")
    assert t.names == ["run0", "run1", "run2"] and list(np.diff(t.bounds)) == [30, 31, 32]
    assert (t.length_unit, t.time_step, t.time_unit, t.protocol) == ("nm", 2.0, "ps", {"split": "chronological"})
    assert "wrote" in capsys.readouterr().out
    # without a protocol, three trajectories are split by trajectory; a skeleton given as bone pairs
    (tmp_path / "bones.txt").write_text("0 1\n1 2\n2 3\n")
    assert main(["convert", "--from", "npy", str(folder), "--out", str(tmp_path / "b.npz"),
                 "--edges", str(tmp_path / "bones.txt")]) == 0
    assert read_trajectory(tmp_path / "b.npz").edges.tolist() == [[0, 1], [1, 2], [2, 3]]
    data = load_case(str(tmp_path / "b.npz"), stride=1)
    assert data.params["split"] == "trajectories" and data.leakage()["min_gap_frames"] is None


def test_convert_md(tmp_path):
    datafiles = pytest.importorskip("MDAnalysisTests.datafiles")
    assert main(["convert", "--from", "md", datafiles.PSF, datafiles.DCD, "--select", "name CA",
                 "--out", str(tmp_path / "p.npz"), "--cutoff", "6"]) == 0
    t = read_trajectory(tmp_path / "p.npz")
    assert t.num_nodes == 214 and t.num_frames == 98 and t.time_unit == "ps" and t.length_unit == "Å"


def test_convert_extxyz(tmp_path):
    ase_io = pytest.importorskip("ase.io", reason="ASE comes with the [simulate] extra")
    from ase import Atoms

    rng = np.random.default_rng(6)
    for k in range(2):
        frames = [Atoms("CCO", positions=rng.normal(size=(3, 3))) for _ in range(25)]
        ase_io.write(tmp_path / f"md{k}.extxyz", frames)
    assert main(["convert", "--from", "extxyz", str(tmp_path / "md0.extxyz"), str(tmp_path / "md1.extxyz"),
                 "--out", str(tmp_path / "x.npz"), "--cutoff", "5"]) == 0
    t = read_trajectory(tmp_path / "x.npz")
    assert t.atomic_numbers.tolist() == [6, 6, 8] and t.num_trajectories == 2 and t.length_unit == "Å"
    np.testing.assert_allclose(t.trajectories()[1][3, :, 0], ase_io.read(tmp_path / "md1.extxyz", index=3).positions)


def test_convert_bad_input_is_one_clear_line(tmp_path, capsys):
    assert main(["convert", "--from", "amc", str(tmp_path / "a.amc"), "--out", str(tmp_path / "o.npz")]) == 2
    assert "needs --skeleton SUBJECT.asf" in capsys.readouterr().err
    assert main(["convert", "--from", "npy", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o.npz")]) == 2
    assert "not found" in capsys.readouterr().err and not (tmp_path / "o.npz").exists()
    import sys

    (tmp_path / "a.xyz").write_text("1\n\nC 0 0 0\n")
    with pytest.MonkeyPatch.context() as mp:  # ASE missing: one line naming the extra, no traceback
        mp.setitem(sys.modules, "ase", None)
        mp.setitem(sys.modules, "ase.io", None)
        assert main(["convert", "--from", "extxyz", str(tmp_path / "a.xyz"), "--out", str(tmp_path / "o.npz")]) == 2
    assert "pip install 'estagbench[simulate]'" in capsys.readouterr().err


@pytest.mark.parametrize("arrays, message", [
    ({"offsets": np.array([0, 10, 29])}, "must start at 0 and end at the 30 frames"),
    ({"offsets": np.array([0, 1, 30])}, "at least 2 frames"),
    ({"offsets": np.array([0, 10, 30]), "trajectory_names": np.array(["a", "a"])}, "unique"),
    ({"up_axis": np.array("w")}, "one of x, y, z"),
    ({"time_step": np.array(2.0)}, "needs 'time_unit'"),
    ({"protocol": np.array('{"split": "random"}')}, "split must be one of"),
    ({"offsets": np.array([0, 10, 20, 30]), "protocol": np.array('{"split": "trajectories", "train": ["x"], '
                                                                 '"val": [1], "test": [2]}')}, "does not have"),
])
def test_bad_v2_files_name_the_file_and_the_fix(tmp_path, arrays, message):
    p = tmp_path / "bad.npz"
    np.savez(p, positions=np.random.rand(30, 4, 3), **arrays)
    with pytest.raises(DataError, match=message) as err:
        load_case(str(p))
    assert str(p) in str(err.value)


def test_tables_for_a_dataset_outside_the_paper(tmp_path, capsys):
    rng = np.random.default_rng(5)
    parts = [np.cumsum(rng.normal(size=(60, 4, 3)), axis=0) for _ in range(5)]
    p = write_trajectory(tmp_path / "mine.npz", parts, atomic_numbers=[6, 6, 7, 8], display_exponent=2,
                         protocol={"split": "trajectories", "stride": 2})
    assert main(["run", "--models", "pt-t,pt-s", "--dataset", str(p), "--epochs", "1", "--seeds", "1,2",
                 "--out", str(tmp_path / "r"), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["tables", "--dataset", str(p), "--results", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("**Dataset mine.npz.** Prediction error (×10⁻²) on mine.npz.")
    assert "| Method | mine |" in out and "| Pt-s |" in out and "| Pt-t |" in out and "Table 1" not in out
    assert "- units: test MSE ×10⁻² Å²" in out and "- leakage: mine.npz/mine: 0.0% of test targets" in out
    assert main(["tables", "--dataset", str(p), "--results", str(tmp_path / "r"), "--format", "all",
                 "--out", str(tmp_path / "t")]) == 0
    assert sorted(f.name for f in (tmp_path / "t").iterdir()) == ["dataset-mine.csv", "dataset-mine.md", "dataset-mine.tex"]
    # another file of the same name (other content): its records are not this file's
    write_trajectory(p, [x + 1.0 for x in parts], atomic_numbers=[6, 6, 7, 8], protocol={"split": "trajectories"})
    assert main(["tables", "--dataset", str(p), "--results", str(tmp_path / "r")]) == 2
    assert "Run `estagbench run --dataset" in capsys.readouterr().err
    assert os.path.exists(tmp_path / "r" / "results")


def test_readme_your_own_data_section_runs_as_written(tmp_path, shared_data):
    """The README's "Your own data" commands, run in bash as written (``estagbench`` = this checkout's CLI);
    every line of its output blocks must appear in what they print, except the ESTAG row's digits
    (a trained model's last digits depend on the machine)."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Your own data", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.+?)\n```", section, flags=re.S)
    expected = re.findall(r"```text\n(.+?)\n```", section, flags=re.S)
    assert len(commands) == 2 and len(expected) == 3
    script = f'estagbench() {{ "{sys.executable}" -m estagbench.cli "$@"; }}\nset -e\n' + "\n".join(commands)
    env = {**os.environ, "ESTAGBENCH_DATA": str(shared_data),
           "PYTHONPATH": str(Path(__file__).resolve().parents[1]) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    printed = out.stdout + out.stderr
    for block in expected:
        for line in filter(None, block.splitlines()):
            if line.startswith("| ESTAG | "):
                assert "| ESTAG | " in printed
            else:
                assert line in printed, line


def test_paper_tables_state_their_units(tmp_path):
    from estagbench.tables import build_table, get_table_spec, load_records

    df = load_records(tmp_path / "empty")
    assert build_table(get_table_spec(1), df).meta["units"].startswith("test MSE ×10⁻³ Å² (printed value = MSE · 10^3")
    assert build_table(get_table_spec(3), df).meta["units"].startswith("test MSE ×10⁻¹ ASF unit²")
    assert build_table(get_table_spec(2), df).meta["units"].startswith("test MSE Å²")


def test_datasets_listing_shows_windows_per_split(tmp_path, capsys):
    parts = [np.random.default_rng(7).normal(size=(50, 4, 3)) for _ in range(4)]
    p = write_trajectory(tmp_path / "four.npz", parts, protocol={"split": "trajectories", "train": [0, 1], "val": [2],
                                                                 "test": [3], "stride": 2})
    assert main(["datasets", str(p)]) == 0
    out = capsys.readouterr().out
    assert "four.npz/four: windows train/val/test = 60/30/30 (T=10, Δ=2, 4 trajectories); leakage: 0.0%" in out
    assert "units MSE unit²; 1 optimiser step(s) per epoch at batch 100" in out


def test_records_stored_before_content_ids_are_still_resumed(tmp_path, monkeypatch, capsys):
    """A record whose configuration names the file by its path as typed (the older rule) is reused."""
    from estagbench.results import ResultStore, cell_id, config_hash
    from estagbench.runner import _cell_config, plan_run

    write_trajectory(tmp_path / "toy.npz", np.random.default_rng(8).normal(size=(200, 4, 3)), atomic_numbers=[6, 6, 7, 8])
    monkeypatch.chdir(tmp_path)
    assert _run(tmp_path / "res", "toy.npz") == 0
    (new_path,) = (tmp_path / "res" / "results").glob("*.json")
    rec = json.loads(new_path.read_text())
    plan = plan_run("pt-t", "toy.npz", None, [1], 1, "paper", tmp_path / "res")
    legacy = config_hash(_cell_config(plan, "pt-t", "toy", load_case("toy.npz").params, legacy=True))
    assert legacy != rec["config_hash"]
    new_path.unlink()  # store it as the older code did
    ResultStore(tmp_path / "res").put(cell_id("pt-t", "toy.npz", "toy", 1, legacy),
                                      {**rec, "config_hash": legacy, "data_sha256": None})
    capsys.readouterr()
    assert _run(tmp_path / "res", "toy.npz") == 0
    assert "skip pt-t toy.npz/toy seed 1: stored" in capsys.readouterr().err
    assert len(list((tmp_path / "res" / "results").glob("*.json"))) == 1
