"""The README's first two commands and CI agree."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    return re.findall(r"```bash\n(.+?)\n```", text, flags=re.S)[:2]


def test_ci_runs_the_readme_test_command():
    setup, test = _readme_commands()
    assert "pip install" in setup and "estagbench run" in setup
    ci = (REPO / ".ci" / "run").read_text()
    assert test.strip() in ci
    assert "ESTAGBENCH_REQUIRE_DATA=1" in ci


def test_readme_main_command_uses_an_offline_dataset():
    from estagbench.data import get_dataset

    setup, _ = _readme_commands()
    dataset = re.search(r"--dataset (\S+)", setup).group(1)
    assert get_dataset(dataset).offline


def test_readme_adding_a_model_code_runs_as_written():
    """The model file and the equivariance check of "Adding a model", run in a fresh interpreter."""
    import subprocess
    import sys

    text = (REPO / "README.md").read_text()
    section = text.split("## Adding a model", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.+?)\n```", section, flags=re.S)
    assert len(blocks) == 2
    code = "\n".join(blocks) + "\nprint('ok')\n"
    out = subprocess.run([sys.executable, "-W", "error::UserWarning", "-c", code], capture_output=True, text=True,
                         cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_readme_adding_a_dataset_plugin_works_as_written(tmp_path):
    """The "Adding a dataset" package, written out as the README shows it, pip-installed into a fresh venv,
    found through its ``estagbench.datasets`` entry point by the README's commands.

    The venv is created with ``--without-pip`` and sees this interpreter's site-packages through a ``.pth``
    (``site.addsitedir``), so torch and the other dependencies are not installed again (minutes); the plugin
    itself is a real ``pip install`` (``--no-deps --no-build-isolation``: offline, with this setuptools) into
    the venv, so its entry point is read from the installed distribution's metadata like any user's.  The
    ``estagbench`` command is this checkout's CLI (``python -m estagbench.cli``, checkout first on PYTHONPATH).
    """
    import importlib.util
    import os
    import site
    import subprocess
    import sys

    import pytest
    import setuptools

    major_minor = tuple(int(v) for v in setuptools.__version__.split(".")[:2])
    if major_minor < (70, 1) and importlib.util.find_spec("wheel") is None:
        pytest.skip(f"building a wheel offline needs setuptools >= 70.1 or the wheel package (the [dev] extra "
                    f"installs it); this environment has setuptools {setuptools.__version__} without wheel")
    text = (REPO / "README.md").read_text()
    section = text.split("## Adding a dataset", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.+?)\n```", section, flags=re.S)
    (toml,) = re.findall(r"```toml\n(.+?)\n```", section, flags=re.S)
    (cmds,) = re.findall(r"```bash\n(.+?)\n```", section, flags=re.S)
    pkg = tmp_path / "estagbench-spiral"
    first = code.splitlines()[0]
    assert first.startswith("# ") and first.endswith("/__init__.py")
    (pkg / first[2:].rsplit("/", 1)[0]).mkdir(parents=True)
    (pkg / first[2:]).write_text(code + "\n")
    (pkg / "pyproject.toml").write_text(toml + "\n")

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)], check=True,
                   timeout=120)
    py = venv / "bin" / "python"
    (purelib,) = {p for p in subprocess.run([str(py), "-c", "import site; print(*site.getsitepackages(), sep='\\n')"],
                                            capture_output=True, text=True, check=True).stdout.split() if "venv" in p}
    parents = "; ".join(f"site.addsitedir({p!r})" for p in site.getsitepackages())
    (Path(purelib) / "_parent_env.pth").write_text(f"import site; {parents}\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "results"
    for line in cmds.splitlines():
        cmd = line.split("#", 1)[0].strip().replace("/tmp/spiral", str(out))
        if cmd.startswith("pip install"):
            argv = [str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    *cmd.split()[2:]]
        else:
            assert cmd.startswith("estagbench ")
            argv = [str(py), "-m", "estagbench.cli", *cmd.split()[1:]]
        res = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, f"{cmd}\n{res.stdout}\n{res.stderr}"
        if cmd == "estagbench datasets":
            assert "spiral" in res.stdout and "six beads" in res.stdout
    records = list((out / "results").rglob("*.json"))
    assert records, f"no result stored under {out}"
    rec = __import__("json").loads(records[0].read_text())
    assert rec["dataset"] == "spiral" and rec["case"] == "slow" and rec["model"] == "egnn-t"
