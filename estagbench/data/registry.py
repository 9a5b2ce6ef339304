"""The dataset registry: one decorated class (or function) per dataset name.

A dataset arrives like a model (:func:`estagbench.register_model`)::

    from estagbench.data import Dataset, DataFile, Protocol, register_dataset

    @register_dataset("my-data", family="npz", cases=("a", "b"), table="")
    class MyData(Dataset):
        description = "what it is, where it comes from"
        protocol = Protocol(history=10, stride=10, lr=5e-3, split="MD17 rules")
        options = ("history", "stride")          # overrides `load` accepts
        def files(self, case): return (DataFile(f"my-data/{case}.npz", url=..., sha256=...),)
        def load(self, case, data_dir, **opts): ...   # parse + split -> CaseData

The class declares its files (path under the data folder, URL, SHA-256 where known) and
its protocol defaults, and implements ``download`` / ``verify`` (the base class does both
from :meth:`Dataset.files`) and ``load`` (parse + split into a
:class:`~estagbench.data.base.CaseData`).  One class may carry several names (stacked
decorators, e.g. the four CMU motion datasets).  A plain function
``load(case, data_dir, **opts) -> CaseData`` may be decorated too; the decorator's
keywords then give its protocol.

Built-in datasets register from their modules in :mod:`estagbench.data`, found by walking
the package, and from :data:`BUILTIN_ELSEWHERE`; other packages add theirs through the entry-point group
``estagbench.datasets`` (each entry point names a module whose import registers).
Names are strict: a duplicate raises and shows both modules; an unknown name raises with
close matches.  ``estagbench datasets``, ``download``, ``run`` and ``tables`` read only
this registry.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import pkgutil
import re
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from .. import protocol as P
from ..registry import UnknownNameError
from .base import CaseData, FileRecord, sha256_file
from .download import download_file, resolve_data_dir
from .errors import ChecksumError, DataNotFoundError

__all__ = [
    "DataFile",
    "Protocol",
    "Dataset",
    "register_dataset",
    "get_dataset",
    "list_datasets",
    "resolve_cases",
    "load_case",
    "ENTRY_POINT_GROUP",
    "data_card",
    "dataset_entries",
]

ENTRY_POINT_GROUP = "estagbench.datasets"
#: Built-in dataset modules outside this package, loaded like plugins: the simulated peptides live beside
#: their generator in the simulate layer, which imports the data layer (never the other way round).
BUILTIN_ELSEWHERE = ("estagbench.simulate.dataset",)


@dataclass(frozen=True)
class DataFile:
    """One raw file of a dataset case.

    name: path under the data folder (``md17/md17_ethanol.npz``).
    url: where ``download`` fetches it from ("" if it cannot be downloaded).
    sha256: the official SHA-256, None where the source publishes none.
    """

    name: str
    url: str = ""
    sha256: str | None = None


@dataclass(frozen=True)
class Protocol:
    """A dataset's protocol defaults (docs/protocol.md).

    history, stride: T and Δ.  lr: Adam learning rate.  scale, unit: tables print
    ``MSE × scale`` with the label ``unit`` (``×10⁻³``).  split: the split rule, in words.
    """

    history: int = P.HISTORY
    stride: int = P.MD17_STRIDE
    lr: float = P.LR
    scale: float = 1.0
    unit: str = ""
    split: str = ""


T = TypeVar("T")


class Dataset:
    """Base of a registered dataset; subclasses set the class attributes and implement :meth:`load`.

    ``name``, ``family``, ``cases`` and ``table`` are set per registered name by
    :func:`register_dataset`.  ``family`` is the ``DatasetInfo.dataset`` its cases carry
    (``md17``, ``adk``, ``motion``, ``peptide``, ``npz``); model registrations restrict
    models by family.
    """

    name: str = ""
    family: str = ""
    cases: tuple[str, ...] = ()
    table: str = ""
    description: str = ""
    protocol: Protocol = Protocol()
    #: True: needs no download (shipped, installed with a package, or generated).
    offline: bool = False
    #: protocol overrides :meth:`load` accepts; others are dropped with a warning.
    options: tuple[str, ...] = ("history", "stride")
    #: a name pattern (``"*.npz"``), not a fixed name: :meth:`for_name` makes the instance.
    pattern: bool = False

    # -- registry-wide conveniences (the catalog's old field names) --------------
    @property
    def lr(self) -> float:
        return self.protocol.lr

    @property
    def scale(self) -> float:
        return self.protocol.scale

    # -- the contract -------------------------------------------------------------
    def files(self, case: str) -> tuple[DataFile, ...]:  # noqa: ARG002 - a dataset without raw files
        """The raw files of ``case`` (paths under the data folder)."""
        return ()

    def download(self, case: str, data_dir: Path, force: bool = False) -> list[Path]:
        """Fetch every declared file of ``case`` that has a URL (kept if present, unless ``force``)."""
        out = []
        for f in self.files(case):
            path = Path(data_dir) / f.name
            if f.url and (force or not path.exists()):
                download_file(f.url, path, sha256=f.sha256)
            out.append(path)
        return out

    def verify(self, case: str, data_dir: Path) -> list[FileRecord]:
        """Check that the declared files of ``case`` are present and, where known, their SHA-256.

        Raises :class:`DataNotFoundError` naming the missing file and the fix, or
        :class:`ChecksumError` naming the file, both hashes and the fix.
        """
        records = []
        for f in self.files(case):
            path = Path(data_dir) / f.name
            if not path.is_file():
                raise DataNotFoundError(
                    f"{path} not found (dataset {self.name}, case {case}). Run `estagbench download {self.name}`"
                    + (f" (fetches {f.url})" if f.url else "") + " or put the file there; --data-dir / $ESTAGBENCH_DATA choose the folder."
                )
            digest = sha256_file(path)
            if f.sha256 is not None and digest != f.sha256:
                raise ChecksumError(
                    f"{path}: SHA-256 {digest}, expected {f.sha256}. Delete the file or run "
                    f"`estagbench download {self.name} --force`."
                )
            records.append(FileRecord(str(path), digest, None if f.sha256 is None else True, f.sha256))
        return records

    def load(self, case: str, data_dir: Path, **opts: Any) -> CaseData:
        """Parse the raw files of ``case`` and split them into windows (protocol overrides in ``opts``)."""
        raise NotImplementedError(f"dataset {self.name!r} ({type(self).__qualname__}) does not implement load()")

    def small_instance(self) -> tuple[str, dict[str, Any]] | None:
        """A cheap ``(case, load overrides)`` for the generated contract tests (tests/test_contracts.py);
        None where loading any case is too costly there (say why in the override's docstring)."""
        return (self.cases[0], {}) if self.cases else None

    @classmethod
    def for_name(cls, name: str) -> Dataset | None:  # noqa: ARG003
        """For a ``pattern`` dataset: the instance for ``name`` if the pattern matches it, else None."""
        return None

    # -- used by load_case ------------------------------------------------------------
    def accepted(self, opts: dict[str, Any]) -> dict[str, Any]:
        """``opts`` without ``None`` values, and without options this dataset does not take (with a warning)."""
        opts = {k: v for k, v in opts.items() if v is not None}
        ignored = sorted(set(opts) - set(self.options))
        if ignored:
            warnings.warn(f"{self.name}: option(s) {ignored} do not apply to this dataset and are ignored", stacklevel=3)
        return {k: v for k, v in opts.items() if k in self.options}

    def __repr__(self) -> str:
        return f"<dataset {self.name!r} family={self.family!r} cases={self.cases!r}>"


class _FunctionDataset(Dataset):
    """A dataset registered by decorating a loader function."""

    def __init__(self, loader: Callable[..., CaseData]) -> None:
        self._loader = loader

    def load(self, case: str, data_dir: Path, **opts: Any) -> CaseData:
        return self._loader(case, data_dir, **opts)


_DATASETS: dict[str, Dataset] = {}
_PATTERNS: list[Dataset] = []
_LOADED = False
_NAME = re.compile(r"[a-z0-9][a-z0-9._+-]*")


def register_dataset(
    name: str,
    *,
    family: str,
    cases: Iterable[str],
    table: str = "",
    description: str | None = None,
    protocol: Protocol | None = None,
    offline: bool | None = None,
    options: Iterable[str] | None = None,
    **protocol_fields: Any,
) -> Callable[[T], T]:
    """Decorator registering a :class:`Dataset` subclass (or a loader function) as ``name``.

    ``protocol_fields`` (``history=``, ``stride=``, ``lr=``, ``scale=``, ``unit=``,
    ``split=``) override fields of the class's :class:`Protocol` for this name.
    """
    if not _NAME.fullmatch(name):
        raise ValueError(f"dataset name {name!r} must be lowercase letters, digits and '-._+' (as typed after --dataset)")
    bad = sorted(set(protocol_fields) - set(Protocol.__dataclass_fields__))
    if bad:
        raise TypeError(f"register_dataset({name!r}): unknown keyword(s) {bad}; protocol fields are {sorted(Protocol.__dataclass_fields__)}")
    case_list = tuple(cases)

    def decorator(obj: T) -> T:
        if isinstance(obj, type) and issubclass(obj, Dataset):
            inst: Dataset = obj()
        elif callable(obj):
            inst = _FunctionDataset(obj)  # type: ignore[arg-type]
            inst.description = (obj.__doc__ or "").strip().split("\n")[0]
        else:
            raise TypeError(f"register_dataset({name!r}) decorates a Dataset subclass or a loader function, got {obj!r}")
        module = getattr(obj, "__module__", "?")
        inst.name, inst.family, inst.cases, inst.table = name, family, case_list, table
        if description is not None:
            inst.description = description
        if offline is not None:
            inst.offline = offline
        if options is not None:
            inst.options = tuple(options)
        inst.protocol = replace(protocol or type(inst).protocol, **protocol_fields)
        if not case_list and not inst.pattern:
            raise ValueError(f"dataset {name!r} declares no cases")
        inst._module = module  # type: ignore[attr-defined]
        old = _DATASETS.get(name) or next((d for d in _PATTERNS if d.name == name), None)
        if old is not None:
            if getattr(old, "_module", None) == module and type(old).__qualname__ == type(inst).__qualname__:
                return obj  # the same module imported again (importlib.reload)
            raise ValueError(
                f"dataset name {name!r} is registered twice: by {getattr(old, '_module', '?')} and by {module}; rename one of them"
            )
        if inst.pattern:
            _PATTERNS.append(inst)
        else:
            _DATASETS[name] = inst
        return obj

    return decorator


def _load() -> None:
    """Import the built-in dataset modules (every public module of :mod:`estagbench.data`) and the plugins, once."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    pkg = importlib.import_module("estagbench.data")
    for mod in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if not mod.name.startswith("_"):
            importlib.import_module(f"estagbench.data.{mod.name}")
    for name in BUILTIN_ELSEWHERE:
        importlib.import_module(name)
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as exc:  # a broken plugin must not break the suite
            dist = getattr(getattr(ep, "dist", None), "name", "?")
            warnings.warn(f"estagbench dataset plugin {ep.name!r} from distribution {dist!r} failed to import: "
                          f"{type(exc).__name__}: {exc}", RuntimeWarning, stacklevel=3)


def list_datasets(*, patterns: bool = False) -> list[str]:
    """Registered dataset names in registration order (built-ins first); ``patterns`` adds the name patterns."""
    _load()
    return list(_DATASETS) + ([d.name for d in _PATTERNS] if patterns else [])


def dataset_entries(*, patterns: bool = False) -> list[Dataset]:
    """The registered datasets (and, with ``patterns``, the pattern datasets, e.g. ``PATH.npz``)."""
    _load()
    return list(_DATASETS.values()) + (list(_PATTERNS) if patterns else [])


def get_dataset(name: str) -> Dataset:
    """The dataset registered as ``name``, or the pattern dataset matching it (``PATH.npz``).

    Raises :class:`UnknownNameError` with close matches and the valid names.
    """
    _load()
    if name in _DATASETS:
        return _DATASETS[name]
    for pat in _PATTERNS:
        inst = type(pat).for_name(name)
        if inst is not None:
            inst.name, inst.family, inst.table = name, pat.family, pat.table
            inst.protocol = pat.protocol
            return inst
    close = difflib.get_close_matches(name, list(_DATASETS), n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    extra = "; ".join(p.description for p in _PATTERNS)
    raise UnknownNameError(
        f"unknown dataset {name!r}.{hint} Valid datasets: {', '.join(_DATASETS)}"
        + (f"; or {extra}" if extra else "") + " (see `estagbench datasets`)"
    )


def resolve_cases(name: str, cases: list[str] | None = None) -> list[str]:
    """The cases of dataset ``name`` to run: ``cases`` (validated) or all of them."""
    ds = get_dataset(name)
    if not cases:
        return list(ds.cases)
    bad = [c for c in cases if c not in ds.cases]
    if bad:
        raise UnknownNameError(f"unknown case(s) {bad} for dataset {name!r}; valid: {', '.join(ds.cases)}")
    return list(cases)


def load_case(name: str, case: str | None = None, *, data_dir: str | Path | None = None, **opts: Any) -> CaseData:
    """Load one dataset case as :class:`CaseData` (the front door of the CLI, the runner and the tests).

    ``opts`` are protocol overrides (``history``, ``stride``, ``split_margin``,
    ``split_fractions``, ``split_caps``); ``None`` keeps the dataset's defaults, and an
    option the dataset does not take is dropped with a warning.
    """
    from .units import FAMILY_UP_AXIS, units_for_family

    ds = get_dataset(name)
    (case_name,) = resolve_cases(name, [case] if case else [ds.cases[0]])
    data = ds.load(case_name, resolve_data_dir(data_dir), **ds.accepted(opts))
    if data.units is None or ds.family != "npz":  # built-ins: the family's length unit and the registered scale
        data.units = units_for_family(ds.family, ds.scale)
        data.up_axis = FAMILY_UP_AXIS.get(ds.family, data.up_axis)
    return data


def data_card(name: str) -> str:
    """``estagbench datasets --info NAME``: the registration (family, cases, protocol, files) and the data card,
    the documentation of the module that defines the dataset."""
    import inspect

    ds = get_dataset(name)
    p = ds.protocol
    head = (f"{ds.name}: {ds.description}\nfamily {ds.family}; cases {', '.join(ds.cases) or '(the file)'}; "
            f"T={p.history} Δ={p.stride} lr {p.lr:g}; tables print MSE × {p.scale:g}"
            f"{'; offline' if ds.offline else ''}" + (f"\nsplit: {p.split}" if p.split else ""))
    module = inspect.getmodule(type(ds))
    doc = inspect.getdoc(module) if module is not None else None
    return f"{head}\n\n{doc.strip()}" if doc else head
