"""DGL interoperability: the batch adapter and ``st-gnn-dgl`` against the plain-torch ``st-gnn``.

Tests that need DGL skip with the reason when ``dgl`` (``pip install estagbench[dgl]``,
``DGLBACKEND=pytorch``) cannot be imported; CI installs the extra, so there they run.
The tests of the missing-DGL path and of the lazy import run everywhere.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from baselines._dgl_adapter import DGL_INSTALL_HINT, batch_to_dgl, dense_nodes, dgl_available, require_dgl
from estagbench import Batch, DatasetInfo, create_model, get_model_entry
from estagbench.evaluate import Evaluator
from estagbench.testing import random_batch, random_info

REPO = Path(__file__).resolve().parents[1]

needs_dgl = pytest.mark.skipif(
    not dgl_available(),
    reason="dgl is not importable here (pip install estagbench[dgl], DGLBACKEND=pytorch); CI installs it",
)




def uneven_info(num_nodes: int = 7, num_channels: int = 1, seed: int = 0) -> DatasetInfo:
    """Random directed graph with unequal in-degrees and one node without incoming edges (float64)."""
    g = torch.Generator().manual_seed(seed)
    base = random_info(num_nodes=num_nodes, num_channels=num_channels, seed=seed)
    keep = torch.rand(base.num_edges, generator=g) < 0.5
    keep &= base.edge_index[1] != num_nodes - 1  # last node receives nothing
    return DatasetInfo(
        dataset="random",
        case="uneven",
        num_nodes=num_nodes,
        num_channels=num_channels,
        node_features=base.node_features,
        edge_index=base.edge_index[:, keep],
        edge_attr=base.edge_attr[keep],
        history=base.history,
        stride=1,
        ca_channel=base.ca_channel,
    )


def twin_models(info: DatasetInfo, dtype: torch.dtype = torch.float64, **hparams: object):
    torch.manual_seed(0)
    plain = create_model("st-gnn", info, **hparams).to(dtype)
    torch.manual_seed(0)
    dgl_model = create_model("st-gnn-dgl", info, **hparams).to(dtype)
    return plain, dgl_model


# ------------------------------------------------------------------- no DGL needed


def test_registry_entry_declares_the_adapter() -> None:
    entry = get_model_entry("st-gnn-dgl")
    assert entry.batch_transform is batch_to_dgl
    assert entry.symmetry == "none" and entry.multichannel


def test_importing_the_suite_does_not_import_dgl() -> None:
    """The registry imports every baseline at start-up; DGL must stay unimported until a DGL model is built."""
    code = (
        "import sys\n"
        "from estagbench import list_models\n"
        "names = list_models()\n"
        "assert 'st-gnn-dgl' in names, names\n"
        "print('dgl' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_missing_dgl_gives_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "dgl", None)  # makes `import dgl` raise ImportError
    with pytest.raises(ImportError, match=r"pip install estagbench\[dgl\]"):
        require_dgl()
    assert not dgl_available()
    with pytest.raises(ImportError, match=r"pip install estagbench\[dgl\]"):
        create_model("st-gnn-dgl", random_info())
    with pytest.raises(ImportError, match=r"pip install estagbench\[dgl\]"):
        batch_to_dgl(random_batch(random_info()))
    create_model("st-gnn", random_info())  # the plain model does not care
    assert "pip install estagbench[dgl]" in DGL_INSTALL_HINT


def test_wrong_backend_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DGLBACKEND", "tensorflow")
    with pytest.raises(ImportError, match="pytorch"):
        require_dgl()


def test_dense_nodes() -> None:
    t = torch.arange(24).reshape(6, 4)
    assert torch.equal(dense_nodes(t, 2), t.reshape(2, 3, 4))
    with pytest.raises(ValueError, match="equal size"):
        dense_nodes(t, 4)


# ------------------------------------------------------------------------ with DGL


@needs_dgl
@pytest.mark.parametrize("channels", [1, 4])
def test_batch_to_dgl_layout(channels: int) -> None:
    info = uneven_info(num_channels=channels)
    batch = random_batch(info, batch_size=3, seed=1)
    g = batch_to_dgl(batch, info)
    B, T, N, C = 3, info.history, info.num_nodes, channels
    E = info.num_edges
    assert g.batch_size == B
    assert g.num_nodes() == B * N and g.num_edges() == B * E
    assert g.batch_num_nodes().tolist() == [N] * B and g.batch_num_edges().tolist() == [E] * B
    assert g.ndata["x"].shape == (B * N, T, C, 3)
    assert torch.equal(g.ndata["x"][N + 2], batch.x[1, :, 2])  # node 2 of sample 1
    assert torch.equal(g.ndata["h"], batch.h.repeat(B, 1))
    assert torch.equal(g.ndata["y"].reshape(B, N, C, 3), batch.y)
    assert torch.equal(g.edata["a"], batch.edge_attr.repeat(B, 1))
    src, dst = g.edges()
    assert torch.equal(src[E : 2 * E] - N, batch.edge_index[0])
    assert torch.equal(dst[2 * E :] - 2 * N, batch.edge_index[1])
    no_target = batch_to_dgl(Batch.from_info(info, batch.x), info)
    assert "y" not in no_target.ndata


@needs_dgl
@pytest.mark.parametrize("channels", [1, 4])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_outputs_match_the_torch_model(channels: int, dtype: torch.dtype) -> None:
    info = uneven_info(num_channels=channels)
    plain, dgl_model = twin_models(info, dtype)
    for (n1, p1), (n2, p2) in zip(plain.named_parameters(), dgl_model.named_parameters(), strict=True):
        assert n1 == n2 and torch.equal(p1, p2), "same seed must give the same initial weights"
    batch = random_batch(info, batch_size=4, seed=2).to("cpu", dtype)
    out = plain(batch)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    assert torch.allclose(dgl_model(batch_to_dgl(batch, info)), out, atol=tol, rtol=tol)
    assert torch.allclose(dgl_model(batch), out, atol=tol, rtol=tol)  # a dense Batch is converted on the fly


@needs_dgl
def test_training_losses_match_the_torch_model() -> None:
    """Same seed, same batches: five Adam steps give the same losses, gradients and weights."""
    info = uneven_info()
    plain, dgl_model = twin_models(info, torch.float32)
    opt_a = torch.optim.Adam(plain.parameters(), lr=5e-3, weight_decay=1e-12)
    opt_b = torch.optim.Adam(dgl_model.parameters(), lr=5e-3, weight_decay=1e-12)
    for step in range(5):
        batch = random_batch(info, batch_size=8, seed=10 + step).to("cpu", torch.float32)
        losses = []
        for model, opt, inp in ((plain, opt_a, batch), (dgl_model, opt_b, batch_to_dgl(batch, info))):
            loss = ((model(inp) - batch.y) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        assert losses[1] == pytest.approx(losses[0], rel=1e-5, abs=1e-7)
    for p1, p2 in zip(plain.parameters(), dgl_model.parameters(), strict=True):
        assert torch.allclose(p1, p2, atol=1e-5)


@needs_dgl
def test_evaluator_hands_the_model_a_dgl_graph() -> None:
    """The runner path: the registry's batch_transform turns each dense batch into a DGLGraph."""
    dgl = require_dgl()
    info = uneven_info()
    entry = get_model_entry("st-gnn-dgl")
    ev = Evaluator(info, batch_size=4, batch_transform=entry.batch_transform)
    x = random_batch(info, batch_size=4, seed=3).x
    assert isinstance(ev.make_batch(x), dgl.DGLGraph)
    plain, dgl_model = twin_models(info)
    plain_ev = Evaluator(info, batch_size=4)
    assert torch.allclose(dgl_model(ev.make_batch(x)), plain(plain_ev.make_batch(x)), atol=1e-12)


@needs_dgl
@pytest.mark.data
def test_train_model_matches_on_ethanol(ethanol_case) -> None:
    """Through the Trainer on the real ethanol slice: same seed, same losses and metrics (2 epochs)."""
    from estagbench.train import TrainConfig, train_model

    cfg = TrainConfig(epochs=2, eval_every=1)
    a = train_model("st-gnn", ethanol_case, seed=1, config=cfg)
    b = train_model("st-gnn-dgl", ethanol_case, seed=1, config=cfg)
    for row_a, row_b in zip(a.curve, b.curve, strict=True):
        for key in ("train_loss", "val_mse", "test_mse"):
            assert row_b[key] == pytest.approx(row_a[key], rel=1e-4, nan_ok=True), key
    assert b.num_params == a.num_params
