"""``estagbench datasets NAME|PATH …``: what a dataset's split gives a model, before any training.

Per case: the windows per split, the leakage of the split
(:func:`estagbench.data.splits.leakage`), the MSE's unit, and the optimiser steps per epoch
at the default batch size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .catalog import load_case, resolve_cases
from .splits import describe_leakage

__all__ = ["describe_dataset"]


def describe_dataset(name: str, data_dir: Path | None = None, batch_size: int = 100, cases: list[str] | None = None,
                     **opts: Any) -> list[str]:
    """One line per case (``cases``, default all) of dataset ``name`` (a catalog name or a path); loads each."""
    lines = []
    for case in resolve_cases(name, cases):
        data = load_case(name, case, data_dir=data_dir, **opts)
        sizes = data.split_sizes()
        names = f", {len(data.trajectories)} trajectories" if len(data.trajectories) > 1 else ""
        lines.append(
            f"{name}/{case}: windows train/val/test = {sizes['train']}/{sizes['val']}/{sizes['test']} "
            f"(T={data.history}, Δ={data.stride}{names}); {describe_leakage(data.leakage())}; "
            f"units {data.units.label if data.units else '?'}; "
            f"{data.steps_per_epoch(batch_size)} optimiser step(s) per epoch at batch {batch_size}"
        )
    return lines
