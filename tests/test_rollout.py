"""Tests for the sliding-window rollout (estagbench/rollout.py, Appendix D.4)."""

from __future__ import annotations

import csv
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from estagbench import Batch, create_model
from estagbench.data.base import CaseData
from estagbench.rollout import rollout, rollout_mse, rollout_windows
from estagbench.testing import random_info


class ConstantVelocity(nn.Module):
    """x(T) = 2 x(T-1) - x(T-2): exact on trajectories that move with constant velocity."""

    def forward(self, batch: Batch) -> torch.Tensor:
        return 2 * batch.x[:, -1] - batch.x[:, -2]


def _linear_case(frames: int = 60, n: int = 4, c: int = 1, history: int = 5, stride: int = 3) -> CaseData:
    t = np.arange(frames, dtype=np.float64)[:, None, None, None]
    rng = np.random.default_rng(0)
    x0, v = rng.normal(size=(1, n, c, 3)), rng.normal(size=(1, n, c, 3))
    traj = x0 + 0.1 * t * v
    src, dst = np.nonzero(~np.eye(n, dtype=bool))
    starts = np.arange(0, frames - history * stride)
    windows = {name: np.stack([np.zeros_like(s), s], 1) for name, s in
               (("train", starts[::3]), ("val", starts[1::3]), ("test", starts[2::3]))}
    return CaseData("synthetic", "linear", [traj], np.ones((n, 1)), np.stack([src, dst]),
                    np.ones((len(src), 1)), windows, history, stride)


def test_rollout_windows_are_the_true_frames() -> None:
    data = _linear_case()
    x, y = rollout_windows(data, "test", steps=4, dtype=torch.float64)
    traj = data.trajectories[0]
    starts = data.windows["test"][:, 1]
    keep = starts + (5 - 1 + 4) * 3 < traj.shape[0]
    assert x.shape == (int(keep.sum()), 5, 4, 1, 3) and y.shape == (int(keep.sum()), 4, 4, 1, 3)
    s = int(starts[keep][-1])
    assert torch.equal(x[-1], torch.as_tensor(traj[s : s + 15 : 3]))
    assert torch.equal(y[-1], torch.as_tensor(traj[s + 15 : s + 27 : 3]))
    with pytest.raises(ValueError, match="future frames"):
        rollout_windows(data, "test", steps=100)
    with pytest.raises(KeyError):
        rollout_windows(data, "holdout", steps=2)


def test_rollout_feeds_predictions_back() -> None:
    """An exact one-step model stays exact over many steps only if the window slides correctly."""
    data = _linear_case()
    info = data.info()
    x, y = rollout_windows(data, "test", steps=6, dtype=torch.float64)
    pred = rollout(ConstantVelocity(), info, x, steps=6)
    assert pred.shape == y.shape
    assert torch.allclose(pred, y, atol=1e-12)
    per_step = rollout_mse(ConstantVelocity(), info, x, y, batch_size=3)
    assert per_step.shape == (6,) and per_step.max() < 1e-20


def test_rollout_mse_per_step_matches_manual() -> None:
    """With Pt-t (repeat the last frame) step j's error is that of frame T-1+j against frame T-1."""
    data = _linear_case()
    info = data.info()
    x, y = rollout_windows(data, "test", steps=3, dtype=torch.float64)
    model = create_model("pt-t", info)
    pred = rollout(model, info, x, steps=3)
    assert torch.equal(pred, x[:, -1:].expand_as(pred))
    per_step = rollout_mse(model, info, x, y, batch_size=2)
    manual = ((x[:, -1:] - y) ** 2).mean(dim=(0, 2, 3, 4))
    assert torch.allclose(per_step, manual.double(), atol=1e-14)
    assert per_step[0] < per_step[1] < per_step[2]  # drifting away at constant velocity


def test_rollout_uses_history_only_and_restores_mode() -> None:
    info = random_info(num_nodes=4, history=10)
    model = create_model("estag-full-attn", info).double()
    model.train()
    x = torch.randn(2, 10, 4, 1, 3, dtype=torch.float64)
    out = rollout(model, info, x, steps=3)
    assert out.shape == (2, 3, 4, 1, 3) and model.training
    # step 2 equals a one-step prediction from the window [x[2:], pred step 1]
    with torch.no_grad():
        w = torch.cat([x[:, 1:], out[:, :1]], 1)
        model.eval()
        one = model(Batch.from_info(info, w))
    assert torch.allclose(out[:, 1], one, atol=1e-12)
    with pytest.raises(ValueError, match="steps"):
        rollout(model, info, x, steps=0)


def test_rollout_command_on_real_ethanol(shared_data, tmp_path) -> None:
    """`estagbench rollout` trains (2 epochs) or evaluates, rolls out, and writes the per-step table."""
    pytest.importorskip("pandas")
    from estagbench.cli import main

    if not (shared_data / "md17" / "md17_ethanol.npz").exists():
        pytest.skip("md17_ethanol.npz missing")
    threads = torch.get_num_threads()  # --threads sets torch's global thread count; restore it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = main(["rollout", "--models", "pt-t,estag-full-attn", "--dataset", "md17", "--molecules", "ethanol",
                   "--data-dir", str(shared_data), "--split-margin", "0", "--split-fractions", "0.3,0.15,0.15",
                   "--steps", "4", "--seeds", "1", "--epochs", "2", "--threads", "1", "--out", str(tmp_path),
                   "--no-progress"])
    torch.set_num_threads(threads)
    assert rc == 0
    rows = list(csv.DictReader(open(tmp_path / "rollout" / "rollout-md17-ethanol.csv")))
    assert {r["model"] for r in rows} == {"pt-t", "estag-full-attn"}
    assert sorted(int(r["step"]) for r in rows if r["model"] == "pt-t") == [1, 2, 3, 4]
    pt = [float(r["mse"]) for r in rows if r["model"] == "pt-t"]
    assert all(np.isfinite(pt)) and pt[0] > 0
