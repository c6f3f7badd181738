"""`python -m camp progress`: scoring graded test cells from outputs, hints, executing a learner's copy, CLI."""

import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from camp.course import cli, progress

ROOT = Path(__file__).resolve().parents[1]


def _answer(source: str, grade_id: str, count=None, outputs=()):
    meta = {"nbgrader": {"grade": False, "solution": True, "grade_id": grade_id, "locked": False}}
    return new_code_cell(source, metadata=meta, execution_count=count, outputs=list(outputs))


def _test(source: str, grade_id: str, points=2, count=None, outputs=()):
    meta = {"nbgrader": {"grade": True, "solution": False, "grade_id": grade_id, "points": points, "locked": True}}
    return new_code_cell(source, metadata=meta, execution_count=count, outputs=list(outputs))


def _err(ename: str, evalue: str = "", *frames: int):
    # Tracebacks as ipykernel writes them: ANSI colours around "Cell In[N], line L".
    lines = [f"\x1b[36mCell\x1b[39m\x1b[36m \x1b[39m\x1b[32mIn[{n}]\x1b[39m\x1b[32m, line 2\x1b[39m" for n in frames]
    return new_output("error", ename=ename, evalue=evalue, traceback=lines + [f"\x1b[31m{ename}\x1b[39m: {evalue}"])


def _ok(text="ok\n"):
    return new_output("stream", name="stdout", text=text)


def test_saved_outputs_give_counts_points_and_the_failure_message():
    nb = new_notebook(cells=[
        new_markdown_cell("# Lesson"),
        new_code_cell("1 / 0", execution_count=1, outputs=[_err("ZeroDivisionError", "division by zero", 1)]),
        _answer("def f(x):\n    return x", "f", count=2),
        _test("assert f(1) == 1", "f_tests", points=2, count=3),  # ran, no output: passed
        _test("assert f(2) == 3, 'f(2)\nshould be 3'", "f_more", points=3, count=4,
              outputs=[_ok(), _err("AssertionError", "f(2)\nshould be 3", 4)]),
        _test("assert f(0) == 0", "f_never", points=1.5),  # never executed
        # An answer cell that is graded by hand (grade and solution) is not an autograder test.
        new_code_cell("", metadata={"nbgrader": {"grade": True, "solution": True, "grade_id": "essay", "points": 5}}),
    ])
    result = progress.check_notebook(nb, "07_demo")
    assert [(t.grade_id, t.status) for t in result.tests] == [
        ("f_tests", "pass"), ("f_more", "fail"), ("f_never", "not run")]  # the ungraded ZeroDivisionError is ignored
    assert (result.passed, len(result.tests), result.earned, result.possible) == (1, 3, 2.0, 6.5)
    # The exception's last line, folded onto one line; cells counted from 1 like ruff's "cell N".
    assert result.tests[1].message == "AssertionError: f(2) should be 3"
    assert result.tests[1].cell == 5
    assert "wrong answer" in result.tests[1].hint and "cell 5" in result.tests[1].hint
    assert result.first_problem() is result.tests[1]
    assert "Run All Cells" in result.tests[2].hint  # saved mode: run the notebook and save it


def test_a_solution_notebook_with_fabricated_outputs_scores_full_points():
    nb = nbformat.read(ROOT / "solutions" / "00_welcome" / "00_welcome.ipynb", 4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    for count, cell in enumerate(code, start=1):  # as if run top to bottom without an error
        cell.execution_count, cell.outputs = count, []
    tests = [c for c in code if c.metadata.get("nbgrader", {}).get("grade") and not c.metadata.nbgrader.get("solution")]
    points = sum(c.metadata.nbgrader.points for c in tests)
    result = progress.check_notebook(nb, "00_welcome")
    assert tests and (result.passed, len(result.tests), result.earned, result.possible) == (
        len(tests), len(tests), points, points)
    assert result.first_problem() is None
    tests[0].outputs = [_err("AssertionError", "hidden test")]
    result = progress.check_notebook(nb, "00_welcome")
    assert result.passed == len(tests) - 1 and result.tests[0].message == "AssertionError: hidden test"


def test_not_implemented_hint_follows_the_traceback_to_the_answer_cell():
    # The test calls `first`, so the answer cell to fix is cell 1 (In[1]), not `second`, the nearest one above.
    nb = new_notebook(cells=[
        _answer("def first():\n    raise NotImplementedError()", "first", count=1),
        _answer("def second():\n    raise NotImplementedError()", "second", count=2),
        _test("first()", "first_tests", count=3, outputs=[_err("NotImplementedError", "", 3, 1)]),
    ])
    test = progress.check_notebook(nb, "07_demo").tests[0]
    assert test.status == "fail" and test.message == "NotImplementedError"
    assert test.hint == "write your solution in cell 1 (`first`), in place of `raise NotImplementedError()`"


def test_not_implemented_hint_without_a_traceback_uses_the_nearest_answer_cell_above():
    nb = new_notebook(cells=[
        _answer("def first():\n    raise NotImplementedError()", "first", count=1),
        _answer("class Second:\n    pass", "second", count=2),
        _test("first()", "t", count=3, outputs=[_err("NotImplementedError")]),
    ])
    assert "cell 2 (`Second`)" in progress.check_notebook(nb, "07_demo").tests[0].hint


def test_name_error_hint_names_the_definition_that_raised():
    nb = new_notebook(cells=[
        _answer("import nothing_here\ndef g():\n    return 1", "g", count=1,
                outputs=[_err("ModuleNotFoundError", "No module named 'nothing_here'", 1)]),
        _test("assert g() == 1", "g_tests", count=2, outputs=[_err("NameError", "name 'g' is not defined", 2)]),
    ])
    executed = progress.check_notebook(nb, "07_demo", saved=False).tests[0]
    assert "cell 1 (`g`) defines it but raised ModuleNotFoundError" in executed.hint
    nb.cells[0].source = "def h():\n    return 1"  # renamed: nothing defines g any more
    nb.cells[0].outputs = []
    assert "no cell above defines `g`" in progress.check_notebook(nb, "07_demo", saved=False).tests[0].hint


def test_inject_parameters_goes_after_the_parameters_cell_on_a_copy():
    nb = new_notebook(cells=[new_code_cell("import os"), new_code_cell("QUICK = False", metadata={"tags": ["parameters"]}),
                             new_code_cell("print(QUICK)")])
    injected, index = progress.inject_parameters(nb, {"QUICK": True, "NAME": "x"})
    assert index == 2 and injected.cells[2].metadata.tags == ["injected-parameters"]
    assert "QUICK = True\nNAME = 'x'\n" in injected.cells[2].source
    assert len(nb.cells) == 3  # the original is untouched


def _lesson(folder: Path, name: str, cells) -> Path:
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    (folder / name).mkdir(parents=True, exist_ok=True)
    path = folder / name / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


def test_find_notebooks_layouts_and_lesson_selection(tmp_path):
    for name in ("00_intro", "03_env", "12_more"):
        _lesson(tmp_path, name, [])
    (tmp_path / "notes").mkdir()
    found = progress.find_notebooks(tmp_path)
    assert list(found) == ["00_intro", "03_env", "12_more"]
    assert list(progress.find_notebooks(tmp_path, ["3", "00_intro,12"])) == ["00_intro", "03_env", "12_more"]
    assert list(progress.find_notebooks(tmp_path / "03_env")) == ["03_env"]  # one lesson folder
    with pytest.raises(ValueError, match="no lesson '04'.*00_intro, 03_env, 12_more"):
        progress.find_notebooks(tmp_path, ["04"])
    with pytest.raises(ValueError, match="no lesson notebooks here"):
        progress.find_notebooks(tmp_path / "notes")


def test_execute_runs_past_errors_in_quick_mode_without_touching_the_file(tmp_path):
    path = _lesson(tmp_path, "01_tiny", [
        new_code_cell("QUICK = False", metadata={"tags": ["parameters"]}),
        _answer("def double(x):\n    return 2 * x", "double"),
        _answer("def halve(x):\n    raise NotImplementedError()", "halve"),
        _test("assert double(2) == 4", "double_tests", points=1),
        _test("assert halve(4) == 2", "halve_tests", points=2),
        # Runs after a failure, in the notebook's folder, with QUICK injected and nbgrader's flag set.
        _test("import os, pathlib\nassert QUICK is True\nassert pathlib.Path.cwd().name == '01_tiny'\n"
              "assert os.environ['NBGRADER_EXECUTION'] == 'validate'", "context_tests", points=1),
    ])
    before = path.read_bytes()
    nb, problem = progress.execute(path, timeout=60)
    result = progress.check_notebook(nb, "01_tiny", saved=False, error=problem)
    assert problem == ""
    assert [(t.grade_id, t.status) for t in result.tests] == [
        ("double_tests", "pass"), ("halve_tests", "fail"), ("context_tests", "pass")]
    assert (result.earned, result.possible) == (2.0, 4.0)
    assert result.tests[1].hint == "write your solution in cell 3 (`halve`), in place of `raise NotImplementedError()`"
    assert path.read_bytes() == before


def test_a_dead_kernel_is_reported_and_later_tests_count_as_not_run(tmp_path):
    path = _lesson(tmp_path, "02_crash", [
        _test("assert True", "before", points=1),
        new_code_cell("import os\nos._exit(1)  # what running out of memory looks like"),
        _test("assert True", "after", points=1),
    ])
    nb, problem = progress.execute(path, timeout=60)
    result = progress.check_notebook(nb, "02_crash", saved=False, error=problem)
    assert "DeadKernelError" in problem and "in cell 2" in problem
    assert [t.status for t in result.tests] == ["pass", "not run"]
    assert "stopped before this cell" in result.tests[1].hint


def test_cli_saved_reports_the_blank_welcome_lesson(monkeypatch, capsys):
    nb = nbformat.read(ROOT / "lessons" / "00_welcome" / "00_welcome.ipynb", 4)
    tests = [c for c in nb.cells if progress.is_graded_test(c)]
    points = sum(c.metadata.nbgrader.points for c in tests)
    monkeypatch.chdir(ROOT)
    assert cli.main(["progress", "--saved", "--lesson", "00"]) == 0
    out = capsys.readouterr().out
    # Released lessons carry no outputs: every test is "not run" and nothing was executed.
    assert f"00_welcome  0/{len(tests)} tests passed  0/{points:g} points" in out
    assert f"not run: {tests[0].metadata.nbgrader.grade_id}" in out and "01_emotion_data" not in out
    assert cli.main(["progress", "--saved", "--lesson", "00", "--json", "--dir", "lessons"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["mode"] == "saved" and (report["passed"], report["total"], report["possible"]) == (
        0, len(tests), points)
    assert {t["status"] for t in report["lessons"][0]["tests"]} == {"not run"}


@pytest.mark.parametrize(("args", "message"), [
    (["--dir", "no/such/folder"], "is not a folder"),
    (["--dir", "."], "python -m camp lessons"),  # a folder without lesson notebooks says what to do
    (["--saved", "--lesson", "42"], "no lesson '42'"),
])
def test_cli_bad_input_is_a_clear_error(monkeypatch, capsys, tmp_path, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lessons").mkdir()
    _lesson(tmp_path / "lessons", "00_welcome", [])
    assert cli.main(["progress", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


def test_a_test_cell_that_writes_to_stderr_fails_as_nbgrader_scores_it():
    # nbgrader gives no points to a graded test cell with stderr output (a library's warning included), so the
    # progress report and the notebook tests must not call it a pass
    cell = new_code_cell("model = load()", metadata={"nbgrader": {"grade": True, "solution": False,
                                                                   "grade_id": "t", "points": 3}})
    cell.execution_count = 1
    cell.outputs = [new_output("stream", name="stderr", text="\nLOAD REPORT: classifier.bias MISSING\n")]
    result = progress.check_notebook(new_notebook(cells=[cell]), "02_x")
    assert result.tests[0].status == progress.FAIL and result.earned == 0
    assert "LOAD REPORT" in result.tests[0].message and "stderr" in result.tests[0].hint
    cell.outputs = [new_output("stream", name="stdout", text="fine\n")]
    assert progress.check_notebook(new_notebook(cells=[cell]), "02_x").tests[0].status == progress.PASS
