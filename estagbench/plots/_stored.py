"""Stored runs for the figures: find records, read learning curves, reload a trained model, predict."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

if TYPE_CHECKING:  # matplotlib is imported when a figure is drawn, not by every CLI start-up (~0.5 s)
    pass

__all__ = ["find_records", "read_curve", "load_trained", "predict", "attention_summary"]

_LOAD_OPTS = ("history", "stride", "split_margin", "split_fractions", "split_caps")


def find_records(
    results: str | Path,
    model: str,
    dataset: str,
    case: str | None = None,
    *,
    seeds: Sequence[int] | None = None,
    epochs: int | None = None,
    history: int | None = None,
    model_hparams: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The stored records of one (model, dataset, case), newest configuration, sorted by seed.

    Filters as in the tables: ``epochs``, ``seeds``, ``history`` (default: the protocol's
    T = 10) and ``model_hparams`` (default: the registered defaults).  Each returned
    record carries ``"_cell_id"`` (its run folder name).
    """
    from ..data.identity import dataset_identity
    from ..results import ResultStore, cell_id
    from ..tables._records import canonical_hparams
    from ..tables._specs import DEFAULT_HISTORY, ESTAG_DEFAULT_HPARAMS

    want_h = DEFAULT_HISTORY if history is None else history
    want_hp = canonical_hparams(model_hparams or {}, ESTAG_DEFAULT_HPARAMS)
    out = []
    names = {dataset, dataset_identity(dataset)[0]}  # a file's records carry its name, whatever the path's spelling
    for r in ResultStore(Path(results)).records():
        if r.get("model") != model or r.get("dataset") not in names or (case and r.get("case") != case):
            continue
        cfg = r.get("config") or {}
        if int((r.get("data_params") or {}).get("history", DEFAULT_HISTORY)) != want_h:
            continue
        if canonical_hparams(cfg.get("model_hparams") or {}, ESTAG_DEFAULT_HPARAMS) != want_hp:
            continue
        if epochs is not None and cfg.get("epochs") != epochs:
            continue
        if seeds and r.get("seed") not in seeds:
            continue
        out.append(r)
    if not out:
        return []
    newest: dict[str, str] = {}
    for r in out:
        newest[r["config_hash"]] = max(newest.get(r["config_hash"], ""), r.get("finished_at") or "")
    chash = max(newest, key=lambda k: newest[k])
    chosen = sorted((r for r in out if r["config_hash"] == chash), key=lambda r: r["seed"])
    for r in chosen:
        r["_cell_id"] = cell_id(r["model"], r["dataset"], r["case"], int(r["seed"]), r["config_hash"])
    return chosen


def read_curve(results: str | Path, record: dict[str, Any]) -> pd.DataFrame:
    """The per-epoch log (``epoch, train_loss, val_mse, test_mse, ...``) of a stored run."""
    path = Path(results) / "runs" / record["_cell_id"] / "log.csv"
    if not path.exists():
        raise FileNotFoundError(f"no training log {path} for {record['model']} seed {record['seed']}")
    return pd.read_csv(path)


def load_trained(
    results: str | Path, record: dict[str, Any], data_dir: str | Path | None = None
) -> tuple[torch.nn.Module, Any]:
    """Rebuild the model of a stored run with its best-validation weights, and its prepared case.

    The case is loaded with the record's own protocol settings; its split hash must
    equal the record's, so predictions are made on exactly the windows it was tested on.
    """
    from ..data import load_case
    from ..data.identity import record_source
    from ..registry import create_model

    dp = record.get("data_params") or {}
    opts = {k: (tuple(v) if isinstance(v, list) else v) for k, v in dp.items() if k in _LOAD_OPTS}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = load_case(record_source(record), record["case"], data_dir=data_dir, **opts)
    if record.get("split_hash") and data.split_hash() != record["split_hash"]:
        raise ValueError(
            f"{record['dataset']}/{record['case']}: the data found gives split hash {data.split_hash()}, "
            f"the stored run used {record['split_hash']}; point --data-dir at the data it was trained on"
        )
    prepared = data.prepare()
    cfg = record.get("config") or {}
    model = create_model(
        record["model"], prepared.info, hidden=cfg.get("hidden", 16), **(cfg.get("model_hparams") or {})
    )
    ckpt = Path(results) / "runs" / record["_cell_id"] / "best.pt"
    if ckpt.exists():
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        model.load_state_dict(state["state_dict"])
    elif sum(p.numel() for p in model.parameters() if p.requires_grad) > 0:
        why = f" ({record['checkpoint']})" if isinstance(record.get("checkpoint"), str) and "not kept" in record["checkpoint"] else ""
        raise FileNotFoundError(f"no checkpoint {ckpt} for the trained model {record['model']} seed {record['seed']}{why}; "
                                "rerun that cell with `estagbench run ... --checkpoints all`")
    model.eval()
    return model, prepared


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    prepared: Any,
    split: str = "test",
    index: Sequence[int] | None = None,
    details: bool = False,
) -> tuple[torch.Tensor, dict[str, Any] | None]:
    """Predictions ``(S, N, C, 3)`` on ``split`` (all samples or ``index``), optionally ESTAG's details."""
    from ..evaluate import Evaluator

    s = prepared.splits[split]
    idx = torch.arange(len(s)) if index is None else torch.as_tensor(list(index), dtype=torch.long)
    ev = Evaluator(
        prepared.info, batch_transform=getattr(getattr(model, "estagbench_entry", None), "batch_transform", None)
    )
    batch = ev.make_batch(s.x[idx])
    if details:
        pred, det = model(batch, return_details=True)
        return pred, det
    return model(batch), None


def attention_summary(details: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """ESTAG's attention ``(L, T, T)`` averaged over samples and nodes, and the pooling weights ``(T,)``."""
    att = details.get("attention") or []
    maps = np.stack([a.detach().float().mean(dim=(0, 1)).cpu().numpy() for a in att]) if att else np.zeros((0, 0, 0))
    pool = details.get("pool_weights")
    pool = np.asarray(pool.detach().cpu().numpy() if torch.is_tensor(pool) else pool, dtype=float).reshape(-1)
    return maps, pool


