"""``estagbench compare A B --dataset …``: two models side by side, with the test that decides between them.

The numbers come from a results store (``--results``: the per-seed test MSEs of the
newest stored configuration of each model) or, by default, from the committed
leaderboard CSVs (``--leaderboards``, default ``./leaderboards``), which hold each
cell's mean, unbiased std and n but not the per-seed values.  Welch's t-test, Cohen's
d and the power calculation need only those three numbers per model, so the result is
the same either way; only the per-seed listing needs the store.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

__all__ = ["Sample", "Comparison", "compare", "samples_from_store", "samples_from_leaderboards", "add_compare_parser"]


@dataclass(frozen=True)
class Sample:
    """One model's numbers on one dataset case: summary and, where known, the per-seed values."""

    model: str
    mean: float
    std: float
    n: int
    seeds: tuple[int, ...] = ()
    values: tuple[float, ...] = ()  # empty when read from a leaderboard CSV
    source: str = ""


@dataclass(frozen=True)
class Comparison:
    """Welch's test of ``a`` against ``b``, the effect size and the seeds a difference this size needs."""

    a: Sample
    b: Sample
    statistic: float
    df: float
    p_value: float
    cohens_d: float
    seeds_for_power: int | None
    power: float = 0.8

    @property
    def significant(self) -> bool:
        from .tables._stats import ALPHA

        return self.p_value < ALPHA


def compare(a: Sample, b: Sample, power: float = 0.8) -> Comparison:
    """Welch's two-sided t-test of two samples, Cohen's d and seeds per model for ``power`` at α = 0.05."""
    from .tables._stats import cohens_d, seeds_needed, welch

    for s in (a, b):
        if s.n < 2:
            raise ValueError(f"{s.model}: {s.n} seed(s) stored ({s.source}); a test needs at least 2 per model")
    res = welch(a.mean, a.std, a.n, b.mean, b.std, b.n)
    assert res is not None  # n >= 2 on both sides
    d = cohens_d(a.mean, a.std, a.n, b.mean, b.std, b.n)
    need = seeds_needed(a.mean - b.mean, a.std, b.std, power=power)
    return Comparison(a, b, res.statistic, res.df, res.p_value, d, need, power)


def samples_from_store(
    root: Path, models: list[str], dataset: str, case: str | None, metric: str = "test_mse"
) -> tuple[list[Sample], str]:
    """Per-seed values of each model from a results store (newest configuration; T = 10, default hyper-parameters)."""
    import pandas as pd

    from .tables import load_records

    if not (Path(root) / "results").is_dir():
        raise FileNotFoundError(f"no results store at {root} (expected {root}/results/*.json); pass --results DIR")
    df = load_records(root)
    df = df[df["dataset"] == dataset]
    cases = sorted(set(df["case"]))
    if case is None:
        if len(cases) > 1:
            raise ValueError(f"dataset {dataset!r} has several cases stored ({', '.join(cases)}); choose one with --case")
        case = cases[0] if cases else ""
    df = df[df["case"] == case]
    df = df[(df["history"].fillna(10).astype(int) == 10) & (df["model_hparams"].map(lambda h: not h))]
    out = []
    for m in models:
        g = df[df["model"] == m]
        if g.empty:
            raise ValueError(f"{root}: no stored records of model {m!r} on {dataset}/{case} (T = 10, default settings)")
        newest = g.groupby("config_hash")["finished_at"].max().sort_values().index[-1]
        g = g[g["config_hash"] == newest].drop_duplicates("seed", keep="last").sort_values("seed")
        vals = pd.to_numeric(g[metric], errors="coerce").dropna()
        g = g.loc[vals.index]
        v = tuple(float(x) for x in vals)
        n = len(v)
        std = float(pd.Series(v).std(ddof=1)) if n > 1 else 0.0
        out.append(Sample(m, float(sum(v) / n) if n else math.nan, std, n, tuple(int(s) for s in g["seed"]), v,
                          f"{root}, configuration {newest}"))
    return out, f"{dataset}/{case}"


def samples_from_leaderboards(
    folder: Path, models: list[str], dataset: str, case: str | None, table: int | None = None,
    metric: str = "test_mse",
) -> tuple[list[Sample], str]:
    """Summaries of each model from the first leaderboard CSV (or table ``table``) holding both in one column."""
    from .tables import read_table_csv

    paths = sorted(Path(folder).glob("table*.csv"))
    if not paths:
        raise FileNotFoundError(f"no leaderboard CSV (table*.csv) under {folder}; pass --leaderboards DIR or --results DIR")
    seen_cols = []
    for path in paths:
        t = read_table_csv(path)
        if table is not None and t.spec.number != table:
            continue
        for col in t.columns:
            if col.metric != metric or t.datasets[col.key] != dataset:
                continue
            cells = [t.cells.get((m, col.key)) for m in models]
            ccase = next((c.case for c in cells if c is not None and c.case), col.case or "")
            if case is not None and ccase != case:
                continue
            seen_cols.append(f"{path.name}:{col.key}")
            if any(c is None or c.empty for c in cells):
                continue
            out = [
                Sample(m, float(c.mean), float(c.std or 0.0), c.n_seeds,  # type: ignore[arg-type]
                       tuple(int(s) for s in c.seeds.split(",") if s), (), f"{path}, column {col.key}")
                for m, c in zip(models, cells, strict=True)
            ]
            return out, f"{dataset}/{ccase}"
    where = f"table {table}" if table is not None else f"any table under {folder}"
    hint = f" (columns of {dataset} seen: {', '.join(seen_cols)})" if seen_cols else ""
    raise ValueError(f"no column of {where} holds both {models[0]!r} and {models[1]!r} on {dataset}"
                     f"{'/' + case if case else ''}{hint}; check the names with `estagbench models`")


def format_comparison(cmp: Comparison, where: str, out: TextIO) -> None:
    """The side-by-side listing, the test, the effect size and the seeds needed."""
    a, b = cmp.a, cmp.b
    w = max(len(a.model), len(b.model), 12)
    out.write(f"{a.model} vs {b.model} on {where} (test MSE, stored units)\n")
    out.write(f"  source: {a.source}\n" + (f"          {b.source}\n" if b.source != a.source else ""))
    out.write(f"  {'seed':>6}  {a.model:>{w}}  {b.model:>{w}}\n")
    if a.values or b.values:
        seeds = sorted(set(a.seeds) | set(b.seeds))
        va, vb = dict(zip(a.seeds, a.values, strict=False)), dict(zip(b.seeds, b.values, strict=False))
        for s in seeds:
            x, y = va.get(s), vb.get(s)
            out.write(f"  {s:>6}  {'–' if x is None else f'{x:.6g}':>{w}}  {'–' if y is None else f'{y:.6g}':>{w}}\n")
    else:
        out.write(f"  {'':>6}  per-seed numbers are not in the leaderboard CSV (only mean, std, n); "
                  "pass --results DIR to list them\n")
    out.write(f"  {'mean':>6}  {a.mean:>{w}.6g}  {b.mean:>{w}.6g}\n")
    out.write(f"  {'std':>6}  {a.std:>{w}.6g}  {b.std:>{w}.6g}\n")
    out.write(f"  {'n':>6}  {a.n:>{w}}  {b.n:>{w}}\n")
    diff = a.mean - b.mean
    rel = f" ({diff / b.mean * 100:+.1f}% of {b.model})" if b.mean else ""
    out.write(f"difference {a.model} − {b.model}: {diff:.6g}{rel}\n")
    out.write(f"Welch's t-test: t = {cmp.statistic:.4g}, df = {cmp.df:.3g}, p = {cmp.p_value:.3g} (two-sided; "
              "exact from mean, std and n)\n")
    out.write(f"effect size: Cohen's d = {cmp.cohens_d:.3g} (pooled std)\n")
    verdict = "significant" if cmp.significant else "not significant"
    out.write(f"at 5 %: {verdict} with {a.n} and {b.n} seeds\n")
    need = "more than 100000" if cmp.seeds_for_power is None else str(cmp.seeds_for_power)
    out.write(f"seeds per model for {cmp.power:.0%} power at this difference and these spreads: {need}\n")


def _cmd_compare(args: argparse.Namespace) -> int:
    models = [args.model_a, args.model_b]
    if args.model_a == args.model_b:
        raise ValueError(f"compare needs two different models, got {args.model_a!r} twice")
    if args.results is not None:
        samples, where = samples_from_store(args.results, models, args.dataset, args.case)
    else:
        samples, where = samples_from_leaderboards(args.leaderboards, models, args.dataset, args.case, args.table)
    format_comparison(compare(samples[0], samples[1], power=args.power), where, sys.stdout)
    return 0


def _power(text: str) -> float:
    v = float(text)
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"power must lie strictly between 0 and 1, got {text}")
    return v


def add_compare_parser(subparsers: Any) -> None:
    """Add ``compare`` to the ``estagbench`` sub-command parser."""
    from ._argtypes import positive_int

    p = subparsers.add_parser(
        "compare", help="two models side by side: per-seed numbers, Welch's t-test, effect size, seeds needed"
    )
    p.add_argument("model_a", help="registry name, e.g. estag")
    p.add_argument("model_b", help="registry name, e.g. st-egnn")
    p.add_argument("--dataset", required=True, help="dataset name as stored, e.g. md17, adk-mini, motion-walk-30fps")
    p.add_argument("--case", "--molecule", dest="case", default=None, help="case (MD17 molecule), e.g. ethanol")
    p.add_argument("--results", type=Path, default=None,
                   help="results store with per-seed records (default: the committed leaderboard CSVs)")
    p.add_argument("--leaderboards", type=Path, default=Path("leaderboards"),
                   help="folder of table*.csv used without --results (default ./leaderboards)")
    p.add_argument("--table", type=positive_int, default=None,
                   help="with the leaderboards: the table to read (default: the first holding both models)")
    p.add_argument("--power", type=_power, default=0.8, help="target power for the seeds estimate (default 0.8)")
    p.set_defaults(func=_cmd_compare)
