"""A Colab-like install: camp built as a wheel, installed (not editable) into a fresh virtual environment, and
used from outside the repository: `camp doctor`, then lessons 00 and 03 in quick mode.

Colab comes with torch, transformers and the rest preinstalled and gets camp from pip. Here the project's own
`.venv` plays Colab's preinstalled packages: the fresh environment sees its site-packages through one path in a
`.pth` file. A path listed in a `.pth` file is only appended to `sys.path`; the `.pth` hooks inside it do not
run, so `.venv`'s editable camp stays invisible and `import camp` finds the wheel's copy.

The fresh environment uses this machine's Python, 3.11. Colab's is 3.12, but no Python 3.12 can be installed
here: Debian bookworm ships 3.11 (trixie 3.13), PyPI has no interpreter wheels, and the npm packages that carry
one fetch it from GitHub at install time, which this network does not reach. `tests/test_colab.py` compiles
every source with a 3.12 interpreter wherever one is found.
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import nbformat
import pytest

from camp.course import progress

ROOT = Path(__file__).resolve().parents[1]
LESSONS = ("00_welcome", "03_empathy_environment")


def _build_wheel(out: Path) -> Path:
    """Build from a copy of what setuptools reads, so the repository gets no build/ or egg-info folders."""
    src = out / "src"
    shutil.copytree(ROOT / "camp", src / "camp", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(out / "dist"), str(src)], check=True, capture_output=True, text=True)
    (wheel,) = (out / "dist").glob("*.whl")
    return wheel


def _fresh_env(out: Path, wheel: Path) -> Path:
    """A new venv holding only the wheel's camp, with .venv's site-packages appended as Colab's preinstalled ones."""
    venv = out / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                    "--no-compile", str(wheel)], check=True, capture_output=True, text=True)
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "preinstalled.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def _kernel(out: Path, python: Path) -> dict:
    """Environment whose `python3` Jupyter kernel is the fresh venv's Python, started outside the repository."""
    spec = out / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "camp from its wheel", "language": "python"}))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {**env, "JUPYTER_PATH": str(out / "jupyter"), "HF_HUB_OFFLINE": "1"}


@pytest.mark.slow
def test_wheel_installed_like_colab_runs_doctor_and_lessons(tmp_path):
    python = _fresh_env(tmp_path, _build_wheel(tmp_path))
    work = tmp_path / "content"  # Colab's working folder: no repository in sight
    work.mkdir()
    env = _kernel(tmp_path, python)

    where = subprocess.run([python, "-c", "import camp, camp.course.cli; print(camp.__file__)"], cwd=work,
                           env=env, check=True, capture_output=True, text=True).stdout.strip()
    assert Path(where).is_relative_to(tmp_path / "venv"), f"camp came from {where}, not the wheel"

    doctor = subprocess.run([python, "-m", "camp", "doctor"], cwd=work, env=env, capture_output=True, text=True)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr

    for lesson in LESSONS:
        notebook = work / f"{lesson}.ipynb"
        shutil.copy(ROOT / "solutions" / lesson / notebook.name, notebook)
        run = subprocess.run([python, "-m", "papermill", notebook.name, f"out_{notebook.name}", "-p", "QUICK",
                              "True", "-k", "python3", "--cwd", str(work), "--no-progress-bar"], cwd=work, env=env,
                             capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, f"{lesson} failed from the wheel install:\n{run.stderr[-3000:]}"
        result = progress.check_notebook(nbformat.read(work / f"out_{notebook.name}", 4), lesson)
        assert result.tests and all(t.status == progress.PASS for t in result.tests), result.tests
