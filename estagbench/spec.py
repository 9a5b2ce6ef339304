"""The unit of work: :class:`RunSpec`, one cell of a grid (model × case × seed × budget).

A spec is a frozen, picklable description that a worker on another process or machine
can run from the data folder alone (:func:`estagbench.worker.run_spec`); the results
folder travels beside it, not in it.  :meth:`RunSpec.key` is the cell's identity: the
file name of its stored record, the name of its claim file and the value ``--shard``
hashes.  It is the id the store used before specs existed (``results.cell_id`` over
``results.config_hash`` of the same configuration dictionary), so stored records keep
matching; the only new ingredient is a non-default *implementation* (issue 20 item 1: a
model that can train with more than one implementation -- its module declares
``ESTAGBENCH_IMPLEMENTATIONS`` -- gets a separate cell for each non-default one, never
averaged with the default's).  Since ESTAG's fused C kernel was retired (issue 21), every
built-in model has one implementation; records still name the one that ran.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from .results import cell_id, config_hash

__all__ = ["RunSpec", "parse_shard", "in_shard"]


def _freeze(value: Any) -> Any:
    """A canonical JSON round trip: tuples become lists, keys are sorted (what the hash sees)."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


@dataclass(frozen=True)
class RunSpec:
    """One cell: what to train, on what, with which seed and budget.

    Attributes
    ----------
    model: registry name (``estag``).
    dataset, case: dataset name (or trajectory path) and case (``ethanol``).
    seed: the training seed.
    train: :meth:`estagbench.train.TrainConfig.as_dict` (epochs, lr, batch size,
        model hyper-parameters, optimizer, device).
    data_params: the case's resolved protocol settings (``CaseData.params``: T, Δ, split
        rule), part of the identity.
    data_opts: the overrides that reproduce those settings through ``load_case``
        (``history``, ``stride``, ...; ``None`` values dropped).
    data_dir: the data folder the worker loads the case from (``None``: the default).
    implementation: the implementation the cell runs (``"fused"``/``"torch"`` for ESTAG,
        ``None`` for models with one); resolved by the driver, see :mod:`estagbench.implementation`.
    default_implementation: the model's default one; only a different one enters the key.
    """

    model: str
    dataset: str
    case: str
    seed: int
    train: dict[str, Any]
    data_params: dict[str, Any] = field(default_factory=dict)
    data_opts: dict[str, Any] = field(default_factory=dict)
    data_dir: str | None = None
    implementation: str | None = None
    default_implementation: str | None = None
    #: For a file dataset: the name records and ids use (the file name; :func:`estagbench.data.identity.dataset_identity`)
    #: and the SHA-256 of its content, which enters the configuration in place of the path as typed.
    label: str | None = None
    data_sha256: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "seed", int(self.seed))
        object.__setattr__(self, "data_opts", {k: v for k, v in self.data_opts.items() if v is not None})

    def config(self) -> dict[str, Any]:
        """The dictionary whose hash is the configuration hash (as stored in every record)."""
        if self.data_sha256 is None:
            conf: dict[str, Any] = {"model": self.model, "dataset": self.dataset, "case": self.case,
                                    "data_params": self.data_params, "train": self.train}
        else:  # a file: named by its label and content hash, so the path's spelling does not matter
            conf = {"model": self.model, "dataset": self.name, "data_sha256": self.data_sha256, "case": self.case,
                    "data_params": self.data_params, "train": self.train}
        if self.implementation is not None and self.implementation != self.default_implementation:
            conf["implementation"] = self.implementation
        return conf

    @property
    def name(self) -> str:
        """The dataset as records, ids and tables name it (a file's label, else the dataset name)."""
        return self.label or self.dataset

    def legacy(self) -> RunSpec:
        """This cell as it was keyed before file datasets were named by content (the path as typed)."""
        return dataclasses.replace(self, label=None, data_sha256=None)

    def config_hash(self) -> str:
        return config_hash(self.config())

    def key(self) -> str:
        """The cell's identity: ``model__dataset__case__s<seed>__<config hash>``."""
        return cell_id(self.model, self.name, self.case, self.seed, self.config_hash())

    def __hash__(self) -> int:
        return hash(self.key())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunSpec) and self.key() == other.key()

    def describe(self) -> str:
        impl = f" [{self.implementation}]" if self.implementation not in (None, self.default_implementation) else ""
        return f"{self.model}{impl} {self.dataset}/{self.case} seed {self.seed}"

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "dataset": self.dataset, "case": self.case, "seed": self.seed,
                "train": _freeze(self.train), "data_params": _freeze(self.data_params),
                "data_opts": _freeze(self.data_opts), "data_dir": self.data_dir,
                "implementation": self.implementation, "default_implementation": self.default_implementation,
                "label": self.label, "data_sha256": self.data_sha256, "key": self.key()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunSpec:
        opts = dict(d.get("data_opts") or {})
        for k in ("split_fractions", "split_caps"):  # JSON lists back to the tuples load_case takes
            if isinstance(opts.get(k), list):
                opts[k] = tuple(opts[k])
        return cls(d["model"], d["dataset"], d["case"], int(d["seed"]), dict(d["train"]), dict(d.get("data_params") or {}),
                   opts, d.get("data_dir"), d.get("implementation"), d.get("default_implementation"),
                   d.get("label"), d.get("data_sha256"))


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> ``(K, N)`` with 1 <= K <= N; a ValueError naming ``--shard`` otherwise."""
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard {text!r}: expected K/N with integers, e.g. --shard 1/4") from None
    if n < 1 or not 1 <= k <= n:
        raise ValueError(f"--shard {text!r}: need 1 <= K <= N, e.g. --shard 1/{max(n, 1)}")
    return k, n


def in_shard(key: str, shard: tuple[int, int] | None) -> bool:
    """Whether the cell ``key`` belongs to shard ``(K, N)``: a stable hash (SHA-256 of the key),
    the same on every machine and Python (unlike ``hash()``), so shards 1..N are disjoint and cover the grid."""
    if shard is None:
        return True
    k, n = shard
    return int(hashlib.sha256(key.encode()).hexdigest()[:12], 16) % n == k - 1
