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
