"""Splits and windows: the MD17 sampling procedure, disjointness, windows."""

from __future__ import annotations

import numpy as np
import pytest

from estagbench.data.base import make_windows
from estagbench.data.splits import check_disjoint, chronological_split, md17_split


def test_md17_split_replicates_the_procedure():
    n, T, D, margin = 30000, 10, 10, 10000
    got = md17_split(n, T, D, margin)
    m = n - max(margin, T * D) - margin
    np.random.seed(100)
    train = np.random.choice(m, int(0.1 * m), replace=False)
    rest = np.array(sorted(set(range(m)) - set(train)))
    val = np.random.choice(rest, int(0.05 * m), replace=False)
    rest2 = np.array(sorted(set(rest) - set(val)))
    test = np.random.choice(rest2, int(0.05 * m), replace=False)
    np.testing.assert_array_equal(got["train"], (train + margin)[:500])
    np.testing.assert_array_equal(got["val"], (val + margin)[:2000])
    np.testing.assert_array_equal(got["test"], (test + margin)[:2000])


def test_md17_split_restores_global_rng():
    np.random.seed(7)
    expected = np.random.rand()
    np.random.seed(7)
    md17_split(5000, 10, 10, 0, (0.3, 0.15, 0.15))
    assert np.random.rand() == expected


@pytest.mark.parametrize("n,margin", [(2000, 0), (30000, 10000), (5000, 100)])
def test_no_window_start_in_two_splits(n, margin):
    s = md17_split(n, 10, 10, margin, (0.3, 0.15, 0.15))
    all_starts = np.concatenate(list(s.values()))
    assert len(all_starts) == len(set(all_starts.tolist()))
    assert all_starts.min() >= margin and all_starts.max() < n - max(margin, 100)


def test_too_short_trajectory_is_an_error():
    with pytest.raises(ValueError, match="no window start"):
        md17_split(100, 10, 10, 0)


def test_chronological_split_matches_adk_sizes():
    s = chronological_split(4187, 10, 5)
    assert [len(s[k]) for k in ("train", "val", "test")] == [2482, 827, 827]
    assert s["train"].max() < s["val"].min() and s["val"].max() < s["test"].min()


def test_check_disjoint_catches_overlap():
    with pytest.raises(ValueError, match="both"):
        check_disjoint({"train": np.array([[0, 1], [0, 2]]), "val": np.array([[0, 2]])})


def test_make_windows_frames():
    traj = np.arange(50, dtype=float).reshape(50, 1, 1, 1) * np.ones((1, 1, 1, 3))
    x, y = make_windows([traj], np.array([[0, 3], [0, 0]]), history=4, stride=5)
    np.testing.assert_array_equal(x[0, :, 0, 0, 0], [3, 8, 13, 18])
    assert y[0, 0, 0, 0] == 23 and y[1, 0, 0, 0] == 20
