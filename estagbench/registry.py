"""Name tables for models and datasets, in the spirit of timm's registry.

A model arrives through one decorated builder function::

    from estagbench import register_model, DatasetInfo

    @register_model("my-model", multichannel=False, symmetry="E3", paper="arXiv:...")
    def my_model(info: DatasetInfo, hidden: int = 16, **kwargs) -> torch.nn.Module:
        return MyModel(info, hidden=hidden)

and is built with :func:`create_model` (``None`` overrides are dropped, so unset CLI
flags never override the builder's defaults).  Third-party packages are discovered
through the entry-point group ``estagbench.models``: each entry point names a module
whose import registers its models.  A plugin that fails to import gives a warning
naming the distribution and the error.

Names are strict: a duplicate raises and shows both modules; an unknown name raises
with close matches and the list of valid names.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import importlib.metadata
import pkgutil
import re
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from .types import Batch, DatasetInfo

__all__ = [
    "ModelEntry",
    "register_model",
    "create_model",
    "get_model_entry",
    "list_models",
    "UnknownNameError",
]

SYMMETRIES = ("E3", "SE3", "none")
ENTRY_POINT_GROUP = "estagbench.models"


class UnknownNameError(KeyError):
    """An unknown model or dataset name; the message lists the valid ones."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class ModelEntry:
    """What the registry knows about one model name.

    Attributes
    ----------
    name: registry key as typed on the command line (``st-egnn``).
    builder: ``builder(info: DatasetInfo, **hparams) -> nn.Module``.
    multichannel: True if the model consumes C > 1 position channels (AdK).
    trains: False for models with nothing to learn (Pt-s/m/t).
    symmetry: ``"E3"``, ``"SE3"`` or ``"none"``; tells the equivariance tests
        what to assert.
    datasets: dataset families the paper ran this model on (``None``: all).
        The runner skips other combinations and the tables print "–".
    batch_transform: optional callable ``(Batch, DatasetInfo) -> Any`` applied by
        the runner before ``forward`` (e.g. the DGL adapter); ``None`` = dense Batch.
    paper, description: provenance, shown by ``estagbench models``.
    defaults: hyper-parameters fixed by this registered variant.
    """

    name: str
    builder: Callable[..., nn.Module]
    module: str
    multichannel: bool = False
    trains: bool = True
    symmetry: str = "none"
    datasets: tuple[str, ...] | None = None
    batch_transform: Callable[[Batch, DatasetInfo], Any] | None = None
    paper: str = ""
    description: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)

    @property
    def equivariant(self) -> bool:
        return self.symmetry in ("E3", "SE3")

    def runs_on(self, dataset: str) -> bool:
        return self.datasets is None or dataset in self.datasets

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        # pickled by name: a built model carries its entry, whose builder may be a closure (Pt-s/m/t)
        return get_model_entry, (self.name,)


_MODELS: dict[str, ModelEntry] = {}
_PLUGINS_LOADED = False


def register_model(
    name: str,
    *,
    multichannel: bool = False,
    trains: bool = True,
    symmetry: str = "none",
    datasets: Iterable[str] | None = None,
    batch_transform: Callable[[Batch, DatasetInfo], Any] | None = None,
    paper: str = "",
    description: str = "",
    **defaults: Any,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering ``builder(info, **hparams) -> nn.Module`` as ``name``.

    Keyword arguments not listed above become fixed defaults of this variant
    (``@register_model("egnn-t", frame=-1)``), merged under the caller's overrides.
    """
    if not re.fullmatch(r"[a-z0-9][a-z0-9._+-]*", name):
        raise ValueError(
            f"model name {name!r} must be lowercase letters, digits and '-._+' "
            "(as typed on the command line, e.g. 'st-egnn')"
        )
    if symmetry not in SYMMETRIES:
        raise ValueError(f"model {name!r}: symmetry must be one of {SYMMETRIES}, got {symmetry!r}")

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        module = getattr(builder, "__module__", "?")
        if name in _MODELS:
            old = _MODELS[name]
            if old.module == module and old.builder.__qualname__ == builder.__qualname__:
                return builder  # same module re-imported (e.g. importlib.reload)
            raise ValueError(
                f"model name {name!r} is registered twice: by {old.module}.{old.builder.__qualname__} "
                f"and by {module}.{builder.__qualname__}; rename one of them"
            )
        _MODELS[name] = ModelEntry(
            name=name,
            builder=builder,
            module=module,
            multichannel=multichannel,
            trains=trains,
            symmetry=symmetry,
            datasets=tuple(datasets) if datasets is not None else None,
            batch_transform=batch_transform,
            paper=paper,
            description=description or (builder.__doc__ or "").strip().split("\n")[0],
            defaults=dict(defaults),
        )
        return builder

    return decorator


def _import_package_modules(pkg_name: str) -> None:
    """Import every public module of package ``pkg_name`` (nothing if it is not installed)."""
    try:
        pkg = importlib.import_module(pkg_name)
    except ModuleNotFoundError as exc:  # baselines not installed alongside
        if exc.name != pkg_name:
            raise
        return
    for mod in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{pkg_name}.{mod.name}")


_CORE_LOADED = False


def _load_core() -> None:
    """Import ``estagbench.models.*`` (ESTAG and its variants) once: enough to find those
    names without importing the baselines' libraries (e3nn alone takes ~1.5 s)."""
    global _CORE_LOADED
    if not _CORE_LOADED:
        _CORE_LOADED = True
        _import_package_modules("estagbench.models")


def _load_builtin_and_plugins() -> None:
    """Import ``estagbench.models.*``, ``baselines.*`` and entry-point plugins once."""
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED = True
    _load_core()
    _import_package_modules("baselines")
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as exc:  # a broken plugin must not break the suite
            dist = getattr(getattr(ep, "dist", None), "name", "?")
            warnings.warn(
                f"estagbench plugin {ep.name!r} from distribution {dist!r} failed to import: "
                f"{type(exc).__name__}: {exc}",
                RuntimeWarning,
                stacklevel=2,
            )


def _natural_key(s: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def list_models(
    pattern: str | Iterable[str] = "*",
    exclude: str | Iterable[str] = (),
    *,
    multichannel: bool | None = None,
    dataset: str | None = None,
) -> list[str]:
    """Registered model names matching fnmatch ``pattern``, naturally sorted."""
    _load_builtin_and_plugins()
    pats = [pattern] if isinstance(pattern, str) else list(pattern)
    excl = [exclude] if isinstance(exclude, str) else list(exclude)
    names = [
        n
        for n, e in _MODELS.items()
        if any(fnmatch.fnmatchcase(n, p) for p in pats)
        and not any(fnmatch.fnmatchcase(n, p) for p in excl)
        and (multichannel is None or e.multichannel == multichannel)
        and (dataset is None or e.runs_on(dataset))
    ]
    return sorted(names, key=_natural_key)


def _unknown(kind: str, name: str, valid: list[str], hint: str) -> UnknownNameError:
    close = difflib.get_close_matches(name, valid, n=3)
    msg = f"unknown {kind} {name!r}."
    if close:
        msg += f" Did you mean {', '.join(repr(c) for c in close)}?"
    msg += f" Valid {kind}s: {', '.join(valid)}. ({hint})"
    return UnknownNameError(msg)


def get_model_entry(name: str) -> ModelEntry:
    """The :class:`ModelEntry` for ``name``; unknown names list the valid ones."""
    _load_core()
    if name not in _MODELS:
        _load_builtin_and_plugins()
    try:
        return _MODELS[name]
    except KeyError:
        raise _unknown("model", name, list_models(), "see `estagbench models`") from None


def create_model(name: str, dataset_info: DatasetInfo, **hparams: Any) -> nn.Module:
    """Build model ``name`` for ``dataset_info``; ``None`` overrides are dropped.

    The returned module carries ``.estagbench_entry`` (its :class:`ModelEntry`) and
    ``.estagbench_hparams`` (the hyper-parameters it was built with).
    """
    entry = get_model_entry(name)
    if dataset_info.num_channels > 1 and not entry.multichannel:
        raise ValueError(
            f"model {name!r} handles single-channel nodes only, but dataset case "
            f"{dataset_info.dataset}/{dataset_info.case} has {dataset_info.num_channels} "
            "position channels per node"
        )
    kwargs = {**entry.defaults, **{k: v for k, v in hparams.items() if v is not None}}
    model = entry.builder(dataset_info, **kwargs)
    model.estagbench_entry = entry  # type: ignore[attr-defined]
    model.estagbench_hparams = kwargs  # type: ignore[attr-defined]
    return model
