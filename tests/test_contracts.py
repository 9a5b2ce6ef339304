"""Contracts generated from the registries (timm's tests/test_models.py idea).

For every registered model, and every case family it accepts (one channel; four channels
when it is multichannel): output shape, a backward pass, a ``state_dict`` round trip,
deepcopy and pickle, and the symmetry its registration declares -- E(3) equivariance in
float64 (``"E3"``; ``"SE3"``: rotations only), or shown *not* equivariant (``"none"``).
For every registered dataset: its declared files and protocol, and, on a small instance
(:meth:`Dataset.small_instance`) where the data is here, split disjointness and window
shapes.  A new model or dataset gets these tests without writing any.

Instances are tiny (4 nodes, batch 2) so the whole module stays within seconds per
model.  Parameters are perturbed before the symmetry check, so that zero-initialised heads
(which make many models return the last frame at initialisation) cannot make a
non-equivariant model look equivariant, or hide a broken equivariant one.
"""

from __future__ import annotations

import copy
import pickle
import re
import warnings
from typing import Any

import numpy as np
import pytest
import torch

from estagbench import create_model, get_model_entry, list_models
from estagbench import protocol as P
from estagbench.data import DataFile, Dataset, get_dataset, list_datasets
from estagbench.data.errors import DataNotFoundError
from estagbench.evaluate import mse
from estagbench.testing import equivariance_error, random_batch, random_info
from estagbench.types import Batch, DatasetInfo

from .conftest import data_root

# ------------------------------------------------------------------------------------------ models
NODES, HISTORY, BATCH = 4, P.HISTORY, 2  # the protocol T: some models (STGCN) need T >= 9
#: float64 tolerance of the E(3) check, and the error a non-equivariant model must exceed
EQUIVARIANT_ATOL, NOT_EQUIVARIANT_MIN = 1e-8, 1e-6


def _model_cases() -> list[Any]:
    cases = []
    for name in list_models():
        entry = get_model_entry(name)
        for channels in (1, 4) if entry.multichannel else (1,):
            cases.append(pytest.param((name, channels), id=f"{name}-C{channels}"))
    return cases


def _build(name: str, channels: int, seed: int = 0) -> tuple[torch.nn.Module, DatasetInfo, Any]:
    """Model ``name`` in float64 on a tiny random case of a family it accepts, and the input it takes."""
    entry = get_model_entry(name)
    family = entry.datasets[0] if entry.datasets else "random"
    info = random_info(num_nodes=NODES, num_channels=channels, history=HISTORY, dataset=family)
    torch.manual_seed(seed)
    try:
        model = create_model(name, info).double()
    except ImportError as exc:  # an optional backend (DGL) that is not installed
        pytest.skip(f"{name}: {exc}")
    return model, info, entry.batch_transform


def _forward(model: torch.nn.Module, info: DatasetInfo, transform: Any, batch: Batch) -> torch.Tensor:
    return model(transform(batch, info) if transform is not None else batch)


@pytest.fixture(params=_model_cases())
def built(request: pytest.FixtureRequest) -> tuple[str, torch.nn.Module, DatasetInfo, Any, Batch]:
    name, channels = request.param
    model, info, transform = _build(name, channels)
    return name, model, info, transform, random_batch(info, batch_size=BATCH)


def test_output_shape_and_backward(built) -> None:
    name, model, info, transform, batch = built
    out = _forward(model, info, transform, batch)
    assert out.shape == (BATCH, NODES, info.num_channels, 3), f"{name}: output {tuple(out.shape)}"
    assert torch.isfinite(out).all()
    params = [p for p in model.parameters() if p.requires_grad]
    if not get_model_entry(name).trains:
        assert not params or all(p.numel() == 0 for p in params), f"{name} is registered trains=False but has parameters"
        return
    assert params, f"{name} is registered trains=True but has no parameters"
    mse(out, batch.y).backward()
    grads = [p.grad for p in params if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads), f"{name}: every gradient is zero"


def _perturb(model: torch.nn.Module, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.is_floating_point():
                p.add_(0.1 * torch.randn(p.shape, generator=g, dtype=p.dtype))


def test_state_dict_deepcopy_and_pickle_round_trip(built) -> None:
    name, model, info, transform, batch = built
    _perturb(model)
    model.eval()
    with torch.no_grad():
        ref = _forward(model, info, transform, batch)
        other, _, _ = _build(name, info.num_channels, seed=1)
        other.load_state_dict(model.state_dict())
        other.eval()
        for twin in (other, copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
            assert torch.equal(_forward(twin, info, transform, batch), ref), name


def test_declared_symmetry(built) -> None:
    name, model, info, transform, batch = built
    _perturb(model)
    model.eval()
    errors = equivariance_error(lambda b: _forward(model, info, transform, b), batch)
    symmetry = get_model_entry(name).symmetry
    if symmetry == "E3":
        assert max(errors.values()) < EQUIVARIANT_ATOL, f"{name} is registered E3: {errors}"
    elif symmetry == "SE3":
        assert errors["rotation"] < EQUIVARIANT_ATOL, f"{name} is registered SE3: {errors}"
    else:
        assert errors["rotation"] > NOT_EQUIVARIANT_MIN, (
            f"{name} is registered symmetry='none' but is E(3)-equivariant here ({errors}); register its symmetry")


def test_the_symmetry_check_can_fail() -> None:
    """The check above on a map that is not equivariant (a fixed direction added) reports a large error."""
    info = random_info(num_nodes=NODES, history=HISTORY)
    errors = equivariance_error(lambda b: b.x[:, -1] + torch.tensor([1.0, 0.0, 0.0], dtype=b.x.dtype), random_batch(info))
    assert min(errors.values()) > NOT_EQUIVARIANT_MIN


# ---------------------------------------------------------------------------------------- datasets
DATASETS = list_datasets()
_HEX64 = re.compile(r"[0-9a-f]{64}")


@pytest.mark.parametrize("name", DATASETS)
def test_dataset_declares_files_and_protocol(name: str) -> None:
    ds = get_dataset(name)
    assert ds.family and ds.cases and ds.description, name
    p = ds.protocol
    assert p.history >= 1 and p.stride >= 1 and p.lr > 0 and p.scale > 0, (name, p)
    assert set(ds.options) <= {"history", "stride", "split_margin", "split_fractions", "split_caps"}, ds.options
    for case in ds.cases:
        files = ds.files(case)
        assert isinstance(files, tuple) and all(isinstance(f, DataFile) for f in files), (name, case)
        names = [f.name for f in files]
        assert len(set(names)) == len(names), f"{name}/{case}: a file declared twice"
        for f in files:
            assert not f.name.startswith("/") and ".." not in f.name.split("/"), f"{name}: {f.name} is not under the data folder"
            assert f.sha256 is None or _HEX64.fullmatch(f.sha256), f"{name}: {f.name} sha256 {f.sha256!r}"
            assert f.url == "" or f.url.startswith(("http://", "https://")), f"{name}: {f.name} url {f.url!r}"
        if not ds.offline and type(ds).download is Dataset.download:  # the base downloads what has a URL
            assert any(f.url for f in files), f"{name}/{case} needs a download but declares no URL"


@pytest.mark.parametrize("name", DATASETS)
def test_dataset_small_instance_splits_and_windows(name: str) -> None:
    ds = get_dataset(name)
    instance = ds.small_instance()
    if instance is None:
        pytest.skip(f"{name}: {type(ds).small_instance.__doc__.strip().removeprefix('None: ')}")
    case, opts = instance
    root = data_root()
    missing = [f.name for f in ds.files(case) if not (root / f.name).is_file()]
    if missing and not ds.offline:
        pytest.skip(f"{name}/{case}: not in the shared data ({', '.join(missing[:3])}…)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # excerpts are marked non-official
        try:
            data = ds.load(case, root, **opts)
        except DataNotFoundError as exc:
            pytest.skip(f"{name}/{case}: {str(exc).splitlines()[0]}")
    if not missing:
        ds.verify(case, root)  # declared checksums hold for the shared files
    assert (data.dataset, data.case) == (ds.family, case)
    seen: dict[tuple[int, int], str] = {}
    for split, win in data.windows.items():
        assert len(win) > 0, f"{name}/{case}: empty {split}"
        for key in map(tuple, np.asarray(win).tolist()):
            assert seen.setdefault(key, split) == split, f"{name}/{case}: window {key} in {seen[key]} and {split}"
    prepared = data.prepare(torch.float64)
    N, C = data.num_nodes, data.num_channels
    for split, sd in prepared.splits.items():
        S = len(data.windows[split])
        assert sd.x.shape == (S, data.history, N, C, 3) and sd.y.shape == (S, N, C, 3), (split, sd.x.shape, sd.y.shape)
        traj, start = (int(v) for v in data.windows[split][0])  # the target is frame start + T·Δ
        assert torch.equal(sd.y[0], torch.as_tensor(data.trajectories[traj][start + data.history * data.stride]))
    assert data.edge_index.min() >= 0 and data.edge_index.max() < N
    assert data.node_features.shape[0] == N and data.edge_attr.shape[0] == data.edge_index.shape[1]
