"""``estagbench simulate md17-xtb`` (issue 22): determinism, units, metadata, resume, quality checks, bad input.

One 2000-frame ethanol trajectory is generated through the command line (in a fresh process, as a
user runs it); an in-process run with the same settings is interrupted and resumed and must give
the same bits.  Equilibration is shortened to 0.25 ps to keep the module under ~30 s on 2 cores.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tblite", reason="needs the [simulate] extra (tblite, ase, rdkit)")
pytest.importorskip("ase", reason="needs the [simulate] extra (tblite, ase, rdkit)")
pytest.importorskip("rdkit", reason="needs the [simulate] extra (tblite, ase, rdkit)")

from estagbench.cli import main  # noqa: E402
from estagbench.simulate.md17_xtb import XTBSettings, cache_path, generate_molecule, read_manifest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FRAMES = 2000
EQ_PS = 0.25
ARGS = ["simulate", "md17-xtb", "--molecules", "ethanol", "--frames", str(FRAMES), "--equilibration-ps", str(EQ_PS)]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The command-line run, in its own process (the user's environment: no OMP_NUM_THREADS)."""
    data = tmp_path_factory.mktemp("xtbdata")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "ESTAGBENCH_DATA")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-m", "estagbench.cli", *ARGS, "--data-dir", str(data), "--no-progress"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    path = Path(proc.stdout.strip().splitlines()[-1])
    assert path == cache_path(XTBSettings("ethanol", FRAMES, equilibration_ps=EQ_PS), data)
    return path


def _arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as d:
        return {k: d[k] for k in d.files}


def test_layout_units_and_metadata(generated: Path) -> None:
    a = _arrays(generated)
    assert generated.parent.name == f"seed1-frames{FRAMES}" and generated.name == "md17_xtb_ethanol.npz"
    assert "md17_xtb" in generated.parts and "md17" not in generated.parts
    assert a["R"].shape == (FRAMES, 9, 3) and a["F"].shape == (FRAMES, 9, 3) and a["E"].shape == (FRAMES, 1)
    assert a["R"].dtype == a["E"].dtype == a["F"].dtype == np.float32 and a["z"].dtype == np.uint8
    assert sorted(a["z"].tolist()) == [1] * 6 + [6, 6, 8]
    # units: forces in kcal/mol/Å are minus the gradient of E in kcal/mol along the path (trapezoid rule)
    R, E, F = (a[k].astype(np.float64) for k in ("R", "E", "F"))
    work = -0.5 * ((F[1:] + F[:-1]) * np.diff(R, axis=0)).sum(axis=(1, 2))
    dE = np.diff(E[:, 0])
    assert np.std(dE) > 0.01  # the energy moves by more than float32 rounding
    assert np.abs(dE - work).mean() < 0.1 * np.abs(dE).mean()
    # GFN2-xTB ethanol is about -11.4 Hartree = -7.2e3 kcal/mol (eV would be -310, Hartree -11.4)
    assert -7400 < E.mean() < -7000
    meta = json.loads(str(a["metadata"]))
    assert meta["generator"] == "estagbench simulate md17-xtb" and "not DFT" in meta["not_official_md17"]
    assert meta["settings"]["temperature_k"] == 500 and meta["settings"]["equilibration_ps"] == EQ_PS
    assert meta["settings"]["method"] == "GFN2-xTB" and meta["settings"]["step_fs"] == 0.5
    assert set(meta["versions"]) >= {"tblite", "ase", "rdkit", "numpy"}
    assert meta["units"] == {"R": "angstrom", "E": "kcal/mol", "F": "kcal/mol/angstrom", "time_step_fs": 0.5}
    h = hashlib.sha256()
    for key in ("E", "F", "R", "z"):
        h.update(f"{key}|{a[key].dtype.str}|{a[key].shape}|".encode())
        h.update(np.ascontiguousarray(a[key]).tobytes())
    assert meta["sha256_arrays"] == h.hexdigest()
    man = read_manifest(generated)
    assert man["sha256_file"] == hashlib.sha256(generated.read_bytes()).hexdigest()
    assert man["settings"] == meta["settings"] and man["quality"] == meta["quality"]
    assert not list(generated.parent.glob(".work-*")), "the work folder is removed after a successful run"


def test_quality_report(generated: Path) -> None:
    q = read_manifest(generated)["quality"]
    assert q["frames"] == FRAMES and len(q["temperature_k"]["blocks"]) == 1  # 2000 × 0.5 fs = one 1 ps block
    assert 150 < q["temperature_k"]["mean"] < 800
    assert q["bonds"]["heavy_count"] == 2 and q["bonds"]["max_heavy_change_A"] < 0.3 and q["passed"]["bonds_intact"]
    assert abs(q["conserved_energy"]["drift_mev_per_ps_per_atom"]) < 1.0
    disp = q["displacement_per_step_A"]
    # real MD17 ethanol at 500 K: ~0.013 Å all atoms, ~0.004 Å heavy atoms per 0.5 fs step
    assert 0.003 < disp["all_atoms"]["mean"] < 0.03 and 0.001 < disp["heavy_atoms"]["mean"] < 0.01
    assert disp["heavy_atoms"]["mean"] < disp["all_atoms"]["mean"]


def test_interrupt_and_resume_equal_uninterrupted(generated: Path, tmp_path: Path) -> None:
    settings = XTBSettings("ethanol", FRAMES, equilibration_ps=EQ_PS, checkpoint_every=700)
    out = tmp_path / "md17_xtb_ethanol.npz"

    class Stop(Exception):
        pass

    def stop(step: int) -> None:
        if step == 1800:
            raise Stop

    with pytest.raises(Stop):
        generate_molecule(settings, out, progress=False, on_step=stop)
    assert not out.exists()
    (work,) = tmp_path.glob(".work-ethanol-*")
    with np.load(work / "state.npz") as st:
        assert int(st["step"]) == 1400 and {"positions", "momenta", "eta", "p_eta", "rng"} <= set(st.files)
    generate_molecule(settings, out, progress=False)
    a, b = _arrays(out), _arrays(generated)
    for key in ("R", "z", "E", "F"):
        assert np.array_equal(a[key], b[key]), key
    qa, qb = json.loads(str(a["metadata"]))["quality"], json.loads(str(b["metadata"]))["quality"]
    assert qa == qb
    assert not work.exists()
    # rerunning reuses the file; other settings are refused with the fix named
    assert generate_molecule(settings, out, progress=False) == out
    with pytest.raises(ValueError, match="--force"):
        generate_molecule(dataclasses.replace(settings, seed=2), out, progress=False)


def test_scf_failure_names_the_step_and_keeps_the_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ase.calculators.calculator import CalculationFailed

    from estagbench.simulate import _xtb_md

    settings = XTBSettings("ethanol", 60, equilibration_ps=0.0, checkpoint_every=20)
    out = tmp_path / "md17_xtb_ethanol.npz"
    structure = _xtb_md.initial_structure(settings)
    monkeypatch.setattr(_xtb_md, "initial_structure", lambda s: structure)
    calc_class = _xtb_md._md_calculator_class()
    real = calc_class.calculate
    calls = {"n": 0}

    def flaky(self, *args, **kwargs):
        calls["n"] += 1  # one SCF for frame 0, then one per step
        if calls["n"] > 46:
            raise CalculationFailed("SCF not converged in 250 cycles")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(calc_class, "calculate", flaky)
    with pytest.raises(ValueError, match=r"SCF did not converge .* at step 46 \(production frame 46\).*checkpoint \(step 40\)"):
        generate_molecule(settings, out, progress=False)
    assert not out.exists() and not out.with_suffix(".json").exists()
    (work,) = tmp_path.glob(".work-ethanol-*")
    with np.load(work / "state.npz") as st:
        assert int(st["step"]) == 40


def test_blow_up_is_named(tmp_path: Path) -> None:
    settings = XTBSettings("ethanol", 400, equilibration_ps=0.0, checkpoint_every=1000, blowup_bond_change_a=0.02)
    with pytest.raises(ValueError, match=r"blew up .* at step \d+ .*no checkpoint was written yet"):
        generate_molecule(settings, tmp_path / "x.npz", progress=False)
    assert not (tmp_path / "x.npz").exists()


@pytest.mark.parametrize(("argv", "needle"), [
    (["--molecules", "ethanol,water"], "unknown molecule(s) ['water'] for --molecules"),
    (["--molecules", "ethanol", "--frames", "0"], "--frames 0: must be 'official' or an integer >= 2"),
    (["--molecules", "ethanol", "--frames", "-3"], "--frames -3"),
    (["--molecules", "ethanol", "--temperature", "0"], "--temperature 0.0: must be a positive"),
    (["--molecules", "ethanol", "--temperature", "-1"], "--temperature -1.0"),
])
def test_bad_input_one_line(argv: list[str], needle: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["simulate", "md17-xtb", *argv, "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("estagbench: error:") and needle in err and "\n" not in err
    assert not any(tmp_path.iterdir())


def test_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tblite" else real(name, *a))
    assert main(["simulate", "md17-xtb", "--molecules", "ethanol", "--frames", "10", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "pip install 'estagbench[simulate]'" in err and "tblite" in err and "\n" not in err


def test_dataset_short_variant_loads_and_trains(generated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from estagbench.data.catalog import load_case
    from estagbench.data.md17 import md17_case, read_md17_arrays
    from estagbench.results import load_results

    data_dir = generated.parents[2]
    with pytest.warns(RuntimeWarning, match="non-default settings .*equilibration_ps"):
        case = load_case("md17-xtb-short", "ethanol", data_dir=data_dir)
    assert case.dataset == "md17" and case.num_nodes == 3 and case.history == 10 and case.stride == 10
    assert {k: len(v) for k, v in case.windows.items()} == {"train": 179, "val": 89, "test": 89}
    assert case.params["split_margin"] == 100 and case.params["split_seed"] == 100
    assert not case.files[0].official and case.params["source"] == "md17-xtb (short)"
    # the same code as md17: only the file differs
    R, z, generator = read_md17_arrays(generated)
    assert generator == "estagbench simulate md17-xtb"
    ref = md17_case(generated, "ethanol", R, z, case.files[0], split_margin=100)
    assert all(np.array_equal(ref.windows[k], case.windows[k]) for k in ref.windows)
    assert np.array_equal(ref.edge_index, case.edge_index) and np.array_equal(ref.trajectories[0], case.trajectories[0])
    out = tmp_path / "results"
    rc = main(["run", "--models", "estag", "--dataset", "md17-xtb-short", "--molecules", "ethanol", "--epochs", "1",
               "--seeds", "1", "--data-dir", str(data_dir), "--out", str(out), "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    df = load_results(out)
    assert list(df.dataset) == ["md17-xtb-short"] and np.isfinite(df.test_mse.iloc[0])


def test_official_variant_missing_names_the_command(tmp_path: Path) -> None:
    from estagbench.data.catalog import load_case

    with pytest.raises(FileNotFoundError, match="estagbench simulate md17-xtb --molecules uracil --frames official"):
        load_case("md17-xtb", "uracil", data_dir=tmp_path)


def test_data_card(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["datasets", "--info", "md17-xtb"]) == 0
    card = capsys.readouterr().out
    for needle in ("GFN2-xTB", "not DFT", "Nosé–Hoover", "Seed 1", "margin 10 000", "md17-xtb-short"):
        assert needle in card


def test_quality_checks_can_fail() -> None:
    """The checker itself: a broken bond, a wrong temperature and a drifting energy are caught and measured."""
    from estagbench.simulate.xtb_quality import KB_EV_PER_K, quality_report

    rng = np.random.default_rng(0)
    n, frames = 3, 4000
    z = np.array([6, 8, 1])
    R = np.array([[0.0, 0, 0], [1.4, 0, 0], [-1.0, 0, 0]]) + 0.001 * rng.standard_normal((frames, n, 3))
    ekin = np.full(frames, 1.5 * n * KB_EV_PER_K * 500.0)  # exactly 500 K over 3N
    econs = np.linspace(0.0, 0.002, frames)  # +2 meV over 2 ps = +1 meV/ps
    bonds = np.array([[0, 1], [0, 2]])
    ok = quality_report(R, z, step_fs=0.5, temperature_k=500, ekin_ev=ekin, econs_ev=econs, bonds=bonds)
    assert ok["all_passed"] and len(ok["temperature_k"]["blocks"]) == 2
    assert ok["temperature_k"]["mean"] == pytest.approx(500.0)
    assert ok["conserved_energy"]["drift_mev_per_ps"] == pytest.approx(1.0, rel=1e-3)
    broken = R.copy()
    broken[2500:, 1] += [1.0, 0, 0]  # the C-O bond stretches by 1 Å
    bad = quality_report(broken, z, step_fs=0.5, temperature_k=400, ekin_ev=ekin, econs_ev=econs * 100, bonds=bonds,
                         reference=R[0])
    assert bad["passed"] == {"finite": True, "temperature_mean": False, "energy_drift": False, "bonds_intact": False}
    assert bad["bonds"]["max_heavy_change_A"] == pytest.approx(1.0, abs=0.01)
    assert bad["displacement_per_step_A"]["heavy_atoms"]["max"] == pytest.approx(1.0, abs=0.01)


def test_generated_file_is_never_taken_for_official_md17(generated: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Even copied to MD17's place with MD17's frame count, a generated file is marked non-official."""
    import shutil

    from estagbench.data import md17

    (tmp_path / "md17").mkdir()
    shutil.copy(generated, tmp_path / "md17" / "md17_ethanol.npz")
    monkeypatch.setitem(md17.FILES, "ethanol", ("md17_ethanol.npz", FRAMES, 3))
    with pytest.warns(RuntimeWarning, match="not the official MD17 file .generated by 'estagbench simulate md17-xtb'"):
        case = md17.load_md17("ethanol", tmp_path, split_margin=100)
    assert not case.files[0].official
