"""CMU motion capture: ASF/AMC parsing, forward kinematics, cases and downloads.

Real data comes from ``$ESTAGBENCH_DATA`` (default ``<repo>/../shared/data``); tests
that need it skip when it is absent unless ``ESTAGBENCH_REQUIRE_DATA=1``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from estagbench.data.errors import ChecksumError, DataError, DataNotFoundError
from estagbench.data.mocap import (
    ASF_UNIT_METRES,
    forward_kinematics,
    load_motion,
    parse_amc,
    parse_asf,
    skeleton_edges,
)
from estagbench.data.mocap import dataset as mocap  # cases, download and loader (URL_BASE is read there)


def _data_dir() -> Path:
    env = os.environ.get("ESTAGBENCH_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


@pytest.fixture(scope="module")
def data_dir() -> Path:
    root = _data_dir()
    if not (root / "cmu_mocap" / "subjects" / "35" / "35_01.amc").exists():
        if os.environ.get("ESTAGBENCH_REQUIRE_DATA") == "1":
            pytest.fail(f"ESTAGBENCH_REQUIRE_DATA=1 but {root}/cmu_mocap/subjects/35/35_01.amc is missing")
        pytest.skip(f"CMU mocap files not found under {root} (set $ESTAGBENCH_DATA)")
    return root


@pytest.fixture(scope="module")
def s35(data_dir: Path) -> Path:
    return data_dir / "cmu_mocap" / "subjects" / "35"


@pytest.fixture(scope="module")
def fk_35_01(s35: Path) -> np.ndarray:
    return forward_kinematics(s35 / "35.asf", s35 / "35_01.amc")


def _amc_lines(path: Path) -> list[str]:
    return path.read_bytes().decode("ascii").splitlines()


def _write_lines(path: Path, lines: list[str]) -> Path:
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("ascii"))
    return path


def _frame_line(lines: list[str], frame: int) -> int:
    return lines.index(str(frame))


# ----------------------------------------------------------------- skeleton / FK
def test_skeleton_31_joints_root_first(s35: Path) -> None:
    sk = parse_asf(s35 / "35.asf")
    assert sk.num_joints == 31
    assert sk.joint_names[0] == "root" and sk.joint_names[1] == "lhipjoint" and sk.joint_names[-1] == "rthumb"
    edges = skeleton_edges(s35 / "35.asf")
    assert edges.shape == (30, 2)
    assert np.array_equal(edges[:, 1], np.arange(1, 31))
    names = sk.joint_names
    pairs = {(names[p], names[c]) for p, c in edges}
    assert {("root", "lhipjoint"), ("root", "lowerback"), ("thorax", "lclavicle"), ("rwrist", "rthumb")} <= pairs
    assert sum(len(b.dof) for b in sk.bones) + 6 == 62  # the CMU skeleton's 62 DOFs


def test_bone_lengths_constant_over_all_frames(s35: Path, fk_35_01: np.ndarray) -> None:
    sk = parse_asf(s35 / "35.asf")
    assert fk_35_01.shape == (358, 31, 3)
    edges = skeleton_edges(sk)
    lengths = np.linalg.norm(fk_35_01[:, edges[:, 1]] - fk_35_01[:, edges[:, 0]], axis=-1)
    asf_lengths = np.array([b.length for b in sk.bones])
    assert np.abs(lengths - lengths[0]).max() < 1e-9
    assert np.abs(lengths - asf_lengths).max() < 1e-9


def test_root_translation_is_amc_root_times_length_scale(s35: Path) -> None:
    # independent reading of the AMC text: the first three numbers of every "root" line
    roots = np.array(
        [[float(v) for v in ln.split()[1:4]] for ln in _amc_lines(s35 / "35_01.amc") if ln.startswith("root")]
    )
    assert roots.shape == (358, 3)
    for scale in (1.0, ASF_UNIT_METRES):
        pos = forward_kinematics(s35 / "35.asf", s35 / "35_01.amc", length_scale=scale)
        np.testing.assert_allclose(pos[:, 0], roots * scale, rtol=0, atol=1e-12)
    # CMU subject 35 is about 1.6-1.9 m tall (ASF unit = 1/0.45 inch)
    height = np.ptp(pos[0, :, 1])
    assert 1.5 < height < 1.9


def test_rest_pose_and_root_rotation(s35: Path, tmp_path: Path) -> None:
    """All-zero angles give the ASF rest pose; a root yaw of 90° rotates it about +y (right-handed)."""
    sk = parse_asf(s35 / "35.asf")
    lines = [":FULLY-SPECIFIED", ":DEGREES", "1", "root 1 2 3 0 0 0"]
    lines += [f"{b.name} " + " ".join("0" for _ in b.dof) for b in sk.bones if b.dof]
    lines += ["2", "root 1 2 3 0 90 0"] + [f"{b.name} " + " ".join("0" for _ in b.dof) for b in sk.bones if b.dof]
    pos = forward_kinematics(s35 / "35.asf", _write_lines(tmp_path / "rest.amc", lines))
    rest = np.zeros((31, 3))
    rest[0] = [1, 2, 3]
    for j in sk.fk_order:  # parents first
        b = sk.bones[j]
        rest[j + 1] = rest[b.parent] + b.length * b.direction
    np.testing.assert_allclose(pos[0], rest, atol=1e-12)
    ry = np.array([[0.0, 0, 1], [0, 1, 0], [-1, 0, 0]])  # +90° about y: x -> -z, z -> x
    np.testing.assert_allclose(pos[1] - pos[1, :1], (rest - rest[:1]) @ ry.T, atol=1e-12)


def test_feet_touch_the_ground_every_frame(fk_35_01: np.ndarray) -> None:
    """Walking keeps one foot on the floor: the lowest joint's height varies < 1 unit (5.6 cm).

    A wrong rotation convention (reversed Euler order, negated angles) breaks this.
    """
    lowest = fk_35_01[:, :, 1].min(axis=1)
    assert np.ptp(lowest) < 1.0


def test_30fps_conversion_is_every_4th_frame(data_dir: Path, fk_35_01: np.ndarray, tmp_path: Path) -> None:
    d30 = data_dir / "cmu_mocap" / "35_30fps"
    pos30 = forward_kinematics(d30 / "35.asf", d30 / "35_01.amc")
    assert pos30.shape == (90, 31, 3)
    np.testing.assert_array_equal(pos30, fk_35_01[::4])
    mocap._derive_30fps(data_dir / "cmu_mocap" / "subjects" / "35" / "35_01.amc", tmp_path / "35_01.amc")
    assert (tmp_path / "35_01.amc").read_bytes() == (d30 / "35_01.amc").read_bytes()


# ------------------------------------------------------------------- bad input
def _corrupt(lines: list[str], kind: str) -> tuple[list[str], str, str]:
    """Return (lines, frame shown in the error, words expected in the error)."""
    lines = list(lines)
    i = _frame_line(lines, 7)
    if kind == "missing bone":
        k = next(j for j in range(i, i + 31) if lines[j].startswith("rtibia"))
        del lines[k]
        return lines, "frame 7", "missing bone line"
    if kind == "unknown bone":
        lines[i + 3] = "tail 1 2 3"
        return lines, "frame 7", "unknown bone 'tail'"
    if kind == "wrong count":
        k = next(j for j in range(i, i + 31) if lines[j].startswith("lfemur"))
        lines[k] = lines[k] + " 4.5"
        return lines, "frame 7", "has 4 values, expected 3"
    if kind == "nan":
        k = next(j for j in range(i, i + 31) if lines[j].startswith("head"))
        lines[k] = "head nan 0 0"
        return lines, "frame 7", "NaN"
    if kind == "not a number":
        lines[i + 1] = "root 1 2 x 0 0 0"
        return lines, "frame 7", "not a number"
    if kind == "truncated":
        return lines[:-5], "frame 358", "truncated"
    if kind == "non-consecutive":
        del lines[i : _frame_line(lines, 8)]
        return lines, "frame 8", "not consecutive"
    if kind == "duplicate":
        lines.insert(i + 2, lines[i + 1])
        return lines, "frame 7", "appears twice"
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    ["missing bone", "unknown bone", "wrong count", "nan", "not a number", "truncated", "non-consecutive", "duplicate"],
)
def test_bad_amc_raises_data_error(s35: Path, tmp_path: Path, kind: str) -> None:
    lines, frame, words = _corrupt(_amc_lines(s35 / "35_01.amc"), kind)
    bad = _write_lines(tmp_path / "35_01.amc", lines)
    with pytest.raises(DataError) as err:
        parse_amc(bad, parse_asf(s35 / "35.asf"))
    msg = str(err.value)
    assert str(bad) in msg and frame in msg and words in msg, msg


def test_empty_and_binary_amc(s35: Path, tmp_path: Path) -> None:
    sk = parse_asf(s35 / "35.asf")
    header_only = _write_lines(tmp_path / "h.amc", _amc_lines(s35 / "35_01.amc")[:3])
    with pytest.raises(DataError, match="no frames"):
        parse_amc(header_only, sk)
    binary = tmp_path / "b.amc"
    binary.write_bytes(b"\x89PNG\r\n\x00\xff")
    with pytest.raises(DataError, match="not a text"):
        parse_amc(binary, sk)


def test_bad_asf_raises_data_error(s35: Path, tmp_path: Path) -> None:
    lines = _amc_lines(s35 / "35.asf")
    no_child = [ln.replace(" lthumb", "") if ln.strip().startswith("lwrist") else ln for ln in lines]
    with pytest.raises(DataError, match=r"\['lthumb'\] are missing from :hierarchy"):
        parse_asf(_write_lines(tmp_path / "a.asf", no_child))
    first_bone = next(i for i, ln in enumerate(lines) if ln.strip() == "begin")
    with pytest.raises(DataError, match="no 'end'"):
        parse_asf(_write_lines(tmp_path / "b.asf", lines[: first_bone + 4]))  # ends inside the first bone block


# ------------------------------------------------------------------------ cases
def test_walk_30fps_splits(data_dir: Path) -> None:
    case = load_motion("walk-30fps", data_dir)
    assert case.split_sizes() == {"train": 825, "val": 450, "test": 450}
    assert (case.history, case.stride) == (10, 1)
    assert len(case.trajectories) == 23
    assert case.params["trials"][:2] == ["35_01", "35_02"] and case.params["trials"][16] == "35_28"
    keys = {name: {tuple(r) for r in w.tolist()} for name, w in case.windows.items()}
    assert all(len(k) == len(case.windows[n]) for n, k in keys.items())
    assert not (keys["train"] & keys["val"] or keys["train"] & keys["test"] or keys["val"] & keys["test"])
    for name, trials in mocap.SPLIT_TRIALS["walk"].items():
        w = case.windows[name]
        assert set(w[:, 0].tolist()) == set(trials)
        assert all((w[:, 0] == t).sum() == 75 for t in trials)  # every trial yields windows
        assert w[:, 1].min() >= 0 and w[:, 1].max() < 75
    for traj in case.trajectories:
        assert traj.shape[1:] == (31, 1, 3) and abs(traj.mean()) < 1e-9
    # the authors' procedure, written out with the legacy global RNG
    state = np.random.get_state()
    np.random.seed(100)
    expected = {
        n: [(t, np.random.choice(np.arange(75), size=75, replace=False)) for t in trials]
        for n, trials in mocap.SPLIT_TRIALS["walk"].items()
    }
    np.random.set_state(state)
    for name in ("train", "val", "test"):
        rows = [(t, s) for t, st in expected[name] for s in st]
        assert case.windows[name].tolist() == [list(r) for r in rows]
    info = case.info()
    assert info.node_features.shape == (31, 1) and bool((info.node_features == 1).all())
    hop = info.edge_attr[:, 2]
    assert bool((info.edge_attr[:, :2] == 1).all()) and int((hop == 1).sum()) == 60
    assert bool((info.one_hop_mask == (hop == 1)).all())
    assert [f.official for f in case.files[:2]] == [True, False]


def test_walk_35_01_pt_baselines(data_dir: Path) -> None:
    case = load_motion("walk-35_01", data_dir)
    assert case.split_sizes() == {"train": 184, "val": 61, "test": 61}
    assert all(f.official for f in case.files)
    test = case.prepare(dtype=__import__("torch").float64).splits["test"]
    mse = {k: float(((test.x[:, i] - test.y) ** 2).mean()) for k, i in (("s", 0), ("m", 4), ("t", 9))}
    assert mse["t"] < mse["m"] < mse["s"]
    # same order of magnitude as the paper's walk Pt-t (3.831e-1): same fps and Δ = 5
    assert 0.1 < mse["t"] < 1.0
    # y is frame start + 50 of the trial after dropping the last frame and removing the scalar mean
    pos = case.trajectories[0]
    s0 = int(case.windows["test"][0, 1])
    np.testing.assert_allclose(test.y[0].numpy(), pos[s0 + 50])


def _fake_subject(root: Path, s35: Path, subject: str, frames: list[int]) -> None:
    """Write ``<subject>.asf`` (35.asf) and trials cut from 35_01.amc to the given frame counts."""
    folder = root / "cmu_mocap" / "subjects" / subject
    folder.mkdir(parents=True)
    shutil.copy(s35 / "35.asf", folder / f"{subject}.asf")
    lines = _amc_lines(s35 / "35_01.amc")
    for trial, n in enumerate(frames, 1):
        end = _frame_line(lines, n + 1) if n < 358 else len(lines)
        _write_lines(folder / f"{subject}_{trial:02d}.amc", lines[:end])


def test_walk_case_with_copies_of_35_01(s35: Path, tmp_path: Path) -> None:
    folder = tmp_path / "cmu_mocap" / "subjects" / "35"
    folder.mkdir(parents=True)
    shutil.copy(s35 / "35.asf", folder)
    for t in mocap.WALK_TRIALS:
        os.symlink(s35 / "35_01.amc", folder / f"35_{t:02d}.amc")
    case = load_motion("walk", tmp_path)
    assert case.split_sizes() == {"train": 1100, "val": 600, "test": 600}
    assert case.stride == 5 and case.windows["train"][:, 1].max() < 300
    assert case.params["trials"][-1] == "35_34"


def test_basketball_keeps_trials_longer_than_170(s35: Path, tmp_path: Path) -> None:
    frames = [171 if t % 4 else 170 for t in range(33)]  # 24 trials of 171 frames, 9 of 170
    assert sum(f > 170 for f in frames) == 24
    _fake_subject(tmp_path, s35, "102", frames)
    case = load_motion("basketball", tmp_path)
    kept = [f"102_{t + 1:02d}" for t in range(33) if frames[t] > 170]
    assert case.params["trials"] == kept
    assert case.split_sizes() == {"train": 1200, "val": 600, "test": 600}
    assert all(traj.shape[0] == 170 for traj in case.trajectories)
    assert case.windows["test"][:, 1].max() < 120
    case.prepare()  # every window fits its trial


def test_stride_override_cuts_start_range_or_fails(s35: Path, tmp_path: Path) -> None:
    _fake_subject(tmp_path, s35, "102", [171] * 33)
    case = load_motion("basketball", tmp_path, stride=6)  # T·Δ = 60: starts must stay below 170 - 60
    assert case.stride == 6 and case.windows["train"][:, 1].max() < 110
    assert any("start range cut from 120 to 110" in n for n in case.notes)
    case.prepare()
    with pytest.raises(DataError, match=r"102_01.amc: .*shorter than one window"):
        load_motion("basketball", tmp_path, stride=20)
    case = load_motion("walk-35_01", s35.parents[2], stride=30)
    assert case.stride == 30 and case.split_sizes() == {"train": 34, "val": 11, "test": 11}


def test_missing_files_name_the_download_command(s35: Path, tmp_path: Path) -> None:
    folder = tmp_path / "cmu_mocap" / "subjects" / "35"
    folder.mkdir(parents=True)
    shutil.copy(s35 / "35.asf", folder)
    shutil.copy(s35 / "35_01.amc", folder)
    with pytest.raises(DataNotFoundError) as err:
        load_motion("walk", tmp_path)
    msg = str(err.value)
    assert "estagbench download motion-walk" in msg and "35_02.amc" in msg and "35_34.amc" in msg
    assert "35_01.amc" not in msg
    with pytest.raises(KeyError, match="valid: walk, basketball"):
        load_motion("run", tmp_path)


def test_download_streams_and_checks_sha(s35: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mirror = tmp_path / "mirror"
    (mirror / "35").mkdir(parents=True)
    shutil.copy(s35 / "35.asf", mirror / "35")
    shutil.copy(s35 / "35_01.amc", mirror / "35")
    monkeypatch.setattr(mocap, "URL_BASE", mirror.as_uri())
    got = mocap.download_motion("walk-35_01", tmp_path / "cache")
    assert [p.name for p in got] == ["35.asf", "35_01.amc"]
    assert got[1].read_bytes() == (s35 / "35_01.amc").read_bytes()
    assert not list((tmp_path / "cache").rglob("*.part"))
    assert load_motion("walk-35_01", tmp_path / "cache").split_sizes()["train"] == 184
    # a corrupted mirror copy fails the known SHA-256 and leaves nothing behind
    (mirror / "35" / "35_01.amc").write_bytes(b"1\r\nroot 0 0 0 0 0 0\r\n")
    with pytest.raises(ChecksumError, match="expected 0743f4ea"):
        mocap.download_motion("walk-35_01", tmp_path / "cache2")
    assert not (tmp_path / "cache2" / "cmu_mocap" / "subjects" / "35" / "35_01.amc").exists()


def test_download_without_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mocap, "URL_BASE", "http://127.0.0.1:9/subjects")
    with pytest.raises(DataNotFoundError) as err:
        mocap.download_motion("walk", tmp_path)
    msg = str(err.value)
    assert "http://127.0.0.1:9/subjects/35/35.asf" in msg and str(tmp_path / "cmu_mocap") in msg


def test_a_changed_checked_file_warns_and_is_marked_non_official(s35: Path, tmp_path: Path) -> None:
    folder = tmp_path / "cmu_mocap" / "subjects" / "35"
    folder.mkdir(parents=True)
    shutil.copy(s35 / "35_01.amc", folder)
    (folder / "35.asf").write_text((s35 / "35.asf").read_text() + "# an edited copy\n")
    with pytest.warns(RuntimeWarning, match=r"35.asf has SHA-256 .*not the official file's"):
        case = load_motion("walk-35_01", tmp_path)
    assert {Path(f.path).name: f.official for f in case.files} == {"35.asf": False, "35_01.amc": True}
