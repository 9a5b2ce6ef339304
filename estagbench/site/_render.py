"""HTML pages of the site from :class:`~._collect.SiteData` (plain strings, every value escaped)."""

from __future__ import annotations

import json
from html import escape
from typing import Any

from ..data.splits import describe_leakage
from ..tables._build import DECIMALS

__all__ = ["index_page", "model_page", "dataset_page", "model_file", "dataset_file"]

MISSING = "–"


def _e(v: Any) -> str:
    return escape("" if v is None else str(v), quote=True)


def _fmt(v: float | None, digits: int = DECIMALS) -> str:
    return MISSING if v is None else f"{v:.{digits}f}"


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def model_file(name: str) -> str:
    return f"models/{_safe_name(name)}.html"


def dataset_file(name: str) -> str:
    return f"datasets/{_safe_name(name)}.html"


def _page(title: str, body: str, depth: int) -> str:
    up = "../" * depth
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'">
<title>{_e(title)} · estagbench</title>
<link rel="stylesheet" href="{up}assets/site.css">
</head>
<body>
<header><a href="{up}index.html">estagbench leaderboard</a><a href="{up}index.html#models">models</a><a href="{up}index.html#datasets">datasets</a><a href="{up}data.json">data.json</a></header>
<main>
{body}
</main>
<script src="{up}assets/site.js"></script>
</body>
</html>
"""


def _cell_title(c: dict[str, Any]) -> str:
    bits = [f"n = {c['n']} seed(s)" + (f" ({c['seeds']})" if c["seeds"] else "")]
    if c["ci_low"] is not None:
        bits.append(f"95 % CI [{c['ci_low']:.4g}, {c['ci_high']:.4g}]")
    if c["p_value"] is not None:
        bits.append(f"p = {c['p_value']:.3g} vs the best (Welch, Holm)")
    if c["config_hash"]:
        bits.append(f"config {c['config_hash']}")
    return "; ".join(bits)


def _cell(c: dict[str, Any]) -> str:
    if c["mean"] is None:
        return f'<td class="ours" data-v="">{MISSING}</td>'
    text = _fmt(c["mean"]) + ("" if c["std"] is None else f" ± {_fmt(c['std'])}")
    if c["not_distinguishable"]:
        text += "†"
    cls = "ours" + (f" {c['mark']}" if c["mark"] else "")
    return f'<td class="{cls}" data-v="{c["mean"]!r}" title="{_e(_cell_title(c))}">{_e(text)}</td>'


def _table_html(t: dict[str, Any], link_models: str = "") -> str:
    has_paper = any(r["cells"][c["key"]]["paper"] is not None for r in t["rows"] for c in t["columns"])
    head = [f'<th scope="col">{_e(t["corner"] or "Method")}</th>']
    for c in t["columns"]:
        head.append(f'<th scope="col">{_e(c["label"])}</th>')
        if has_paper:
            head.append(f'<th scope="col" class="paper">{_e(c["label"])} (paper)</th>')
    body = []
    for r in t["rows"]:
        label = _e(r["label"])
        if link_models is not None:
            label = f'<a href="{link_models}{model_file(r["model"])}">{label}</a>'
        tds = [f'<td data-v="{_e(r["label"])}">{label}</td>']
        for c in t["columns"]:
            cell = r["cells"][c["key"]]
            tds.append(_cell(cell))
            if has_paper:
                p = cell["paper"]
                tds.append(f'<td class="paper" data-v="{"" if p is None else repr(p)}">{_fmt(p)}</td>')
        body.append("<tr>" + "".join(tds) + "</tr>")
    return (f'<div class="scroll"><table class="board" id="t-{_e(t["id"])}" data-source="{_e(t["source"])}">'
            f'<thead><tr>{"".join(head)}</tr></thead><tbody>{"".join(body)}</tbody></table></div>')


def _meta_html(meta: dict[str, str]) -> str:
    items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in meta.items())
    return f'<dl class="meta">{items}</dl>'


LEGEND = ("Cells: mean ± unbiased std over seeds (hover for n, the 95 % interval and the p-value); bold: best, "
          "underlined: second; † not distinguishable from the best of its column (its row, for the sweeps) at 5 % "
          "(Welch's t-test, Holm-corrected); – not stored. Click a header to sort.")


def index_page(data: dict[str, Any]) -> str:
    parts = ["<h1>estagbench: the ESTAG paper's tables, rebuilt</h1>",
             '<p class="muted">Every number below comes from '
             + _e(" and ".join(f"the {'committed leaderboards' if k == 'leaderboards' else 'results store'} ({v})"
                               for k, v in data["sources"].items()))
             + '; all of them are in <a href="data.json">data.json</a>. Paper columns: Wu et al., NeurIPS 2023.</p>']
    for w in data["warnings"]:
        parts.append(f'<p class="warn">{_e(w)}</p>')
    parts.append('<ul class="toc">' + "".join(
        f'<li><a href="#t-{_e(t["id"])}-h">Table {t["number"]}{" (" + _e(t["stem"].split("-", 1)[1]) + ")" if "-" in t["stem"] else ""}'
        f'{" · store" if t["source"].startswith("results") else ""}</a></li>' for t in data["tables"]) + "</ul>")
    parts.append(f'<p class="legend">{_e(LEGEND)}</p>')
    for t in data["tables"]:
        src = "results store" if t["source"].startswith("results") else t["source"].split(":", 1)[1]
        parts.append(f'<h2 id="t-{_e(t["id"])}-h">Table {t["number"]}. {_e(t["caption"])}</h2>')
        parts.append(f'<p class="muted">source: {_e(src)}</p>')
        parts.append(_table_html(t))
        budget = {k: t["meta"][k] for k in ("budget", "commit", "machine") if k in t["meta"]}
        parts.append(_meta_html(budget))
        rest = {k: v for k, v in t["meta"].items() if k not in budget}
        if rest:
            parts.append(f"<details><summary>all provenance</summary>{_meta_html(rest)}</details>")
    parts.append('<h2 id="models">Models</h2><ul class="toc">' + "".join(
        f'<li><a href="{model_file(m["name"])}">{_e(m["name"])}</a> <span class="muted">{_e(m["symmetry"])}</span></li>'
        for m in data["models"]) + "</ul>")
    parts.append('<h2 id="datasets">Datasets</h2><ul class="toc">' + "".join(
        f'<li><a href="{dataset_file(d["name"])}">{_e(d["name"])}</a></li>' for d in data["datasets"]) + "</ul>")
    return _page("leaderboard", "\n".join(parts), 0)


def _kv_table(rows: list[tuple[str, str]]) -> str:
    return ('<table class="board"><thead><tr><th>what</th><th>value</th></tr></thead><tbody>'
            + "".join(f'<tr><td data-v="{_e(k)}">{_e(k)}</td><td data-v="{_e(v)}">{_e(v)}</td></tr>' for k, v in rows)
            + "</tbody></table>")


def model_page(m: dict[str, Any]) -> str:
    parts = [f"<h1>{_e(m['name'])}</h1>", f"<p>{_e(m['description'])}</p>"]
    info = [("symmetry", m["symmetry"]), ("multi-channel", "yes" if m["multichannel"] else "no"),
            ("trains", "yes" if m["trains"] else "no (no parameters)"),
            ("datasets", m["datasets"] if isinstance(m["datasets"], str) else ", ".join(m["datasets"])),
            ("module", m["module"]), ("paper", m["paper"] or "–")]
    info += [(f"default {k}", v) for k, v in m["defaults"].items()]
    parts.append("<h2>Registration</h2>" + _kv_table(info))
    parts.append("<h2>Parameters and speed</h2>")
    if m["num_params"]:
        parts.append(_kv_table([(f"parameters on {k}", f"{v:,}") for k, v in sorted(m["num_params"].items())]))
    else:
        parts.append('<p class="muted">parameter counts: not in the committed leaderboards; build with '
                     "<code>--results DIR</code> to show them from the stored records.</p>")
    if m["seconds_per_epoch"]:
        parts.append(_kv_table([(f"seconds per epoch on {k}",
                                 f"{v['mean']:.3f} (n = {v['n']}" + (f", Table {v['table']})" if "table" in v else ")"))
                                for k, v in sorted(m["seconds_per_epoch"].items())]))
    else:
        parts.append('<p class="muted">seconds per epoch: none stored for this model.</p>')
    parts.append("<h2>Results</h2>")
    if m["results"]:
        rows = "".join(
            f'<tr><td data-v="{r["number"]}"><a href="../index.html#t-{_e(r["table"])}-h">{_e(r["stem"])}</a></td>'
            f'<td data-v="{_e(r["column"])}">{_e(r["column"])}</td>{_cell(r)}'
            f'<td class="paper" data-v="{"" if r["paper"] is None else repr(r["paper"])}">{_fmt(r["paper"])}</td></tr>'
            for r in m["results"])
        parts.append('<table class="board" id="results"><thead><tr><th>table</th><th>column</th><th>ours</th>'
                     f'<th class="paper">paper</th></tr></thead><tbody>{rows}</tbody></table>')
    else:
        parts.append('<p class="muted">no stored result for this model.</p>')
    if m["figures"]:
        parts.append("<h2>Figures</h2>")
        for f in m["figures"]:
            parts.append(f'<figure><img src="../{_e(f)}" alt="{_e(f)}" loading="lazy"><figcaption class="muted">'
                         f"{_e(f)}</figcaption></figure>")
    if m["docstring"]:
        parts.append(f'<h2>Module documentation</h2><pre class="card">{_e(m["docstring"])}</pre>')
    return _page(m["name"], "\n".join(parts), 1)


def dataset_page(d: dict[str, Any]) -> str:
    parts = [f"<h1>{_e(d['name'])}</h1>", f"<p>{_e(d['description'])}</p>"]
    info = [("family", d["family"]), ("cases", ", ".join(d["cases"])), ("paper table", d["paper_table"] or "–"),
            ("offline (no download)", "yes" if d["offline"] else "no"), ("Adam learning rate", f"{d['lr']:g}"),
            ("table display scale", f"×{d['display_scale']:g}")]
    info += [(k.replace("_", " "), v) for k, v in d["protocol_defaults"].items()]
    parts.append("<h2>Protocol</h2>" + _kv_table(info))
    if d["settings"]:
        parts.append("<h3>Settings of the leaderboard tables</h3><ul>"
                     + "".join(f"<li><code>{_e(s)}</code></li>" for s in d["settings"]) + "</ul>")
    parts.append("<h2>Checksums</h2>")
    if d["known_sha256"]:
        parts.append(_kv_table([(k, v) for k, v in sorted(d["known_sha256"].items())]))
    else:
        parts.append('<p class="muted">no SHA-256 published for this family\'s files.</p>')
    parts.append("<h2>Split sizes</h2>")
    if d["stored"]:
        rows = []
        for s in d["stored"]:
            sizes = s["split_sizes"] or {}
            order = sorted(sizes, key=lambda k: (["train", "val", "test"] + [k]).index(k))
            rows.append((f"{s['case']} (split {s['split_hash']})", ", ".join(f"{k} {sizes[k]}" for k in order) or "–"))
            if s.get("leakage"):  # test targets inside training windows (issue 24): measured with every split
                rows.append(("  test-in-train", describe_leakage(s["leakage"]).removeprefix("leakage: ")))
            for f in s["data_files"] or []:
                rows.append((f"  file {f.get('path') or f.get('name') or ''}", str(f.get("sha256", ""))))
        parts.append(_kv_table(rows))
    else:
        parts.append('<p class="muted">not in the committed leaderboards (they store cells, not windows); build with '
                     "<code>--results DIR</code> to show each stored split's sizes and file checksums.</p>")
    if d["tables"]:
        parts.append("<p>Used in: " + ", ".join(f'<a href="../index.html#t-{_e(t["id"])}-h">{_e(t["stem"])}</a>'
                                                 for t in d["tables"]) + "</p>")
    if d["card"]:
        parts.append(f'<h2>Data card</h2><pre class="card">{_e(d["card"])}</pre>')
    return _page(d["name"], "\n".join(parts), 1)


def data_json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=1, sort_keys=False, default=str, allow_nan=False)
