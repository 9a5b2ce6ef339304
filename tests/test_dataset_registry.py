"""The dataset registry: registration forms, strict names, option filtering, verify, the CLI's use of it
(a broken plugin: tests/test_registry.py, for both registries)."""

from __future__ import annotations

import numpy as np
import pytest

from estagbench.data import CaseData, Dataset, Protocol, get_dataset, list_datasets, load_case, register_dataset
from estagbench.data import registry as reg
from estagbench.data.splits import chronological_split
from estagbench.registry import UnknownNameError


def _toy_case(case: str, history: int, stride: int) -> CaseData:
    pos = np.cumsum(np.random.default_rng(0).normal(size=(60, 3, 1, 3)), axis=0)
    starts = chronological_split(len(pos), history, stride)
    return CaseData(dataset="toy", case=case, trajectories=[pos], node_features=np.ones((3, 1)),
                    edge_index=np.array([[0, 1, 1, 2], [1, 0, 2, 1]]), edge_attr=np.ones((4, 1)),
                    windows={k: np.stack([np.zeros_like(v), v], axis=1) for k, v in starts.items()},
                    history=history, stride=stride)


@pytest.fixture
def clean_registry(monkeypatch):
    """Registrations made by a test vanish after it."""
    reg._load()
    monkeypatch.setattr(reg, "_DATASETS", dict(reg._DATASETS))
    monkeypatch.setattr(reg, "_PATTERNS", list(reg._PATTERNS))


def test_builtins_are_registered_with_their_protocol() -> None:
    names = list_datasets()
    for n in ("md17", "adk", "adk-mini", "motion-walk", "motion-walk-30fps", "motion-walk-35_01",
              "motion-basketball", "peptide-explicit", "peptide-implicit", "peptide-vacuum"):
        assert n in names
    md17 = get_dataset("md17")
    assert (md17.protocol.history, md17.protocol.stride, md17.lr, md17.scale, md17.table) == (10, 10, 5e-3, 1e3, "1")
    assert get_dataset("adk").protocol.stride == 5 and get_dataset("adk-mini").protocol.stride == 1
    assert get_dataset("motion-walk-30fps").protocol.stride == 1 and get_dataset("motion-walk").lr == 5e-3
    assert get_dataset("x/run.npz").family == "npz" and get_dataset("a.psf::b.dcd").cases == ("a",)


def test_class_and_function_registration(clean_registry) -> None:
    @register_dataset("zz-toy", family="toy", cases=("a",), description="toy", stride=2)
    class Toy(Dataset):
        protocol = Protocol(history=4, stride=1, lr=1e-3)

        def load(self, case, data_dir, history=None, stride=None):
            return _toy_case(case, history or self.protocol.history, stride or self.protocol.stride)

    @register_dataset("zz-toy-fn", family="toy", cases=("b",), history=3, stride=1, lr=1e-3, options=("history",))
    def toy(case, data_dir, history=3):
        """a toy loader"""
        return _toy_case(case, history, 1)

    assert get_dataset("zz-toy").protocol == Protocol(history=4, stride=2, lr=1e-3)
    assert load_case("zz-toy").stride == 2
    assert get_dataset("zz-toy-fn").description == "a toy loader"
    with pytest.warns(UserWarning, match=r"zz-toy-fn: option\(s\) \['split_margin'\] do not apply"):
        data = load_case("zz-toy-fn", history=5, split_margin=3, stride=None)
    assert data.history == 5


def test_strict_names(clean_registry) -> None:
    with pytest.raises(ValueError, match="registered twice"):
        @register_dataset("md17", family="md17", cases=("x",))
        class Again(Dataset):
            pass
    with pytest.raises(ValueError, match="lowercase"):
        register_dataset("Bad Name", family="x", cases=("a",))
    with pytest.raises(TypeError, match="unknown keyword"):
        register_dataset("zz-ok", family="x", cases=("a",), learning_rate=1.0)
    with pytest.raises(ValueError, match="declares no cases"):
        register_dataset("zz-empty", family="x", cases=())(type("E", (Dataset,), {}))
    with pytest.raises(UnknownNameError, match=r"Did you mean 'md17'"):
        get_dataset("md71")
    with pytest.raises(UnknownNameError, match="unknown case"):
        load_case("md17", "ethanl")


def test_verify_names_the_file_and_the_fix(tmp_path) -> None:
    from estagbench.data import ChecksumError, DataNotFoundError

    mini = get_dataset("adk-mini")
    with pytest.raises(DataNotFoundError, match=r"adk/adk.psf not found .*estagbench download adk-mini"):
        mini.verify("mini", tmp_path)
    (tmp_path / "adk").mkdir()
    for f in mini.files("mini"):
        (tmp_path / f.name).write_bytes(b"not the file")
    with pytest.raises(ChecksumError, match=r"adk.psf: SHA-256 [0-9a-f]{64}, expected 96cec916.*--force"):
        mini.verify("mini", tmp_path)


def test_datasets_command_lists_the_registry(capsys, clean_registry) -> None:
    from estagbench.cli import main

    @register_dataset("zz-listed", family="toy", cases=("a", "b"), description="listed toy", stride=3, lr=2e-3)
    class Listed(Dataset):
        pass

    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert "zz-listed            family=toy      T=10 Δ=3 lr=0.002 cases=a,b\n    listed toy" in out
    assert "md17                 family=md17     T=10 Δ=10 lr=0.005 table=1 cases=aspirin," in out
    assert "PATH.npz" in out and "TOPOLOGY::TRAJECTORY" in out


def test_download_command_reads_the_registry(tmp_path, capsys) -> None:
    from estagbench.cli import main

    assert main(["download", "peptide-vacuum", "--data-dir", str(tmp_path)]) == 0
    assert "peptide-vacuum/vacuum: nothing to download" in capsys.readouterr().out
    assert main(["download", "md71", "--data-dir", str(tmp_path)]) == 2
    assert "Did you mean 'md17'" in capsys.readouterr().err


def test_every_table_column_names_registered_datasets_of_that_table() -> None:
    """The paper tables (tables/_specs.py) and the registry agree: every dataset a column may be filled
    from is registered, has the column's case, and declares the main table (1-3) its family belongs to."""
    from estagbench.tables import TABLES

    main_table = {"md17": "1", "adk": "2", "motion": "3"}
    for number, spec in TABLES.items():
        for col in spec.columns:
            for name in col.datasets:
                ds = get_dataset(name)
                assert col.case is None or col.case in ds.cases, (number, col.key, name)
                if ds.table:
                    assert ds.table == main_table[ds.family], (number, name, ds.table)
                if number <= 3:
                    assert ds.table == str(number), f"table {number} column {col.key} uses {name}, registered table={ds.table!r}"


def test_base_download_and_verify_from_declared_files(tmp_path, clean_registry) -> None:
    """A dataset that declares only files gets download (to .part, checked, renamed) and verify from the base class."""
    import hashlib

    from estagbench.data import ChecksumError, DataFile

    src = tmp_path / "mirror" / "toy.bin"
    src.parent.mkdir()
    src.write_bytes(b"toy data")
    good = hashlib.sha256(b"toy data").hexdigest()

    @register_dataset("zz-remote", family="toy", cases=("a", "bad"))
    class Remote(Dataset):
        def files(self, case):
            return (DataFile(f"zz/{case}.bin", src.as_uri(), good if case == "a" else "0" * 64),)

    ds = get_dataset("zz-remote")
    root = tmp_path / "cache"
    assert ds.download("a", root) == [root / "zz" / "a.bin"]
    assert (root / "zz" / "a.bin").read_bytes() == b"toy data"
    (rec,) = ds.verify("a", root)
    assert rec.sha256 == good and rec.official is True
    with pytest.raises(ChecksumError, match="expected 0000"):
        ds.download("bad", root)
    assert not (root / "zz" / "bad.bin").exists() and not (root / "zz" / "bad.bin.part").exists()
