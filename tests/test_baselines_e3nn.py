"""Tests for the e3nn baselines: st-tfn (baselines/tfn.py) and st-se3 (baselines/se3_transformer.py)."""

from __future__ import annotations

import pytest
import torch
from e3nn import o3
from torch import nn

from baselines.se3_transformer import SE3AttentionLayer, scatter_softmax
from baselines.tfn import SH_IRREPS, ChannelwiseTensorProduct, EdgeGeometry, FramewiseST, hidden_irreps
from estagbench import Batch, create_model, get_model_entry
from estagbench.testing import (
    assert_equivariant,
    equivariance_error,
    permutation_error,
    random_batch,
    random_info,
    random_orthogonal,
    training_losses,
)

MODELS = ("st-tfn", "st-se3")




@pytest.fixture
def float64_default():
    """e3nn builds its constants (Clebsch-Gordan, Wigner D) in the default dtype."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


def _build(name: str, num_nodes: int = 5, **hparams: object) -> tuple[nn.Module, Batch]:
    """A float64 model whose displacement scale is 1, so frames really move."""
    info = random_info(num_nodes=num_nodes, history=10, seed=1)
    model = create_model(name, info, **hparams).double()
    with torch.no_grad():
        model.out_scale.fill_(1.0)
    return model, random_batch(info, batch_size=3, seed=2)


# --------------------------------------------------------------------------- registry


@pytest.mark.parametrize("name", MODELS)
def test_registry_entries(name: str) -> None:
    entry = get_model_entry(name)
    assert entry.symmetry == "E3"
    assert not entry.multichannel
    assert entry.trains
    assert entry.module in ("baselines.tfn", "baselines.se3_transformer")
    assert entry.paper


@pytest.mark.parametrize("name", MODELS)
def test_multichannel_is_refused(name: str) -> None:
    info = random_info(num_nodes=4, num_channels=4, history=10)
    with pytest.raises(ValueError, match="single-channel"):
        create_model(name, info)
    model, _ = _build(name, num_nodes=4)
    with pytest.raises(ValueError, match="single-channel"):
        model(random_batch(info))


# --------------------------------------------------------------------------- tensor product


@pytest.mark.parametrize(
    "irreps_in,target",
    [
        ("16x0e", "16x0e + 8x1o + 4x2e"),
        ("16x0e + 8x1o + 4x2e", "16x0e + 8x1o + 4x2e"),
        ("3x0e + 2x1o + 2x2e", "1x1o"),
        ("2x1o + 1x2e", "1x0e + 1x2e"),
    ],
)
def test_fused_tensor_product_equals_e3nn(irreps_in: str, target: str, float64_default) -> None:
    """The fused channel-wise product is e3nn's ``uvu`` TensorProduct, weights and layout included."""
    tp = ChannelwiseTensorProduct(o3.Irreps(irreps_in), SH_IRREPS, o3.Irreps(target))
    ref = tp.reference()
    assert ref.weight_numel == tp.weight_numel
    f = tp.irreps_in.randn(4, 6, -1)
    sh = o3.spherical_harmonics(SH_IRREPS, torch.randn(4, 6, 3), normalize=True)
    w = torch.randn(4, 6, tp.weight_numel)
    ours = tp.to_e3nn_layout(tp(f, sh, w))
    torch.testing.assert_close(ours, ref(f, sh, w), atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(tp.from_e3nn_layout(ours), tp(f, sh, w), atol=0, rtol=0)


def test_tensor_product_keeps_only_target_irreps() -> None:
    tp = ChannelwiseTensorProduct(hidden_irreps(8), SH_IRREPS, o3.Irreps("1x1o"))
    assert {ir for _, ir in tp.irreps_mid} == {o3.Irrep("1o")}
    with pytest.raises(ValueError, match="no tensor-product path"):
        ChannelwiseTensorProduct(o3.Irreps("4x0e"), o3.Irreps("1x0e"), o3.Irreps("1x1e"))


def test_hidden_irreps_rejects_high_degree() -> None:
    assert hidden_irreps(16) == o3.Irreps("16x0e + 8x1o + 4x2e")
    with pytest.raises(ValueError, match="l <= 2"):
        hidden_irreps(16, lmax=3)


def test_edge_geometry_transforms_as_spherical_harmonics(float64_default) -> None:
    g = torch.Generator().manual_seed(3)
    pos = torch.randn(5, 2, 3, generator=g, dtype=torch.float64)
    edge_index = torch.tensor([[0, 1, 2, 3, 4], [1, 2, 3, 4, 0]])
    attr = torch.rand(5, 3, dtype=torch.float64)
    geo = EdgeGeometry()
    sh, scalars = geo(pos, edge_index, attr)
    for reflect in (False, True):
        rot = random_orthogonal(g, reflect)
        sh_r, scalars_r = geo(pos @ rot.T + 1.5, edge_index, attr)
        torch.testing.assert_close(sh_r, sh @ SH_IRREPS.D_from_matrix(rot).T, atol=1e-12, rtol=0)
        torch.testing.assert_close(scalars_r, scalars, atol=1e-12, rtol=0)


# --------------------------------------------------------------------------- attention


def test_scatter_softmax_matches_dense_softmax() -> None:
    g = torch.Generator().manual_seed(4)
    dst = torch.tensor([0, 0, 1, 2, 2, 2, 0])
    logits = torch.randn(7, 3, generator=g, dtype=torch.float64) * 30
    alpha = scatter_softmax(logits, dst, num_nodes=4)
    for node in range(3):
        sel = dst == node
        torch.testing.assert_close(alpha[sel], torch.softmax(logits[sel], dim=0))


def test_attention_weights_are_invariant(float64_default) -> None:
    irreps = hidden_irreps(8)
    layer = SE3AttentionLayer(irreps, irreps, edge_scalar_dim=4)
    g = torch.Generator().manual_seed(5)
    pos = torch.randn(6, 2, 3, generator=g)
    edge_index = torch.tensor([[0, 1, 2, 3, 4, 5, 0, 2], [1, 2, 3, 4, 5, 0, 3, 5]])
    attr = torch.rand(8, 3, generator=g)
    f = irreps.randn(6, 2, -1)
    geo = EdgeGeometry()
    alpha, _ = layer.attention(f, *geo(pos, edge_index, attr), edge_index)
    rot = random_orthogonal(g, reflect=True)
    f_r = f @ irreps.D_from_matrix(rot).T
    alpha_r, _ = layer.attention(f_r, *geo(pos @ rot.T, edge_index, attr), edge_index)
    torch.testing.assert_close(alpha_r, alpha, atol=1e-12, rtol=0)
    assert alpha.std() > 1e-3  # not trivially uniform


# --------------------------------------------------------------------------- equivariance


@pytest.mark.parametrize("name", MODELS)
def test_e3_equivariant_float64(name: str) -> None:
    model, batch = _build(name)
    with torch.no_grad():
        out = model(batch)
        assert out.shape == (3, 5, 1, 3)
        assert torch.isfinite(out).all()
        # the displacement branch must matter, or the test would only check the pooling
        pooled = model.pool(batch.x[..., 0, :], dim=1).unsqueeze(-2)
        assert (out - pooled).abs().max() > 0.05
        errors = assert_equivariant(model, batch, atol=1e-6)
        assert max(errors.values()) < 1e-6


@pytest.mark.parametrize("name", MODELS)
def test_node_permutation_equivariant(name: str) -> None:
    model, batch = _build(name)
    info = random_info(num_nodes=5, history=10, seed=1)
    with torch.no_grad():
        assert permutation_error(model, info, batch) < 1e-10


def test_broken_filter_is_caught() -> None:
    """Feeding raw (unrotated) x coordinates to the radial MLP must fail the equivariance test."""
    model, batch = _build("st-tfn")
    geo = model.geometry
    original = geo.forward

    def leaky(pos, edge_index, edge_attr):
        sh, scalars = original(pos, edge_index, edge_attr)
        return sh, torch.cat([scalars[..., :1] + pos[edge_index[0], :, :1], scalars[..., 1:]], dim=-1)

    geo.forward = leaky  # type: ignore[method-assign]
    with torch.no_grad():
        with pytest.raises(AssertionError, match="not E\\(3\\)-equivariant"):
            assert_equivariant(model, batch, atol=1e-6)
        assert max(equivariance_error(model, batch).values()) > 1e-4


@pytest.mark.parametrize("name", MODELS)
def test_float32_batch_runs(name: str) -> None:
    info = random_info(num_nodes=4, history=10)
    model = create_model(name, info)
    batch = random_batch(info, batch_size=2).to("cpu", torch.float32)
    out = model(batch)
    assert out.dtype == torch.float32 and out.shape == (2, 4, 1, 3)
    assert isinstance(model, FramewiseST)


# --------------------------------------------------------------------------- real data


@pytest.mark.data
@pytest.mark.parametrize("name", MODELS)
def test_training_lowers_loss_on_ethanol(name: str, ethanol_case) -> None:
    """A few Adam steps (paper lr 5e-3) on the real ethanol slice lower the training loss."""
    info = ethanol_case.info
    train = ethanol_case.splits["train"]
    x, y = train.x[:50], train.y[:50]
    torch.manual_seed(0)
    model = create_model(name, info, hidden=16)
    before, after = training_losses(model, Batch.from_info(info, x, y), steps=6)
    assert after < 0.7 * before, (before, after)


@pytest.mark.parametrize("name", MODELS)
def test_frame_chunks_compute_the_same_function(name: str, float64_default) -> None:
    """Frames run in chunks give the one-pass outputs and gradients (float64, 1e-10), still equivariant."""
    model, batch = _build(name)
    edges = batch.edge_index.shape[1]
    results, calls = [], []
    model.backbone.register_forward_pre_hook(lambda *_: calls.append(1))
    for per_chunk in (10**9, 4 * edges):  # one pass (the reference); chunks of 4 frames (30 = 7 x 4 + 2)
        model.chunk_edge_frames = per_chunk
        model.zero_grad(set_to_none=True)
        x = batch.x.clone().requires_grad_(True)
        out = model(Batch(x, batch.h, batch.edge_index, batch.edge_attr))
        (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
        results.append((out.detach(), x.grad, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    (o_ref, gx_ref, gp_ref), (o, gx, gp) = results
    assert batch.x.shape[0] * batch.x.shape[1] == 30 and len(calls) == 1 + 8  # 8 chunks of at most 4 frames
    assert (o - o_ref).abs().max() < 1e-10 and (gx - gx_ref).abs().max() < 1e-10
    assert gp.keys() == gp_ref.keys() and len(gp) > 10
    assert all((gp[n] - gp_ref[n]).abs().max() < 1e-10 for n in gp_ref)
    with torch.no_grad():
        assert_equivariant(model, batch, atol=1e-10)  # still chunked
