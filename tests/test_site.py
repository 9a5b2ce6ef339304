"""`estagbench site`: built from the committed leaderboards, checked as data and in a real headless Chromium.

The browser tests need Debian's ``chromium`` and ``chromium-driver`` and the ``site``
extra (selenium).  They skip with a reason where those are missing, unless
``ESTAGBENCH_REQUIRE_BROWSER=1`` (set by ``.ci/run``), where they fail instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from estagbench.cli import main
from estagbench.results import ResultStore, cell_id, config_hash
from estagbench.site import build_site

REPO = Path(__file__).resolve().parents[1]
LEADERBOARDS = REPO / "leaderboards"
CSVS = sorted(LEADERBOARDS.glob("table*.csv"))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site") / "site"
    payload = build_site(out, leaderboards=LEADERBOARDS, warn=pytest.fail)
    return out, payload


def _csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, comment="#", dtype={"row": str, "column": str, "label": str, "column_label": str})


def _shown(mean: float, std: float) -> str:
    """A cell as the tables print it (3 decimals, ± unless one seed)."""
    return f"{mean:.3f}" + ("" if pd.isna(std) else f" ± {std:.3f}")


# --------------------------------------------------------------------------- the folder, without a browser
def test_site_is_self_contained(site):
    out, payload = site
    assert (out / "index.html").is_file() and (out / "assets" / "site.css").is_file()
    assert len(payload["tables"]) == len(CSVS)
    for page in out.rglob("*.html"):
        text = page.read_text()
        for ref in re.findall(r'(?:href|src)="([^"#]*)', text):  # (a data card may mention a URL as text)
            if not ref:
                continue  # an anchor on the same page
            assert "://" not in ref and not ref.startswith("//"), f"{page.name} links outside the folder: {ref}"
            assert (page.parent / ref).resolve().is_file(), f"{page.relative_to(out)} links to missing {ref}"
    assert json.loads((out / "data.json").read_text()) == payload


def test_data_json_holds_every_number_of_every_csv(site):
    _, payload = site
    by_stem = {t["stem"]: t for t in payload["tables"]}
    for path in CSVS:
        t = by_stem[path.stem]
        rows = {r["key"]: r for r in t["rows"]}
        for rec in _csv(path).to_dict("records"):
            cell = rows[rec["row"]]["cells"][rec["column"]]
            if pd.isna(rec["display_mean"]):
                assert cell["mean"] is None
                continue
            assert cell["mean"] == pytest.approx(rec["display_mean"], rel=1e-12)
            assert cell["n"] == rec["n_seeds"]
            if not pd.isna(rec["p_value"]):
                assert cell["p_value"] == pytest.approx(rec["p_value"], rel=1e-9)
            if not pd.isna(rec["paper"]):
                assert cell["paper"] == pytest.approx(rec["paper"])


def test_model_and_dataset_pages(site):
    out, payload = site
    estag = next(m for m in payload["models"] if m["name"] == "estag")
    assert estag["symmetry"] == "E3" and estag["figures"] and estag["results"]
    assert "adk-mini" in estag["seconds_per_epoch"]  # Table 2's TIME column
    html = (out / "models" / "estag.html").read_text()
    assert "<img" in html and "Parameters and speed" in html
    md17 = next(d for d in payload["datasets"] if d["name"] == "md17")
    assert "1f5919561e69c12754e10b335721be7cc59ce9fbba3970188303f88d462cdd57" in md17["known_sha256"].values()
    assert "Data card" in (out / "datasets" / "md17.html").read_text()


def test_site_command_and_rebuild_in_place(tmp_path, capsys):
    out = tmp_path / "site"
    assert main(["site", "--out", str(out), "--leaderboards", str(LEADERBOARDS)]) == 0
    assert "9 tables" in capsys.readouterr().out or len(CSVS) != 9
    (out / "stale.txt").write_text("x")
    assert main(["site", "--out", str(out), "--leaderboards", str(LEADERBOARDS)]) == 0
    assert not (out / "stale.txt").exists() and (out / "index.html").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary folders left behind"


# --------------------------------------------------------------------------- bad input
def _copy_leaderboards(tmp_path: Path) -> Path:
    dst = tmp_path / "lb"
    shutil.copytree(LEADERBOARDS, dst)
    return dst


def test_corrupt_table_is_named_and_the_rest_builds(tmp_path, capsys):
    lb = _copy_leaderboards(tmp_path)
    (lb / "table5.csv").write_text("# table: 5\nthis is not,a table\n\x00\x01")
    assert main(["site", "--out", str(tmp_path / "s"), "--leaderboards", str(lb)]) == 0
    err = capsys.readouterr().err
    assert "table5.csv: not a leaderboard table, left out" in err and err.count("\n") == 1
    payload = json.loads((tmp_path / "s" / "data.json").read_text())
    assert "table5" not in {t["stem"] for t in payload["tables"]} and len(payload["tables"]) == len(CSVS) - 1
    assert "table5.csv" in (tmp_path / "s" / "index.html").read_text()  # the warning is on the page too


def test_missing_cells_show_a_dash(tmp_path):
    lb = _copy_leaderboards(tmp_path)
    text = (lb / "table1.csv").read_text().splitlines()
    head = [x for x in text if x.startswith("#")]
    df = pd.read_csv(lb / "table1.csv", comment="#", dtype=str, keep_default_na=False)
    df.loc[df["row"] == "estag", ["mean", "std", "display_mean", "display_std", "p_value", "ci_low", "ci_high"]] = ""
    (lb / "table1.csv").write_text("\n".join(head) + "\n" + df.to_csv(index=False, lineterminator="\n"))
    payload = build_site(tmp_path / "s", leaderboards=lb, warn=pytest.fail)
    t1 = next(t for t in payload["tables"] if t["stem"] == "table1")
    assert next(r for r in t1["rows"] if r["key"] == "estag")["cells"]["ethanol"]["mean"] is None
    html = (tmp_path / "s" / "index.html").read_text()
    assert '<td class="ours" data-v="">–</td>' in html


def test_results_folder_without_records(tmp_path, capsys):
    (tmp_path / "res" / "results").mkdir(parents=True)
    assert main(["site", "--out", str(tmp_path / "s"), "--results", str(tmp_path / "res")]) == 0
    assert "holds no records" in capsys.readouterr().err
    assert main(["site", "--out", str(tmp_path / "s2"), "--results", str(tmp_path / "res"), "--no-leaderboards"]) == 2
    assert "nothing to show" in capsys.readouterr().err
    assert main(["site", "--out", str(tmp_path / "s3"), "--results", str(tmp_path / "nowhere")]) == 2
    assert "no results store there" in capsys.readouterr().err
    assert not (tmp_path / "s2").exists() and not (tmp_path / "s3").exists()


def test_out_folder_that_is_not_a_site_is_refused(tmp_path, capsys):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("mine")
    assert main(["site", "--out", str(tmp_path / "docs")]) == 2
    assert "not a site built by estagbench" in capsys.readouterr().err
    assert (tmp_path / "docs" / "notes.txt").read_text() == "mine"


def test_a_results_store_adds_tables_params_and_split_sizes(tmp_path):
    store = ResultStore(tmp_path / "res")
    dp = {"history": 10, "stride": 10, "split_margin": 0}
    train = {"epochs": 500, "lr": 5e-3, "hidden": 16, "batch_size": 100, "weight_decay": 1e-12, "model_hparams": {}}
    for model, vals in (("estag", (6e-5, 7e-5, 6.5e-5)), ("st-egnn", (2.5e-4, 3e-4, 2.8e-4))):
        chash = config_hash({"model": model, "dataset": "md17", "case": "ethanol", "data_params": dp, "train": train})
        for seed, v in enumerate(vals, 1):
            store.put(cell_id(model, "md17", "ethanol", seed, chash), {
                "model": model, "dataset": "md17", "case": "ethanol", "seed": seed, "config": train,
                "config_hash": chash, "data_params": dp, "metrics": {"test_mse": v, "val_mse": v, "best_epoch": 5},
                "timings": {"train_seconds_per_epoch": 0.5}, "num_params": 1234, "official_data": False,
                "split_hash": "s1", "split_sizes": {"train": 500, "val": 284, "test": 284},
                "data_files": [{"path": "md17/md17_ethanol.npz", "sha256": "ab" * 32}],
                "leakage": {"test_targets_in_train": 1.0, "test_targets_in_train_count": 284, "test_windows": 284,
                            "min_gap_frames": -99},
                "finished_at": "2026-12-01T10:00:00+0000", "provenance": {"git_commit": "abc"},
            })
    payload = build_site(tmp_path / "s", leaderboards=None, results=store.root, warn=pytest.fail)
    assert {t["source"].split(":")[0] for t in payload["tables"]} == {"results"}
    t1 = next(t for t in payload["tables"] if t["number"] == 1)  # (ESTAG's ethanol cell also fills Tables 4-7)
    assert {r["key"] for r in t1["rows"] if r["cells"]["ethanol"]["mean"] is not None} == {"estag", "st-egnn"}
    estag = next(m for m in payload["models"] if m["name"] == "estag")
    assert estag["num_params"] == {"md17/ethanol": 1234}
    md17 = next(d for d in payload["datasets"] if d["name"] == "md17")
    assert md17["stored"][0]["split_sizes"] == {"train": 500, "val": 284, "test": 284}
    page = (tmp_path / "s" / "datasets" / "md17.html").read_text()
    assert "train 500, val 284, test 284" in page
    assert "100.0% of test targets (284/284) inside training windows" in page  # the split's leakage, measured


# --------------------------------------------------------------------------- in a real browser
def _driver(profile: Path):
    required = os.environ.get("ESTAGBENCH_REQUIRE_BROWSER") == "1"
    browser, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        webdriver = None
    missing = [n for n, ok in (("selenium (pip install '.[site]')", webdriver), ("chromium", browser),
                               ("chromedriver (apt-get install chromium-driver)", chromedriver)) if not ok]
    if missing:
        msg = f"browser tests need {', '.join(missing)}"
        if required:
            pytest.fail(msg + " (ESTAGBENCH_REQUIRE_BROWSER=1)")
        pytest.skip(msg)
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,1000", f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(options=opts, service=Service(executable_path=chromedriver))


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    profile = tmp_path_factory.mktemp("chromium-profile")
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not look for drivers online
    drv = _driver(profile)
    yield drv
    drv.quit()


def _open(driver, path: Path) -> None:
    driver.get(path.resolve().as_uri())


def _requests(driver) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    return urls


def test_every_table_shows_the_numbers_of_its_csv(site, browser):
    from selenium.webdriver.common.by import By

    out, _ = site
    _open(browser, out / "index.html")
    for path in CSVS:
        table = browser.find_element(By.ID, f"t-leaderboards-{path.stem}")
        head, rows = browser.execute_script(  # what is rendered, read in one round trip
            "var t = arguments[0]; function txt(c) { return c.innerText.trim(); }"
            "return [Array.from(t.tHead.rows[0].cells, txt), Array.from(t.tBodies[0].rows, r => Array.from(r.cells, txt))];",
            table,
        )
        body = {r[0]: r for r in rows}
        for rec in _csv(path).to_dict("records"):
            cells = body[rec["label"]]
            shown = cells[head.index(rec["column_label"])]
            want = "–" if pd.isna(rec["display_mean"]) else _shown(rec["display_mean"], rec["display_std"])
            assert shown.rstrip("†") == want, f"{path.name} {rec['label']}/{rec['column_label']}"
            tied = not pd.isna(rec["p_value"]) and rec["p_value"] >= 0.05 and rec["mark"] != "best"
            assert shown.endswith("†") == tied
            if not pd.isna(rec["paper"]):
                assert cells[head.index(f"{rec['column_label']} (paper)")] == f"{rec['paper']:.3f}"


def test_sorting_a_column_reorders_rows(site, browser):
    from selenium.webdriver.common.by import By

    out, _ = site
    _open(browser, out / "index.html")
    table = browser.find_element(By.ID, "t-leaderboards-table1")
    header = table.find_elements(By.CSS_SELECTOR, "thead th")[1]

    def column() -> list[float | None]:
        return [None if (v := td.get_attribute("data-v")) == "" else float(v)
                for td in table.find_elements(By.CSS_SELECTOR, "tbody tr td:nth-child(2)")]

    before = column()
    header.click()
    asc = column()
    assert asc == sorted(before) and asc != before and header.get_attribute("aria-sort") == "ascending"
    header.click()
    assert column() == sorted(before, reverse=True)
    first = table.find_element(By.CSS_SELECTOR, "tbody tr td").text
    assert first == "Pt-s"  # the worst Table 1 row comes first in descending order


def test_model_page_figure_loads_offline_without_console_errors(site, browser, tmp_path):
    from selenium.webdriver.common.by import By

    out, _ = site
    browser.get_log("browser")
    browser.get_log("performance")
    pages = [out / "index.html", out / "models" / "estag.html", out / "datasets" / "md17.html"]
    for page in pages:
        _open(browser, page)
        if page.parent.name == "models":
            imgs = browser.find_elements(By.TAG_NAME, "img")
            assert imgs, "the ESTAG page shows no figure"
            for img in imgs:
                browser.execute_script("arguments[0].scrollIntoView();", img)
                loaded = browser.execute_script(
                    "return arguments[0].complete && arguments[0].naturalWidth > 0;", img)
                assert loaded, f"{img.get_attribute('src')} did not load"
    urls = _requests(browser)
    assert urls and all(u.startswith("file://") for u in urls), [u for u in urls if not u.startswith("file://")]
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors
    _open(browser, out / "index.html")
    shot = tmp_path / "site-index.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000


def test_missing_browser_fails_when_required(monkeypatch, tmp_path):
    """CI sets ESTAGBENCH_REQUIRE_BROWSER=1: no Chromium must be a failure there, not a skip."""
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setenv("ESTAGBENCH_REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="chromium"):
        _driver(tmp_path)
    monkeypatch.setenv("ESTAGBENCH_REQUIRE_BROWSER", "0")
    with pytest.raises(pytest.skip.Exception, match="chromium"):
        _driver(tmp_path)


def test_readme_shows_the_site_screenshot_its_command_makes():
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Leaderboard site", 1)[1].split("\n## ", 1)[0]
    assert "estagbench site --out site/" in section and "--screenshot=\"$PWD/docs/figures/site-index.png\"" in section
    assert "](docs/figures/site-index.png)" in section
    png = REPO / "docs" / "figures" / "site-index.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size < 300_000
