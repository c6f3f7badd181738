"""An instructor's round trip through nbgrader's own command line, and how long autograding takes.

`python -m camp time-autograde 02 06 07` builds a throwaway course folder from solutions/ (generate, one
student, one submission holding the reference answers), runs `nbgrader autograde` on it and times that one
command, the instructor's wait per submission. Run it with nothing else on the machine; the instructors' section
of the README quotes `benchmarks/autograde.json`. While nbgrader executes a notebook, every lesson runs in smoke
size (`camp.utils.run_size`), so autograding checks that the cells run and the exercises pass, not what a
training run teaches.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from camp.course import release
from camp.course.bench import machine_info


def nbgrader(course: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run `nbgrader ARGS` in `course` with this Python's nbgrader; raise CourseError, with its output, on failure."""
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    out = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env, capture_output=True,
                         text=True, timeout=timeout)
    if out.returncode != 0:
        raise release.CourseError(f"nbgrader {' '.join(args)} failed in {course}:\n{out.stdout}\n{out.stderr}")
    return out


def answered(released: Path, solution: Path) -> nbformat.NotebookNode:
    """A student's notebook: the release with each solution cell filled in with the reference answer."""
    nb = nbformat.read(released, 4)
    answers = {c.metadata["nbgrader"]["grade_id"]: c.source for c in nbformat.read(solution, 4).cells
               if c.metadata.get("nbgrader", {}).get("solution")}
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            cell.source = re.sub(r"\s*### (BEGIN|END) SOLUTION", "", answers[meta["grade_id"]])
    return nb


def course_folder(root: Path, lessons: list[str], where: Path) -> Path:
    """A course folder under `where` with nbgrader_config.py, the lessons' sources, their releases and a gradebook."""
    course = where / "course"
    course.mkdir(parents=True)
    shutil.copy(root / "nbgrader_config.py", course)
    for lesson in lessons:
        shutil.copytree(root / "solutions" / lesson, course / "solutions" / lesson)
        nbgrader(course, "generate_assignment", lesson, "--force")
    return course


def submit(course: Path, student: str, lesson: str, nb: nbformat.NotebookNode) -> None:
    """Hand in `nb` as `student`'s submission of `lesson` (nbgrader's submitted/ layout), adding the student."""
    nbgrader(course, "db", "student", "add", student)
    folder = course / "submitted" / student / lesson
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / f"{lesson}.ipynb")


def grades(course: Path) -> dict[tuple[str, str], dict]:
    """(student, lesson) -> {"score", "max_score"}, from `nbgrader export`."""
    nbgrader(course, "export", "--to", "grades.csv")
    with open(course / "grades.csv", encoding="utf-8") as fh:
        return {(r["student_id"], r["assignment"]): {"score": float(r["score"]), "max_score": float(r["max_score"])}
                for r in csv.DictReader(fh)}


def time_autograde(lessons: list[str], root: Path | None = None) -> dict:
    """Autograde one submission (the reference answers) of each lesson and time it, one lesson at a time."""
    root = root or release.repo_root()
    names = list(release.lesson_names(root))
    chosen = [next((n for n in names if n.startswith(str(want))), None) for want in lessons]
    if None in chosen:
        raise release.CourseError(f"unknown lesson in {lessons}; lessons are {names}")
    rows = {}
    with tempfile.TemporaryDirectory(prefix="camp-autograde-") as tmp:
        course = course_folder(root, chosen, Path(tmp))
        for lesson in chosen:
            released = course / "lessons" / lesson / f"{lesson}.ipynb"
            submit(course, "student", lesson, answered(released, root / "solutions" / lesson / f"{lesson}.ipynb"))
            start = time.perf_counter()
            nbgrader(course, "autograde", lesson, "--student", "student", "--force")
            rows[lesson] = {"seconds": round(time.perf_counter() - start, 1)}
            print(f"{lesson}: autograded in {rows[lesson]['seconds']} s", flush=True)
        for (_, lesson), grade in grades(course).items():
            if lesson in rows:
                rows[lesson].update(grade)
    return {"what": "nbgrader autograde of one submission holding the reference answers, per lesson, timed as the "
                    "one `nbgrader autograde LESSON --student student` command (the notebook runs in smoke size)",
            "command": f"python -m camp time-autograde {' '.join(lessons)}",
            "machine": {"cpus": os.cpu_count(), **machine_info()}, "date": time.strftime("%Y-%m-%d"), "lessons": rows}
