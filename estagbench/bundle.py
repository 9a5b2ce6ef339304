"""``estagbench export`` / ``estagbench import``: result records moved between machines as one zip bundle.

A bundle is a zip with ``manifest.json`` (format, schema version, protocol, the
exporting machine's provenance, the list of records) and ``records/<cell id>.json``,
one stored record each, exactly as ``estagbench run`` wrote it (with its commit,
package versions, machine and data checksums).

Import validates before it writes anything:

- the bundle: a readable zip, ``format``/``schema``/``protocol`` as this checkout
  expects (a bundle from another protocol is refused as a whole);
- each record: the fields a table needs, with their types; its ``config_hash`` must
  be the hash of its own configuration (a record whose settings were changed claims
  a cell it does not belong to); its data files' SHA-256 must match the checksums
  this checkout knows for those files, and the records already stored for the same
  dataset case; its ``split_hash`` must match the stored records of the same data
  settings.

A refused record is named with the field that differs; the others are merged into
the store, each written atomically; a record already stored under the same cell id
is kept as it is.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .results import ResultStore, cell_id, config_hash

__all__ = ["FORMAT", "SCHEMA", "PROTOCOL", "export_bundle", "import_bundle", "ImportReport", "add_bundle_parsers"]

FORMAT = "estagbench-bundle"
SCHEMA = 1
#: The evaluation protocol the records follow (shared/docs/protocol.md: test MSE at the best-validation epoch,
#: evaluated every 5 epochs, the paper's splits); bump when a change makes old numbers incomparable.
PROTOCOL = "estag-neurips2023/v1"

#: field -> accepted types of a record's required fields (``a.b``: nested).
REQUIRED: dict[str, tuple[type, ...]] = {
    "model": (str,),
    "dataset": (str,),
    "case": (str,),
    "seed": (int,),
    "config": (dict,),
    "config_hash": (str,),
    "data_params": (dict,),
    "metrics": (dict,),
    "metrics.test_mse": (int, float),
    "metrics.val_mse": (int, float),
    "split_hash": (str,),
    "data_files": (list,),
    "provenance": (dict,),
}


class BundleError(ValueError):
    """The bundle as a whole cannot be imported (corrupt, other format or protocol)."""


@dataclass
class ImportReport:
    """What an import did: cell ids imported, already stored, and refused (with the reason)."""

    imported: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def export_bundle(results: Path, out: Path, datasets: Iterable[str] | None = None) -> int:
    """Pack the records of ``results`` (optionally only these datasets) into ``out``; return their number."""
    from .results import provenance

    store = ResultStore(Path(results))
    if not store.results_dir.is_dir():
        raise FileNotFoundError(f"--results {results}: no results store there (expected {store.results_dir}/*.json)")
    want = set(datasets or [])
    records = [r for r in store.records() if not want or r.get("dataset") in want]
    if not records:
        raise ValueError(f"--results {results}: no records to export" + (f" for {', '.join(sorted(want))}" if want else ""))
    buf = io.BytesIO()
    names = []
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for rec in records:
            cid = cell_id(str(rec["model"]), str(rec["dataset"]), str(rec["case"]), int(rec["seed"]), str(rec["config_hash"]))
            names.append(f"records/{cid}.json")
            zf.writestr(names[-1], json.dumps(rec, indent=1, sort_keys=True, default=str))
        manifest = {"format": FORMAT, "schema": SCHEMA, "protocol": PROTOCOL,
                    "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "exported_by": provenance(), "records": names}
        zf.writestr("manifest.json", json.dumps(manifest, indent=1, sort_keys=True, default=str))
    _atomic_write(Path(out), buf.getvalue())
    return len(records)


def _read_bundle(path: Path) -> tuple[dict[str, Any], list[tuple[str, Any]]]:
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such bundle; make one with `estagbench export --out {path}`")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BundleError(f"{path}: not a readable zip bundle ({exc}); export it again") from None
    with zf:
        bad = zf.testzip() if zf.namelist() else None
        if bad is not None:
            raise BundleError(f"{path}: member {bad} is corrupt (CRC mismatch); export the bundle again")
        try:
            manifest = json.loads(zf.read("manifest.json"))
        except KeyError:
            raise BundleError(f"{path}: no manifest.json; not an estagbench bundle (make one with `estagbench export`)") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BundleError(f"{path}: manifest.json is not JSON ({exc}); export the bundle again") from None
        if not isinstance(manifest, dict):
            raise BundleError(f"{path}: manifest.json is not an object")
        for key, want in (("format", FORMAT), ("schema", SCHEMA), ("protocol", PROTOCOL)):
            if manifest.get(key) != want:
                raise BundleError(
                    f"{path}: field {key!r} is {manifest.get(key)!r}, this estagbench reads {want!r}"
                    + ("; the records follow another evaluation protocol and are not comparable with this store's"
                       if key == "protocol" else "; export it with this version of estagbench")
                )
        names = manifest.get("records")
        if not isinstance(names, list):
            raise BundleError(f"{path}: field 'records' of manifest.json is not a list")
        out: list[tuple[str, Any]] = []
        for name in names:
            try:
                out.append((str(name), json.loads(zf.read(str(name)))))
            except KeyError:
                out.append((str(name), KeyError("listed in the manifest but not in the zip")))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                out.append((str(name), ValueError(f"not JSON ({exc})")))
    return manifest, out


def _get(rec: dict[str, Any], dotted: str) -> Any:
    cur: Any = rec
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            raise KeyError(dotted)
        cur = cur[part]
    return cur


def _known_checksums() -> dict[str, set[str]]:
    """File name -> official SHA-256 values this checkout declares (data modules' constants)."""
    import importlib

    out: dict[str, set[str]] = {}
    for modname in ("estagbench.data.md17", "estagbench.data.adk", "estagbench.data.mocap"):
        mod = importlib.import_module(modname)
        for attr in ("KNOWN_SHA256", "ADK_MINI_FILES", "ADK_EQUILIBRIUM_FILES"):
            table = getattr(mod, attr, None) or {}
            for k, v in table.items():
                if isinstance(v, str):
                    out.setdefault(k, set()).add(v)
                elif hasattr(v, "filename"):
                    out.setdefault(v.filename, set()).add(v.sha256)
    return out


def _check(rec: Any, stored: list[dict[str, Any]], known: dict[str, set[str]]) -> str | None:
    """Why ``rec`` must be refused (naming the field), or ``None``."""
    if not isinstance(rec, dict):
        return "not a JSON object"
    for key, types in REQUIRED.items():
        try:
            val = _get(rec, key)
        except KeyError:
            return f"field {key!r} is missing"
        if not isinstance(val, types) or (types == (int,) and isinstance(val, bool)):
            return f"field {key!r} is {type(val).__name__}, expected {' or '.join(t.__name__ for t in types)}"
    conf = {"model": rec["model"], "dataset": rec["dataset"], "case": rec["case"], "data_params": rec["data_params"],
            "train": rec["config"]}
    if config_hash(conf) != rec["config_hash"]:
        return (f"field 'config_hash' is {rec['config_hash']}, but its config and data_params hash to "
                f"{config_hash(conf)}: the settings differ from the cell it claims")
    files = {}
    for i, f in enumerate(rec["data_files"]):
        if not isinstance(f, dict) or not isinstance(f.get("sha256"), str) or not f.get("path"):
            return f"field 'data_files[{i}]' needs 'path' and 'sha256'"
        files[Path(str(f["path"])).name] = f["sha256"]
        if rec.get("official_data") and files[Path(str(f["path"])).name] not in known.get(Path(str(f["path"])).name, {f["sha256"]}):
            return (f"field 'data_files[{i}].sha256' of {Path(str(f['path'])).name} is {f['sha256'][:12]}…, not the "
                    "official checksum this checkout knows, yet the record claims official_data")
    same_case = [s for s in stored if s.get("dataset") == rec["dataset"] and s.get("case") == rec["case"]]
    for s in same_case:
        for f in s.get("data_files") or []:
            name = Path(str(f.get("path", ""))).name
            if name in files and f.get("sha256") and files[name] != f["sha256"]:
                return (f"field 'data_files' ({name}): SHA-256 {files[name][:12]}… differs from {f['sha256'][:12]}… "
                        f"of the records stored for {rec['dataset']}/{rec['case']}: other data than this store's cells")
        if s.get("data_params") == rec["data_params"] and s.get("split_hash") and s["split_hash"] != rec["split_hash"]:
            return (f"field 'split_hash' is {rec['split_hash']}, the stored records of the same data settings have "
                    f"{s['split_hash']}: other windows than this store's cells")
    return None


def import_bundle(path: Path, results: Path) -> ImportReport:
    """Validate ``path`` and merge its valid records into the store at ``results`` (see the module docstring)."""
    _, entries = _read_bundle(Path(path))
    store = ResultStore(Path(results))
    stored = list(store.records())
    known = _known_checksums()
    report = ImportReport()
    accepted: list[tuple[str, dict[str, Any]]] = []
    for name, rec in entries:
        why = str(rec) if isinstance(rec, Exception) else _check(rec, stored, known)
        if why is not None:
            report.refused.append((name, why))
            continue
        cid = cell_id(rec["model"], rec["dataset"], rec["case"], rec["seed"], rec["config_hash"])
        if store.has(cid):
            report.existing.append(cid)
            continue
        accepted.append((cid, rec))
        stored.append(rec)  # later records of the bundle are checked against this one too
    for cid, rec in accepted:  # everything validated first; each record then written atomically
        store.put(cid, rec)
        report.imported.append(cid)
    return report


def _cmd_export(args: argparse.Namespace) -> int:
    n = export_bundle(args.results, args.out, args.dataset)
    print(f"{args.out}: {n} record(s) from {args.results}")
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    report = import_bundle(args.bundle, args.results)
    for name, why in report.refused:
        print(f"estagbench: refused {name}: {why}", file=sys.stderr)
    print(f"{args.bundle} -> {args.results}: {len(report.imported)} imported, {len(report.existing)} already stored "
          f"(kept), {len(report.refused)} refused")
    return 1 if report.refused else 0


def add_bundle_parsers(subparsers: Any) -> None:
    """Add ``export`` and ``import`` to the ``estagbench`` sub-command parser."""
    from ._argtypes import DEFAULT_OUT
    from ._argtypes import names as _names

    p = subparsers.add_parser("export", help="pack stored records with their provenance into a zip bundle")
    p.add_argument("--out", type=Path, required=True, help="the bundle to write, e.g. bundle.zip")
    p.add_argument("--results", type=Path, default=DEFAULT_OUT, help="results store (default ./estagbench-results)")
    p.add_argument("--dataset", type=_names, default=None, help="only these datasets (comma list)")
    p.set_defaults(func=_cmd_export)

    p = subparsers.add_parser("import", help="validate a bundle and merge its records into a results store")
    p.add_argument("bundle", type=Path, help="a zip made by `estagbench export`")
    p.add_argument("--results", type=Path, default=DEFAULT_OUT, help="results store (default ./estagbench-results)")
    p.set_defaults(func=_cmd_import)
