"""Every solution notebook runs end to end (in smoke size in the fast tier, in quick mode in the full tier) and
passes its own graded tests, and every generated lesson fails each of them because its exercise is blank (so the
tests really test the learner's code). Blank lessons run as nbgrader runs them, so in smoke size."""

import os
import re

import nbformat
import pytest
from conftest import LESSONS, SOLUTIONS

from camp.course import progress, runner

TIMEOUT = int(os.environ.get("CAMP_CELL_TIMEOUT", "900"))  # seconds per cell


def _ids(paths):
    return [p.parent.name for p in paths]


def _graded(path, key):
    return [c for c in nbformat.read(path, 4).cells if c.metadata.get("nbgrader", {}).get(key)]


def _printed(path) -> str:
    """Everything an executed notebook's code cells printed."""
    return "".join(o.get("text", "") for c in nbformat.read(path, 4).cells if c.cell_type == "code"
                   for o in c.get("outputs", []))


def _run_solution(notebook, tmp_path, quick: bool | str):
    # One execution per notebook: papermill, as `make run` does. The solution holds the hidden tests too, so its
    # output records every graded cell's outcome, read as `python -m camp progress` reads it.
    graded = _graded(notebook, "grade")
    assert graded, f"{notebook.name} has no graded test cells"
    assert any("BEGIN HIDDEN TESTS" in c.source for c in graded), f"{notebook.name} has no hidden tests"
    run = runner.execute(notebook, tmp_path / notebook.name, quick=quick, timeout=TIMEOUT)
    result = progress.check_notebook(nbformat.read(run.output, 4), notebook.parent.name)
    failed = [f"{t.grade_id}: {t.message}" for t in result.tests if t.status == progress.FAIL]
    if failed:
        pytest.fail(f"{notebook.name}: graded tests fail on the solution: {failed}", pytrace=False)
    if not run.ok:
        pytest.fail(f"{notebook.relative_to(notebook.parents[2])}: {run.error}", pytrace=False)
    assert result.tests and all(t.status == progress.PASS for t in result.tests), result.tests
    if notebook.parent.name == "02_emotion_classifier":  # tests run offline: the real-tweets cell must say it skipped
        assert "Skipped: the hub is unreachable" in _printed(run.output)
    return run


@pytest.mark.notebook
@pytest.mark.parametrize("notebook", SOLUTIONS, ids=_ids(SOLUTIONS))
def test_solution_runs_in_smoke_size_and_passes_its_graded_tests(notebook, tmp_path):
    # The fast tier (make test, CI): every cell runs at the smallest size, every graded test passes, and the
    # checks of what a lesson teaches say they were skipped rather than pass on too little training.
    run = _run_solution(notebook, tmp_path, "smoke")
    checks = sum(c.source.count("utils.quality_check(") for c in nbformat.read(notebook, 4).cells)
    assert _printed(run.output).count("skipped in smoke size") == checks, "every quality check should say it was skipped"


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.parametrize("notebook", SOLUTIONS, ids=_ids(SOLUTIONS))
def test_solution_runs_in_quick_mode_and_passes_its_graded_tests(notebook, tmp_path):
    # The full tier (make test-full): quick mode, where the lesson's quality checks are asserted.
    run = _run_solution(notebook, tmp_path, True)
    assert "skipped in smoke size" not in _printed(run.output)


@pytest.mark.notebook
@pytest.mark.parametrize("notebook", LESSONS, ids=_ids(LESSONS))
def test_blank_lesson_fails_each_graded_test_because_its_exercise_is_blank(notebook):
    # nbgrader validates with errors allowed and reports only passing cells, so a lesson whose cells all fail
    # from an import error would pass a plain "no graded test passes" check. Run the blank lesson as nbgrader
    # does and read every cell's error (`blank_failures`).
    assert _graded(notebook, "grade"), f"{notebook.name} has no graded test cells"
    nb, problem = progress.execute(notebook, timeout=TIMEOUT)
    assert not problem, problem
    if wrong := blank_failures(nb):
        pytest.fail(f"{notebook.name}, blank: cells that fail for a reason other than a blank exercise:\n"
                    + "\n".join(wrong), pytrace=False)


def blank_failures(nb) -> list[str]:
    """What is wrong with an executed blank lesson: each graded test must fail with the exercise's
    NotImplementedError, and every other cell must run, unless it calls a blank exercise (NotImplementedError)
    or uses a name that only such a cell would have defined (NameError)."""
    blank, wrong = set(), []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        error = next((o for o in cell.get("outputs", []) if o.get("output_type") == "error"), None)
        graded = cell.metadata.get("nbgrader", {}).get("grade")
        if error is None:
            if graded:
                wrong.append(f"cell {index + 1} (graded test) passes on the blank lesson")
            continue
        name = error.get("ename")
        missing = re.search(r"name '(\w+)' is not defined", error.get("evalue", ""))
        if name == "NotImplementedError" or (
                not graded and name == "NameError" and missing and missing.group(1) in blank):
            blank.update(_assigned(cell.source))  # names this cell would have defined
            continue
        wrong.append(f"cell {index + 1}{' (graded test)' if graded else ''}: {name}: {error.get('evalue', '')[:200]}")
    return wrong


def _assigned(source: str) -> set[str]:
    """Names a cell binds anywhere in it (assignments, loops, defs, classes, imports)."""
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:  # IPython magics
        return set()
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def test_blank_check_catches_a_lesson_broken_by_an_import_error():
    # What the old check (no graded test passes) let through: every cell failing from an import error.
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    def cell(source, ename=None, evalue="", grade=False):
        c = new_code_cell(source, metadata={"nbgrader": {"grade": grade, "grade_id": source[:8]}})
        c.outputs = [new_output("error", ename=ename, evalue=evalue, traceback=[])] if ename else []
        return c

    exercise = cell("def f():\n    raise NotImplementedError()")
    honest = new_notebook(cells=[exercise, cell("y = f()", "NotImplementedError"), cell("z = y + 1", "NameError",
                                 "name 'y' is not defined"), cell("assert f() == 1", "NotImplementedError", grade=True)])
    assert blank_failures(honest) == []
    broken = new_notebook(cells=[cell("import camp.gone", "ModuleNotFoundError", "No module named 'camp.gone'"),
                                 exercise, cell("assert f() == 1", "NameError", "name 'camp' is not defined",
                                                grade=True)])
    assert [w.split(":")[0] for w in blank_failures(broken)] == ["cell 1", "cell 3 (graded test)"]
    passing = new_notebook(cells=[exercise, cell("assert True", grade=True)])
    assert blank_failures(passing) == ["cell 2 (graded test) passes on the blank lesson"]


def test_lessons_and_solutions_pair_up():
    assert _ids(LESSONS) == _ids(SOLUTIONS)
