"""The solutions -> lessons pipeline: generation, --check, and clear errors on bad input."""

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from camp.course import release

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def tmp_course(tmp_path) -> Path:
    """A copy of the course (configs, solutions, lessons) that a test may break."""
    shutil.copy(ROOT / "nbgrader_config.py", tmp_path)
    shutil.copy(ROOT / "pyproject.toml", tmp_path)  # the Colab badge's repository and branch
    shutil.copytree(ROOT / "solutions", tmp_path / "solutions")
    shutil.copytree(ROOT / "lessons", tmp_path / "lessons")
    return tmp_path


def camp_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "camp", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_committed_lessons_are_in_step_with_solutions():
    out = camp_cli(ROOT, "lessons", "--check")
    assert out.returncode == 0, out.stderr


def test_every_solution_has_a_lesson():
    names = release.lesson_names(ROOT)
    assert "00_welcome" in names
    for name in names:
        assert (ROOT / "lessons" / name / f"{name}.ipynb").is_file()


def test_regeneration_is_byte_identical(tmp_course):
    before = {p: p.read_bytes() for p in (tmp_course / "lessons").rglob("*.ipynb")}
    release.release(tmp_course)
    assert {p: p.read_bytes() for p in (tmp_course / "lessons").rglob("*.ipynb")} == before


def test_check_reports_a_hand_edited_lesson_with_a_diff(tmp_course):
    path = tmp_course / "lessons" / "00_welcome" / "00_welcome.ipynb"
    nb = nbformat.read(path, 4)
    nb.cells[0].source += "\nA sentence an instructor typed into the release by hand."
    nbformat.write(nb, path)
    out = camp_cli(tmp_course, "lessons", "--check")
    assert out.returncode == 1
    assert "lessons/00_welcome/00_welcome.ipynb is stale or was edited by hand" in out.stderr
    assert "+A sentence an instructor typed" in out.stderr  # the readable diff shows the edit


def test_check_catches_a_leaked_solution(tmp_course):
    src = tmp_course / "solutions" / "00_welcome" / "00_welcome.ipynb"
    shutil.copy(src, tmp_course / "lessons" / "00_welcome" / "00_welcome.ipynb")
    problems = release.check(tmp_course)
    leak = [p for p in problems if "contains solution or hidden-test text" in p]
    assert leak and "BEGIN SOLUTION" in leak[0] and "BEGIN HIDDEN TESTS" in leak[0]


def test_leaked_text_finds_solution_lines_without_markers(tmp_course):
    # A leak that strips the markers but keeps the code is still caught.
    src = tmp_course / "solutions" / "00_welcome" / "00_welcome.ipynb"
    lesson = tmp_course / "lessons" / "00_welcome" / "00_welcome.ipynb"
    nb = nbformat.read(lesson, 4)
    nb.cells[-1].source += "\n    total = reward + gamma * total"
    nbformat.write(nb, lesson)
    assert "total = reward + gamma * total" in release.leaked_text(src, lesson)


def test_check_reports_missing_and_orphan_lessons(tmp_course):
    shutil.rmtree(tmp_course / "lessons" / "00_welcome")
    (tmp_course / "lessons" / "99_orphan").mkdir()
    problems = release.check(tmp_course)
    assert any("lessons/00_welcome/00_welcome.ipynb is missing" in p for p in problems)
    assert any("lessons/99_orphan has no solution" in p for p in problems)


def test_solution_without_nbgrader_metadata_names_the_file(tmp_course):
    path = tmp_course / "solutions" / "00_welcome" / "00_welcome.ipynb"
    nb = nbformat.read(path, 4)
    for cell in nb.cells:
        cell.metadata.pop("nbgrader", None)
        cell.source = cell.source.replace("### BEGIN SOLUTION", "").replace("### END SOLUTION", "")
    nbformat.write(nb, path)
    out = camp_cli(tmp_course, "lessons")
    assert out.returncode == 2
    assert str(path) in out.stderr and "no cell carries nbgrader metadata" in out.stderr
    assert "Traceback" not in out.stderr


def test_lesson_folder_without_solution_names_the_folder(tmp_course):
    (tmp_course / "solutions" / "08_extra").mkdir()
    out = camp_cli(tmp_course, "lessons")
    assert out.returncode == 2
    assert "08_extra" in out.stderr and "has no solution notebook" in out.stderr


def test_badly_named_lesson_folder_is_refused(tmp_course):
    (tmp_course / "solutions" / "Lesson Three").mkdir()
    with pytest.raises(release.CourseError, match="two digits"):
        release.lesson_names(tmp_course)


def test_unreadable_notebook_names_the_file(tmp_course):
    path = tmp_course / "solutions" / "00_welcome" / "00_welcome.ipynb"
    path.write_text("{ this is not json")
    with pytest.raises(release.CourseError, match="00_welcome.ipynb: not a readable notebook"):
        release.validate_source(path)


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda meta: meta.pop("grade_id"), "without a grade_id"),
    (lambda meta: meta.update(points=0), "gives no points"),
])
def test_bad_test_cell_metadata_is_refused(tmp_course, mutate, message):
    path = tmp_course / "solutions" / "00_welcome" / "00_welcome.ipynb"
    nb = nbformat.read(path, 4)
    graded = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade"))
    mutate(graded.metadata["nbgrader"])
    nbformat.write(nb, path)
    with pytest.raises(release.CourseError, match=message):
        release.validate_source(path)


def test_missing_parameters_cell_is_refused(tmp_course):
    path = tmp_course / "solutions" / "00_welcome" / "00_welcome.ipynb"
    nb = nbformat.read(path, 4)
    for cell in nb.cells:
        cell.metadata.pop("tags", None)
    nbformat.write(nb, path)
    with pytest.raises(release.CourseError, match="tagged 'parameters'"):
        release.validate_source(path)


def test_no_course_here_is_a_clear_error(tmp_path):
    out = camp_cli(tmp_path, "lessons")
    assert out.returncode == 2 and "no course found" in out.stderr


def test_python_files_never_reach_lessons(tmp_course):
    # A jupytext pair next to a solution would leak it: nbgrader_config.py must ignore *.py.
    (tmp_course / "solutions" / "00_welcome" / "00_welcome.py").write_text("SECRET = 'answer'\n")
    (tmp_course / "solutions" / "00_welcome" / "notes.txt").write_text("shared with students\n")
    release.release(tmp_course)
    assert not (tmp_course / "lessons" / "00_welcome" / "00_welcome.py").exists()
    assert (tmp_course / "lessons" / "00_welcome" / "notes.txt").exists()


def test_the_model_card_exemplar_and_rubric_stay_out_of_the_release():
    import json

    from conftest import ROOT

    def card(folder):
        path = ROOT / folder / "08_evaluation_and_responsible_use" / "08_evaluation_and_responsible_use.ipynb"
        cells = json.loads(path.read_text())["cells"]
        return next("".join(c["source"]) for c in cells if c["metadata"].get("nbgrader", {}).get("grade_id") == "model_card")

    solution, lesson = card("solutions"), card("lessons")
    assert "**Rubric (5 points" in solution and "**Out of scope.**" in solution
    assert lesson == "### Model card: an empathy-camp SmolLM2-135M listener\n\nYOUR ANSWER HERE"
