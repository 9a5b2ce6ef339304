"""Figures: stored checkpoints reload to the stored numbers; each figure is written as PNG and PDF."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from estagbench import plots
from estagbench.cli import main
from estagbench.results import ResultStore, cell_id, config_hash
from estagbench.tables import load_records

from .conftest import require_data

ETHANOL = ["--split-margin", "0", "--split-fractions", "0.3,0.15,0.15"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """ESTAG, ST_EGNN and Pt-t on the real ethanol slice: 1 epoch, seed 1 (evaluated at the last epoch, so one checkpoint)."""
    root = require_data("md17/md17_ethanol.npz")
    out = tmp_path_factory.mktemp("store")
    argv = ["run", "--models", "pt-t,estag,st-egnn", "--dataset", "md17", "--molecules", "ethanol", *ETHANOL,
            "--data-dir", str(root), "--epochs", "1", "--seeds", "1", "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    return out, root


def _check_files(paths, stem):
    assert [p.name for p in paths] == [f"{stem}.png", f"{stem}.pdf"]
    img = imread(paths[0])
    assert img.shape[0] > 200 and img.shape[1] > 300
    assert float(np.std(img[..., :3])) > 0.01, "the PNG is not blank"
    assert paths[1].read_bytes()[:5] == b"%PDF-"


@pytest.mark.parametrize("model", ["estag", "st-egnn", "pt-t"])
def test_reloaded_checkpoint_reproduces_stored_test_mse(trained, model):
    out, root = trained
    (rec,) = plots.find_records(out, model, "md17", "ethanol")
    net, prepared = plots.load_trained(out, rec, root)
    pred, _ = plots.predict(net, prepared, "test")
    mse = float(((pred.double() - prepared.splits["test"].y.double()) ** 2).mean())
    assert mse == pytest.approx(rec["metrics"]["test_mse"], rel=1e-5)


def test_attention_maps_are_causal_distributions(trained, tmp_path):
    out, root = trained
    (rec,) = plots.find_records(out, "estag", "md17", "ethanol")
    net, prepared = plots.load_trained(out, rec, root)
    _, det = plots.predict(net, prepared, "test", details=True)
    maps, pool = plots.attention_summary(det)
    assert maps.shape == (2, 10, 10)  # L = 2 blocks, T = 10
    np.testing.assert_allclose(maps.sum(-1), 1.0, atol=1e-5)
    assert np.abs(np.triu(maps, k=1)).max() < 1e-7, "forward attention: no weight on later frames"
    assert pool.shape == (10,) and pool.sum() == pytest.approx(1.0, abs=1e-5)  # Eq. 13 weights sum to one
    _check_files(plots.save_figure(plots.plot_attention(maps, pool), tmp_path, "att"), "att")


def test_plot_commands_write_png_and_pdf(trained, tmp_path):
    out, root = trained
    figs = tmp_path / "figs"
    common = ["--results", str(out), "--out", str(figs), "--case", "ethanol"]
    assert main(["plot", "curves", *common]) == 0
    _check_files([figs / "curves-md17-ethanol.png", figs / "curves-md17-ethanol.pdf"], "curves-md17-ethanol")
    assert main(["plot", "attention", *common, "--data-dir", str(root)]) == 0
    assert (figs / "attention-estag-md17-ethanol.pdf").exists()
    assert main(["plot", "sample", *common, "--data-dir", str(root), "--index", "3"]) == 0
    _check_files([figs / "sample-md17-ethanol-3.png", figs / "sample-md17-ethanol-3.pdf"], "sample-md17-ethanol-3")
    assert main(["plot", "sample", *common, "--data-dir", str(root), "--index", "100000"]) == 2
    assert main(["plot", "attention", *common, "--seed", "9"]) == 2  # no such run
    assert main(["plot", "attention", *common, "--models", "st-egnn"]) == 2  # no temporal attention to draw


def test_without_case_the_first_case_with_stored_runs_is_plotted(trained, tmp_path):
    out, _ = trained  # ethanol only: the default must not be md17's first molecule (aspirin)
    assert main(["plot", "curves", "--results", str(out), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "curves-md17-ethanol.png").exists()


def test_curves_one_line_per_trained_model(trained):
    out, _ = trained
    fig = plots.plot_curves(out, "md17", "ethanol", ["estag", "st-egnn", "pt-t"])
    train_ax, val_ax = fig.axes[:2]
    assert len(train_ax.lines) == 2  # Pt-t trains nothing
    assert len(val_ax.lines) == 3  # ... and is a reference line for validation
    log = pd.read_csv(out / "runs" / plots.find_records(out, "estag", "md17", "ethanol")[0]["_cell_id"] / "log.csv")
    assert list(train_ax.lines[0].get_ydata()) == pytest.approx(list(log["train_loss"]))
    assert len(log) == 1 and train_ax.lines[0].get_marker() == "."  # one epoch: a point, not an invisible line
    with pytest.raises(ValueError, match="no stored runs"):
        plots.plot_curves(out, "md17", "ethanol", ["egnn-s"])


def test_sample_figure_titles_carry_the_sample_mse(tmp_path):
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(5, 3))
    pred = truth + 0.1
    fig = plots.plot_sample(truth, {"a": pred, "b": truth}, np.array([[0, 1], [1, 2]]))
    assert "MSE = 0.01" in fig.axes[0].get_title() and "MSE = 0" in fig.axes[1].get_title()
    with pytest.raises(ValueError):
        plots.plot_sample(truth, {})


def _put(store, history, mse, seed):
    conf = {"model": "estag", "case": "ethanol", "history": history}
    rec = {"model": "estag", "dataset": "md17", "case": "ethanol", "seed": seed, "config_hash": config_hash(conf),
           "config": {"epochs": 500, "model_hparams": {}}, "data_params": {"history": history},
           "metrics": {"test_mse": mse, "val_mse": mse}, "timings": {}, "num_params": 10, "finished_at": "x"}  # fmt: skip
    store.put(cell_id("estag", "md17", "ethanol", seed, rec["config_hash"]), rec)


def test_tsweep_plots_table6_cells(tmp_path):
    store = ResultStore(tmp_path / "res")
    for seed, noise in ((1, 0.0), (2, 0.02e-4)):
        _put(store, 3, 1.7e-4 + noise, seed)
        _put(store, 10, 1.0e-4 + noise, seed)
    fig = plots.plot_tsweep(load_records(store.root))
    ax = fig.axes[0]
    xs = ax.lines[0].get_xdata()
    ys = ax.lines[0].get_ydata()
    assert list(xs) == [3, 10] and list(ys) == pytest.approx([1.71, 1.01])
    assert list(ax.lines[-1].get_ydata())[:3] == pytest.approx([1.760, 1.395, 1.064])  # the paper's Table 6
    _check_files(plots.save_figure(fig, tmp_path, "ts"), "ts")
    with pytest.raises(ValueError, match="Table 6"):
        plots.plot_tsweep(load_records(tmp_path / "empty"))


def test_rollout_figure_from_per_step_table(tmp_path):
    rows = [{"model": m, "dataset": "md17", "case": "ethanol", "seed": s, "step": k, "mse": k * b * (1 + 0.1 * s)}
            for m, b in (("estag-full-attn", 1e-5), ("st-egnn", 5e-5)) for s in (1, 2) for k in range(1, 11)]  # fmt: skip
    path = tmp_path / "res" / "rollout" / "rollout-md17-ethanol.csv"  # where `estagbench rollout` writes it
    path.parent.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(path, index=False)
    figs = tmp_path / "f"
    assert main(["plot", "rollout", "--case", "ethanol", "--results", str(tmp_path / "res"), "--out", str(figs)]) == 0
    _check_files([figs / "rollout-md17-ethanol.png", figs / "rollout-md17-ethanol.pdf"], "rollout-md17-ethanol")
    assert main(["plot", "rollout", "--case", "aspirin", "--results", str(tmp_path / "res")]) == 2  # no such table
    # --input: the figure is named after the dataset and case the table holds (not the --dataset default)
    other = tmp_path / "g"
    assert main(["plot", "rollout", "--input", str(path), str(path), "--out", str(other)]) == 0
    assert (other / "rollout-md17-ethanol.png").exists()
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"\xff\xfe\x00binary")
    assert main(["plot", "rollout", "--input", str(bad), "--out", str(other)]) == 2
    fig = plots.plot_rollout(pd.DataFrame(rows))
    assert len(fig.axes[0].lines) == 2
    assert fig.axes[0].lines[0].get_ydata()[0] == pytest.approx(1e-5 * 1.15)  # mean over seeds 1, 2
    with pytest.raises(ValueError, match="columns"):
        plots.plot_rollout(pd.DataFrame({"model": ["a"], "mse": [1.0]}))
    (tmp_path / "r.json").write_text(json.dumps(rows))
    assert len(plots._read_rollout([tmp_path / "r.json"])) == len(rows)


def test_figures_use_the_agg_canvas():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = plots.plot_rollout(pd.DataFrame({"model": ["a"], "step": [1], "mse": [1.0]}))
    assert isinstance(fig.canvas, FigureCanvasAgg)
