"""The summary printed at the end of ``estagbench run``.

It covers exactly the cells the command asked for (its models, cases, seeds and
configuration), never other seeds stored in the same folder: per (model, case,
configuration) the test MSE at the best-validation epoch as mean ± unbiased std over the
seeds, in the dataset's table scale and unit (MD17 ×10⁻³ Å², AdK Å², Motion ×10⁻¹), the
number of seeds (std only for n ≥ 2) and the parameter count; then what was skipped or
failed, where the records, logs and checkpoints are, and the commands to run next.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .checkpoints import current_policy

__all__ = ["SCALES", "TABLE_OF_FAMILY", "scale_of", "format_value", "run_summary"]

#: Dataset family -> (factor from stored MSE to the printed number, label), as the paper's tables print.
SCALES: dict[str, tuple[float, str]] = {
    "md17": (1e3, "×10⁻³ Å²"),
    "adk": (1.0, "Å²"),
    "motion": (1e1, "×10⁻¹"),
}
#: The paper table that holds a family's main results (``estagbench tables --table N``).
TABLE_OF_FAMILY = {"md17": 1, "adk": 2, "motion": 3}


def scale_of(family: str | None) -> tuple[float, str]:
    """``(factor, label)`` of a family; unscaled stored units for other data (your own trajectories)."""
    return SCALES.get(family or "", (1.0, "stored units²"))


def format_value(values: Sequence[float], factor: float) -> str:
    """``mean ± std`` of ``values × factor`` (std only for two or more values)."""
    vals = [v * factor for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return "–"

    mean = statistics.fmean(vals)
    # three decimals as the paper's tables print; more where the mean is below 0.01 (short runs, small errors)
    decimals = 3 if abs(mean) >= 0.01 or mean == 0 else min(12, 2 - math.floor(math.log10(abs(mean))))

    def num(v: float) -> str:
        return f"{v:.{decimals}f}"

    return num(mean) if len(vals) < 2 else f"{num(mean)} ± {num(statistics.stdev(vals))}"


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def run_summary(records: Sequence[dict[str, Any]], plan: Any, out: Path) -> str:
    """The end-of-run text for the ``records`` of ``plan`` (a :class:`estagbench.runner.RunPlan`)."""
    lines: list[str] = []
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["model"], r["case"], r["config_hash"]), []).append(r)
    ambiguous = len({k[:2] for k in groups}) < len(groups)  # one model and case in two configurations
    families = sorted({str(r.get("family") or "") for r in records})
    if records:
        lines.append(f"Summary of this run ({plan.dataset}): test MSE at the best-validation epoch, mean ± std over "
                     "the seeds asked for (std only for n ≥ 2)")
        by_family: dict[str, list[list[str]]] = {}
        for (model, case, chash), recs in groups.items():
            family = str(recs[0].get("family") or "")
            factor, _ = scale_of(family)
            seeds = sorted(int(r["seed"]) for r in recs)
            params = sorted({r.get("num_params") for r in recs if r.get("num_params") is not None})
            row = [model + (f" [{chash}]" if ambiguous else ""), case,
                   format_value([r["metrics"]["test_mse"] for r in recs], factor),
                   str(len(seeds)), ",".join(map(str, seeds)), ",".join(f"{p:,}" for p in params) or "?"]
            by_family.setdefault(family, []).append(row)
        for family in families:
            label = scale_of(family)[1]
            lines += _table([["model", "case", f"test MSE ({label})", "n seeds", "seeds", "params"],
                             *by_family.get(family, [])])
    else:
        lines.append("No results: " + ("every cell failed." if plan.failed else "every model was skipped."))
    for model, where, why in plan.skipped:
        lines.append(f"skipped {model} on {where}: {why}")
    for what, error in plan.failed:
        lines.append(f"failed {what}: {error}")
    lines.append(f"Records: {out / 'results'}/ (one JSON file per model, case, seed and configuration)")
    lines.append(f"Logs and checkpoints: {out / 'runs'}/<cell>/log.csv and best.pt (checkpoints kept: {current_policy()})")
    lines.append("Next:")
    lines.append(f"  estagbench results --out {out}")
    for family in families:
        if family in TABLE_OF_FAMILY:
            lines.append(f"  estagbench tables --results {out} --table {TABLE_OF_FAMILY[family]} --dataset {plan.dataset}")
    if records:
        case = records[0]["case"]
        lines.append(f"  estagbench plot curves --results {out} --dataset {plan.dataset} --case {case}")
    return "\n".join(lines)
