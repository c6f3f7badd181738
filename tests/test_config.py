"""Config files stay consistent: environment.yml mirrors pyproject.toml; nbgrader ignores *.py."""

import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def _pyproject_requirements() -> dict[str, str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = data["dependencies"] + data["optional-dependencies"]["dev"]
    return {Requirement(r).name.lower(): str(Requirement(r).specifier) for r in reqs}


def _environment_requirements() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    reqs = [Requirement(r) for r in pip if not r.startswith("-e")]
    return {r.name.lower(): str(r.specifier) for r in reqs}


def test_environment_yml_matches_pyproject():
    py, env = _pyproject_requirements(), _environment_requirements()
    assert set(env) == set(py), f"only in pyproject: {set(py) - set(env)}; only in environment.yml: {set(env) - set(py)}"
    mismatched = {name: (py[name], env[name]) for name in py if py[name] != env[name]}
    assert not mismatched, f"version ranges differ (pyproject, environment.yml): {mismatched}"


def test_environment_yml_pins_a_python_that_requires_python_allows():
    from packaging.specifiers import SpecifierSet

    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    pinned = [d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python=")]
    assert len(pinned) == 1, f"environment.yml should pin one Python version (python=3.X), found {pinned}"
    version = pinned[0].removeprefix("python=")
    assert version in SpecifierSet(requires), f"python={version} is outside requires-python {requires}"


def test_nbgrader_config_points_at_solutions_and_lessons_and_ignores_py():
    from traitlets.config.loader import PyFileConfigLoader

    cfg = PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()
    assert cfg.CourseDirectory.source_directory == "solutions"
    assert cfg.CourseDirectory.release_directory == "lessons"
    assert "*.py" in cfg.CourseDirectory.ignore
    assert cfg.Execute.timeout >= 300  # nbgrader's 30 s default kills training cells
