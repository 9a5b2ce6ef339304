"""AdK loader: 4-channel residue nodes, OT1/OT2 handling, CA-cutoff graph, chronological
split per trajectory, downloads, and bad input (estagbench.data.adk)."""

from __future__ import annotations

import hashlib
import io
import os
import urllib.error
import warnings
from pathlib import Path

import numpy as np
import pytest

from estagbench.data import ChecksumError, DataError, DataNotFoundError
from estagbench.data.adk import (
    ADK_EQUILIBRIUM_FILES,
    CA_CHANNEL,
    adk_chronological_split,
    adk_mini_paths,
    download_adk_equilibrium,
    load_adk,
    load_adk_case,
    parse_md_spec,
)
from estagbench.data.adk import dataset as adk_mod  # files, download, named cases (ADK_EQUILIBRIUM_FILES is read there)

mda = pytest.importorskip("MDAnalysis")


@pytest.fixture(scope="module")
def mini():
    """The adk-mini case, loaded once (about a second)."""
    return load_adk_case("mini")


@pytest.fixture(scope="module")
def mini_files() -> tuple[Path, list[Path]]:
    return adk_mini_paths()


@pytest.fixture(scope="module")
def universe(mini_files):
    top, trajs = mini_files
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mda.Universe(str(top), str(trajs[0]))


def _write_dcd(path: Path, atoms, frames: int, nan_at: tuple[int, int] | None = None) -> Path:
    """Write the first ``frames`` frames of ``atoms``' universe; optionally a NaN at (frame, atom)."""
    u = atoms.universe
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mda.Writer(str(path), atoms.n_atoms) as w:
            for i, _ in enumerate(u.trajectory[:frames]):
                if nan_at is not None and i == nan_at[0]:
                    pos = atoms.positions.copy()
                    pos[nan_at[1]] = np.nan
                    atoms.positions = pos
                w.write(atoms)
        u.trajectory[0]
    return path


# ----------------------------------------------------------------------------- adk-mini


def test_mini_shapes_and_features(mini):
    assert (mini.dataset, mini.case) == ("adk", "mini")
    assert mini.num_nodes == 214 and mini.num_channels == 4
    assert mini.ca_channel == CA_CHANNEL == 1
    assert [t.shape for t in mini.trajectories] == [(97, 214, 4, 3), (101, 214, 4, 3)]  # last frame dropped
    assert all(t.dtype == np.float64 for t in mini.trajectories)
    # node features: the PSF partial charges of N, CA, C, O (authors' loader)
    assert mini.node_features.shape == (214, 4)
    assert mini.params["node_features"] == "charges"
    np.testing.assert_allclose(mini.node_features[1], [-0.47, 0.07, 0.51, -0.51], atol=1e-6)  # ILE 2
    np.testing.assert_allclose(mini.node_features[-1], [-0.47, -0.02, 0.34, -0.67], atol=1e-6)  # C-terminal GLY
    assert mini.history == 10 and mini.stride == 1
    assert mini.split_sizes() == {"train": 52 + 55, "val": 18 + 18, "test": 17 + 18}
    assert all(rec.official is True for rec in mini.files) and len(mini.files) == 3
    info = mini.info()
    assert info.num_nodes == 214 and info.num_channels == 4 and info.edge_attr_dim == 1 and info.node_feat_dim == 4


def test_mini_positions_are_backbone_atoms_in_channel_order(mini, universe):
    """Channel c of residue r is the atom named N/CA/C/O of that residue, frame by frame."""
    u = universe
    for frame in (0, 50, 96):
        u.trajectory[frame]
        for ch, name in enumerate(("N", "CA", "C")):
            sel = u.select_atoms(f"protein and name {name}")
            np.testing.assert_array_equal(mini.trajectories[0][frame, :, ch], sel.positions.astype(np.float64))
        o = u.select_atoms("protein and name O")
        np.testing.assert_array_equal(mini.trajectories[0][frame, :213, 3], o.positions.astype(np.float64))
    u.trajectory[0]


def test_c_terminal_ot1_is_the_o_channel(mini, universe):
    u = universe
    last = u.residues[-1]
    assert last.resname == "GLY" and "O" not in set(last.atoms.names) and {"OT1", "OT2"} <= set(last.atoms.names)
    ot1 = u.select_atoms(f"resid {last.resid} and name OT1")
    np.testing.assert_array_equal(mini.trajectories[0][0, -1, 3], ot1.positions[0].astype(np.float64))
    assert any("GLY 214 O = OT1" in n for n in mini.notes)


def test_without_o_aliases_the_c_terminal_residue_is_dropped_with_a_warning(mini_files):
    top, trajs = mini_files
    with pytest.warns(UserWarning, match=r"GLY 214 missing O"):
        case = load_adk(top, trajs[:1], case="x", history=10, stride=1, o_aliases=())
    assert case.num_nodes == 213  # what the authors' backbone selection keeps
    assert case.params["dropped_residues"] == ["GLY 214"]


def test_residue_missing_a_backbone_atom_is_dropped(tmp_path, universe):
    atoms = universe.select_atoms("not (resid 10 and name CA)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        atoms.write(str(tmp_path / "noca10.pdb"))
    _write_dcd(tmp_path / "noca10.dcd", atoms, 20)
    with pytest.warns(UserWarning, match=r"GLY 10 missing CA"):
        case = load_adk(tmp_path / "noca10.pdb", [tmp_path / "noca10.dcd"], case="x", history=3, stride=1)
    assert case.num_nodes == 213 and case.num_channels == 4
    assert "GLY 10" in case.params["dropped_residues"]
    # a PDB has no partial charges: "auto" falls back to atomic numbers
    assert case.params["node_features"] == "atomic_number"
    np.testing.assert_array_equal(case.node_features, np.tile([7.0, 6.0, 6.0, 8.0], (213, 1)))
    with pytest.raises(DataError, match="no partial charges"), pytest.warns(UserWarning, match="GLY 10"):
        load_adk(
            tmp_path / "noca10.pdb", [tmp_path / "noca10.dcd"], case="x", history=3, stride=1, node_features="charges"
        )


# ----------------------------------------------------------------------------- graph


def test_graph_is_the_symmetric_ca_cutoff_graph(mini):
    ei, ea = mini.edge_index, mini.edge_attr
    ca0 = mini.trajectories[0][0, :, CA_CHANNEL]
    assert ei.dtype == np.int64 and ei.shape[0] == 2 and ea.shape == (ei.shape[1], 1)
    assert not np.any(ei[0] == ei[1])
    pairs = set(zip(ei[0].tolist(), ei[1].tolist(), strict=True))
    assert len(pairs) == ei.shape[1] and pairs == {(j, i) for i, j in pairs}  # symmetric, no duplicates
    d = np.linalg.norm(ca0[ei[0]] - ca0[ei[1]], axis=-1)
    np.testing.assert_allclose(ea[:, 0], d, rtol=0, atol=1e-12)
    assert d.max() < 6.0
    # complete: every pair closer than the cutoff is an edge
    full = np.linalg.norm(ca0[:, None] - ca0[None], axis=-1)
    np.fill_diagonal(full, np.inf)
    assert int((full < 6.0).sum()) == ei.shape[1]
    # consecutive residues (CA-CA about 3.8 Å) are always joined
    assert all((i, i + 1) in pairs for i in range(mini.num_nodes - 1))


def test_cutoff_changes_the_graph(mini_files):
    top, trajs = mini_files
    small = load_adk(top, trajs[:1], case="x", history=10, stride=1, cutoff=4.0)
    assert small.edge_attr.max() < 4.0 and small.edge_index.shape[1] < 1134
    with pytest.raises(ValueError, match="cutoff"):
        load_adk(top, trajs[:1], case="x", cutoff=0.0)


# ----------------------------------------------------------------------------- split and windows


def test_authors_split_reproduces_protocol_sizes():
    # adk_equilibrium: 4187 frames, last dropped -> 4186; T = 10, Δ = 5
    s = adk_chronological_split(4186, 10, 5, (0.6, 0.2, 0.2))
    assert {k: len(v) for k, v in s.items()} == {"train": 2482, "val": 827, "test": 827}
    allstarts = np.concatenate([s["train"], s["val"], s["test"]])
    np.testing.assert_array_equal(allstarts, np.arange(4186 - 50))  # consecutive blocks, every start used
    with pytest.raises(ValueError, match="shorter than one window"):
        adk_chronological_split(50, 10, 5)
    with pytest.raises(ValueError, match="fractions"):
        adk_chronological_split(4186, 10, 5, (0.7, 0.2, 0.2))


def test_no_window_in_two_splits_and_none_crosses_a_trajectory(mini):
    span = mini.history * mini.stride
    seen: set[tuple[int, int]] = set()
    for name, w in mini.windows.items():
        rows = {tuple(r) for r in w.tolist()}
        assert len(rows) == len(w)
        assert not rows & seen, f"{name} shares windows with another split"
        seen |= rows
        for t, s in w.tolist():
            assert 0 <= s and s + span < mini.trajectories[t].shape[0]
    # chronological per trajectory: train < val < test
    for t in range(len(mini.trajectories)):
        blocks = [mini.windows[k][mini.windows[k][:, 0] == t, 1] for k in ("train", "val", "test")]
        assert all(len(b) for b in blocks)
        assert blocks[0].max() < blocks[1].min() and blocks[1].max() < blocks[2].min()


def test_prepared_windows_hold_the_right_frames(mini):
    prep = mini.prepare()
    T, D = mini.history, mini.stride
    for name in ("train", "test"):
        x, y = prep.splits[name].x.numpy(), prep.splits[name].y.numpy()
        assert x.shape[1:] == (T, 214, 4, 3) and y.shape[1:] == (214, 4, 3)
        for k in (0, len(x) - 1):
            t, s = mini.windows[name][k]
            traj = mini.trajectories[t]
            np.testing.assert_allclose(x[k], traj[s : s + T * D : D], atol=1e-5)
            np.testing.assert_allclose(y[k], traj[s + T * D], atol=1e-5)


def test_case_overrides_and_unknown_case(mini_files):
    case = load_adk_case("adk-mini", history=5, stride=2)
    assert (case.history, case.stride) == (5, 2)
    assert case.split_sizes()["train"] == int(0.6 * (97 - 10 + 1)) + int(0.6 * (101 - 10 + 1))
    with pytest.raises(KeyError, match="valid"):
        load_adk_case("nope")
    with pytest.raises(ValueError, match="stride"):
        load_adk(*mini_files, case="x", stride=0)


def test_parse_md_spec():
    top, trajs = parse_md_spec("a/b.psf::c.dcd::d.dcd")
    assert top == Path("a/b.psf") and trajs == [Path("c.dcd"), Path("d.dcd")]
    with pytest.raises(ValueError, match="topology::"):
        parse_md_spec("only.psf")


# ----------------------------------------------------------------------------- bad input


def test_unreadable_topology_names_the_file(tmp_path, mini_files):
    bad = tmp_path / "broken.psf"
    bad.write_text("this is not a PSF file\n")
    with pytest.raises(DataError, match=r"broken\.psf.*cannot read this topology"):
        load_adk(bad, mini_files[1][:1], case="x")
    with pytest.raises(DataError, match=r"missing\.psf: file not found"):
        load_adk(tmp_path / "missing.psf", mini_files[1][:1], case="x")


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # MDAnalysis DCDReader.__del__
def test_unreadable_trajectory_names_the_file(tmp_path, mini_files):
    top, trajs = mini_files
    garbage = tmp_path / "garbage.dcd"
    garbage.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(DataError, match=r"garbage\.dcd.*cannot read this trajectory"):
        load_adk(top, [garbage], case="x")
    # a good first trajectory followed by a bad one: the bad one is named
    with pytest.raises(DataError, match=r"garbage\.dcd"):
        load_adk(top, [trajs[0], garbage], case="x", stride=1)


def test_truncated_dcd_is_detected(tmp_path, mini_files):
    top, trajs = mini_files
    data = trajs[0].read_bytes()
    cut = tmp_path / "cut.dcd"
    cut.write_bytes(data[: len(data) // 2 + 17])
    with pytest.raises(DataError, match=r"cut\.dcd: truncated or corrupt DCD"):
        load_adk(top, [cut], case="x", stride=1)


def test_topology_trajectory_atom_mismatch(tmp_path, universe, mini_files):
    small = _write_dcd(tmp_path / "small.dcd", universe.atoms[:100], 15)
    with pytest.raises(DataError, match=r"small\.dcd.*same number of atoms"):
        load_adk(mini_files[0], [small], case="x", stride=1)


def test_nan_coordinates_raise(tmp_path, universe, mini_files):
    path = _write_dcd(tmp_path / "nan.dcd", universe.atoms, 30, nan_at=(3, 0))  # atom 0 = N of MET 1
    with pytest.raises(DataError, match=r"nan\.dcd: NaN/inf coordinates .* frame 3, residue MET 1, atom N"):
        load_adk(mini_files[0], [path], case="x", history=3, stride=1)


def test_trajectory_shorter_than_one_window(tmp_path, universe, mini_files):
    short = _write_dcd(tmp_path / "short.dcd", universe.atoms, 8)
    with pytest.raises(DataError, match=r"short\.dcd: 8 frames.*shorter than one window"):
        load_adk(mini_files[0], [short], case="x", history=10, stride=1)
    # long enough for one window but too short for all three splits
    tiny = _write_dcd(tmp_path / "tiny.dcd", universe.atoms, 13)
    with pytest.raises(DataError, match=r"tiny\.dcd.*split\(s\) get no window"):
        load_adk(mini_files[0], [tiny], case="x", history=10, stride=1)


# ----------------------------------------------------------------------------- adk_equilibrium: files and download


def test_equilibrium_missing_files_say_where_to_put_them(tmp_path):
    with pytest.raises(DataNotFoundError) as err:
        load_adk_case("equilibrium", tmp_path)
    msg = str(err.value)
    for f in ADK_EQUILIBRIUM_FILES.values():
        assert f.filename in msg and f.url in msg
    assert str(tmp_path / "adk_equilibrium") in msg


def test_download_without_network(tmp_path, monkeypatch):
    def offline(url, timeout=None):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DataNotFoundError) as err:
        download_adk_equilibrium(tmp_path)
    msg = str(err.value)
    for f in ADK_EQUILIBRIUM_FILES.values():
        assert f.filename in msg and f.url in msg
    folder = tmp_path / "adk_equilibrium"
    assert str(folder) in msg
    assert not any(p.is_file() for p in folder.rglob("*"))  # no .part and no partial file left


def test_download_checksum_mismatch_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout=None: io.BytesIO(b"not the AdK file"))
    with pytest.raises(ChecksumError, match="expected"):
        download_adk_equilibrium(tmp_path)
    assert not any(p.is_file() for p in (tmp_path / "adk_equilibrium").rglob("*"))


def test_download_streams_and_keeps_verified_files(tmp_path, monkeypatch):
    payload = {f.url: f"fake {f.filename}".encode() for f in ADK_EQUILIBRIUM_FILES.values()}
    fake = {
        k: adk_mod.RemoteFile(f.filename, f.url, hashlib.sha256(payload[f.url]).hexdigest())
        for k, f in ADK_EQUILIBRIUM_FILES.items()
    }
    monkeypatch.setattr(adk_mod, "ADK_EQUILIBRIUM_FILES", fake)
    calls: list[str] = []

    def serve(url, timeout=None):
        calls.append(url)
        return io.BytesIO(payload[url])

    monkeypatch.setattr(urllib.request, "urlopen", serve)
    paths = download_adk_equilibrium(tmp_path)
    assert {p.read_bytes() for p in paths.values()} == set(payload.values())
    download_adk_equilibrium(tmp_path)  # already there: not fetched again
    assert len(calls) == 2


def test_equilibrium_case_with_stand_in_files_is_marked_non_official(tmp_path, mini_files):
    """The ``adk`` case reads <data_dir>/adk_equilibrium/; files with other hashes are used with a warning."""
    top, trajs = mini_files
    folder = tmp_path / "adk_equilibrium"
    folder.mkdir()
    os.symlink(top, folder / ADK_EQUILIBRIUM_FILES["topology"].filename)
    os.symlink(trajs[1], folder / ADK_EQUILIBRIUM_FILES["trajectory"].filename)
    with pytest.warns(RuntimeWarning, match="non-official"):
        case = load_adk_case("adk", tmp_path, stride=1)
    assert (case.case, case.history, case.stride, case.num_nodes) == ("equilibrium", 10, 1, 214)
    assert [r.official for r in case.files] == [False, False]
    assert [r.expected_sha256 for r in case.files] == [f.sha256 for f in ADK_EQUILIBRIUM_FILES.values()]
    assert case.split_sizes() == {"train": 55, "val": 18, "test": 18}


def test_mini_falls_back_to_data_dir(tmp_path, monkeypatch, mini_files):
    top, trajs = mini_files
    (tmp_path / "adk").mkdir()
    for p in [top, *trajs]:
        os.symlink(p, tmp_path / "adk" / p.name)
    monkeypatch.setattr(adk_mod.importlib.util, "find_spec", lambda name: None)
    found_top, found_trajs = adk_mini_paths(tmp_path)
    assert found_top == tmp_path / "adk" / "adk.psf" and [p.name for p in found_trajs] == [
        "adk_dims.dcd",
        "adk_dims2.dcd",
    ]
    with pytest.raises(DataNotFoundError, match="pip install mdanalysistests"):
        adk_mini_paths(tmp_path / "elsewhere")


# ----------------------------------------------------------------------------- real data in ../shared/data


def _shared_data_dir() -> Path | None:
    root = Path(os.environ.get("ESTAGBENCH_DATA", Path(__file__).parents[1] / ".." / "shared" / "data"))
    if (root / "adk" / "adk.psf").is_file() and (root / "adk" / "adk_dims.dcd").is_file():
        return root
    if os.environ.get("ESTAGBENCH_REQUIRE_DATA") == "1":
        pytest.fail(f"ESTAGBENCH_REQUIRE_DATA=1 but {root / 'adk'} lacks adk.psf / adk_dims.dcd")
    pytest.skip(f"no AdK files in {root / 'adk'} (set $ESTAGBENCH_DATA)")
    return None


@pytest.mark.data
def test_shared_psf_dcd_pair(mini):
    root = _shared_data_dir()
    case = load_adk(
        root / "adk" / "adk.psf",
        [root / "adk" / "adk_dims.dcd"],
        case="shared",
        history=10,
        stride=1,
        known_sha256=adk_mod.ADK_MINI_FILES,
    )
    assert case.num_nodes == 214 and case.num_channels == 4
    assert [r.official for r in case.files] == [True, True]
    np.testing.assert_array_equal(case.trajectories[0], mini.trajectories[0])
    np.testing.assert_array_equal(case.edge_index, mini.edge_index)
    np.testing.assert_array_equal(case.windows["train"], mini.windows["train"][mini.windows["train"][:, 0] == 0])


@pytest.mark.data
def test_shared_solvated_gromacs_pair_keeps_protein_only():
    """adk_oplsaa.tpr/.xtc: 47681 atoms with water and ions; OPLS-AA names the C-terminal oxygens O1/O2."""
    root = _shared_data_dir()
    top, traj = root / "adk" / "adk_oplsaa.tpr", root / "adk" / "adk_oplsaa.xtc"
    if not (top.is_file() and traj.is_file()):
        if os.environ.get("ESTAGBENCH_REQUIRE_DATA") == "1":
            pytest.fail(f"ESTAGBENCH_REQUIRE_DATA=1 but {top} / {traj} are missing")
        pytest.skip(f"no {top.name} / {traj.name} in {root / 'adk'}")
    case = load_adk(top, [traj], case="oplsaa", history=3, stride=1)
    assert case.num_nodes == 214 and case.num_channels == 4
    assert case.trajectories[0].shape == (9, 214, 4, 3)
    assert case.split_sizes() == {"train": 4, "val": 1, "test": 1}
    assert case.params["node_features"] == "charges"
    assert any("GLY 214 O = O1" in n for n in case.notes)
