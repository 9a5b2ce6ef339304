"""Tests for ESTAG and its registered ablations (estagbench/models/estag.py)."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from estagbench import Batch, create_model, get_model_entry
from estagbench.models.estag import EDFT, ESM, ESTAG, ETM, _Graph, dft_matrix
from estagbench.testing import assert_equivariant, equivariance_error, permutation_error, random_batch, random_info

EQUIVARIANT = ("estag", "estag-no-edft", "estag-no-attn", "estag-no-pool", "estag-no-wk", "estag-full-attn")
ALL = EQUIVARIANT + ("stag",)


# ESTAG's modules work in a node-major layout (h (N, B, T, H), x (N, C, 3, B, T), edge
# tensors (E, B, ...)); the tests below write their references in the batch-major layout
# of the data, (B, N, T, ...), and go through these adapters.
def _to_nm(x: torch.Tensor) -> torch.Tensor:
    """(B, N, T, C, 3) -> (N, C, 3, B, T)."""
    return x.permute(1, 3, 4, 0, 2)


def _from_nm(x: torch.Tensor) -> torch.Tensor:
    """(N, C, 3, B, T) -> (B, N, T, C, 3)."""
    return x.permute(3, 0, 4, 1, 2)


def _etm(etm: ETM, h: torch.Tensor, x: torch.Tensor, **kw: bool):
    h1, x1, alpha = etm(h.transpose(0, 1), _to_nm(x), **kw)
    return h1.transpose(0, 1), _from_nm(x1), None if alpha is None else alpha.transpose(0, 1)


def _esm(esm: ESM, h, x, a, c, graph):
    h1, x1 = esm(h.transpose(0, 1), _to_nm(x), None if a is None else a.transpose(0, 1),
                 None if c is None else c.transpose(0, 1), graph)
    return h1.transpose(0, 1), _from_nm(x1)


def _edft(edft: EDFT, x: torch.Tensor, h0: torch.Tensor, graph: _Graph):
    """x (B, N, T, 3), h0 (1, N, T, H) -> A (B, E, K), c (B, N, K), w (1, N, K)."""
    a, c, w = edft(x.permute(1, 3, 0, 2), h0.transpose(0, 1), graph)
    return a.transpose(0, 1), c.transpose(0, 1), w.transpose(0, 1)




def _boost(model: nn.Module, std: float = 0.1, seed: int = 3) -> None:
    """Re-draw the near-zero coordinate heads (Xavier gain 1e-3) and the zero-initialised
    pooling weights, so that every learned part moves the output and a broken invariant shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("coord_out.weight") or name.endswith("coord.2.weight") or name == "pool":
                p.copy_(std * torch.randn(p.shape, generator=g, dtype=p.dtype))


def _build(name: str, channels: int, history: int = 10, nodes: int = 6, **hp: object) -> tuple[nn.Module, Batch]:
    info = random_info(num_nodes=nodes, num_channels=channels, history=history, seed=1)
    model = create_model(name, info, **hp).double()
    _boost(model)
    return model, random_batch(info, batch_size=3, seed=2)


# --------------------------------------------------------------------------- registry
@pytest.mark.parametrize("name", ALL)
def test_registry_entries(name: str) -> None:
    entry = get_model_entry(name)
    assert entry.multichannel and entry.trains
    assert entry.symmetry == ("none" if name == "stag" else "E3")


def test_variants_switch_what_they_say() -> None:
    info = random_info(num_nodes=5, history=10)
    m = {n: create_model(n, info) for n in ALL}
    assert m["estag"].edft is not None and m["estag"].edft.filter is not None
    assert m["estag"].attention == "causal" and all(e.causal for e in m["estag"].etm)
    assert m["estag-no-edft"].edft is None
    assert m["estag-no-attn"].etm is None
    assert m["estag-no-pool"].pooling == "softmax"
    assert m["estag-no-wk"].edft.filter is None
    assert not any(e.causal for e in m["estag-full-attn"].etm)
    assert len(m["estag"].esm) == 2 and len(create_model("estag", info, layers=4).esm) == 4
    n_params = {n: sum(p.numel() for p in mod.parameters()) for n, mod in m.items()}
    assert n_params["estag-no-attn"] < n_params["estag"]


def test_bad_arguments_raise() -> None:
    info = random_info(num_nodes=4)
    with pytest.raises(ValueError, match="unknown ESTAG hyper-parameter"):
        create_model("estag", info, heads=2)
    with pytest.raises(ValueError, match="attention"):
        create_model("estag", info, attention="sideways")
    with pytest.raises(ValueError, match="pooling"):
        create_model("estag", info, pooling="max")
    with pytest.raises(ValueError, match="history"):
        create_model("estag", info.with_history(1))
    model = create_model("estag", info)
    bad = random_batch(info.with_history(5))
    with pytest.raises(ValueError, match="built for x of shape"):
        model(bad)


# --------------------------------------------------------------------------- symmetry
@pytest.mark.parametrize("channels", [1, 4])
@pytest.mark.parametrize("name", EQUIVARIANT)
def test_e3_equivariance(name: str, channels: int) -> None:
    model, batch = _build(name, channels)
    with torch.no_grad():
        out = model(batch)
        assert model.implementation == "torch"
        # the learned parts really move the prediction (otherwise the test would be vacuous)
        assert (out - batch.x[:, -1]).abs().max() > 1e-2
        assert_equivariant(model, batch, atol=1e-10)


@pytest.mark.parametrize("hp", [{"amplitude": "authors"}, {"layers": 3}, {"layers": 1, "attention": "full"}])
def test_e3_equivariance_other_settings(hp: dict) -> None:
    for channels in (1, 4):
        model, batch = _build("estag", channels, **hp)
        with torch.no_grad():
            assert_equivariant(model, batch, atol=1e-10)


@pytest.mark.parametrize("channels", [1, 4])
def test_stag_is_not_equivariant(channels: int) -> None:
    model, batch = _build("stag", channels)
    with torch.no_grad():
        err = equivariance_error(model, batch)
        assert min(err.values()) > 1e-3, err
        with pytest.raises(AssertionError):
            assert_equivariant(model, batch, atol=1e-10)


@pytest.mark.parametrize("channels", [1, 4])
@pytest.mark.parametrize("name", ["estag", "estag-no-edft", "stag"])
def test_node_permutation(name: str, channels: int) -> None:
    info = random_info(num_nodes=6, num_channels=channels, history=10, seed=1)
    model = create_model(name, info).double()
    _boost(model)
    batch = random_batch(info, batch_size=3, seed=2)
    with torch.no_grad():
        assert permutation_error(model, info, batch) < 1e-10


@pytest.mark.parametrize("history", [2, 3, 5, 20])
def test_any_history(history: int) -> None:
    model, batch = _build("estag", 1, history=history)
    with torch.no_grad():
        assert model(batch).shape == (3, 6, 1, 3)
        assert_equivariant(model, batch, atol=1e-10)


# --------------------------------------------------------------------------- modules
def test_dft_matrix_matches_torch_fft() -> None:
    x = torch.randn(7, 5, 3, dtype=torch.float64)
    f = torch.fft.fft(x, dim=0)[1:]
    m = dft_matrix(7, torch.float64)
    ref = torch.einsum("kt,tnd->knd", m, x)
    assert torch.allclose(ref[:6], f.real, atol=1e-12) and torch.allclose(ref[6:], f.imag, atol=1e-12)


@pytest.mark.parametrize("amplitude", ["paper", "authors"])
def test_edft_features(amplitude: str) -> None:
    """A_ij and c_i follow Eq. 3-5 (checked against torch.fft) and sum to 1 over k."""
    info = random_info(num_nodes=5, history=8, seed=4)
    graph = _Graph(info.edge_index, 5, torch.float64)
    edft = EDFT(4, 8, use_filter=False, amplitude=amplitude).double()
    x = torch.randn(2, 5, 8, 3, dtype=torch.float64)
    a, c, _ = _edft(edft, x, torch.zeros(1, 5, 8, 4, dtype=torch.float64), graph)
    f = torch.fft.fft(x - x.mean(1, keepdim=True), dim=2)[:, :, 1:]  # (B, N, K, 3) complex
    i, j = info.edge_index
    a_ref = (f[:, i].conj() * f[:, j]).sum(-1).abs()
    c_ref = (f.abs() ** 2).sum(-1) if amplitude == "paper" else (f**2).sum(-1).abs()
    assert torch.allclose(a, a_ref / a_ref.sum(-1, keepdim=True), atol=1e-10)
    assert torch.allclose(c, c_ref / c_ref.sum(-1, keepdim=True), atol=1e-10)


def test_edft_filter_is_sigmoid_of_frame_features() -> None:
    edft = EDFT(4, 6, use_filter=True).double()
    info = random_info(num_nodes=3, history=6)
    h0 = torch.randn(1, 3, 6, 4, dtype=torch.float64)
    _, _, w = _edft(edft, torch.randn(2, 3, 6, 3, dtype=torch.float64), h0, _Graph(info.edge_index, 3, torch.float64))
    assert torch.allclose(w, torch.sigmoid(edft.filter(h0[:, :, 1:])).squeeze(-1))


@pytest.mark.parametrize("channels", [1, 4])
def test_etm_forward_attention_is_causal(channels: int) -> None:
    """Changing frame t leaves the ETM output at frames < t unchanged (and changes frames >= t)."""
    torch.manual_seed(5)
    etm = ETM(8, channels, "silu", causal=True).double()
    nn.init.normal_(etm.coord[2].weight, std=0.3)
    h = torch.randn(2, 4, 10, 8, dtype=torch.float64)
    x = torch.randn(2, 4, 10, channels, 3, dtype=torch.float64)
    with torch.no_grad():
        h0, x0, _ = _etm(etm, h, x)
        for t in (3, 7):
            h2, x2 = h.clone(), x.clone()
            h2[:, :, t] += 1.0
            x2[:, :, t] += 0.5
            h1, x1, _ = _etm(etm, h2, x2)
            assert torch.equal(h1[:, :, :t], h0[:, :, :t]) and torch.equal(x1[:, :, :t], x0[:, :, :t])
            assert (h1[:, :, t:] - h0[:, :, t:]).abs().amax(dim=(0, 1, 3)).min() > 1e-6
            assert (x1[:, :, t:] - x0[:, :, t:]).abs().amax(dim=(0, 1, 3, 4)).min() > 1e-6
        # full attention (App. D.4) does look ahead
        etm.causal = False
        hf, _, _ = _etm(etm, h, x)
        h2 = h.clone()
        h2[:, :, 7] += 1.0
        hf2, _, _ = _etm(etm, h2, x)
        assert (hf2[:, :, :7] - hf[:, :, :7]).abs().max() > 1e-6


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("channels", [1, 4])
def test_etm_matches_eq_10_to_12(causal: bool, channels: int) -> None:
    """ETM equals Eq. 10-12 written out with explicit (t, s) displacements; skipping the
    feature update (last block) leaves the coordinates unchanged."""
    torch.manual_seed(6)
    etm = ETM(8, channels, "silu", causal=causal).double()
    nn.init.normal_(etm.coord[2].weight, std=0.3)
    h = torch.randn(2, 3, 6, 8, dtype=torch.float64)
    x = torch.randn(2, 3, 6, channels, 3, dtype=torch.float64)
    with torch.no_grad():
        h1, x1, alpha = _etm(etm, h, x, return_alpha=True)
        h2, x2, none = _etm(etm, h, x, update_h=False)
        q, k, v = etm.q(h), etm.k(h), etm.v(h)
        s = q @ k.transpose(-1, -2)
        if causal:
            s = s.masked_fill(torch.ones(6, 6, dtype=torch.bool).triu(1), float("-inf"))
        a = torch.softmax(s, -1)
        phi = etm.coord(v)  # (B, N, T, C)
        disp = x.unsqueeze(3) - x.unsqueeze(2)  # (B, N, t, s, C, 3) = x(t) - x(s)
        x_ref = x + (a[..., None, None] * disp * phi[:, :, None, :, :, None]).sum(3)
    assert none is None
    assert torch.allclose(alpha, a, atol=1e-12)
    assert torch.allclose(h1, h + a @ v, atol=1e-12) and torch.equal(h2, h)
    assert torch.allclose(x1, x_ref, atol=1e-12) and torch.allclose(x2, x_ref, atol=1e-12)


def test_esm_single_channel_matches_eq_6_to_9() -> None:
    """ESM (C = 1) written out edge by edge with explicit loops (reference only)."""
    torch.manual_seed(7)
    info = random_info(num_nodes=4, history=3, edge_attr_dim=2, seed=2)
    esm = ESM(5, edge_dim=2, node_attr_dim=2, channels=1, act="silu").double()
    nn.init.normal_(esm.coord_out.weight, std=0.3)
    h = torch.randn(1, 4, 3, 5, dtype=torch.float64)
    x = torch.randn(1, 4, 3, 1, 3, dtype=torch.float64)
    a = torch.randn(1, info.num_edges, 2, dtype=torch.float64)
    c = torch.randn(1, 4, 2, dtype=torch.float64)
    with torch.no_grad():
        h1, x1 = _esm(esm, h, x, a, c, _Graph(info.edge_index, 4, torch.float64))
        act = nn.SiLU()
        for t in range(3):
            msum = torch.zeros(4, 5, dtype=torch.float64)
            dx = torch.zeros(4, 3, dtype=torch.float64)
            deg = torch.zeros(4, dtype=torch.float64)
            for e, (i, j) in enumerate(info.edge_index.T.tolist()):
                xij = x[0, i, t, 0] - x[0, j, t, 0]
                inp = torch.cat([h[0, i, t], h[0, j, t], (xij @ xij).view(1), a[0, e]])
                m = act(esm.edge_out(act(esm.edge_in(inp))))
                msum[i] += m
                dx[i] += xij / xij.norm() * esm.coord_out(act(esm.coord_in(m)))
                deg[i] += 1
            h_ref = h[0, :, t] + esm.node_out(act(esm.node_in(torch.cat([h[0, :, t], msum, c[0]], -1))))
            assert torch.allclose(h1[0, :, t], h_ref, atol=1e-12)
            assert torch.allclose(x1[0, :, t, 0], x[0, :, t, 0] + dx / deg.clamp(min=1)[:, None], atol=1e-12)


def test_multichannel_esm_uses_normalised_gram() -> None:
    torch.manual_seed(8)
    info = random_info(num_nodes=3, num_channels=4, history=2, edge_attr_dim=1, seed=3)
    esm = ESM(4, edge_dim=1, node_attr_dim=0, channels=4, act="leaky_relu").double()
    h = torch.randn(1, 3, 2, 4, dtype=torch.float64)
    x = torch.randn(1, 3, 2, 4, 3, dtype=torch.float64)
    a = torch.randn(1, info.num_edges, 1, dtype=torch.float64)
    graph = _Graph(info.edge_index, 3, torch.float64)
    with torch.no_grad():
        h1, _ = _esm(esm, h, x, a, None, graph)
        h2, _ = _esm(esm, h, 2.5 * x, a, None, graph)  # the normalised Z^T Z is scale-invariant
    assert torch.allclose(h1, h2, atol=1e-12)


# --------------------------------------------------------------------------- whole model
def test_pooling_starts_at_last_frame_and_details() -> None:
    info = random_info(num_nodes=5, history=10, seed=1)
    batch = random_batch(info, batch_size=2, seed=3)
    model = create_model("estag", info).double()
    assert torch.count_nonzero(model.pool) == 0
    with torch.no_grad():
        out, det = model(batch, return_details=True)
        assert torch.allclose(model(batch), out, atol=1e-12)
    pw = det["pool_weights"]
    assert pw.shape == (10,) and torch.allclose(pw, torch.eye(10, dtype=pw.dtype)[-1])
    assert len(det["attention"]) == 2
    for alpha in det["attention"]:
        assert alpha.shape == (2, 5, 10, 10)
        assert torch.allclose(alpha.sum(-1), torch.ones(2, 5, 10, dtype=alpha.dtype))
        assert torch.count_nonzero(torch.triu(alpha, 1)) == 0  # forward attention
    assert det["A"].shape == (2, info.num_edges, 9) and det["c"].shape == (2, 5, 9)
    soft = create_model("estag-no-pool", info)
    assert torch.allclose(soft.pool_weights(), torch.full((10,), 0.1))


def test_gradients_flow_and_match_finite_differences() -> None:
    info = random_info(num_nodes=3, history=4, seed=1)
    model = ESTAG(info, hidden=4).double()
    _boost(model)
    batch = random_batch(info, batch_size=2, seed=2)
    loss = model(batch).square().mean()
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    # gradcheck through the whole model w.r.t. the input coordinates
    x = batch.x.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda xx: model(Batch(xx, batch.h, batch.edge_index, batch.edge_attr)), (x,))


def test_short_training_beats_pt_t_on_real_ethanol(ethanol_case) -> None:
    """20 epochs on the real ethanol slice bring the val MSE below Pt-t's."""
    from estagbench.train import TrainConfig, train_model

    val = ethanol_case.splits["val"]
    pt_t = float(((val.x[:, -1] - val.y) ** 2).mean())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = train_model("estag", ethanol_case, seed=1, config=TrainConfig(epochs=20, lr=5e-3))
    assert out.metrics["val_mse"] < 0.7 * pt_t, (out.metrics, pt_t)


def test_shared_mlp() -> None:
    from estagbench.nn import MLP

    m = MLP(3, 8, 2)
    assert [type(x) for x in m] == [nn.Linear, nn.SiLU, nn.Linear]
    assert m(torch.randn(4, 5, 3)).shape == (4, 5, 2)
    deep = MLP(3, 8, 2, layers=3, act=nn.ReLU, act_last=True, bias_last=False)
    assert [type(x) for x in deep] == [nn.Linear, nn.ReLU, nn.Linear, nn.ReLU, nn.Linear, nn.ReLU]
    assert deep[-2].bias is None and (deep(torch.randn(6, 3)) >= 0).all()
    assert len(MLP(3, 8, 2, layers=1)) == 1
    with pytest.raises(ValueError, match="layers"):
        MLP(3, 8, 2, layers=0)


@pytest.mark.parametrize("channels", [1, 4])
@pytest.mark.parametrize("name", ["estag", "estag-no-edft", "estag-full-attn"])
def test_sample_chunks_compute_the_same_function(name: str, channels: int) -> None:
    """Batches run in chunks of samples give the one-pass outputs and gradients (float64, 1e-10)."""
    info = random_info(num_nodes=6, num_channels=channels, history=10, seed=1)
    model = create_model(name, info).double()
    _boost(model)
    batch = random_batch(info, batch_size=7, seed=2)
    per_sample = batch.edge_index.shape[1] * model.history * model.hidden
    results = []
    calls = []
    model.esm[0].register_forward_pre_hook(lambda *_: calls.append(1))
    for elements in (10**12, per_sample):  # one pass (the reference); chunks of one sample
        model.chunk_elements = elements
        model.zero_grad(set_to_none=True)
        x = batch.x.clone().requires_grad_(True)
        out = model(Batch(x, batch.h, batch.edge_index, batch.edge_attr))
        (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
        results.append((out.detach(), x.grad, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    (o_ref, gx_ref, gp_ref), (o, gx, gp) = results
    assert len(calls) == 1 + 7  # really chunked
    assert (o - o_ref).abs().max() < 1e-10 and (gx - gx_ref).abs().max() < 1e-10
    assert gp.keys() == gp_ref.keys() and len(gp) > 10
    assert all((gp[n] - gp_ref[n]).abs().max() < 1e-10 for n in gp_ref)
    model.chunk_elements = 2 * per_sample  # 7 samples are not more than 4 such chunks: one pass
    with torch.no_grad():
        model(batch)
        assert len(calls) == 9
        model.chunk_elements = per_sample
        assert_equivariant(model, batch, atol=1e-10)  # chunked
        pred, details = model(batch, return_details=True)  # details: one pass, same prediction
        assert (pred - o_ref).abs().max() < 1e-10 and details["attention"] is not None
