"""The "value of history" table of the simulated peptide (issue 7).

For each environment of the solute (``peptide-vacuum``, ``peptide-implicit``,
``peptide-explicit``) it lists the test MSE (mean ± unbiased std over seeds) of the
one-frame models Pt-t and EGNN-t and the ten-frame models ST_EGNN and ESTAG, and the
ratios one-frame / history:

* ``EGNN-t / ST_EGNN`` -- the same EGNN backbone fed one frame or all T frames;
* ``EGNN-t / ESTAG``;
* ``best one-frame / best history`` -- the lower MSE of Pt-t and EGNN-t over the
  lower of ST_EGNN and ESTAG.

The thesis of Wu et al. 2023 (Section 1) predicts the ratios grow from vacuum to
implicit to explicit water, since more of the system is hidden; the table reports
what the stored results say.  Results come from ``estagbench run`` stores
(:mod:`estagbench.results`); nothing is typed in by hand.

Usage::

    python -m estagbench.simulate.history_table --results estagbench-results \\
        --out leaderboards/value-of-history --command "estagbench run ..."

writes ``value-of-history.csv`` (one row per case) and ``value-of-history.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..results import ResultStore, aggregate, load_results

__all__ = ["CASES", "ONE_FRAME", "HISTORY", "history_table", "write_history_table", "main"]

CASES = ("peptide-vacuum", "peptide-implicit", "peptide-explicit")
ONE_FRAME = ("pt-t", "egnn-t")
HISTORY = ("st-egnn", "estag")
_LABEL = {"pt-t": "Pt-t", "egnn-t": "EGNN-t", "st-egnn": "ST_EGNN", "estag": "ESTAG"}


def _ratio_std(a: float, sa: float, b: float, sb: float) -> float:
    """First-order std of ``a / b`` from independent stds (0 when both are 0)."""
    if a == 0 or b == 0:
        return float("nan")
    r = a / b
    return abs(r) * ((sa / a) ** 2 + (sb / b) ** 2) ** 0.5


def history_table(results: pd.DataFrame, cases: Sequence[str] = CASES) -> pd.DataFrame:
    """One row per case: MSE mean/std/seeds per model and the one-frame / history ratios.

    Parameters
    ----------
    results: :func:`estagbench.results.load_results` output.
    cases: dataset names (rows, in this order); a case without results is left out.

    Raises
    ------
    ValueError: when a case has a model with several configurations (e.g. two epoch
        budgets) -- the table would mix them -- or when the models of a case were not
        run on the same seeds and epochs.
    """
    models = (*ONE_FRAME, *HISTORY)
    df = results[results.dataset.isin(cases) & results.model.isin(models)]
    if df.empty:
        raise ValueError(f"no results for models {', '.join(models)} on {', '.join(cases)}; run "
                         f"`estagbench run --models {','.join(models)} --dataset <case>` first")
    agg = aggregate(df)
    epochs = df.groupby(["model", "dataset", "config_hash"])["epochs"].first()
    best_epoch = df.groupby(["model", "dataset", "config_hash"])["best_epoch"].mean()
    rows = []
    for case in cases:
        sub = agg[agg.dataset == case]
        if sub.empty:
            continue
        dup = sub.model[sub.model.duplicated()].tolist()
        if dup:
            raise ValueError(f"{case}: model(s) {dup} have results under several configurations (config hashes "
                             f"{sorted(sub[sub.model.isin(dup)].config_hash)}); use one results directory per budget")
        row: dict[str, Any] = {"dataset": case}
        seeds, budgets = set(), set()
        for m in models:
            hit = sub[sub.model == m]
            if hit.empty:
                row[f"{m}_mean"] = row[f"{m}_std"] = row[f"{m}_best_epoch"] = float("nan")
                row[f"{m}_seeds"] = ""
                continue
            r = hit.iloc[0]
            row[f"{m}_mean"], row[f"{m}_std"], row[f"{m}_seeds"] = float(r["mean"]), float(r["std"]), r["seeds"]
            row[f"{m}_best_epoch"] = float(best_epoch[(m, case, r["config_hash"])])
            seeds.add(r["seeds"])
            if m not in ("pt-t",):
                budgets.add(int(epochs[(m, case, r["config_hash"])]))
        if len(seeds) > 1:
            raise ValueError(f"{case}: models were run on different seeds {sorted(seeds)}")
        if len(budgets) > 1:
            raise ValueError(f"{case}: trained models have different epoch budgets {sorted(budgets)}")
        row["seeds"] = seeds.pop() if seeds else ""
        row["epochs"] = budgets.pop() if budgets else None
        for num, den, key in (("egnn-t", "st-egnn", "ratio_egnn-t/st-egnn"), ("egnn-t", "estag", "ratio_egnn-t/estag")):
            a, b = row[f"{num}_mean"], row[f"{den}_mean"]
            row[key] = a / b
            row[key + "_std"] = _ratio_std(a, row[f"{num}_std"], b, row[f"{den}_std"])
        one = min(((row[f"{m}_mean"], m) for m in ONE_FRAME if row[f"{m}_mean"] == row[f"{m}_mean"]), default=None)
        hist = min(((row[f"{m}_mean"], m) for m in HISTORY if row[f"{m}_mean"] == row[f"{m}_mean"]), default=None)
        row["best_one_frame"] = one[1] if one else ""
        row["best_history"] = hist[1] if hist else ""
        row["ratio_best"] = one[0] / hist[0] if one and hist else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def _fmt(mean: float, std: float, scale: float) -> str:
    if mean != mean:  # NaN
        return "–"
    return f"{mean * scale:.3f} ± {std * scale:.3f}"


def _fmt_ratio(value: float, std: float) -> str:
    return "–" if value != value else f"{value:.2f} ± {std:.2f}"


def _record_meta(root: Path, cases: Sequence[str]) -> dict[str, Any]:
    """Commit, machine, versions, split sizes and simulation settings from the stored records."""
    meta: dict[str, Any] = {"git_commits": set(), "machines": set(), "commands": set(), "cases": {}}
    for rec in ResultStore(root).records():
        if rec.get("dataset") not in cases or rec.get("model") not in (*ONE_FRAME, *HISTORY):
            continue
        prov = rec.get("provenance", {})
        meta["git_commits"].add(str(prov.get("git_commit")))
        mach = prov.get("machine", {})
        meta["machines"].add(f"{mach.get('platform')}, {mach.get('processor')}, {mach.get('cpu_count')} CPUs, "
                             f"torch threads {mach.get('torch_threads')}")
        meta["commands"].add(rec.get("command", ""))
        params = rec.get("data_params", {})
        meta["cases"].setdefault(rec["dataset"], {
            "split_sizes": rec.get("split_sizes"), "split_hash": rec.get("split_hash"),
            "simulation": params.get("simulation"), "simulation_settings_hash": params.get("simulation_settings_hash"),
            "history": params.get("history"), "stride": params.get("stride"),
        })
    return meta


def write_history_table(results_dir: str | Path, out: str | Path, command: str | None = None,
                        scale: float = 1e3) -> tuple[Path, Path]:
    """Build the table from ``results_dir`` and write ``<out>.csv`` and ``<out>.md``.

    ``scale`` multiplies MSEs in the Markdown (×10⁻³ Å² like MD17); the CSV keeps Å².
    """
    root = Path(results_dir)
    table = history_table(load_results(root))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = _record_meta(root, CASES)
    made_by = command or " ".join(["python -m estagbench.simulate.history_table", *sys.argv[1:]])
    csv_path, md_path = out.with_suffix(".csv"), out.with_suffix(".md")
    csv = table.copy()
    csv["git_commit"] = ";".join(sorted(meta["git_commits"]))
    csv.to_csv(csv_path, index=False, float_format="%.6g")

    lines = [
        "# Value of history on the simulated peptide (issue 7)",
        "",
        "Test MSE ×10⁻³ Å² (mean ± unbiased std over seeds) of one-frame models (Pt-t, EGNN-t) and "
        "T = 10-frame models (ST_EGNN, ESTAG) on the same solute (Val-Glu-Val, 24 heavy atoms observed) "
        "simulated in vacuum, in GBn2 implicit water and in explicit TIP3P water (water and Na+ hidden). "
        "Ratio = one-frame MSE / history MSE; > 1 means history helps. The thesis of ESTAG predicts the ratio "
        "grows from vacuum to implicit to explicit.",
        "",
        "| dataset | Pt-t | EGNN-t | ST_EGNN | ESTAG | EGNN-t / ST_EGNN | EGNN-t / ESTAG | best one-frame / best history |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for _, r in table.iterrows():
        cells = [_fmt(r[f"{m}_mean"], r[f"{m}_std"], scale) for m in (*ONE_FRAME, *HISTORY)]
        ratios = [_fmt_ratio(r["ratio_egnn-t/st-egnn"], r["ratio_egnn-t/st-egnn_std"]),
                  _fmt_ratio(r["ratio_egnn-t/estag"], r["ratio_egnn-t/estag_std"]),
                  "–" if r["ratio_best"] != r["ratio_best"] else
                  f"{r['ratio_best']:.2f} ({_LABEL[r['best_one_frame']]} / {_LABEL[r['best_history']]})"]
        lines.append(f"| {r['dataset']} | " + " | ".join(cells + ratios) + " |")
    lines += ["", "Ratio ± is first-order error propagation from the seed stds.", ""]
    lines += ["Epoch of best validation MSE (mean over seeds; the test MSE is taken there). A value at the end of the "
              "budget means the model was still improving when training stopped:", ""]
    lines += ["| dataset | " + " | ".join(_LABEL[m] for m in ONE_FRAME[1:] + HISTORY) + " | budget |",
              "|---|" + "---|" * (len(ONE_FRAME) - 1 + len(HISTORY)) + "---|"]
    for _, r in table.iterrows():
        lines.append(f"| {r['dataset']} | " + " | ".join(
            "–" if r[f"{m}_best_epoch"] != r[f"{m}_best_epoch"] else f"{r[f'{m}_best_epoch']:.0f}"
            for m in ONE_FRAME[1:] + HISTORY) + f" | {r['epochs']} |")
    lines += ["", "## Provenance", ""]
    lines.append(f"- Seeds: {', '.join(sorted(set(table.seeds)))}; epochs (trained models): "
                 f"{', '.join(str(e) for e in sorted(set(table.epochs.dropna().astype(int))))}")
    lines.append(f"- Commit(s): {', '.join(sorted(meta['git_commits']))}")
    lines.append(f"- Machine(s): {'; '.join(sorted(meta['machines']))}")
    lines.append("- Results made by:")
    for c in sorted(meta["commands"]):
        lines.append(f"  - `{c}`")
    lines.append(f"- Table made by: `{made_by}`")
    lines.append("- Data (per case):")
    for case in CASES:
        if case in meta["cases"]:
            lines.append(f"  - {case}: {json.dumps(meta['cases'][case], sort_keys=True)}")
    lines.append(f"- Written on {platform.node()} by estagbench.simulate.history_table; do not edit by hand.")
    md_path.write_text("\n".join(lines) + "\n")
    return csv_path, md_path


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m estagbench.simulate.history_table", description=__doc__.split("\n")[0])
    p.add_argument("--results", type=Path, default=Path("estagbench-results"), help="results directory of estagbench run")
    p.add_argument("--out", type=Path, default=Path("leaderboards/value-of-history"), help="output stem (.csv and .md)")
    p.add_argument("--command", default=None, help="the command line to record as the table's maker")
    args = p.parse_args(argv)
    try:
        csv_path, md_path = write_history_table(args.results, args.out, args.command)
    except ValueError as exc:
        print(f"history_table: error: {exc}", file=sys.stderr)
        return 2
    print(md_path.read_text())
    print(f"wrote {csv_path} and {md_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
