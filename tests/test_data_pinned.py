"""Numbers do not move: the shared-data cases load to the same windows, arrays and parameters as at
3d92b68 (before datasets became registered classes and the protocol constants moved to one module).

The split hash, a hash of the arrays a model sees (trajectories, graph, features) and a hash of the
``params`` that enter a result's configuration hash are pinned; a refactor that changes any of them
would make stored results stale or their reruns differ.
"""

from __future__ import annotations

import hashlib
import json
import warnings

import pytest

from estagbench.data import load_case

from .conftest import require_data

ETHANOL = {"split_margin": 0, "split_fractions": (0.3, 0.15, 0.15)}
#: (dataset, case, overrides, data file) -> (split hash, arrays hash, params hash, T, Δ), measured at 3d92b68
PINNED = [
    ("md17", "ethanol", ETHANOL, "md17/md17_ethanol.npz", ("1cd181a36f3e8136", "0c848eed6f5da285", "3bd3d6e5aef24434", 10, 10)),
    ("md17", "ethanol", {**ETHANOL, "history": 5, "stride": 3}, "md17/md17_ethanol.npz",
     ("228b6e9c2cb8c33d", "0c848eed6f5da285", "a41240fb068f338a", 5, 3)),
    ("adk-mini", "mini", {}, "adk/adk_dims.dcd", ("bfbfd9ee271aa646", "2f6252b6d5a50c2a", "bdcc11454632d814", 10, 1)),
    ("motion-walk-35_01", "walk-35_01", {}, "cmu_mocap/subjects/35/35_01.amc",
     ("08b9db5054720d7a", "52fc6692bded256b", "6911162dbfad78fe", 10, 5)),
    ("motion-walk-30fps", "walk-30fps", {}, "cmu_mocap/35_30fps/35_34.amc",
     ("e9a60f11418cb7f4", "f05e78d96aec7cbf", "793a5fc5573e8e41", 10, 1)),
]


@pytest.mark.parametrize("dataset,case,opts,needs,expected", PINNED, ids=[f"{p[0]}-{sorted(p[2])}" for p in PINNED])
def test_shared_cases_load_as_before(dataset, case, opts, needs, expected) -> None:
    root = require_data(needs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = load_case(dataset, case, data_dir=root, **opts)
    arrays = b"".join(t.tobytes() for t in data.trajectories) + b"".join(
        a.tobytes() for a in (data.edge_index, data.edge_attr, data.node_features))
    params = json.dumps(data.params, sort_keys=True, default=str)
    got = (data.split_hash(), hashlib.sha256(arrays).hexdigest()[:16], hashlib.sha256(params.encode()).hexdigest()[:16],
           data.info().history, data.info().stride)
    assert got == expected
