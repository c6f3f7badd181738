"""The instructor's round trip for lesson 00, through nbgrader's own command line:
generate, collect one correct and one blank submission, autograde, export grades, feedback."""

import csv
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
LESSON = "00_welcome"


def nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess:
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    out = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}"
    return out


def answered(release: Path, solution: Path) -> nbformat.NotebookNode:
    """A student's notebook: the release with each solution cell filled in with the reference answer."""
    nb = nbformat.read(release, 4)
    answers = {c.metadata["nbgrader"]["grade_id"]: c.source for c in nbformat.read(solution, 4).cells
               if c.metadata.get("nbgrader", {}).get("solution")}
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            cell.source = re.sub(r"\s*### (BEGIN|END) SOLUTION", "", answers[meta["grade_id"]])
    return nb


@pytest.mark.slow
def test_round_trip_scores_correct_and_blank_submissions(tmp_path):
    course = tmp_path / "course"
    course.mkdir()
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "solutions" / LESSON, course / "solutions" / LESSON)

    # 1. Generate the release (with the gradebook database, as an instructor would).
    nbgrader(course, "generate_assignment", LESSON, "--force")
    release = course / "lessons" / LESSON / f"{LESSON}.ipynb"
    assert "BEGIN SOLUTION" not in release.read_text()

    # 2. Collect two submissions: alice solved the exercise, bob handed in the blank notebook.
    for student in ("alice", "bob"):
        nbgrader(course, "db", "student", "add", student)
        (course / "submitted" / student / LESSON).mkdir(parents=True)
    nbformat.write(answered(release, course / "solutions" / LESSON / f"{LESSON}.ipynb"),
                   course / "submitted" / "alice" / LESSON / f"{LESSON}.ipynb")
    shutil.copy(release, course / "submitted" / "bob" / LESSON / f"{LESSON}.ipynb")

    # 3. Autograde (hidden tests are restored here) and export the grades.
    nbgrader(course, "autograde", LESSON)
    nbgrader(course, "export", "--to", "grades.csv")
    with open(course / "grades.csv") as fh:
        rows = {r["student_id"]: r for r in csv.DictReader(fh)}
    assert float(rows["alice"]["max_score"]) == 2.0
    assert float(rows["alice"]["score"]) == 2.0
    assert float(rows["bob"]["score"]) == 0.0

    # 4. Feedback goes back to students without the hidden tests.
    nbgrader(course, "generate_feedback", LESSON)
    for student in ("alice", "bob"):
        page = (course / "feedback" / student / LESSON / f"{LESSON}.html").read_text()
        assert "discounted_return" in page
        assert "HIDDEN TESTS" not in page and "_rng = _random.Random(7)" not in page
