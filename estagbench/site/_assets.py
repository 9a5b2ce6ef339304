"""The site's stylesheet and script (no CDN, no fonts from the network, no fetch at view time)."""

from __future__ import annotations

__all__ = ["CSS", "JS"]

CSS = """\
:root { --fg: #1d2433; --muted: #5b6577; --line: #d9dee7; --head: #f3f5f9; --accent: #1f5fae; --best: #0b6b2f; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); margin: 0; }
header { background: #14213d; color: #fff; padding: 0.8rem 1.5rem; }
header a { color: #fff; margin-right: 1.2rem; text-decoration: none; font-weight: 600; }
main { padding: 1rem 1.5rem 3rem; max-width: 1400px; }
h1 { font-size: 1.5rem; margin: 0.6rem 0; } h2 { font-size: 1.2rem; margin-top: 2rem; }
a { color: var(--accent); }
.muted, .legend { color: var(--muted); font-size: 0.88rem; }
table.board { border-collapse: collapse; margin: 0.6rem 0; font-variant-numeric: tabular-nums; }
table.board th, table.board td { border-bottom: 1px solid var(--line); padding: 0.3rem 0.6rem; text-align: right; }
table.board th:first-child, table.board td:first-child { text-align: left; }
table.board thead th { background: var(--head); cursor: pointer; user-select: none; white-space: nowrap; }
table.board thead th[aria-sort="ascending"]::after { content: " \\25B2"; }
table.board thead th[aria-sort="descending"]::after { content: " \\25BC"; }
td.paper, th.paper { color: var(--muted); }
td.best { font-weight: 700; color: var(--best); }
td.second { text-decoration: underline; }
.scroll { overflow-x: auto; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 0.15rem 0.8rem; font-size: 0.85rem; margin: 0.4rem 0; }
dl.meta dt { color: var(--muted); } dl.meta dd { margin: 0; word-break: break-word; }
details { margin: 0.3rem 0; }
pre.card { background: var(--head); padding: 0.8rem; white-space: pre-wrap; font-size: 0.85rem; }
figure { margin: 1rem 0; } figure img { max-width: 100%; border: 1px solid var(--line); }
.warn { background: #fff4e5; border-left: 4px solid #e69500; padding: 0.5rem 0.8rem; }
ul.toc { columns: 3; }
"""

JS = """\
// Sortable tables: click a header to sort its column (numbers by value; empty cells last).
(function () {
  "use strict";
  function value(cell) {
    var v = cell.getAttribute("data-v");
    if (v === null || v === "") { return null; }
    var f = parseFloat(v);
    return isNaN(f) ? v.toLowerCase() : f;
  }
  function sortBy(table, index, th) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var asc = th.getAttribute("aria-sort") !== "ascending";
    rows.sort(function (a, b) {
      var x = value(a.cells[index]), y = value(b.cells[index]);
      if (x === null && y === null) { return 0; }
      if (x === null) { return 1; }
      if (y === null) { return -1; }
      if (x < y) { return asc ? -1 : 1; }
      if (x > y) { return asc ? 1 : -1; }
      return 0;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
  }
  document.querySelectorAll("table.board").forEach(function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      th.addEventListener("click", function () { sortBy(table, i, th); });
    });
  });
}());
"""
