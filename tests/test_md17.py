"""MD17 on the real ethanol slice, and bad input."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest

from estagbench.data import DataError, DataNotFoundError, load_case
from estagbench.data.md17 import load_md17
from tests.conftest import require_data

SLICE = {"split_margin": 0, "split_fractions": (0.3, 0.15, 0.15)}


def _load(root, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return load_md17("ethanol", root, **{**SLICE, **kw})


def test_ethanol_slice_split_sizes_graph_and_pt_t():
    root = require_data("md17/md17_ethanol.npz")
    data = _load(root)
    assert data.split_sizes() == {"train": 500, "val": 284, "test": 284}
    assert data.num_nodes == 3 and data.num_channels == 1
    # C-C, C-O bonded (1-hop); C...O through the middle carbon (2-hop)
    hop = data.edge_attr[:, 2]
    assert sorted(hop.tolist()) == [1, 1, 1, 1, 2, 2]
    assert data.node_features[:, 0].tolist() == [6, 6, 8]
    assert data.files[0].official is False  # the 2000-frame excerpt
    test = data.prepare().splits["test"]
    pt_t = float(((test.x[:, -1] - test.y) ** 2).mean())
    assert pt_t == pytest.approx(0.606e-3, rel=5e-3)  # the protocol's Pt-t on this split


def test_excerpt_warns_non_official():
    root = require_data("md17/md17_ethanol.npz")
    with pytest.warns(RuntimeWarning, match="not the official MD17 file"):
        load_md17("ethanol", root, **SLICE)


def test_default_margin_is_too_large_for_the_slice():
    root = require_data("md17/md17_ethanol.npz")
    with pytest.raises(DataError, match="no window start"):
        _load(root, split_margin=10000)


def test_missing_file_names_path_and_command(tmp_path):
    with pytest.raises(DataNotFoundError, match="estagbench download md17 --molecules aspirin"):
        load_md17("aspirin", tmp_path)


def test_unknown_molecule(tmp_path):
    with pytest.raises(KeyError, match="valid: aspirin"):
        load_case("md17", "ethanl", data_dir=tmp_path)


def _copy_with(tmp_path, **arrays):
    dest = tmp_path / "md17" / "md17_ethanol.npz"
    dest.parent.mkdir(parents=True, exist_ok=True)
    np.savez(dest, **arrays)
    return dest


def test_truncated_npz(tmp_path):
    root = require_data("md17/md17_ethanol.npz")
    dest = tmp_path / "md17" / "md17_ethanol.npz"
    dest.parent.mkdir(parents=True)
    blob = (root / "md17/md17_ethanol.npz").read_bytes()
    dest.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match="corrupt or truncated"):
        load_md17("ethanol", tmp_path, **SLICE)
    assert dest.read_bytes() == blob[: len(blob) // 2]  # the cache is left untouched


def test_random_bytes_and_empty_file(tmp_path):
    dest = tmp_path / "md17" / "md17_ethanol.npz"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(DataError, match=r"md17_ethanol.npz: not an .npz archive \(first bytes") as err:
        load_md17("ethanol", tmp_path, **SLICE)
    assert "pickle" not in str(err.value)  # no hint to load untrusted data unsafely
    dest.write_bytes(b"")
    with pytest.raises(DataError, match="not an .npz archive \\(an empty file"):
        load_md17("ethanol", tmp_path, **SLICE)


def test_non_numeric_arrays(tmp_path):
    z = np.array([6, 6, 8, 1, 1, 1, 1, 1, 1])
    R = np.random.rand(300, 9, 3)
    _copy_with(tmp_path, R=R.astype(str), z=z)
    with pytest.raises(DataError, match="md17_ethanol.npz: R must be floating point, got dtype <U"):
        load_md17("ethanol", tmp_path, **SLICE)
    _copy_with(tmp_path, R=R, z=z.astype(str))
    with pytest.raises(DataError, match="z must be numeric"):
        load_md17("ethanol", tmp_path, **SLICE)


def test_wrong_shapes_and_nan(tmp_path):
    z = np.array([6, 6, 8, 1, 1, 1, 1, 1, 1])
    R = np.random.rand(300, 9, 3)
    _copy_with(tmp_path, R=R[:, :, :2], z=z)
    with pytest.raises(DataError, match="expected R of shape"):
        load_md17("ethanol", tmp_path, **SLICE)
    R[17, 2, 1] = np.nan
    _copy_with(tmp_path, R=R, z=z)
    with pytest.raises(DataError, match="NaN/inf coordinates .*frame 17"):
        load_md17("ethanol", tmp_path, **SLICE)
    _copy_with(tmp_path, z=z)
    with pytest.raises(DataError, match="missing key"):
        load_md17("ethanol", tmp_path, **SLICE)


def test_shorter_than_one_window(tmp_path):
    z = np.array([6, 6, 8, 1, 1, 1, 1, 1, 1])
    _copy_with(tmp_path, R=np.random.rand(50, 9, 3), z=z)
    with pytest.raises(DataError, match="no window start"):
        load_md17("ethanol", tmp_path, **SLICE)


def test_benzene_is_centred(tmp_path):
    z = np.array([6] * 6 + [1] * 6)
    R = np.random.rand(400, 12, 3) + 5.0
    dest = tmp_path / "md17" / "md17_benzene2017.npz"
    dest.parent.mkdir(parents=True)
    np.savez(dest, R=R, z=z)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = load_md17("benzene", tmp_path, **SLICE)
    np.testing.assert_allclose(data.trajectories[0].mean(axis=1), 0.0, atol=1e-12)
    assert data.trajectories[0].shape[0] == 399  # last frame dropped
    shutil.rmtree(tmp_path / "md17")


def test_download_checks_that_the_file_is_an_md17_npz(tmp_path, monkeypatch):
    """No trusted MD17 checksum is recorded, so a download (or a cached file) must at least parse."""
    import estagbench.data.md17 as md17

    src = tmp_path / "server"
    src.mkdir()
    (src / "md17_ethanol.npz").write_bytes(np.random.default_rng(1).bytes(2048))
    monkeypatch.setattr(md17, "URL_BASE", src.as_uri())
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=r"md17_ethanol.npz.part: not an .npz archive"):
        md17.download_md17("ethanol", cache)
    assert not (cache / "md17").exists() or not any((cache / "md17").iterdir())  # nothing bad left in the cache
    (cache / "md17").mkdir(parents=True, exist_ok=True)
    (cache / "md17" / "md17_ethanol.npz").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"md17_ethanol.npz: not an .npz archive"):  # cached: checked, not trusted
        md17.download_md17("ethanol", cache)
    np.savez(src / "md17_ethanol.npz", R=np.random.rand(20, 9, 3), z=np.array([6, 6, 8] + [1] * 6))
    good = md17.download_md17("ethanol", cache, force=True)
    assert good == cache / "md17" / "md17_ethanol.npz"
    kept = good.read_bytes()
    (src / "md17_ethanol.npz").write_text("<html>503 Service Unavailable</html>")
    with pytest.raises(DataError, match="not an .npz archive"):
        md17.download_md17("ethanol", cache, force=True)
    assert good.read_bytes() == kept and not list(good.parent.glob("*.part"))  # the cached file is untouched


def test_coordinates_beyond_float32_are_refused(tmp_path):
    z = np.array([6, 6, 8, 1, 1, 1, 1, 1, 1])
    _copy_with(tmp_path, R=1e200 * np.random.rand(300, 9, 3), z=z)
    with pytest.raises(DataError, match=r"md17_ethanol.npz: coordinates overflow torch.float32 .*wrong units"):
        _load(tmp_path).prepare()
