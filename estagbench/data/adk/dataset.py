"""The registered AdK datasets: ``adk`` (MDAnalysisData ``adk_equilibrium``, Table 2), ``adk-mini``
(the DIMS paths shipped by MDAnalysisTests) and ``TOPOLOGY::TRAJ[::TRAJ]`` (any protein): their files,
checksums, download and protocol defaults (the data card is in :mod:`estagbench.data.adk`)."""

from __future__ import annotations

import importlib.util
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ... import protocol as P
from ..base import CaseData
from ..download import download_file, resolve_data_dir
from ..errors import DataNotFoundError
from ..registry import DataFile, Dataset, Protocol, register_dataset
from .residues import load_adk

__all__ = ["ADK_EQUILIBRIUM_DIR", "ADK_EQUILIBRIUM_FILES", "ADK_MINI_FILES", "CASE_DEFAULTS", "RemoteFile",
           "load_adk_case", "load_adk_equilibrium", "load_adk_mini", "adk_mini_paths", "adk_equilibrium_paths",
           "download_adk_equilibrium", "parse_md_spec", "AdK", "ProteinFiles"]


@dataclass(frozen=True)
class RemoteFile:
    """A downloadable data file: name in the cache folder, URL, official SHA-256."""

    filename: str
    url: str
    sha256: str


ADK_EQUILIBRIUM_DIR = "adk_equilibrium"
#: The files MDAnalysisData's ``fetch_adk_equilibrium`` downloads (URLs and SHA-256 as
#: listed in MDAnalysisData/adk_equilibrium.py; figshare fileset 5108170).
ADK_EQUILIBRIUM_FILES: dict[str, RemoteFile] = {
    "topology": RemoteFile(
        "adk4AKE.psf",
        "https://ndownloader.figshare.com/files/8672230",
        "1aa947d58fb41b6805dc1e7be4dbe65c6a8f4690f0bd7fc2ae03e7bd437085f4",
    ),
    "trajectory": RemoteFile(
        "1ake_007-nowater-core-dt240ps.dcd",
        "https://ndownloader.figshare.com/files/8672074",
        "598fcbcfcc425f6eafbe9997238320fcacc6a4613ecce061e1521732bab734bf",
    ),
}
ADK_EQUILIBRIUM_FRAMES = 4187

#: adk-mini files, as shipped in ``MDAnalysisTests/data/`` (SHA-256 of mdanalysistests
#: 2.11.0, ``../shared/data/SOURCES.md``).
ADK_MINI_FILES: dict[str, str] = {
    "adk.psf": "96cec916c4b5b19a7acb91bd1e672fb9c8b032aee1e7f0868a50655902c9b5b8",
    "adk_dims.dcd": "859a5bd9e7de45a0f2401f7971c5ffc296168e7c23f6f65382bde7c1686c19f1",
    "adk_dims2.dcd": "10a1740a6c05bd8dfd8107195d778f7f96f3c3b8aec48833d79a80e9b18843c6",
}
_MINI_TOPOLOGY = "adk.psf"
_MINI_TRAJECTORIES = ("adk_dims.dcd", "adk_dims2.dcd")

#: Per-case protocol defaults (protocol.md for ``equilibrium``; see the data card for ``mini``).
CASE_DEFAULTS: dict[str, dict[str, Any]] = {
    "equilibrium": {"history": P.HISTORY, "stride": P.ADK_STRIDE, "cutoff": P.ADK_CUTOFF, "split_fractions": P.ADK_FRACTIONS},
    "mini": {"history": P.HISTORY, "stride": 1, "cutoff": P.ADK_CUTOFF, "split_fractions": P.ADK_FRACTIONS},
}
_CASE_ALIASES = {"adk": "equilibrium", "adk-equilibrium": "equilibrium", "adk-mini": "mini"}



# --------------------------------------------------------------------------- named cases


def adk_equilibrium_paths(data_dir: str | os.PathLike[str] | None = None) -> dict[str, Path]:
    """``{"topology", "trajectory"}`` paths under ``<data_dir>/adk_equilibrium/``."""
    root = resolve_data_dir(data_dir) / ADK_EQUILIBRIUM_DIR
    return {k: root / f.filename for k, f in ADK_EQUILIBRIUM_FILES.items()}


def _missing_equilibrium_message(missing: dict[str, Path], reasons: dict[str, str] | None = None) -> str:
    """Name every missing file, its URL, where it goes, and (after a failed download) why."""
    lines = []
    for key, path in missing.items():
        why = f"  [{reasons[key]}]" if reasons and key in reasons else ""
        lines.append(f"  {path.name}: {ADK_EQUILIBRIUM_FILES[key].url} -> {path}{why}")
    folder = next(iter(missing.values())).parent
    head = "could not be downloaded" if reasons else "is not in the cache"
    todo = "Download" if reasons else "Run `estagbench download adk`, or download"
    return (
        f"AdK equilibrium data (MDAnalysisData adk_equilibrium) {head}. Missing file(s):\n"
        + "\n".join(lines)
        + f"\n{todo} the file(s) from those URLs and put them in {folder} (--data-dir / $ESTAGBENCH_DATA choose "
        "the cache root). For an offline run use --dataset adk-mini."
    )


def download_adk_equilibrium(data_dir: str | os.PathLike[str] | None = None, force: bool = False) -> dict[str, Path]:
    """Fetch ``adk4AKE.psf`` and ``1ake_007-nowater-core-dt240ps.dcd`` (161 MB) into ``<data_dir>/adk_equilibrium/``.

    Each file streams to ``<file>.part`` beside its target, is checked against the
    SHA-256 of :data:`ADK_EQUILIBRIUM_FILES` and renamed into place; a file already
    there is kept unless ``force``.

    Raises
    ------
    DataNotFoundError
        Without network: names every missing file, its URL and where to put it.
    ChecksumError
        A downloaded file has the wrong SHA-256 (nothing is written).
    """
    paths = adk_equilibrium_paths(data_dir)
    missing: dict[str, Path] = {}
    reasons: dict[str, str] = {}
    for key, path in paths.items():
        if path.exists() and not force:
            continue
        meta = ADK_EQUILIBRIUM_FILES[key]
        try:
            download_file(meta.url, path, sha256=meta.sha256)
        except DataNotFoundError as exc:
            missing[key] = path
            cause = exc.__cause__
            reasons[key] = f"{type(cause).__name__}: {cause}" if cause is not None else str(exc)
    if missing:
        raise DataNotFoundError(_missing_equilibrium_message(missing, reasons))
    return paths


def load_adk_equilibrium(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    history: int | None = None,
    stride: int | None = None,
    cutoff: float | None = None,
    split_fractions: Sequence[float] | None = None,
    download: bool = False,
) -> CaseData:
    """The ``adk`` dataset of Table 2: MDAnalysisData ``adk_equilibrium`` (T = 10, Δ = 5, 2482/827/827).

    Files not in ``<data_dir>/adk_equilibrium/`` are downloaded when ``download`` is
    True, else :class:`DataNotFoundError` names them, their URLs and the folder.  A file
    whose SHA-256 differs from the official one is used with a warning and its results
    are marked non-official.
    """
    paths = adk_equilibrium_paths(data_dir)
    missing = {k: p for k, p in paths.items() if not p.is_file()}
    if missing:
        if download:
            download_adk_equilibrium(data_dir)
        else:
            raise DataNotFoundError(_missing_equilibrium_message(missing))
    known = {f.filename: f.sha256 for f in ADK_EQUILIBRIUM_FILES.values()}
    return _load_named("equilibrium", paths["topology"], [paths["trajectory"]], known,
                       history=history, stride=stride, cutoff=cutoff, split_fractions=split_fractions)


def adk_mini_paths(data_dir: str | os.PathLike[str] | None = None) -> tuple[Path, list[Path]]:
    """Topology and trajectories of ``adk-mini``: from the installed ``MDAnalysisTests``, else ``<data_dir>/adk/``."""
    spec = importlib.util.find_spec("MDAnalysisTests")
    candidates: list[Path] = []
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(loc) / "data" for loc in spec.submodule_search_locations]
    if data_dir is not None or os.environ.get("ESTAGBENCH_DATA"):
        candidates.append(resolve_data_dir(data_dir) / "adk")
    names = [_MINI_TOPOLOGY, *_MINI_TRAJECTORIES]
    for folder in candidates:
        if all((folder / n).is_file() for n in names):
            return folder / _MINI_TOPOLOGY, [folder / n for n in _MINI_TRAJECTORIES]
    where = ", ".join(str(c) for c in candidates) or "(MDAnalysisTests is not installed)"
    raise DataNotFoundError(
        f"adk-mini needs {', '.join(names)}; looked in {where}. Install them with `pip install mdanalysistests` "
        "(they are in MDAnalysisTests/data/) or copy them to <data_dir>/adk/."
    )


# Deliberate repetition: the two named cases keep their own public, typed signatures (the same overrides as
# load_adk_equilibrium); their bodies share _load_named.
def load_adk_mini(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    history: int | None = None,
    stride: int | None = None,
    cutoff: float | None = None,
    split_fractions: Sequence[float] | None = None,
) -> CaseData:
    """The offline ``adk-mini`` case: AdK DIMS paths of ``MDAnalysisTests`` (T = 10, Δ = 1; see the data card)."""
    topology, trajectories = adk_mini_paths(data_dir)
    return _load_named("mini", topology, trajectories, ADK_MINI_FILES,
                       history=history, stride=stride, cutoff=cutoff, split_fractions=split_fractions)


def _load_named(
    name: str, topology: Path, trajectories: list[Path], known_sha256: dict[str, str], **overrides: Any
) -> CaseData:
    """A named case: :data:`CASE_DEFAULTS` under the non-None ``overrides``, charges as node features,
    files checked against ``known_sha256`` (a mismatch warns and marks the results non-official)."""
    d = {**CASE_DEFAULTS[name], **{k: v for k, v in overrides.items() if v is not None}}
    case = load_adk(topology, trajectories, case=name, history=d["history"], stride=d["stride"], cutoff=d["cutoff"],
                    fractions=tuple(d["split_fractions"]), node_features="charges", known_sha256=known_sha256)
    _warn_non_official(case)
    return case


def _warn_non_official(case: CaseData) -> None:
    for rec in case.files:
        if rec.official is False:
            warnings.warn(
                f"{rec.path} has SHA-256 {rec.sha256}, not the official {rec.expected_sha256}; results on "
                f"{case.dataset}/{case.case} are marked non-official",
                RuntimeWarning,
                stacklevel=3,
            )


def load_adk_case(
    case: str,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    history: int | None = None,
    stride: int | None = None,
    split_fractions: Sequence[float] | None = None,
    cutoff: float | None = None,
    download: bool = False,
) -> CaseData:
    """Catalog entry point: ``case`` is ``"equilibrium"`` (``adk``) or ``"mini"`` (``adk-mini``).

    ``None`` keeps the case's defaults (:data:`CASE_DEFAULTS`).
    """
    name = _CASE_ALIASES.get(case, case)
    if name == "equilibrium":
        return load_adk_equilibrium(
            data_dir, history=history, stride=stride, cutoff=cutoff, split_fractions=split_fractions, download=download
        )
    if name == "mini":
        return load_adk_mini(data_dir, history=history, stride=stride, cutoff=cutoff, split_fractions=split_fractions)
    raise KeyError(f"unknown AdK case {case!r}; valid: 'equilibrium' (--dataset adk), 'mini' (--dataset adk-mini)")


def parse_md_spec(spec: str) -> tuple[Path, list[Path]]:
    """Split ``"topology::traj1[::traj2 …]"`` into the topology and trajectory paths.

    Raises
    ------
    ValueError
        When ``spec`` does not name a topology and at least one trajectory.
    """
    parts = [p for p in str(spec).split("::")]
    if len(parts) < 2 or any(not p.strip() for p in parts):
        raise ValueError(
            f"{spec!r}: expected 'path/to/topology::path/to/trajectory[::another_trajectory …]', "
            "e.g. 'adk.psf::adk_dims.dcd'"
        )
    return Path(parts[0]), [Path(p) for p in parts[1:]]


_ADK_OPTS = ("history", "stride", "split_fractions")
_ADK_PROTOCOL = Protocol(history=P.HISTORY, stride=P.ADK_STRIDE, lr=P.LR_ADK,
                         split="chronological blocks 0.6/0.2/0.2 of the window starts")


@register_dataset("adk-mini", family="adk", cases=("mini",), table="2", offline=True, stride=1,
                  description="AdK DIMS transition paths shipped by MDAnalysisTests (offline)")
@register_dataset("adk", family="adk", cases=("equilibrium",), table="2",
                  description="AdK equilibrium trajectory (MDAnalysisData adk_equilibrium), 4-channel residues (Table 2)")
class AdK(Dataset):
    """Adenylate kinase as 4-channel backbone residues (module data card)."""

    protocol = _ADK_PROTOCOL
    options = _ADK_OPTS

    def files(self, case: str) -> tuple[DataFile, ...]:
        if case == "mini":  # shipped by MDAnalysisTests (adk_mini_paths), or copied to <data_dir>/adk/
            return tuple(DataFile(f"adk/{n}", "", h) for n, h in ADK_MINI_FILES.items())
        return tuple(DataFile(f"{ADK_EQUILIBRIUM_DIR}/{f.filename}", f.url, f.sha256) for f in ADK_EQUILIBRIUM_FILES.values())

    def download(self, case: str, data_dir: Path, force: bool = False) -> list[Path]:
        if case == "mini":
            topology, trajectories = adk_mini_paths(data_dir)  # nothing to fetch; says where they are looked for
            return [topology, *trajectories]
        return list(download_adk_equilibrium(data_dir, force=force).values())

    def load(self, case: str, data_dir: Path, **opts: Any) -> CaseData:
        return load_adk_case(case, data_dir, **opts)


@register_dataset("md-files", family="adk", cases=(),
                  description="TOPOLOGY::TRAJECTORY[::TRAJECTORY...]: any protein MDAnalysis reads, as AdK-style residues")
class ProteinFiles(Dataset):
    """``--dataset TOPOLOGY::TRAJ[::TRAJ]``: any protein MDAnalysis reads, as 4-channel residues."""

    pattern = True
    offline = True
    protocol = _ADK_PROTOCOL
    options = _ADK_OPTS

    @classmethod
    def for_name(cls, name: str) -> Dataset | None:
        if "::" not in name:
            return None
        inst = cls()
        inst.cases = (Path(name.split("::")[0]).stem,)
        inst.spec = name  # type: ignore[attr-defined]
        return inst

    def load(self, case: str, data_dir: Path, **opts: Any) -> CaseData:  # noqa: ARG002
        top, trajs = parse_md_spec(self.spec)  # type: ignore[attr-defined]
        if "split_fractions" in opts:
            opts["fractions"] = opts.pop("split_fractions")
        return load_adk(top, trajs, case=case, **opts)
