"""Units and display scale of a dataset's MSE, for every dataset (built-in and user files).

The loss and every stored MSE are the mean over windows, nodes, channels and the three
coordinates of the squared error, in the dataset's length unit squared.  Tables print
``MSE × 10^exponent`` (the paper's ×10⁻³ for MD17).  :attr:`estagbench.data.CaseData.units`
holds a :class:`Units`; ``run``, the records (key ``units``) and every table header show it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["Units", "FAMILY_LENGTH_UNITS", "FAMILY_UP_AXIS", "units_for_family", "scale_label"]

#: Length unit of each built-in family's coordinates.
FAMILY_LENGTH_UNITS: dict[str, str] = {"md17": "Å", "adk": "Å", "peptide": "Å", "motion": "ASF unit"}

#: The vertical axis of built-in families whose data has one other than z (ASF/AMC motion capture: y).
FAMILY_UP_AXIS: dict[str, str] = {"motion": "y"}

_SUP = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def scale_label(exponent: int) -> str:
    """``×10⁻³`` for exponent 3 (a printed value is ``mse · 10^exponent``); ``""`` for 0."""
    return "" if exponent == 0 else "×10" + f"{-exponent}".translate(_SUP)


@dataclass(frozen=True)
class Units:
    """The MSE's unit (``length``²) and display exponent (printed value = MSE · 10^exponent)."""

    length: str
    exponent: int = 0
    time_step: float | None = None
    time_unit: str | None = None

    @property
    def mse_unit(self) -> str:
        return f"{self.length}²"

    @property
    def label(self) -> str:
        """``MSE ×10⁻³ Å²``: what a printed number is."""
        return " ".join(p for p in ("MSE", scale_label(self.exponent), self.mse_unit) if p)

    def display(self, mse: float) -> float:
        return mse * 10.0**self.exponent

    def as_dict(self) -> dict[str, Any]:
        return {"length_unit": self.length, "mse_unit": self.mse_unit, "exponent": self.exponent,
                "label": self.label, "time_step": self.time_step, "time_unit": self.time_unit,
                "mse": "mean over windows, nodes, channels and x/y/z of the squared error"}


def units_for_family(family: str, scale: float = 1.0) -> Units:
    """Units of a built-in dataset family with the catalog's display ``scale`` (1e3 → ×10⁻³)."""
    return Units(FAMILY_LENGTH_UNITS.get(family, "unit"), int(round(math.log10(scale))) if scale > 0 else 0)
