"""Shared pytest setup of the benchmarks: ``ESTAGBENCH_BENCH_THREADS`` pins torch's intra-op threads."""
# ruff: noqa: I001

from __future__ import annotations

import os
import sys
from pathlib import Path

import estagbench  # noqa: F401  (first: its allocator settings must precede torch's first allocation, as in the CLI)
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # so bench_*.py can import _common


@pytest.fixture(autouse=True, scope="module")
def _threads():
    """Pin torch's intra-op threads to ``$ESTAGBENCH_BENCH_THREADS`` for a module (default: torch's choice)."""
    threads = os.environ.get("ESTAGBENCH_BENCH_THREADS")
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    yield
    torch.set_num_threads(before)
