"""Tests for the non-equivariant spatio-temporal baselines: st-gnn, stgcn and agl-stan."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from baselines.agl_stan import AdaptiveGraphConv
from baselines.stgcn import RunningStandardizer, graph_supports
from estagbench import Batch, DatasetInfo, create_model, get_model_entry
from estagbench.testing import equivariance_error, permutation_error, random_batch, random_info

MODELS = ("st-gnn", "stgcn", "agl-stan")
RESIDUAL = ("stgcn", "agl-stan")




def sparse_info(num_nodes: int = 6, num_channels: int = 1, history: int = 10, seed: int = 0) -> DatasetInfo:
    """A path graph plus its 2-hop pairs (nodes of different degree), float64 features."""
    src = torch.arange(num_nodes - 1)
    one = torch.stack([torch.cat([src, src + 1]), torch.cat([src + 1, src])])
    src2 = torch.arange(num_nodes - 2)
    two = torch.stack([torch.cat([src2, src2 + 2]), torch.cat([src2 + 2, src2])])
    edge_index = torch.cat([one, two], dim=1)
    base = random_info(num_nodes=num_nodes, num_channels=num_channels, history=history, seed=seed)
    hop = torch.cat([torch.ones(one.shape[1]), 2 * torch.ones(two.shape[1])]).double()
    z = base.node_features[:, :1]
    edge_attr = torch.stack([z[edge_index[0], 0], z[edge_index[1], 0], hop], dim=1)
    return DatasetInfo(
        dataset="random",
        case="path",
        num_nodes=num_nodes,
        num_channels=num_channels,
        node_features=base.node_features,
        edge_index=edge_index,
        edge_attr=edge_attr,
        history=history,
        stride=1,
        ca_channel=base.ca_channel,
    )


def build(name: str, info: DatasetInfo, **hparams: object) -> nn.Module:
    torch.manual_seed(0)
    return create_model(name, info, **hparams).double()


def randomize_head(model: nn.Module) -> None:
    """Give a residual model a non-zero output head (its default head is zero)."""
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in model.head.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype))


# ----------------------------------------------------------------------------- registry


@pytest.mark.parametrize("name", MODELS)
def test_registry_entries(name: str) -> None:
    entry = get_model_entry(name)
    assert entry.symmetry == "none" and not entry.equivariant
    assert entry.multichannel
    assert entry.trains
    assert entry.batch_transform is None


@pytest.mark.parametrize("name", MODELS)
def test_unknown_hyperparameter_is_rejected(name: str) -> None:
    with pytest.raises(ValueError, match="unknown hyper-parameter"):
        create_model(name, sparse_info(), not_a_parameter=1)


@pytest.mark.parametrize(
    ("name", "hparams", "match"),
    [
        ("stgcn", {"graph_conv": "spectral"}, "graph_conv"),
        ("stgcn", {"input_channels": "ca+n"}, "input_channels"),
        ("stgcn", {"normalize": "minmax"}, "normalize"),
        ("stgcn", {"channels": (64, 16)}, "channels"),
        ("agl-stan", {"input_channels": "none"}, "input_channels"),
        ("agl-stan", {"heads": 4}, "heads"),
        ("agl-stan", {"normalize": "minmax"}, "normalize"),
        ("st-gnn", {"decode": "velocity"}, "decode"),
    ],
)
def test_bad_options_raise(name: str, hparams: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        create_model(name, sparse_info(), **hparams)


# ------------------------------------------------------------------------------ shapes


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("channels", [1, 4])
def test_output_shape_any_batch_size(name: str, channels: int) -> None:
    info = sparse_info(num_channels=channels)
    model = build(name, info)
    if name in RESIDUAL:
        randomize_head(model)
    for batch_size in (1, 3, 7):
        batch = random_batch(info, batch_size=batch_size, seed=batch_size)
        out = model(batch)
        assert out.shape == (batch_size, info.num_nodes, channels, 3)
        assert out.dtype == torch.float64
        assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", MODELS)
def test_eval_prediction_does_not_depend_on_the_batch(name: str) -> None:
    """A final partial batch (or a single sample) gets the same prediction as a full one."""
    info = sparse_info()
    model = build(name, info)
    if name in RESIDUAL:
        randomize_head(model)
    batch = random_batch(info, batch_size=7, seed=1)
    model.train()
    model(batch)  # one training-mode call (updates running statistics)
    model.eval()
    full = model(batch)
    part = model(Batch.from_info(info, batch.x[4:]))
    assert torch.allclose(full[4:], part, atol=1e-12)


def test_agl_stan_trains_on_a_final_partial_batch() -> None:
    info = sparse_info()
    model = build("agl-stan", info)
    randomize_head(model)
    optim = torch.optim.Adam(model.parameters(), lr=1e-3)
    for batch_size in (100, 100, 37):
        batch = random_batch(info, batch_size=batch_size, seed=batch_size)
        loss = ((model(batch) - batch.y) ** 2).mean()
        optim.zero_grad()
        loss.backward()
        optim.step()
        assert torch.isfinite(loss)


# ------------------------------------------------------------------ residual behaviour


@pytest.mark.parametrize("name", RESIDUAL)
@pytest.mark.parametrize("normalize", ["zscore", "none"])
@pytest.mark.parametrize("channels", [1, 4])
def test_zero_head_returns_last_frame_exactly(name: str, normalize: str, channels: int) -> None:
    info = sparse_info(num_channels=channels)
    model = build(name, info, normalize=normalize, zero_init_head=False)
    randomize_head(model)
    batch = random_batch(info, batch_size=4, seed=5)
    assert not torch.equal(model(batch), batch.x[:, -1])
    with torch.no_grad():
        for p in model.head.parameters():
            p.zero_()
    for mode in (True, False):
        model.train(mode)
        assert torch.equal(model(batch), batch.x[:, -1])


@pytest.mark.parametrize("name", RESIDUAL)
def test_default_head_is_zero_initialised(name: str) -> None:
    info = sparse_info()
    model = build(name, info)
    batch = random_batch(info, batch_size=2, seed=6)
    assert torch.equal(model(batch), batch.x[:, -1])


@pytest.mark.parametrize("name", RESIDUAL)
def test_ca_input_ignores_other_channels_history(name: str) -> None:
    """input_channels='ca': only the CA history feeds the network; every channel gets a residual."""
    info = sparse_info(num_channels=4)
    model = build(name, info)
    randomize_head(model)
    batch = random_batch(info, batch_size=3, seed=7)
    model.train()
    model(batch)
    model.eval()
    out = model(batch)
    x2 = batch.x.clone()
    others = [c for c in range(4) if c != info.ca_channel]
    x2[:, :-1, :, others] += 0.5  # every frame but the last (the residual base)
    assert torch.equal(model(Batch.from_info(info, x2)), out)
    res = out - batch.x[:, -1]
    assert (res[:, :, others].abs() > 0).all(), "non-CA channels must get their own residual"
    x3 = batch.x.clone()
    x3[:, :-1, :, info.ca_channel] += 0.5
    assert not torch.allclose(model(Batch.from_info(info, x3)), out)


def test_all_channel_input_uses_every_channel() -> None:
    info = sparse_info(num_channels=4)
    model = build("stgcn", info, input_channels="all")
    randomize_head(model)
    model.eval()
    batch = random_batch(info, batch_size=2, seed=8)
    x2 = batch.x.clone()
    x2[:, :-1, :, (info.ca_channel + 1) % 4] += 0.5
    assert not torch.allclose(model(Batch.from_info(info, x2)), model(batch))


# ------------------------------------------------------------------------- symmetry


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("channels", [1, 4])
def test_not_equivariant(name: str, channels: int) -> None:
    """Rotating the input changes the output by more than a rotation would."""
    info = sparse_info(num_channels=channels)
    model = build(name, info)
    if name in RESIDUAL:
        randomize_head(model)
    model.eval()
    with torch.no_grad():
        errors = equivariance_error(model, random_batch(info, batch_size=3, seed=9))
    assert errors["rotation"] > 1e-3 and errors["reflection"] > 1e-3, errors


def test_st_gnn_is_permutation_equivariant() -> None:
    info = sparse_info()
    model = build("st-gnn", info)
    with torch.no_grad():
        assert permutation_error(model, info, random_batch(info, seed=10)) < 1e-10


def test_st_gnn_read_out() -> None:
    """With a zero read-out, 'displacement' returns the pooled frames, 'absolute' returns zero."""
    info = sparse_info()
    batch = random_batch(info, batch_size=2, seed=11)
    for decode in ("displacement", "absolute"):
        model = build("st-gnn", info, decode=decode)
        with torch.no_grad():
            last = model.readout[-1]
            last.weight.zero_()
            last.bias.zero_()
            out = model(batch)
        w = model.pool.weights.to(batch.x.dtype)
        expected = (batch.x * w.view(1, -1, 1, 1, 1)).sum(1) if decode == "displacement" else torch.zeros_like(out)
        assert torch.allclose(out, expected, atol=1e-12)


# ---------------------------------------------------------------------------- STGCN


def test_stgcn_receptive_field() -> None:
    with pytest.raises(ValueError, match=r"at least 4\*\(K_t-1\)\+1 = 9 frames"):
        create_model("stgcn", sparse_info(history=8))
    model = build("stgcn", sparse_info(history=5), kernel=2)
    randomize_head(model)
    info5 = sparse_info(history=5)
    assert model(random_batch(info5, batch_size=2)).shape == (2, info5.num_nodes, 1, 3)
    with pytest.raises(ValueError, match="needs a history"):
        create_model("stgcn", sparse_info(history=4), kernel=2)


def test_stgcn_wrong_history_at_run_time() -> None:
    model = build("stgcn", sparse_info(history=10))
    with pytest.raises(ValueError, match="T=10"):
        model(random_batch(sparse_info(history=11)))


def test_graph_supports_first_order() -> None:
    edge_index = torch.tensor([[0, 1], [1, 2]])  # path 0-1-2, one direction only (symmetrised)
    s = graph_supports(edge_index, 3, "first")
    assert s.shape == (1, 3, 3)
    deg = torch.tensor([2.0, 3.0, 2.0], dtype=torch.float64)  # with self loops
    a = torch.tensor([[1, 1, 0], [1, 1, 1], [0, 1, 1]], dtype=torch.float64)
    assert torch.allclose(s[0], a / torch.sqrt(deg[:, None] * deg[None, :]))


def test_graph_supports_chebyshev() -> None:
    info = sparse_info(num_nodes=7)
    s = graph_supports(info.edge_index, 7, "cheb", order=4)
    assert s.shape == (4, 7, 7)
    eye = torch.eye(7, dtype=torch.float64)
    assert torch.equal(s[0], eye)
    lap = s[1]
    assert torch.allclose(lap, lap.T)
    ev = torch.linalg.eigvalsh(lap)
    assert ev.max() == pytest.approx(1.0, abs=1e-10) and ev.min() >= -1.0 - 1e-10
    assert torch.allclose(s[2], 2 * lap @ s[1] - s[0])
    assert torch.allclose(s[3], 2 * lap @ s[2] - s[1])


def test_graph_supports_isolated_node_is_finite() -> None:
    s = graph_supports(torch.tensor([[0], [1]]), 3, "cheb")
    assert torch.isfinite(s).all()
    assert torch.isfinite(graph_supports(torch.zeros(2, 0, dtype=torch.long), 3, "first")).all()


def test_stgcn_first_order_graph_conv_runs() -> None:
    info = sparse_info()
    model = build("stgcn", info, graph_conv="first")
    randomize_head(model)
    assert model.block1.spatial.order == 1
    assert model.block1.spatial.supports.shape == (info.num_nodes, info.num_nodes)
    assert torch.isfinite(model(random_batch(info))).all()


# --------------------------------------------------------------------- AGL-STAN parts


def test_adaptive_supports() -> None:
    emb = torch.randn(5, 4, dtype=torch.float64)
    s = AdaptiveGraphConv.supports(emb, 3)
    assert torch.equal(s[0], torch.eye(5, dtype=torch.float64))
    assert torch.allclose(s[1].sum(dim=1), torch.ones(5, dtype=torch.float64))
    assert (s[1] >= 0).all()
    assert torch.allclose(s[2], 2 * s[1] @ s[1] - s[0])


def test_agl_stan_learns_its_graph() -> None:
    """The node embeddings (the adaptive adjacency) receive gradients; the fixed edges are unused."""
    info = sparse_info()
    model = build("agl-stan", info)
    randomize_head(model)
    batch = random_batch(info, seed=12)
    ((model(batch) - batch.y) ** 2).mean().backward()
    assert model.node_embeddings.grad is not None and model.node_embeddings.grad.abs().sum() > 0
    other = Batch(x=batch.x, h=batch.h, edge_index=batch.edge_index[:, :2], edge_attr=batch.edge_attr[:2])
    model.eval()
    assert torch.equal(model(other), model(batch))


# ---------------------------------------------------------------- running statistics


def test_running_standardizer() -> None:
    stats = RunningStandardizer((2,)).double()
    assert torch.equal(stats.std, torch.ones(2, dtype=torch.float64).add(stats.eps).sqrt())
    a = torch.randn(50, 2, dtype=torch.float64) * 3 + 1
    b = torch.randn(50, 2, dtype=torch.float64) * 2 - 1
    stats.update(a, dims=(0,))
    stats.update(b, dims=(0,))
    both = torch.cat([a, b])
    assert torch.allclose(stats.mean, both.mean(0))
    assert torch.allclose(stats.std, both.std(0, unbiased=False), atol=1e-6)
    assert torch.allclose(stats.rms, both.square().mean(0).sqrt(), atol=1e-6)
    stats.eval()
    stats.update(torch.full((10, 2), 100.0, dtype=torch.float64), dims=(0,))
    assert torch.allclose(stats.mean, both.mean(0)), "evaluation batches must not move the statistics"


@pytest.mark.parametrize("name", RESIDUAL)
def test_state_dict_round_trip_keeps_statistics(name: str) -> None:
    info = sparse_info()
    model = build(name, info)
    randomize_head(model)
    model(random_batch(info, seed=13))  # training-mode call: statistics move
    assert int(model.in_stats.count) == 1
    clone = build(name, info)
    clone.load_state_dict(copy.deepcopy(model.state_dict()))
    model.eval()
    clone.eval()
    batch = random_batch(info, seed=14)
    assert torch.equal(model(batch), clone(batch))


# ------------------------------------------------------------------- real-data training


@pytest.mark.data
@pytest.mark.parametrize("name", MODELS)
def test_training_lowers_loss_on_ethanol(name: str, ethanol_case) -> None:
    """A few Adam steps (protocol lr 5e-3, batch 100) on the real ethanol slice lower the training MSE."""
    info, train = ethanol_case.info, ethanol_case.splits["train"]
    torch.manual_seed(0)
    model = create_model(name, info, hidden=16)
    optim = torch.optim.Adam(model.parameters(), lr=5e-3, weight_decay=1e-12)

    def train_mse() -> float:
        model.eval()
        with torch.no_grad():
            value = float(((model(Batch.from_info(info, train.x)) - train.y) ** 2).mean())
        model.train()
        return value

    g = torch.Generator().manual_seed(0)
    model.train()
    model(Batch.from_info(info, train.x[:100]))  # statistics from one batch before the first look
    before = train_mse()
    for _ in range(8):
        order = torch.randperm(len(train), generator=g)
        for i in range(0, len(train), 100):
            idx = order[i : i + 100]
            loss = ((model(Batch.from_info(info, train.x[idx])) - train.y[idx]) ** 2).mean()
            optim.zero_grad()
            loss.backward()
            optim.step()
    after = train_mse()
    assert after < 0.9 * before, (before, after)
