"""Tests for EqMotion (baselines/eqmotion.py)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from baselines.eqmotion import EqMotion, EqMotionLayer, dct_matrix
from estagbench import Batch, create_model, get_model_entry
from estagbench.testing import (
    assert_equivariant,
    equivariance_error,
    permutation_error,
    random_batch,
    random_info,
    training_losses,
)


def _boost(model: nn.Module, std: float = 0.5) -> None:
    """Re-draw the decoder so the predicted residual is O(1), not a near-copy of the last frame."""
    nn.init.normal_(model.head.weight, std=std)


def _build(dataset: str = "random", num_nodes: int = 6, **hparams: object) -> tuple[EqMotion, Batch]:
    info = random_info(num_nodes=num_nodes, history=10, seed=1, dataset=dataset)
    model = create_model("eqmotion", info, **hparams).double()
    _boost(model)
    return model, random_batch(info, batch_size=3, seed=2)


def test_registry_entry() -> None:
    entry = get_model_entry("eqmotion")
    assert entry.symmetry == "E3"
    assert not entry.multichannel
    assert entry.trains
    assert entry.module == "baselines.eqmotion"
    assert "2303.10876" in entry.paper


def test_dct_matrix_is_orthonormal() -> None:
    for n in (1, 2, 10):
        d = dct_matrix(n)
        torch.testing.assert_close(d @ d.T, torch.eye(n, dtype=torch.float64))
    # the first row is the (scaled) mean, the others are zero-mean cosines
    d = dct_matrix(10)
    torch.testing.assert_close(d[0], torch.full((10,), 1 / math.sqrt(10), dtype=torch.float64))
    with pytest.raises(ValueError):
        dct_matrix(0)


@pytest.mark.parametrize("dataset", ["random", "motion"])
def test_e3_equivariant_float64(dataset: str) -> None:
    model, batch = _build(dataset)
    with torch.no_grad():
        out = model(batch)
        assert out.shape == (3, 6, 1, 3)
        assert (out - batch.x[:, -1]).abs().max() > 0.05, "residual too small for a meaningful test"
        errors = assert_equivariant(model, batch, atol=1e-10)
        assert max(errors.values()) < 1e-10


def test_node_permutation_equivariant() -> None:
    model, batch = _build()
    info = random_info(num_nodes=6, history=10, seed=1)
    with torch.no_grad():
        assert permutation_error(model, info, batch) < 1e-12


def test_broken_invariant_is_caught() -> None:
    """A bias in the frame-axis encoder breaks translation/rotation equivariance; the test must see it."""
    model, batch = _build()
    model.coord_trans = nn.Linear(10, model.coord_trans.out_features, bias=True).double()
    nn.init.normal_(model.coord_trans.bias, std=1.0)
    with torch.no_grad():
        with pytest.raises(AssertionError, match="not E\\(3\\)-equivariant"):
            assert_equivariant(model, batch, atol=1e-10)
        assert max(equivariance_error(model, batch).values()) > 1e-4


def test_predicts_a_residual_of_the_last_frame() -> None:
    model, batch = _build()
    nn.init.zeros_(model.head.weight)
    with torch.no_grad():
        torch.testing.assert_close(model(batch), batch.x[:, -1])


def test_motion_input_is_normalised() -> None:
    """With the zero-mean/unit-RMS normalisation the model is scale-equivariant; without it, not."""
    model, batch = _build("motion")
    assert model.normalize
    scaled = Batch.from_info(random_info(num_nodes=6, history=10, seed=1, dataset="motion"), batch.x * 7.0)
    with torch.no_grad():
        torch.testing.assert_close(model(scaled), 7.0 * model(batch), atol=1e-10, rtol=1e-10)
        plain, _ = _build("md17")
        assert not plain.normalize
        assert (plain(scaled) - 7.0 * plain(batch)).abs().max() > 1e-3


def test_layer_shapes_and_invariant_h() -> None:
    layer = EqMotionLayer(hidden=8, channels=4).double()
    g = torch.Generator().manual_seed(3)
    h = torch.randn(2, 5, 8, generator=g, dtype=torch.float64)
    x = torch.randn(2, 5, 4, 3, generator=g, dtype=torch.float64)
    v = torch.randn(2, 5, 4, 3, generator=g, dtype=torch.float64)
    cat = torch.softmax(torch.randn(2, 5, 5, 2, generator=g, dtype=torch.float64), -1)
    off = (1 - torch.eye(5, dtype=torch.float64)).unsqueeze(-1)
    with torch.no_grad():
        h1, x1 = layer(h, x, v, cat, off)
        q, _ = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))
        h2, x2 = layer(h, x @ q.T, v @ q.T, cat, off)
    assert h1.shape == h.shape and x1.shape == x.shape
    torch.testing.assert_close(h2, h1)
    torch.testing.assert_close(x2, x1 @ q.T)


def test_bad_input_is_rejected() -> None:
    info = random_info(num_nodes=4, history=10)
    with pytest.raises(ValueError, match="even hidden"):
        EqMotion(info, hidden=15)
    with pytest.raises(ValueError, match="at least 2 past frames"):
        EqMotion(random_info(num_nodes=4, history=1))
    model = EqMotion(info).double()
    with pytest.raises(ValueError, match="T=10"):
        model(random_batch(random_info(num_nodes=4, history=8)))


@pytest.mark.data
def test_training_lowers_loss_on_ethanol(ethanol_case) -> None:
    """A few Adam steps (paper lr 5e-3) on the real ethanol slice lower the training loss."""
    info = ethanol_case.info
    train = ethanol_case.splits["train"]
    x, y = train.x[:100], train.y[:100]
    torch.manual_seed(0)
    model = create_model("eqmotion", info, hidden=16)
    before, after = training_losses(model, Batch.from_info(info, x, y), steps=10)
    assert after < 0.8 * before, (before, after)
