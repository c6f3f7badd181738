"""What a wheel of camp holds, read from pyproject.toml the way setuptools reads it: every sub-package
(camp.course) and the corpus files, which `pip install` users (and Colab) need."""

import importlib
import tomllib
from pathlib import Path

from setuptools import find_packages

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _wheel_files() -> set[str]:
    """Paths setuptools would put in the wheel: the packages' modules and their package data."""
    config = PYPROJECT["tool"]["setuptools"]
    spec = config.get("packages", {})
    find = spec.get("find", {}) if isinstance(spec, dict) else {}
    packages = spec if isinstance(spec, list) else find_packages(
        str(ROOT), include=find.get("include", ["*"]), exclude=find.get("exclude", ()))
    files = set()
    for package in packages:
        folder = ROOT / package.replace(".", "/")
        for pattern in ["*.py", *config.get("package-data", {}).get(package, [])]:
            files |= {p.relative_to(ROOT).as_posix() for p in folder.glob(pattern)}
    return files


def test_wheel_holds_the_course_subpackage_and_the_corpus():
    files = _wheel_files()
    course = {p.relative_to(ROOT).as_posix() for p in (ROOT / "camp" / "course").glob("*.py")}
    corpus = {p.relative_to(ROOT).as_posix() for p in (ROOT / "camp" / "corpus").iterdir() if p.is_file()}
    assert "camp/course/cli.py" in course and "camp/corpus/situations.jsonl" in corpus
    assert course <= files, f"missing from the wheel: {sorted(course - files)}"
    assert corpus <= files, f"missing from the wheel: {sorted(corpus - files)}"


def test_console_script_points_at_a_function():
    module, _, name = PYPROJECT["project"]["scripts"]["camp"].partition(":")
    assert callable(getattr(importlib.import_module(module), name))
