"""Shared fixtures: the real-data folder, and an autouse seed.

Real data comes from ``$ESTAGBENCH_DATA`` (default: ``../shared/data`` beside the
repository).  Tests that need it use the ``shared_data`` fixture; when the folder or
the file is absent they skip with the reason, except under
``ESTAGBENCH_REQUIRE_DATA=1`` (set by CI), where they fail.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"


def data_root() -> Path:
    return Path(os.environ.get("ESTAGBENCH_DATA") or DEFAULT_DATA)


def require_data(*relative: str) -> Path:
    """Return the data root if every ``relative`` path exists under it, else skip (or fail in CI)."""
    root = data_root()
    missing = [r for r in relative if not (root / r).exists()]
    if missing:
        msg = f"real data missing under {root}: {', '.join(missing)} (set ESTAGBENCH_DATA to the shared data folder)"
        if os.environ.get("ESTAGBENCH_REQUIRE_DATA") == "1":
            pytest.fail(msg + " — ESTAGBENCH_REQUIRE_DATA=1 forbids skipping")
        pytest.skip(msg)
    return root


@pytest.fixture
def shared_data() -> Path:
    """The real-data root (skips/fails as described in the module docstring)."""
    return require_data()


@pytest.fixture
def ethanol_case():
    """The real ethanol slice with the documented overrides, prepared (float32)."""
    root = require_data("md17/md17_ethanol.npz")
    import warnings

    from estagbench.data import load_case

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        data = load_case("md17", "ethanol", data_dir=root, split_margin=0, split_fractions=(0.3, 0.15, 0.15))
    return data.prepare()


@pytest.fixture(autouse=True)
def _seed_and_one_thread():
    """Seed every RNG; one torch thread (tiny tensors; restores the count afterwards)."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
