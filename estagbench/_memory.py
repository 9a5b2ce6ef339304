"""Optional memory-allocator settings for the large per-step tensors of these models.

A training step allocates and frees the same tensors every time: edge tensors
``(E, B, T, H)`` reach tens of MB on the protein case, and with the C library's defaults
every such allocation is a fresh ``mmap`` whose pages the kernel faults in and zeroes
(about a million page faults per ESTAG step on adk-mini).  ``ESTAGBENCH_ALLOCATOR=tuned``
asks PyTorch to back allocations of 2 MiB and more with transparent huge pages
(``THP_MEM_ALLOC_ENABLE``, read once when torch allocates its first tensor, so it only
takes effect before ``import torch``) and asks glibc to keep freed memory for reuse
(``mallopt``).  Numbers are unaffected: only where memory comes from changes.

Whether it pays depends on the kernel: on this project's 2-core VM it halved the adk-mini
step under one kernel build and doubled it (huge-page zeroing and compaction in system
time) under a later one, while ethanol-sized steps did not change.  So it is off unless
asked for (unset or ``ESTAGBENCH_ALLOCATOR=default``: PyTorch's and glibc's defaults).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

__all__ = ["configure_allocator"]

_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3
_MIB = 1 << 20


def configure_allocator() -> dict[str, bool]:
    """Apply the settings once per process if ``ESTAGBENCH_ALLOCATOR=tuned``; returns what took effect."""
    done = {"thp": False, "mallopt": False}
    choice = os.environ.get("ESTAGBENCH_ALLOCATOR", "default").lower() or "default"
    if choice not in ("default", "tuned"):
        raise ValueError(f"ESTAGBENCH_ALLOCATOR must be 'default' or 'tuned', got {choice!r}")
    if choice == "default" or not sys.platform.startswith("linux"):
        return done
    if "torch" not in sys.modules:
        os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    done["thp"] = os.environ.get("THP_MEM_ALLOC_ENABLE") == "1"
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to tune
        return done
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, 32 * _MIB)  # up to 32 MiB from the heap, not a fresh mmap
    ok &= mallopt(_M_TRIM_THRESHOLD, 1024 * _MIB)  # keep freed heap memory for the next step
    ok &= mallopt(_M_TOP_PAD, 64 * _MIB)  # grow the heap in large steps
    done["mallopt"] = bool(ok)
    return done
