"""The fused C kernel of ESTAG (estagbench/models/_estag_kernel.c) against the PyTorch code.

Both implement the same function: in float64 the predictions and every parameter gradient
agree to ~1e-12, the kernel's output moves with rotations, reflections, translations and
node relabellings, and its numbers do not depend on how many threads ran it.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import shutil
import threading
import warnings

import pytest
import torch
from torch import nn

from estagbench import Batch, create_model
from estagbench.models import _estag_fast
from estagbench.testing import assert_equivariant, permutation_error, random_batch, random_info

needs_cc = pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc")) is None,
                              reason="no C compiler ($CC, default cc): the fused kernel cannot be built here")

CONFIGS = [
    {},
    {"attention": "full"},
    {"attention": "none"},
    {"spectral_filter": False},
    {"layers": 3},
    {"layers": 1, "attention": "none"},
    {"hidden": 8},
]


def _pair(nodes: int = 5, history: int = 6, dtype: torch.dtype = torch.float64, seed: int = 0,
          **hp: object) -> tuple[nn.Module, nn.Module, Batch]:
    """The same randomised ESTAG twice (PyTorch code, fused kernel) and a batch."""
    info = random_info(num_nodes=nodes, history=history, seed=seed)
    torch.manual_seed(seed)
    ref = create_model("estag", info, backend="torch", **hp).to(dtype)
    with torch.no_grad():  # move every parameter off its initial value (zeros, tiny heads)
        for p in ref.parameters():
            p.add_(0.2 * torch.randn_like(p))
    fused = copy.deepcopy(ref)
    fused.backend, fused._fused_ok = "fused", True
    batch = random_batch(info, batch_size=7, seed=seed + 1)
    return ref, fused, Batch(batch.x.to(dtype), batch.h, batch.edge_index, batch.edge_attr)


def _grads(model: nn.Module, batch: Batch, weight: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor | None]]:
    model.zero_grad(set_to_none=True)
    out = model(batch)
    (out * weight).sum().backward()
    return out.detach(), {n: p.grad for n, p in model.named_parameters()}


@needs_cc
@pytest.mark.parametrize("hp", CONFIGS, ids=lambda hp: ",".join(f"{k}={v}" for k, v in hp.items()) or "default")
def test_fused_matches_pytorch_float64(hp: dict) -> None:
    ref, fused, batch = _pair(**hp)
    weight = torch.randn(7, 5, 1, 3, dtype=torch.float64)
    out_r, g_r = _grads(ref, batch, weight)
    out_f, g_f = _grads(fused, batch, weight)
    assert ref.implementation == "torch" and fused.implementation == "fused"
    assert (out_r - batch.x[:, -1]).abs().max() > 1e-2  # the learned parts move the output
    assert torch.allclose(out_f, out_r, rtol=0, atol=1e-12)
    for name, gr in g_r.items():
        gf = g_f[name]
        assert (gr is None) == (gf is None), name  # a parameter the output ignores has no gradient
        if gr is not None:
            assert gr.abs().max() > 0, name
            assert torch.allclose(gf, gr, rtol=1e-10, atol=1e-12 * float(gr.abs().max())), name


@needs_cc
def test_fused_matches_pytorch_float32_on_molecule_sizes() -> None:
    for nodes in (3, 9, 13):
        ref, fused, batch = _pair(nodes=nodes, history=10, dtype=torch.float32, seed=nodes)
        weight = torch.randn(7, nodes, 1, 3)
        out_r, g_r = _grads(ref, batch, weight)
        out_f, g_f = _grads(fused, batch, weight)
        assert (out_f - out_r).abs().max() < 1e-5 * out_r.abs().max()  # float32 rounding only
        for name, gr in g_r.items():
            if gr is not None:
                assert (g_f[name] - gr).abs().max() < 1e-3 * gr.abs().max(), name


@needs_cc
@pytest.mark.parametrize("hp", CONFIGS[:5], ids=str)
def test_fused_is_e3_and_permutation_equivariant(hp: dict) -> None:
    _, fused, batch = _pair(**hp)
    with torch.no_grad():
        assert_equivariant(fused, batch, atol=1e-10)
        info = random_info(num_nodes=5, history=6, seed=0)
        assert permutation_error(fused, info, batch) < 1e-10
    assert fused.implementation == "fused"


@needs_cc
def test_numbers_do_not_depend_on_the_thread_count(monkeypatch: pytest.MonkeyPatch) -> None:
    _, fused, batch = _pair(nodes=4, history=5, dtype=torch.float32)
    batch = Batch(torch.cat([batch.x] * 5), batch.h, batch.edge_index, batch.edge_attr)  # 35 samples
    weight = torch.randn(35, 4, 1, 3)
    seen = []
    for threads in ("1", "2", "3"):
        monkeypatch.setenv("ESTAGBENCH_KERNEL_THREADS", threads)
        out, grads = _grads(fused, batch, weight)
        seen.append((out, torch.cat([g.flatten() for g in grads.values()])))
    for out, g in seen[1:]:
        assert torch.equal(out, seen[0][0]) and torch.equal(g, seen[0][1])
    monkeypatch.setenv("ESTAGBENCH_KERNEL_THREADS", "zero")
    with pytest.raises(ValueError, match="ESTAGBENCH_KERNEL_THREADS"):
        fused(batch)


@needs_cc
def test_auto_uses_the_kernel_only_where_it_applies() -> None:
    info = random_info(num_nodes=4, history=5, seed=1)
    batch = random_batch(info, batch_size=2, seed=2)
    model = create_model("estag", info).double()
    with torch.no_grad():
        model(batch)
    assert model.implementation == "fused"
    model(batch, return_details=True)
    assert model.implementation == "torch"  # the attention maps come from the PyTorch code
    x = batch.x.clone().requires_grad_(True)
    model(Batch(x, batch.h, batch.edge_index, batch.edge_attr))
    assert model.implementation == "torch"  # a gradient w.r.t. the positions
    no_pool = create_model("estag-no-pool", info).double()
    assert no_pool(batch).shape == (2, 4, 1, 3) and no_pool.implementation == "torch"  # softmax pooling
    multi = random_info(num_nodes=4, num_channels=4, history=5, seed=1)
    with pytest.raises(ValueError, match="does not cover multi-channel"):
        create_model("estag", multi, backend="fused")
    with pytest.raises(ValueError, match="backend must be one of"):
        create_model("estag", info, backend="cuda")
    with pytest.raises(ValueError, match="does not cover hidden width 12"):
        create_model("estag", info, hidden=12, backend="fused")


def test_without_a_compiler_auto_falls_back_and_fused_refuses(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setenv("ESTAGBENCH_KERNEL_CACHE", str(tmp_path / "kernels"))
    monkeypatch.setattr(_estag_fast, "_LOADED", {})
    monkeypatch.setattr(_estag_fast, "_FAILED", {})
    info = random_info(num_nodes=4, history=5, seed=1)
    batch = random_batch(info, batch_size=2, seed=2)
    auto = create_model("estag", info).double()
    with pytest.warns(RuntimeWarning, match="no C compiler"):
        out = auto(batch)
    assert auto.implementation == "torch" and out.shape == (2, 4, 1, 3)
    strict = create_model("estag", info, backend="fused").double()
    with pytest.raises(RuntimeError, match="backend='fused': no C compiler"):
        strict(batch)


@needs_cc
def test_in_place_change_between_forward_and_backward_is_refused() -> None:
    _, fused, batch = _pair(nodes=4, history=5)
    out = fused(batch)
    with torch.no_grad():
        fused.pool.add_(1.0)
    with pytest.raises(RuntimeError, match="modified in place"):
        out.sum().backward()


@needs_cc
def test_bad_edges_are_refused() -> None:
    _, fused, batch = _pair(nodes=4, history=5)
    bad = batch.edge_index.clone()
    bad[0, 0] = 9
    with pytest.raises(ValueError, match=r"node ids outside \[0, 4\)"):
        fused(Batch(batch.x, batch.h, bad, batch.edge_attr))


@needs_cc
def test_trains_on_real_ethanol_like_pytorch(ethanol_case) -> None:
    """A few epochs on the real ethanol slice: the kernel's float32 run tracks the PyTorch run."""
    from estagbench.train import TrainConfig, train_model

    losses = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for backend in ("torch", "fused"):
            cfg = TrainConfig(epochs=10, lr=5e-3, eval_every=5, model_hparams={"backend": backend})
            out = train_model("estag", ethanol_case, seed=1, config=cfg)
            assert out.model.implementation == backend
            losses[backend] = out.metrics["val_mse"]
    assert abs(losses["fused"] - losses["torch"]) < 0.05 * losses["torch"], losses


def test_kernel_source_is_part_of_the_model_source_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stored ESTAG result is stale when the C kernel (not only estag.py) changes."""
    from estagbench.models import estag
    from estagbench.runner import model_source_sha256

    with_kernel = model_source_sha256("estag")
    monkeypatch.setattr(estag, "ESTAGBENCH_EXTRA_SOURCES", ())
    assert model_source_sha256("estag") != with_kernel


@needs_cc
@pytest.mark.parametrize("case", ["B=0", "B=1", "no edges", "N=1", "T=2", "H=2"])
def test_fused_matches_pytorch_on_edge_cases(case: str) -> None:
    nodes, history, batch_size, hp = 4, 5, 3, {}
    if case == "N=1":
        nodes = 1
    if case == "T=2":
        history = 2
    if case == "H=2":
        hp = {"hidden": 2}
    info = random_info(num_nodes=nodes, history=history, seed=4)
    if case == "no edges":
        info = dataclasses.replace(info, edge_index=info.edge_index[:, :0], edge_attr=info.edge_attr[:0])
    batch_size = {"B=0": 0, "B=1": 1}.get(case, batch_size)
    torch.manual_seed(0)
    ref = create_model("estag", info, backend="torch", **hp).double()
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.2 * torch.randn_like(p))
    fused = copy.deepcopy(ref)
    fused.backend, fused._fused_ok = "fused", True
    b = random_batch(info, batch_size=max(batch_size, 1), seed=5)
    batch = Batch(b.x[:batch_size], b.h, info.edge_index, info.edge_attr)
    weight = torch.randn(batch_size, nodes, 1, 3, dtype=torch.float64)
    out_r, g_r = _grads(ref, batch, weight)
    out_f, g_f = _grads(fused, batch, weight)
    assert fused.implementation == "fused" and out_f.shape == (batch_size, nodes, 1, 3)
    assert torch.allclose(out_f, out_r, rtol=0, atol=1e-12)
    for name, gr in g_r.items():
        assert (gr is None) == (g_f[name] is None), name
        if gr is not None:
            assert torch.allclose(g_f[name], gr, rtol=1e-10, atol=1e-12), name


@needs_cc
def test_replaced_parameters_copies_and_threads_are_safe() -> None:
    """The kernel reads the model's current parameters, a used model can be copied, and one model
    can run in two Python threads at once (batches of different sizes)."""
    ref, fused, batch = _pair(nodes=4, history=5)
    with torch.no_grad():
        fused(batch)  # prepares the kernel's view of the parameters
        state = {k: 1.05 * v for k, v in ref.state_dict().items()}
        ref.load_state_dict(state)
        fused.load_state_dict(state, assign=True)  # new Parameter objects
        assert torch.allclose(fused(batch), ref(batch), rtol=1e-12, atol=1e-12)
        other = {k: 0.9 * v for k, v in ref.state_dict().items()}
        ref.load_state_dict(other)
        out = torch.func.functional_call(fused, other, (batch,))
        assert torch.allclose(out, ref(batch), rtol=1e-12, atol=1e-12)
        clone = copy.deepcopy(fused)  # after use: no ctypes handles in the copy
        assert torch.allclose(clone(batch), fused(batch))
    big = Batch(torch.cat([batch.x] * 40), batch.h, batch.edge_index, batch.edge_attr)
    expect = {len(b.x): fused(b).detach() for b in (batch, big)}
    errors: list[BaseException] = []

    def work(b: Batch) -> None:
        try:
            for _ in range(20):
                assert torch.equal(fused(b).detach(), expect[len(b.x)])
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(b,)) for b in (batch, big, batch, big)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


@needs_cc
def test_inputs_the_kernel_cannot_serve() -> None:
    _, fused, batch = _pair(nodes=4, history=5)
    with pytest.raises(ValueError, match=r"node features must have shape \(4, 1\)"):
        fused(Batch(batch.x, torch.cat([batch.h, batch.h], 1), batch.edge_index, batch.edge_attr))
    with pytest.raises(ValueError, match=r"node features must have shape \(4, 1\)"):
        fused(Batch(batch.x, batch.h[:3], batch.edge_index, batch.edge_attr))
    fused.backend = "auto"
    h = batch.h.clone().double().requires_grad_(True)  # a gradient for the node features: PyTorch code
    fused(Batch(batch.x, h, batch.edge_index, batch.edge_attr)).sum().backward()
    assert fused.implementation == "torch" and h.grad is not None
    out = fused(batch)
    (g,) = torch.autograd.grad(out.sum(), fused.pool, create_graph=True)
    with pytest.raises(RuntimeError):  # no second derivative from the kernel (never a silent zero)
        g.sum().backward()


def _caller_flushes() -> bool:
    """Whether this thread's float32 arithmetic flushes a denormal result to zero (numpy runs SSE)."""
    import numpy as np

    with np.errstate(under="ignore"):
        return bool(np.float32(1e-30) * np.float32(1e-10) == 0)


@needs_cc
@pytest.mark.skipif(not torch.set_flush_denormal(False), reason="this CPU has no flush-to-zero control (not x86 SSE3)")
def test_kernel_sets_its_own_fp_environment_and_restores_the_callers() -> None:
    """The kernel's numbers (and so its speed) do not depend on the caller's flush-to-zero setting,
    and the caller's setting is what it was after a forward and a backward call."""
    _, fused, batch = _pair(nodes=6, history=8, dtype=torch.float32, seed=3)
    assert _estag_fast.load_kernel(16, torch.float32).flushes_denormals
    weight = torch.randn(batch.x.shape[0], 6, 1, 3, generator=torch.Generator().manual_seed(0))
    results = []
    try:
        for caller_ftz in (False, True, False):
            torch.set_flush_denormal(caller_ftz)
            assert _caller_flushes() == caller_ftz
            results.append(_grads(fused, batch, weight))
            assert fused.implementation == "fused"
            assert _caller_flushes() == caller_ftz  # restored after forward and backward
    finally:
        torch.set_flush_denormal(False)
    for out, grads in results[1:]:
        assert torch.equal(out, results[0][0])
        assert all(torch.equal(grads[k], results[0][1][k]) for k in grads if grads[k] is not None)
