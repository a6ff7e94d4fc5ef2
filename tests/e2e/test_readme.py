"""The README's newcomer command, run verbatim in a copy of this checkout with a brand-new venv."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    return [
        line.strip()
        for block in blocks
        for line in block.splitlines()
        if line.strip() and not line.startswith("#")
    ]


@pytest.mark.slow
def test_readme_install_and_run_command_works_in_a_fresh_venv(tmp_path: Path) -> None:
    install_and_run = next(c for c in readme_commands() if "keen breathe" in c and "pip install" in c)
    checkout = tmp_path / "keen"
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    for name in files.stdout.splitlines():
        source = ROOT / name
        if source.is_file():
            target = checkout / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH"}}
    env["PATH"] = os.pathsep.join(
        p for p in env["PATH"].split(os.pathsep) if "/.venv/" not in p and "ci-venv" not in p
    )
    env["KEEN_HOME"] = str(tmp_path / "home")
    env["NO_COLOR"] = "1"
    result = subprocess.run(
        ["bash", "-c", install_and_run], cwd=checkout, env=env, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (checkout / "demo" / "fizzbuzz.py").is_file()
    assert "completed" in result.stdout and "scripted" in result.stdout
    log = subprocess.run(
        ["git", "log", "--format=%s", "-n", "1"], cwd=checkout / "demo", capture_output=True, text=True
    )
    assert log.stdout.startswith("keen: Added fizzbuzz.py")


def test_readme_test_command_is_the_one_ci_runs() -> None:
    test_command = next(c for c in readme_commands() if "pytest" in c)
    assert "python -m pytest -q" in test_command
    assert "python -m pytest -q" in (ROOT / ".ci" / "run").read_text()
