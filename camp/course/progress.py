"""`python -m camp progress`: which graded tests pass in the learner's own copies of the lessons.

A graded test cell is one whose nbgrader metadata says `grade: true, solution: false` (the read-only test
cells after each exercise). Released lessons carry only the visible tests, so the report counts whatever
tests the learner's copy holds; nbgrader adds the hidden ones back when it grades.

By default each notebook is executed afresh, the way `nbgrader validate` would: in memory (the learner's file
is never written), in its own folder, with `QUICK = True` injected after the `parameters` cell as papermill
does and NBGRADER_EXECUTION set, so in smoke size (`camp.utils.run_size`), and past every error, so one unfinished exercise does not hide the results of the next. `--saved` reads
the outputs already saved in the notebooks instead and runs nothing.

Cells are numbered from 1 in the messages, as in ruff's `file:cell N` locations.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat

from camp.course import release

PASS, FAIL, NOT_RUN = "pass", "fail", "not run"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_CELL_FRAME = re.compile(r"Cell In\[(\d+)\]")
_DEFINES = re.compile(r"^(?:async\s+)?(?:def|class)\s+(\w+)", re.M)


@dataclass
class TestResult:
    """One graded test cell of a learner's notebook."""

    grade_id: str
    cell: int  # 1-based position in the notebook
    points: float
    status: str  # PASS, FAIL or NOT_RUN
    message: str = ""  # the exception's last line, for a failure
    hint: str = ""  # what to do about it


@dataclass
class LessonProgress:
    """The graded tests of one lesson notebook."""

    lesson: str
    notebook: str
    tests: list[TestResult] = field(default_factory=list)
    error: str = ""  # a problem that stopped the run itself (kernel died), not a failing test

    @property
    def passed(self) -> int:
        return sum(t.status == PASS for t in self.tests)

    @property
    def earned(self) -> float:
        return sum((t.points for t in self.tests if t.status == PASS), 0.0)

    @property
    def possible(self) -> float:
        return sum((t.points for t in self.tests), 0.0)

    def first_problem(self) -> TestResult | None:
        """The first failing test, else the first test that did not run."""
        return next((t for t in self.tests if t.status == FAIL), None) or \
            next((t for t in self.tests if t.status == NOT_RUN), None)

    def to_dict(self) -> dict:
        return {"lesson": self.lesson, "notebook": self.notebook, "passed": self.passed, "total": len(self.tests),
                "earned": self.earned, "possible": self.possible, "error": self.error,
                "tests": [asdict(t) for t in self.tests]}


def _nbgrader(cell: nbformat.NotebookNode) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def is_graded_test(cell: nbformat.NotebookNode) -> bool:
    """An autograded test cell: graded, and not an answer cell the learner writes in."""
    meta = _nbgrader(cell)
    return cell.cell_type == "code" and bool(meta.get("grade")) and not meta.get("solution")


def _error(cell: nbformat.NotebookNode) -> dict | None:
    return next((o for o in cell.get("outputs", []) if o.get("output_type") == "error"), None)


def error_line(output: dict) -> str:
    """The exception's last line, `Name: value`, on one line."""
    value = " ".join(str(output.get("evalue", "")).split())
    if len(value) > 200:
        value = value[:197] + "..."
    return f"{output.get('ename', 'Error')}: {value}" if value else str(output.get("ename", "Error"))


def _stderr(cell: nbformat.NotebookNode) -> dict | None:
    return next((o for o in cell.get("outputs", []) if o.get("output_type") == "stream" and o.get("name") == "stderr"),
                None)


def cell_status(cell: nbformat.NotebookNode) -> str:
    """PASS if the cell ran without an error output and wrote nothing to stderr, FAIL if it did either (nbgrader
    gives a test cell that writes to stderr no points, warnings included), NOT_RUN if it never ran."""
    if _error(cell) or _stderr(cell):
        return FAIL
    if cell.get("execution_count") is None and not cell.get("outputs"):
        return NOT_RUN
    return PASS


def _frames(output: dict) -> list[int]:
    """Execution counts of the notebook cells in a traceback, outermost first."""
    text = _ANSI.sub("", "\n".join(output.get("traceback", [])))
    return [int(n) for n in _CELL_FRAME.findall(text)]


def _frame_cells(nb: nbformat.NotebookNode, output: dict) -> list[int]:
    """Indices of the notebook cells in a traceback, outermost first (matched by execution count)."""
    by_count = {c.get("execution_count"): i for i, c in enumerate(nb.cells) if c.cell_type == "code"}
    return [by_count[n] for n in _frames(output) if n in by_count]


def _solution_cell(nb: nbformat.NotebookNode, test_index: int, output: dict) -> int | None:
    """Index of the answer cell a failing test points at: the innermost traceback frame in a solution cell,
    else the nearest solution cell above the test."""
    inside = [i for i in _frame_cells(nb, output) if _nbgrader(nb.cells[i]).get("solution")]
    if inside:
        return inside[-1]
    above = [i for i in range(test_index) if _nbgrader(nb.cells[i]).get("solution")]
    return above[-1] if above else None


def _defining_cell(nb: nbformat.NotebookNode, name: str, before: int) -> int | None:
    pattern = re.compile(rf"^(?:(?:async\s+)?(?:def|class)\s+{re.escape(name)}\b|{re.escape(name)}\s*[:=])", re.M)
    found = [i for i in range(before) if nb.cells[i].cell_type == "code" and pattern.search(nb.cells[i].source)]
    return found[-1] if found else None


def _describe(nb: nbformat.NotebookNode, index: int) -> str:
    names = _DEFINES.findall(nb.cells[index].source)
    return f"cell {index + 1}" + (f" (`{names[0]}`)" if names else "")


def hint(nb: nbformat.NotebookNode, index: int, saved: bool) -> str:
    """What a learner should do about the graded test at `index` (an empty string when it passed)."""
    cell = nb.cells[index]
    status = cell_status(cell)
    if status == PASS:
        return ""
    if status == NOT_RUN:
        if saved:
            return "run the notebook from the top (Run > Run All Cells), then save it"
        return "the run stopped before this cell (see the error above)"
    output = _error(cell)
    if output is None:  # it wrote to stderr
        return "something in your code prints a warning or writes to stderr: silence it, or nbgrader gives no points"
    ename = output.get("ename", "")
    if ename == "NotImplementedError":
        solution = _solution_cell(nb, index, output)
        if solution is not None:
            return f"write your solution in {_describe(nb, solution)}, in place of `raise NotImplementedError()`"
        return "an exercise above still raises NotImplementedError: write your solution there"
    if ename == "NameError":
        match = re.search(r"name '(\w+)' is not defined", str(output.get("evalue", "")))
        where = _defining_cell(nb, match.group(1), index) if match else None
        if where is not None and _error(nb.cells[where]):
            return f"{_describe(nb, where)} defines it but raised {error_line(_error(nb.cells[where]))}: fix that first"
        if saved:
            return "run the cells above it first (Run > Run All Above Selected Cell), then this test again"
        if match and where is None:
            return (f"no cell above defines `{match.group(1)}`: did you rename or delete what the exercise "
                    "asks for?")
    if ename == "KeyboardInterrupt":
        return "it was interrupted or ran past the time limit (--timeout): make it faster or raise the limit"
    if ename == "AssertionError":
        return (f"your code runs but gives a wrong answer: read the failing assert in cell {index + 1} and "
                "the exercise's docstring")
    solution = _solution_cell(nb, index, output)
    if solution is not None and solution in _frame_cells(nb, output):
        return f"your code in {_describe(nb, solution)} raised this: read the traceback under cell {index + 1}"
    return f"read the traceback under cell {index + 1}"


def check_notebook(nb: nbformat.NotebookNode, lesson: str, notebook: str = "", saved: bool = True,
                   error: str = "") -> LessonProgress:
    """Score the graded test cells of an (executed or saved) notebook from their outputs."""
    progress = LessonProgress(lesson, notebook, error=error)
    for index, cell in enumerate(nb.cells):
        if not is_graded_test(cell):
            continue
        meta = _nbgrader(cell)
        output, stderr = _error(cell), _stderr(cell)
        message = error_line(output) if output else ""
        if stderr and not output:
            first = next((line for line in str(stderr.get("text", "")).splitlines() if line.strip()), "")
            message = f"wrote to stderr, which nbgrader scores as a failure: {_ANSI.sub('', first)[:160]}"
        progress.tests.append(TestResult(
            grade_id=str(meta.get("grade_id", f"cell {index + 1}")), cell=index + 1,
            points=float(meta.get("points", 0) or 0), status=cell_status(cell),
            message=message, hint=hint(nb, index, saved)))
    return progress


def inject_parameters(nb: nbformat.NotebookNode, parameters: dict) -> tuple[nbformat.NotebookNode, int]:
    """A copy of `nb` with a cell tagged `injected-parameters` after the first `parameters` cell (at the top if
    there is none), as papermill does. Returns the copy and the new cell's index."""
    nb = nbformat.from_dict(nb)  # a deep copy
    source = "# Parameters\n" + "".join(f"{name} = {value!r}\n" for name, value in parameters.items())
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    index = tagged[0] + 1 if tagged else 0
    nb.cells.insert(index, nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]}))
    return nb, index


def execute(path: Path, parameters: dict | None = None, timeout: int = 1800) -> tuple[nbformat.NotebookNode, str]:
    """Run a copy of the notebook at `path` in its own folder, past errors, and return it with the problem that
    stopped the run early ("" if none). The file itself is neither written nor changed."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    nb = release.read_notebook(path)
    for cell in nb.cells:  # stale outputs must not count: a cell the run never reaches is "not run"
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb, injected = inject_parameters(nb, {"QUICK": True, **(parameters or {})})
    client = NotebookClient(nb, kernel_name="python3", allow_errors=True, timeout=timeout,
                            interrupt_on_timeout=True, resources={"metadata": {"path": str(path.parent)}})
    # What `nbgrader validate` sets, so heavy cells shrink while graded (camp.utils.is_grading).
    env = {**os.environ, "NBGRADER_EXECUTION": "validate", "NBGRADER_VALIDATING": "1"}
    started: list[int] = []
    client.on_cell_start = lambda cell, cell_index: started.append(cell_index)
    problem = ""
    try:
        client.execute(env=env, stderr=subprocess.DEVNULL)
    except (DeadKernelError, CellTimeoutError, RuntimeError) as err:
        problem = f"the run stopped early: {type(err).__name__}: {' '.join(str(err).split())[:200]}"
    del nb.cells[injected]
    if problem and started:
        where = started[-1] - (started[-1] > injected)  # its place in the learner's notebook
        problem += f" in cell {where + 1} (out of memory? run that cell alone to see)"
    return nb, problem


def find_notebooks(folder: Path, lessons: list[str] | None = None) -> dict[str, Path]:
    """Lesson name -> notebook in `folder`, laid out like lessons/ (NN_name/NN_name.ipynb), as one lesson
    folder, or flat (NN_name.ipynb). `lessons` keeps only these ("03" or "03_empathy_environment")."""
    if not folder.is_dir():
        raise release.CourseError(f"{folder} is not a folder. Pass --dir the folder that holds your lesson "
                                  "notebooks (like lessons/).")
    found: dict[str, Path] = {}
    candidates = [folder / f"{folder.resolve().name}.ipynb"]  # --dir . inside one lesson folder
    candidates += [sub / f"{sub.name}.ipynb" for sub in sorted(folder.iterdir()) if sub.is_dir()]
    candidates += sorted(folder.glob("*.ipynb"))
    for path in candidates:
        if path.is_file() and release.LESSON_DIR.match(path.stem) and path.stem not in found:
            found[path.stem] = path
    if not found:
        raise release.CourseError(f"{folder}: no lesson notebooks here (expected NN_name/NN_name.ipynb). Run "
                                  "`python -m camp lessons` to generate lessons/, or pass --dir the folder "
                                  "that holds your copies.")
    if not lessons:
        return dict(sorted(found.items()))
    wanted = [w.strip() for item in lessons for w in item.split(",") if w.strip()]
    chosen: dict[str, Path] = {}
    for want in wanted:
        match = [name for name in found if name == want or name.split("_", 1)[0] == want.zfill(2)]
        if not match:
            raise release.CourseError(f"no lesson {want!r} in {folder}; there is: {', '.join(found)}.")
        chosen.update((name, found[name]) for name in match)
    return dict(sorted(chosen.items()))


def collect(folder: Path, lessons: list[str] | None = None, saved: bool = False, timeout: int = 1800,
            echo=None) -> list[LessonProgress]:
    """Progress for every lesson notebook in `folder` (executed, or from saved outputs with `saved`)."""
    results = []
    for name, path in find_notebooks(folder, lessons).items():
        if saved:
            results.append(check_notebook(release.read_notebook(path), name, str(path), saved=True))
            continue
        if echo:
            echo(f"running {_shown(path)} (smoke size, as nbgrader runs it)...")
        nb, problem = execute(path, timeout=timeout)
        results.append(check_notebook(nb, name, str(path), saved=False, error=problem))
    return results


def _shown(path: Path) -> str:
    """`path` relative to the cwd when it lies below it, as the learner typed it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _num(value: float) -> str:
    return f"{value:g}"


def format_report(results: list[LessonProgress], folder: Path, saved: bool) -> str:
    """The text report: one line per lesson, then the first problem and what to do about it."""
    how = "saved outputs, nothing run" if saved else "each notebook run afresh in smoke size, as nbgrader runs it"
    lines = [f"Graded tests in {_shown(folder)} ({how}):", ""]
    width = max(len(r.lesson) for r in results)
    for r in results:
        lines.append(f"{r.lesson:<{width}}  {r.passed}/{len(r.tests)} tests passed  "
                     f"{_num(r.earned)}/{_num(r.possible)} points")
        if r.error:
            lines.append(f"    {r.error}")
        if not r.tests:
            lines.append("    no graded test cells in this notebook")
        problem = r.first_problem()
        if problem and problem.status == FAIL:
            lines.append(f"    first failure: {problem.grade_id} (cell {problem.cell}): {problem.message}")
        elif problem:
            lines.append(f"    not run: {problem.grade_id} (cell {problem.cell})")
        if problem:
            lines.append(f"    hint: {problem.hint}")
            others = [t.grade_id for t in r.tests if t.status != PASS and t is not problem]
            if others:
                lines.append(f"    also to do: {', '.join(others)}")
    passed, total = sum(r.passed for r in results), sum(len(r.tests) for r in results)
    earned, possible = sum(r.earned for r in results), sum(r.possible for r in results)
    lines += ["", f"Total: {passed}/{total} tests passed, {_num(earned)}/{_num(possible)} points."]
    lines.append("(These are the tests in your copies; nbgrader adds its hidden tests when it grades.)")
    return "\n".join(lines)


def to_json(results: list[LessonProgress], folder: Path, saved: bool) -> dict:
    """The machine-readable report."""
    return {"dir": str(folder), "mode": "saved" if saved else "executed",
            "passed": sum(r.passed for r in results), "total": sum(len(r.tests) for r in results),
            "earned": sum((r.earned for r in results), 0.0), "possible": sum((r.possible for r in results), 0.0),
            "lessons": [r.to_dict() for r in results]}


def default_folder(start: Path | None = None) -> Path:
    """lessons/ of the course checkout at or above `start` (or the cwd), else ./lessons."""
    here = (start or Path.cwd()).resolve()
    try:
        return release.repo_root(here) / "lessons"
    except release.CourseError:
        if (here / "lessons").is_dir():
            return here / "lessons"
        raise release.CourseError(f"no lessons/ folder at or above {here}. Run this from the Empathy Camp "
                                  "checkout, or pass --dir the folder that holds your lesson notebooks.") from None
