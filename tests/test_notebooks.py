"""Every solution notebook runs end to end in quick mode, passes its own graded tests, and every generated
lesson fails all of them (so the tests really test the learner's code)."""

import os

import nbformat
import pytest
from conftest import LESSONS, SOLUTIONS

from camp.course import progress, runner

TIMEOUT = int(os.environ.get("CAMP_CELL_TIMEOUT", "900"))  # seconds per cell


def _ids(paths):
    return [p.parent.name for p in paths]


def _graded(path, key):
    return [c for c in nbformat.read(path, 4).cells if c.metadata.get("nbgrader", {}).get(key)]


@pytest.mark.notebook
@pytest.mark.parametrize("notebook", SOLUTIONS, ids=_ids(SOLUTIONS))
def test_solution_runs_in_quick_mode_and_passes_its_graded_tests(notebook, tmp_path):
    # One execution per notebook: papermill in quick mode, as `make run` does. The solution holds the hidden
    # tests too, so its output records every graded cell's outcome, read as `python -m camp progress` reads it.
    graded = _graded(notebook, "grade")
    assert graded, f"{notebook.name} has no graded test cells"
    assert any("BEGIN HIDDEN TESTS" in c.source for c in graded), f"{notebook.name} has no hidden tests"
    run = runner.execute(notebook, tmp_path / notebook.name, quick=True, timeout=TIMEOUT)
    result = progress.check_notebook(nbformat.read(run.output, 4), notebook.parent.name)
    failed = [f"{t.grade_id}: {t.message}" for t in result.tests if t.status == progress.FAIL]
    if failed:
        pytest.fail(f"{notebook.name}: graded tests fail on the solution: {failed}", pytrace=False)
    if not run.ok:
        pytest.fail(f"{notebook.relative_to(notebook.parents[2])}: {run.error}", pytrace=False)
    assert result.tests and all(t.status == progress.PASS for t in result.tests), result.tests
    if notebook.parent.name == "02_emotion_classifier":  # tests run offline: the real-tweets cell must say it skipped
        printed = "".join(o.get("text", "") for c in nbformat.read(run.output, 4).cells if c.cell_type == "code"
                          for o in c.get("outputs", []))
        assert "Skipped: the hub is unreachable" in printed


@pytest.mark.notebook
@pytest.mark.parametrize("notebook", LESSONS, ids=_ids(LESSONS))
def test_blank_lesson_passes_none_of_its_graded_tests(notebook):
    from nbgrader.validator import Validator

    assert _graded(notebook, "grade"), f"{notebook.name} has no graded test cells"
    result = Validator(invert=True, config=_timeout_config()).validate(str(notebook))
    if result:
        pytest.fail(f"{notebook.name}: these graded tests pass on the blank lesson:\n{result}", pytrace=False)


def test_lessons_and_solutions_pair_up():
    assert _ids(LESSONS) == _ids(SOLUTIONS)


def _timeout_config():
    from traitlets.config import Config

    config = Config()
    config.Execute.timeout = TIMEOUT
    return config
