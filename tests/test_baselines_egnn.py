"""Tests for the EGNN-family baselines: egnn-s/m/t, st-egnn (baselines/egnn.py), st-gmn
(baselines/gmn.py) and the shared temporal pieces (baselines/_temporal.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from baselines._temporal import FrameEmbedding, SoftmaxTemporalPooling
from baselines.egnn import EGNNLayer, SingleFrameEGNN, SpatioTemporalEGNN, resolve_frame
from baselines.gmn import GMNLayer, SpatioTemporalGMN
from estagbench import Batch, create_model, get_model_entry
from estagbench.testing import (
    assert_equivariant,
    equivariance_error,
    permutation_error,
    random_batch,
    random_info,
    training_losses,
)

MODELS = ("egnn-s", "egnn-m", "egnn-t", "st-egnn", "st-gmn")




def _boost_coordinate_heads(model: nn.Module, std: float = 0.3) -> None:
    """Re-draw the (Xavier gain 0.001) last layer of every phi_x so coordinates really move.

    At initialisation the coordinate updates are ~1e-3 of the inputs, which would make an
    equivariance test nearly vacuous; with O(1) updates a broken invariant shows up.
    """
    for mod in model.modules():
        if isinstance(mod, EGNNLayer):
            nn.init.normal_(mod.coord_mlp[-1].weight, std=std)


def _build(name: str, channels: int, **hparams: object) -> tuple[nn.Module, Batch]:
    info = random_info(num_nodes=6, num_channels=channels, history=10, seed=1)
    model = create_model(name, info, **hparams).double()
    _boost_coordinate_heads(model)
    return model, random_batch(info, batch_size=3, seed=2)


# --------------------------------------------------------------------------- registry


@pytest.mark.parametrize("name", MODELS)
def test_registry_entries(name: str) -> None:
    entry = get_model_entry(name)
    assert entry.symmetry == "E3"
    assert entry.multichannel
    assert entry.trains
    assert entry.module in ("baselines.egnn", "baselines.gmn")
    assert entry.paper


def test_st_gmn_runs_on_protein_only() -> None:
    entry = get_model_entry("st-gmn")
    assert entry.runs_on("adk")
    assert not entry.runs_on("md17")
    assert all(get_model_entry(n).datasets is None for n in MODELS if n != "st-gmn")


# --------------------------------------------------------------------------- equivariance


@pytest.mark.parametrize("channels", [1, 4])
@pytest.mark.parametrize("name", MODELS)
def test_e3_equivariant_float64(name: str, channels: int) -> None:
    model, batch = _build(name, channels)
    with torch.no_grad():
        out = model(batch)
        assert out.shape == (3, 6, channels, 3)
        # the test is only meaningful if the network moves the points by O(1)
        moved = (out - batch.x[:, -1]).abs().max()
        assert moved > 0.05, f"{name}: coordinates barely move ({float(moved):.2e})"
        errors = assert_equivariant(model, batch, atol=1e-10)
        assert max(errors.values()) < 1e-10


def test_st_gmn_diagonal_mixing_equivariant() -> None:
    model, batch = _build("st-gmn", 4, mixing="diagonal")
    with torch.no_grad():
        assert_equivariant(model, batch, atol=1e-10)


@pytest.mark.parametrize("name", MODELS)
def test_node_permutation_equivariant(name: str) -> None:
    model, batch = _build(name, 4)
    info = random_info(num_nodes=6, num_channels=4, history=10, seed=1)
    with torch.no_grad():
        assert permutation_error(model, info, batch) < 1e-12


def test_broken_invariant_is_caught() -> None:
    """Feeding a raw coordinate into the message (not an invariant) must fail the test."""
    model, batch = _build("st-egnn", 1)
    for mod in model.modules():
        if isinstance(mod, EGNNLayer):
            mod.radial = lambda diff: diff[..., 0]  # type: ignore[method-assign]
    with torch.no_grad():
        with pytest.raises(AssertionError, match="not E\\(3\\)-equivariant"):
            assert_equivariant(model, batch, atol=1e-10)
        assert max(equivariance_error(model, batch).values()) > 1e-4


# --------------------------------------------------------------------------- layer maths


def _reference_layer(layer: EGNNLayer, h, x, edge_index, edge_attr, full_mixing: bool = False):
    """Straightforward Satorras et al. Eqs. (3)-(6) with an explicit concatenation."""
    src, dst = edge_index
    c = x.shape[-2]
    diff = x[:, dst] - x[:, src]
    if c == 1:
        radial = (diff**2).sum(-1)
    else:
        gram = torch.einsum("lekd,lecd->lekc", diff, diff).reshape(*diff.shape[:2], c * c)
        radial = gram / torch.linalg.norm(gram, dim=-1, keepdim=True)
    ea = edge_attr.expand(x.shape[0], -1, -1)
    m = layer.edge_out(layer.edge_in(torch.cat([h[:, dst], h[:, src], radial, ea], dim=-1)))
    phi = layer.coord_mlp(m)
    if full_mixing:
        phi = phi.reshape(*phi.shape[:2], c, c)
        trans = torch.stack([sum(phi[..., k, ch, None] * diff[..., k, :] for k in range(c)) for ch in range(c)], dim=-2)
    else:
        trans = diff * phi[..., None]
    n = x.shape[1]
    agg_x = torch.zeros_like(x)
    agg_h = torch.zeros_like(h)
    count = torch.zeros(n, dtype=x.dtype)
    for e in range(edge_index.shape[1]):
        agg_x[:, dst[e]] += trans[:, e]
        agg_h[:, dst[e]] += m[:, e]
        count[dst[e]] += 1
    x_new = x + layer.coords_weight * agg_x / count.clamp(min=1)[None, :, None, None]
    h_new = h + layer.node_mlp(torch.cat([h, agg_h], dim=-1))
    return h_new, x_new


@pytest.mark.parametrize("layer_cls,channels", [(EGNNLayer, 1), (EGNNLayer, 4), (GMNLayer, 4), (GMNLayer, 1)])
def test_layer_matches_reference(layer_cls: type, channels: int) -> None:
    info = random_info(num_nodes=5, num_channels=channels, seed=3)
    # drop some edges so in-degrees differ (tests the neighbour mean)
    keep = torch.arange(info.num_edges) % 3 != 0
    edge_index, edge_attr = info.edge_index[:, keep], info.edge_attr[keep]
    layer = layer_cls(16, edge_attr.shape[1], channels=channels, act="silu", coords_weight=3.0).double()
    nn.init.normal_(layer.coord_mlp[-1].weight, std=0.3)
    h = torch.randn(4, 5, 16, dtype=torch.float64)
    x = torch.randn(4, 5, channels, 3, dtype=torch.float64)
    h1, x1 = layer(h, x, edge_index, edge_attr)
    h2, x2 = _reference_layer(layer, h, x, edge_index, edge_attr, full_mixing=layer_cls is GMNLayer and channels > 1)
    torch.testing.assert_close(h1, h2, rtol=0, atol=1e-12)
    torch.testing.assert_close(x1, x2, rtol=0, atol=1e-12)


def test_gmn_full_mixing_moves_channels_along_other_channels() -> None:
    """With C x C mixing a channel can move along another channel's relative vector."""
    layer = GMNLayer(8, 0, channels=2).double()
    nn.init.normal_(layer.coord_mlp[-1].weight, std=0.3)
    edge_index = torch.tensor([[1], [0]])
    x = torch.zeros(1, 2, 2, 3, dtype=torch.float64)
    x[0, 0, 0] = torch.tensor([1.0, 0, 0])  # channel 0 differs along e_x
    x[0, 0, 1] = torch.tensor([0, 1.0, 0])  # channel 1 differs along e_y
    _, x1 = layer(torch.randn(1, 2, 8, dtype=torch.float64), x, edge_index, None)
    step = x1[0, 0] - x[0, 0]
    assert step[0, 1].abs() > 1e-6  # channel 0 moved along e_y
    diag = EGNNLayer(8, 0, channels=2).double()
    nn.init.normal_(diag.coord_mlp[-1].weight, std=0.3)
    _, x2 = diag(torch.randn(1, 2, 8, dtype=torch.float64), x, edge_index, None)
    assert (x2[0, 0, 0, 1] - x[0, 0, 0, 1]).abs() == 0  # channel-wise: it cannot


# --------------------------------------------------------------------------- frames & pooling


@pytest.mark.parametrize("name,index", [("egnn-s", 0), ("egnn-m", 4), ("egnn-t", 9)])
def test_single_frame_models_see_only_their_frame(name: str, index: int) -> None:
    model, batch = _build(name, 1)
    assert model.frame == index
    other = batch.x.clone()
    others = [t for t in range(10) if t != index]
    other[:, others] += torch.randn_like(other[:, others])
    with torch.no_grad():
        a = model(batch)
        b = model(Batch(x=other, h=batch.h, edge_index=batch.edge_index, edge_attr=batch.edge_attr))
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        changed = batch.x.clone()
        changed[:, index] += 0.5
        c = model(Batch(x=changed, h=batch.h, edge_index=batch.edge_index, edge_attr=batch.edge_attr))
        assert (c - a).abs().max() > 0.1


def test_resolve_frame() -> None:
    assert [resolve_frame(f, 10) for f in ("first", "middle", "last")] == [0, 4, 9]
    assert resolve_frame("middle", 1) == 0
    assert resolve_frame(-2, 10) == 8
    with pytest.raises(ValueError, match="out of range"):
        resolve_frame(10, 10)
    with pytest.raises(ValueError, match="frame must be one of"):
        resolve_frame("end", 10)


def test_st_egnn_uses_every_frame_and_pools() -> None:
    model, batch = _build("st-egnn", 1)
    assert isinstance(model, SpatioTemporalEGNN)
    w = model.pool.weights
    torch.testing.assert_close(w.sum(), torch.tensor(1.0, dtype=w.dtype))
    with torch.no_grad():
        a = model(batch)
        for t in (0, 9):
            changed = batch.x.clone()
            changed[:, t] += 0.3
            b = model(Batch(x=changed, h=batch.h, edge_index=batch.edge_index, edge_attr=batch.edge_attr))
            assert (b - a).abs().max() > 1e-3


def test_softmax_pooling() -> None:
    x = torch.randn(2, 5, 3, 1, 3)
    torch.testing.assert_close(SoftmaxTemporalPooling(5, init="uniform")(x), x.mean(1))
    last = SoftmaxTemporalPooling(5, init="last")
    assert last.weights[-1] > 0.9
    pool = SoftmaxTemporalPooling(5)
    assert pool.logits.abs().max() <= 1.0 and pool.logits.std() > 0
    out = pool(x)
    torch.testing.assert_close(out, torch.einsum("t,btncd->bncd", pool.weights, x))
    with pytest.raises(ValueError, match="built for T=5"):
        pool(torch.randn(2, 4, 3, 1, 3))
    with pytest.raises(ValueError, match="init must be one of"):
        SoftmaxTemporalPooling(5, init="ones")


def test_frame_embedding() -> None:
    emb = FrameEmbedding(2, 8, 10)
    h = torch.randn(7, 2)
    out = emb(h)
    assert out.shape == (10, 7, 8)
    torch.testing.assert_close(out[3] - out[0], (emb.frame.weight[3] - emb.frame.weight[0]).expand(7, 8))
    assert emb(h, num_frames=4).shape == (4, 7, 8)
    with pytest.raises(ValueError):
        emb(h, num_frames=11)


# --------------------------------------------------------------------------- defaults & errors


def test_defaults_follow_authors_scripts() -> None:
    single = create_model("st-egnn", random_info(num_channels=1))
    multi = create_model("st-egnn", random_info(num_channels=4))
    assert (single.num_layers, single.act, single.coords_weight) == (2, "silu", 1.0)
    assert (multi.num_layers, multi.act, multi.coords_weight) == (4, "leaky_relu", 3.0)
    gmn = create_model("st-gmn", random_info(num_channels=4), hidden=8, layers=3)
    assert isinstance(gmn, SpatioTemporalGMN) and gmn.num_layers == 3 and gmn.hidden == 8
    assert all(isinstance(layer, GMNLayer) for layer in gmn.egnn.layers)


def test_bad_inputs_raise_clear_errors() -> None:
    info = random_info(num_channels=1, history=10)
    with pytest.raises(ValueError, match="mixing must be one of"):
        create_model("st-gmn", info, mixing="dense")
    with pytest.raises(ValueError, match="unknown activation"):
        create_model("st-egnn", info, act="gelu")
    with pytest.raises(ValueError, match="layers >= 1"):
        create_model("egnn-t", info, layers=0)
    model = create_model("st-egnn", info)
    short = random_batch(info.with_history(5))
    with pytest.raises(ValueError, match="T = 10"):
        model(short)
    single = SingleFrameEGNN(info, frame="last")
    with pytest.raises(ValueError, match="C = 1"):
        single(random_batch(random_info(num_channels=4, history=10)))


# --------------------------------------------------------------------------- real data


@pytest.mark.data
@pytest.mark.parametrize("name", MODELS)
def test_training_steps_lower_loss_on_ethanol(ethanol_case, name: str) -> None:
    """A few Adam steps on 100 real ethanol windows lower the training MSE."""
    info = ethanol_case.info
    model = create_model(name, info, hidden=16)
    train = ethanol_case.splits["train"]
    x, y = train.x[:100], train.y[:100]
    before, after = training_losses(model, Batch.from_info(info, x, y), steps=40)
    assert after < 0.99 * before, f"{name}: training loss {before:.4e} -> {after:.4e}"


@pytest.mark.parametrize(("name", "channels"), [("st-egnn", 1), ("st-egnn", 4), ("st-gmn", 4)])
def test_frame_chunks_compute_the_same_function(name: str, channels: int) -> None:
    """Frames run in chunks (large graphs) give the unchunked pass's outputs and gradients (float64, 1e-10)."""
    model, batch = _build(name, channels)
    b, t = batch.x.shape[:2]
    edges_h = batch.edge_index.shape[1] * model.hidden
    results = []
    for elements in (10**12, 4 * edges_h):  # one chunk (the reference); chunks of 4 frames (30 = 7 x 4 + 2)
        model.chunk_elements = elements
        model.zero_grad(set_to_none=True)
        x = batch.x.clone().requires_grad_(True)
        out = model(Batch(x, batch.h, batch.edge_index, batch.edge_attr))
        (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
        results.append((out.detach(), x.grad, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    assert b * t == 30 and max(1, model.chunk_elements // edges_h) == 4  # really chunked, unevenly
    (o_ref, gx_ref, gp_ref), (o, gx, gp) = results
    assert (o - o_ref).abs().max() < 1e-10 and (gx - gx_ref).abs().max() < 1e-10
    assert gp.keys() == gp_ref.keys() and len(gp) > 10
    assert all((gp[n] - gp_ref[n]).abs().max() < 1e-10 for n in gp_ref)
    with torch.no_grad():
        assert_equivariant(model, batch, atol=1e-10)  # still chunked
