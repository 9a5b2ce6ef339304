"""The evaluation schedule (estagbench.train): test evaluated only where validation improves.

The reported metrics must be those of the old schedule (test at every evaluation epoch),
bit for bit, on a tiny real run.
"""

from __future__ import annotations

import math

import pytest

from estagbench import train
from estagbench.train import TrainConfig, train_model


@pytest.mark.parametrize("model", ["egnn-t", "estag"])
def test_test_only_when_val_improves_reports_the_same_numbers(ethanol_case, monkeypatch: pytest.MonkeyPatch, model: str) -> None:
    cfg = TrainConfig(epochs=12, eval_every=1, lr=3e-2)  # a high rate: validation does not improve at every epoch
    monkeypatch.setattr(train, "TEST_ONLY_WHEN_VAL_IMPROVES", False)
    old = train_model(model, ethanol_case, seed=1, config=cfg)
    monkeypatch.setattr(train, "TEST_ONLY_WHEN_VAL_IMPROVES", True)
    new = train_model(model, ethanol_case, seed=1, config=cfg)
    assert new.metrics == old.metrics  # test MSE at the best-val epoch, val MSE, epoch, last loss: identical
    assert new.metrics["best_epoch"] > 0 and math.isfinite(new.metrics["test_mse"])
    best, evaluated, skipped = math.inf, [], []
    for a, b in zip(old.curve, new.curve, strict=True):
        assert a["epoch"] == b["epoch"] and a["train_loss"] == b["train_loss"] and a["val_mse"] == b["val_mse"]
        if b["val_mse"] < best:  # improved: test evaluated, with the old loop's number
            best = b["val_mse"]
            assert b["test_mse"] == a["test_mse"]
            evaluated.append(b["epoch"])
        else:  # not improved: test not evaluated, recorded as NaN
            assert math.isnan(b["test_mse"]) and math.isfinite(a["test_mse"])
            skipped.append(b["epoch"])
    assert evaluated and skipped, (evaluated, skipped)  # both branches were exercised


def test_untrained_models_still_get_both_splits(ethanol_case) -> None:
    out = train_model("pt-t", ethanol_case, seed=1, config=TrainConfig(epochs=3))
    assert out.metrics["best_epoch"] == 0 and math.isfinite(out.metrics["test_mse"]) and len(out.curve) == 1
