"""The setup cell installs convbook where it is missing, as on Colab, without the internet.

On Colab a chapter runs in an environment that has torch but not convbook; its first code
cell (the setup cell, see CONTRIBUTING.md) pip-installs convbook from the repository. This
test rebuilds that situation offline:

- a fresh virtual environment that sees the course's site-packages (torch, pip, setuptools,
  ipykernel, nbconvert) through a plain path line in a ``.pth`` file. Plain path lines do
  not run the ``.pth`` files of the folder they add, and the folder is a view without
  convbook's own entries, so convbook is neither importable nor known to pip there;
- ``CONVBOOK_SOURCE`` pointing at a copy of the checkout (the files git would commit:
  tracked and untracked-but-not-ignored). A copy, because pip builds a local project in
  place and would leave ``build/`` in the working tree;
- a quick chapter executed by nbconvert with that environment's Python as the kernel.

It then checks that convbook was installed into the fresh environment from that copy.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from conftest import ROOT

CHAPTER = ROOT / "chapters" / "05_pooling.ipynb"  # a quick chapter
KERNEL = "convbook-colab-test"


def run(cmd: list, env: dict, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in cmd], env=env, cwd=cwd, capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout}\n{result.stderr}"
    return result


def copy_checkout(dest: Path) -> Path:
    """Copy the files a commit of this checkout would hold (no .venv, _build, caches)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def site_packages_view(dest: Path) -> Path:
    """A folder of links to this environment's site-packages, minus convbook and ``.pth`` files."""
    source = Path(sysconfig.get_paths()["purelib"])
    dest.mkdir()
    for entry in source.iterdir():
        name = entry.name.lower()
        if name.startswith(("convbook", "__editable__")) or name.endswith(".pth"):
            continue
        (dest / entry.name).symlink_to(entry)
    return dest


def fresh_venv(path: Path, visible: Path, env: dict) -> Path:
    """A venv without pip or convbook that imports everything else from ``visible``."""
    run([sys.executable, "-m", "venv", "--without-pip", path], env, path.parent)
    python = path / "bin" / "python"
    purelib = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                  env, path.parent).stdout.strip()
    Path(purelib, "course_site_packages.pth").write_text(f"{visible}\n")
    return python


@pytest.mark.slow  # make test runs it; make unit skips it
def test_setup_cell_installs_convbook_from_the_checkout(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "MPLBACKEND")}
    python = fresh_venv(tmp_path / "venv", site_packages_view(tmp_path / "visible"), env)
    probe = "import importlib.util as u, sys; sys.exit(u.find_spec('convbook') is not None)"
    assert subprocess.run([python, "-c", probe], env=env, cwd=tmp_path).returncode == 0, \
        "convbook is importable in the fresh venv before the setup cell ran"
    assert subprocess.run([python, "-m", "pip", "show", "-q", "convbook"], env=env,
                          cwd=tmp_path, capture_output=True).returncode != 0

    checkout = copy_checkout(tmp_path / "checkout")
    env.update(CONVBOOK_SOURCE=str(checkout), PIP_NO_INDEX="1", PIP_NO_BUILD_ISOLATION="0",
               PIP_DISABLE_PIP_VERSION_CHECK="1", CONVBOOK_OFFLINE="1")
    run([python, "-m", "ipykernel", "install", "--prefix", tmp_path / "venv", "--name", KERNEL],
        env, tmp_path)
    notebook = shutil.copy(CHAPTER, tmp_path / CHAPTER.name)
    run([python, "-m", "nbconvert", "--to", "notebook", "--execute",
         f"--ExecutePreprocessor.kernel_name={KERNEL}", "--ExecutePreprocessor.timeout=300",
         "--output", "executed.ipynb", notebook], env, tmp_path, timeout=600)

    executed = json.loads((tmp_path / "executed.ipynb").read_text(encoding="utf-8"))
    errors = [o for c in executed["cells"] for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert not errors
    located = run([python, "-c", "import convbook; print(convbook.__file__)"], env, tmp_path)
    installed = Path(located.stdout.strip()).parent
    assert installed.is_relative_to(tmp_path / "venv"), installed
    shown = run([python, "-m", "pip", "show", "convbook"], env, tmp_path).stdout
    assert f"Location: {installed.parent}" in shown, shown
    (record,) = installed.parent.glob("convbook-*.dist-info/direct_url.json")
    assert json.loads(record.read_text())["url"] == checkout.as_uri()
    modules = sorted((checkout / "convbook").rglob("*.py"))
    assert (checkout / "convbook" / "check" / "__init__.py") in modules  # subpackages too
    for module in modules:
        name = module.relative_to(checkout / "convbook")
        assert (installed / name).read_bytes() == module.read_bytes(), name
