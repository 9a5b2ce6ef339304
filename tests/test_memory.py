"""The optional allocator settings of estagbench/_memory.py: off by default, applied before
torch when asked for, and invisible in the numbers."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

_PROBE = (
    "import json, os, estagbench, torch;"
    "from estagbench.testing import random_batch, random_info;"
    "torch.manual_seed(0);"
    "info = random_info(num_nodes=6, num_channels=4, history=5, seed=1);"
    "m = estagbench.create_model('estag', info).double();"
    "y = m(random_batch(info, batch_size=4, seed=2));"
    "print(json.dumps({'thp': os.environ.get('THP_MEM_ALLOC_ENABLE'), 'alloc': estagbench.ALLOCATOR,"
    " 'out': y.flatten().tolist()}))"
)


def _probe(**env: str) -> dict:
    full = {k: v for k, v in os.environ.items() if k not in ("THP_MEM_ALLOC_ENABLE", "ESTAGBENCH_ALLOCATOR")}
    full.update(env)
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, env=full, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the settings are Linux/glibc-specific")
def test_allocator_settings_are_opt_in_apply_before_torch_and_leave_numbers_alone() -> None:
    on = _probe(ESTAGBENCH_ALLOCATOR="tuned")
    unset, off = _probe(), _probe(ESTAGBENCH_ALLOCATOR="default")
    assert on["thp"] == "1" and on["alloc"] == {"thp": True, "mallopt": True}
    for probe in (unset, off):
        assert probe["thp"] is None and probe["alloc"] == {"thp": False, "mallopt": False}
    assert on["out"] == off["out"] == unset["out"]  # only where memory comes from changes


def test_unknown_allocator_choice_is_refused() -> None:
    env = {k: v for k, v in os.environ.items() if k != "ESTAGBENCH_ALLOCATOR"}
    env["ESTAGBENCH_ALLOCATOR"] = "fast"
    out = subprocess.run([sys.executable, "-c", "import estagbench"], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode != 0 and "ESTAGBENCH_ALLOCATOR must be 'default' or 'tuned', got 'fast'" in out.stderr


def test_late_import_leaves_torch_settings_alone() -> None:
    """Imported after torch, the suite cannot (and does not claim to) switch on huge pages."""
    code = "import os, torch, estagbench; print(estagbench.ALLOCATOR['thp'], os.environ.get('THP_MEM_ALLOC_ENABLE'))"
    env = {k: v for k, v in os.environ.items() if k not in ("THP_MEM_ALLOC_ENABLE", "ESTAGBENCH_ALLOCATOR")}
    env["ESTAGBENCH_ALLOCATOR"] = "tuned"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "None"]
