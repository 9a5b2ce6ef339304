"""The project's own trajectory .npz format: round trip, validation, graphs."""

from __future__ import annotations

import numpy as np
import pytest

from estagbench.data import DataError, load_case
from estagbench.data.trajectory import read_trajectory, write_trajectory


def test_round_trip_with_metadata(tmp_path):
    pos = np.random.rand(40, 5, 3)
    p = write_trajectory(tmp_path / "a.npz", pos, atomic_numbers=[6, 7, 8, 6, 6], masses=[12, 14, 16, 12, 12],
                         cutoff=1.5, time_step_fs=10.0, metadata={"engine": "test", "protocol": {"stride": 2}})
    t = read_trajectory(p)
    np.testing.assert_array_equal(t.positions[:, :, 0], pos)
    assert t.node_features[:, 0].tolist() == [6, 7, 8, 6, 6]
    assert t.time_step_fs == 10.0 and t.cutoff == 1.5
    assert t.metadata == {"engine": "test", "protocol": {"stride": 2}}
    assert not list(tmp_path.glob("*.part"))


def test_multichannel_positions(tmp_path):
    p = write_trajectory(tmp_path / "m.npz", np.random.rand(30, 4, 2, 3))
    assert read_trajectory(p).num_channels == 2


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"positions": np.random.rand(30, 4)}, "must have shape"),
        ({"positions": np.random.rand(30, 4, 2)}, "must have shape"),
        ({"positions": np.random.rand(30, 4, 3), "atomic_numbers": np.array([1, 2])}, "4 rows"),
        ({"positions": np.random.rand(30, 4, 3), "edges": np.array([[0, 9]])}, "outside"),
        ({"positions": np.random.rand(30, 4, 3), "cutoff": np.array(-1.0)}, "positive"),
        ({"node_features": np.ones(3)}, "missing key"),
    ],
)
def test_bad_files_name_file_and_problem(tmp_path, arrays, message):
    p = tmp_path / "bad.npz"
    np.savez(p, **arrays)
    with pytest.raises(DataError, match=message) as err:
        read_trajectory(p)
    assert str(p) in str(err.value)


def test_nan_coordinates(tmp_path):
    pos = np.random.rand(30, 4, 3)
    pos[7, 2, 0] = np.nan
    p = tmp_path / "nan.npz"
    np.savez(p, positions=pos)
    with pytest.raises(DataError, match=r"NaN/inf.*\(7, 2, 0\)"):
        read_trajectory(p)


def test_truncated_and_pickled(tmp_path):
    p = write_trajectory(tmp_path / "t.npz", np.random.rand(30, 4, 3))
    blob = p.read_bytes()
    p.write_bytes(blob[:100])
    with pytest.raises(DataError, match="corrupt or truncated"):
        read_trajectory(p)
    q = tmp_path / "obj.npz"
    np.savez(q, positions=np.array([object()], dtype=object))
    with pytest.raises(DataError):
        read_trajectory(q)


def test_case_graph_and_protocol_from_metadata(tmp_path):
    pos = np.zeros((200, 4, 3))
    pos[:, :, 0] = np.arange(4) * 1.0  # a chain with spacing 1
    pos += 0.01 * np.random.rand(200, 4, 3)
    p = write_trajectory(tmp_path / "chain.npz", pos, atomic_numbers=[6, 6, 6, 6], cutoff=1.2,
                         metadata={"protocol": {"history": 5, "stride": 3}})
    data = load_case(str(p))
    assert (data.history, data.stride) == (5, 3)
    hop = {(int(a), int(b)): int(h) for a, b, h in zip(*data.edge_index, data.edge_attr[:, 2], strict=True)}
    assert hop[(0, 1)] == 1 and hop[(0, 2)] == 2 and (0, 3) not in hop
    data2 = load_case(str(p), history=4)
    assert data2.history == 4 and data2.stride == 3


@pytest.mark.parametrize(
    ("protocol", "message"),
    [({"stride": 0}, "stride must be an integer >= 1, got 0"), ({"history": -3}, "history must be an integer >= 1"),
     ({"history": 2.5}, "history must be an integer"), ({"split_margin": -1}, "split_margin must be an integer >= 0"),
     ([1, 2], "must be a JSON object")],
)
def test_protocol_in_metadata_is_checked_like_the_flags(tmp_path, protocol, message):
    p = write_trajectory(tmp_path / "m.npz", np.random.rand(300, 3, 3), cutoff=5.0, metadata={"protocol": protocol})
    with pytest.raises(DataError, match=f"m.npz: .*{message}"):
        load_case(str(p))


def test_too_short_for_one_window(tmp_path):
    p = write_trajectory(tmp_path / "s.npz", np.random.rand(20, 3, 3))
    with pytest.raises(DataError, match="no window start"):
        load_case(str(p))


def test_write_refuses_what_read_would_refuse(tmp_path):
    pos = np.random.rand(30, 3, 3)
    pos[4, 1, 0] = np.nan
    with pytest.raises(DataError, match="bad.npz: positions contains 1 NaN/inf"):
        write_trajectory(tmp_path / "bad.npz", pos)
    with pytest.raises(DataError, match="'edges' refers to node ids outside"):
        write_trajectory(tmp_path / "bad.npz", np.random.rand(30, 3, 3), edges=[[0, 7]])
    with pytest.raises(DataError, match="'cutoff' must be a positive distance"):
        write_trajectory(tmp_path / "bad.npz", np.random.rand(30, 3, 3), cutoff=-1.0)
    assert not list(tmp_path.iterdir())  # nothing written


def test_atomic_writes_get_the_usual_permissions(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        p = write_trajectory(tmp_path / "perm.npz", np.random.rand(30, 3, 3))
    finally:
        os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == 0o644  # not mkstemp's owner-only 0o600: caches may be shared
