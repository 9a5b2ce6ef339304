"""Import a heavy dependency on first use instead of when the registry loads a module.

The registry imports every baseline module to learn the model names, so a module-level
``from e3nn import o3`` made every ``estagbench`` command pay for e3nn's start-up
(about 1 s: it loads its Wigner-matrix tables) even when no e3nn model is built.
:func:`lazy_import` returns the module object at once and runs its code on the first
attribute access (the standard library's :class:`importlib.util.LazyLoader`).
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

__all__ = ["lazy_import"]


def lazy_import(name: str) -> ModuleType:
    """``name`` as a module whose code runs when one of its attributes is first read."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)  # imports the parent package (cheap for e3nn)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)
    return module
