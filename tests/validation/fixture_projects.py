"""The committed fixture projects (tests/validation/projects) and environments for them."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

PROJECTS = Path(__file__).parent / "projects"
# Put at a Python fixture's root: records the pytest plugins loaded from installed distributions
# (entry points) into the file named by FIXTURE_PLUGIN_LOG, so a test can see what loaded.
PLUGIN_LOG_CONFTEST = """\
import json
import os
import sys


def pytest_configure(config):
    log = os.environ.get("FIXTURE_PLUGIN_LOG")
    if log:
        loaded = [getattr(plugin, "__file__", None) for plugin, _ in config.pluginmanager.list_plugin_distinfo()]
        with open(log, "w") as out:
            json.dump({"plugins": sorted(p for p in loaded if p), "prefix": sys.prefix}, out)
"""


def copy_project(name: str, dest: Path) -> Path:
    """A fresh copy of the fixture project `name` at `dest`."""
    shutil.copytree(PROJECTS / name, dest)
    return dest


def make_venv(path: Path, *distributions: str) -> Path:
    """A real virtualenv at `path` with `distributions` (and their requirements) installed.

    The distributions' files are copied from keen's own environment, laid out as pip lays them
    out (packages and their .dist-info, so entry points are exactly theirs): no network, a
    fraction of a second, and none of keen's pytest plugins unless one is asked for by name.
    """
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(path), "platbase": str(path)}))
    done: set[str] = set()
    todo = list(distributions)
    while todo:
        dist = metadata.distribution(todo.pop())
        name = dist.metadata["Name"].lower()
        if name in done:
            continue
        done.add(name)
        for file in dist.files or []:
            if file.parts[0] == "..":  # console scripts written for keen's interpreter
                continue
            target = site / file
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(Path(str(dist.locate_file(file))), target)
        for line in dist.requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return path


def install_editable(venv: Path, *source_dirs: Path) -> None:
    """What an editable install leaves in site-packages: a .pth naming the source folders."""
    site = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    (site / "_keenfix_editable.pth").write_text("".join(f"{d}\n" for d in source_dirs))
