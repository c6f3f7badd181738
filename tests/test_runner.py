"""`python -m camp run`: papermill execution into runs/<timestamp>/ and the HTML report."""

import shutil
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from camp.course import runner

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("value", "expected"), [("1", True), ("0", False), (True, True), ("false", False),
                                                  ("smoke", "smoke"), ("Smoke", "smoke")])
def test_resolve_quick_explicit(value, expected):
    assert runner.resolve_quick(value) == expected and type(runner.resolve_quick(value)) is type(expected)


def test_resolve_quick_auto_is_quick_without_gpu():
    import torch

    assert runner.resolve_quick("auto") is (not torch.cuda.is_available())


def test_resolve_quick_rejects_garbage():
    with pytest.raises(ValueError, match="QUICK must be"):
        runner.resolve_quick("maybe")


def test_the_lesson_sizes_follow_quick_and_grading(monkeypatch):
    from camp import utils

    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    assert [utils.run_size(q) for q in (True, False, "smoke")] == ["quick", "full", "smoke"]
    with pytest.raises(ValueError, match='QUICK must be True, False or "smoke"'):
        utils.run_size("fast")
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")  # nbgrader executing: smoke size, whatever QUICK says
    assert [utils.run_size(q) for q in (True, False, "smoke")] == ["smoke"] * 3
    with pytest.raises(AssertionError, match="PPO reaches 0.6"):
        utils.quality_check(False, "PPO reaches 0.6", "quick")
    utils.quality_check(True, "PPO reaches 0.6", "full")  # a claim that holds passes quietly


def test_a_smoke_run_is_reported_but_never_kept(tmp_path):
    from camp.course.release import CourseError

    course = _course_with(tmp_path, [new_code_cell("x = 1")])
    report, runs = runner.run_all(course, quick="smoke", out_root=tmp_path / "runs")
    assert runs[0].ok and runs[0].mode == "smoke" and "mode: smoke" in report.read_text()
    with pytest.raises(CourseError, match="only quick and full runs are kept"):
        runner.keep([report.parent], tmp_path / "lessons.json")
    assert not (tmp_path / "lessons.json").exists()


def _course_with(tmp_path, cells) -> Path:
    nb = new_notebook(cells=[new_code_cell("QUICK = True", metadata={"tags": ["parameters"]}), *cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    folder = tmp_path / "solutions" / "01_broken"
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / "01_broken.ipynb")
    shutil.copy(ROOT / "nbgrader_config.py", tmp_path)
    return tmp_path


def test_run_all_reports_status_time_and_key_figure(tmp_path):
    course = _course_with(tmp_path, [
        new_code_cell("from camp.utils import key_figure\nkey_figure('answer', 42, 'units')"),
        new_code_cell("assert QUICK is False, 'the runner must pass QUICK through'"),
    ])
    report, runs = runner.run_all(course, quick="0", out_root=tmp_path / "runs")
    assert [r.ok for r in runs] == [True], runs[0].error
    assert runs[0].figures == [{"label": "answer", "value": 42, "unit": "units"}]
    page = report.read_text()
    assert report.parent.parent == tmp_path / "runs"
    assert "01_broken" in page and "passed" in page and "answer: 42 units" in page and "full" in page
    assert (report.parent / "01_broken.ipynb").exists()  # the executed notebook sits next to the report


def test_a_failing_cell_is_named_in_the_report(tmp_path):
    course = _course_with(tmp_path, [new_code_cell("x = 1"), new_code_cell("raise RuntimeError('boom')")])
    report, runs = runner.run_all(course, quick="1", out_root=tmp_path / "runs")
    assert not runs[0].ok
    assert "01_broken.ipynb: cell" in runs[0].error and "RuntimeError: boom" in runs[0].error
    assert "FAILED" in report.read_text()


def test_a_run_prints_nothing_on_stderr(tmp_path, capfd):
    # The kernel inherits stderr: ipykernel >= 7 warned "Kernel is running over TCP without encryption" there
    # for every lesson of `make run` until runner.kernel_config() turned encryption on.
    course = _course_with(tmp_path, [new_code_cell("x = 1")])
    run = runner.execute(course / "solutions" / "01_broken" / "01_broken.ipynb", tmp_path / "out.ipynb", quick=True)
    assert run.ok and capfd.readouterr().err == ""


def test_a_lesson_is_chosen_by_its_number_or_refused_by_name(tmp_path):
    from camp.course.release import CourseError

    course = _course_with(tmp_path, [new_code_cell("x = 1")])
    _, runs = runner.run_all(course, quick="1", lessons=["1"], out_root=tmp_path / "runs")
    assert [r.lesson for r in runs] == ["01_broken"] and runs[0].ok
    with pytest.raises(CourseError, match="no lesson '08'.*there is: 01_broken"):
        runner.run_all(course, quick="1", lessons=["08"], out_root=tmp_path / "runs")


def test_report_json_is_kept_and_a_failed_lesson_is_not(tmp_path):
    # `run --keep` copies each passing lesson's time into benchmarks/lessons.json (the README's table quotes it);
    # a failed run must not replace a good time.
    import json

    course = _course_with(tmp_path, [new_code_cell("from camp.utils import key_figure\nkey_figure('gain', '0.1 -> 0.2')")])
    report, _ = runner.run_all(course, quick="1", out_root=tmp_path / "runs")
    saved = json.loads((report.parent / "report.json").read_text())
    assert saved["mode"] == "quick" and saved["lessons"][0]["lesson"] == "01_broken" and saved["lessons"][0]["ok"]
    kept = tmp_path / "lessons.json"
    table = runner.keep([report.parent], kept, note="first")
    first = table["quick"]["01_broken"]
    assert first["seconds"] == saved["lessons"][0]["seconds"] and first["run"] == report.parent.name
    assert first["note"] == "first" and first["figures"] == {"gain": "0.1 -> 0.2"} and table["full"] == {}

    broken = _course_with(tmp_path / "other", [new_code_cell("raise RuntimeError('boom')")])
    failed, _ = runner.run_all(broken, quick="1", out_root=tmp_path / "runs2")
    runner.keep([failed.parent], kept)
    assert json.loads(kept.read_text())["quick"]["01_broken"] == first


def test_an_old_html_report_is_read_and_a_stranger_folder_refused(tmp_path):
    from camp.course.release import CourseError

    course = _course_with(tmp_path, [new_code_cell("x = 1")])
    report, runs = runner.run_all(course, quick="0", out_root=tmp_path / "runs")
    (report.parent / "report.json").unlink()  # runs made before report.json existed have only index.html
    old = runner.read_report(report.parent)
    assert old["mode"] == "full" and old["lessons"] == [{"lesson": "01_broken", "ok": True,
                                                         "seconds": round(runs[0].seconds, 1)}]
    with pytest.raises(CourseError, match="written by `python -m camp run`"):
        runner.read_report(tmp_path)


def test_a_key_table_is_shown_once_and_kept_with_its_values(tmp_path):
    # A lesson's headline table (utils.key_table) is kept in benchmarks/lessons.json so the README can quote it.
    course = _course_with(tmp_path, [new_code_cell(
        "import pandas as pd\nfrom camp.utils import key_table\n"
        "key_table('before and after', pd.DataFrame({'before': {'reward': 0.12345, 'judge': 0.5},"
        " 'after': {'reward': 0.2, 'judge': float('nan')}, 'change': {'reward': '+0.1 [0.0, 0.2]', 'judge': '-'}}))")])
    report, runs = runner.run_all(course, quick="1", out_root=tmp_path / "runs")
    assert [r.ok for r in runs] == [True], runs[0].error
    value = {"before": {"reward": 0.123, "judge": 0.5}, "after": {"reward": 0.2, "judge": None},
             "change": {"reward": "+0.1 [0.0, 0.2]", "judge": "-"}}
    assert runs[0].figures == [{"label": "before and after", "value": value, "unit": ""}]
    cell = next(c for c in nbformat.read(runs[0].output, as_version=4).cells if "key_table(" in c.source)
    shown = cell.outputs
    assert len(shown) == 1 and "<table" in shown[0]["data"]["text/html"], "the table is shown once, as HTML"
    assert "before and after: (a table, in report.json)" in report.read_text()
    table = runner.keep([report.parent], tmp_path / "lessons.json")
    assert table["quick"]["01_broken"]["figures"] == {"before and after": value}


def test_key_table_refuses_what_is_not_a_table():
    from camp import utils

    with pytest.raises(TypeError, match="pandas DataFrame"):
        utils.key_table("rows", [{"a": 1}])


def test_a_cell_past_its_time_limit_fails_the_lesson_instead_of_the_run(tmp_path):
    # A full-mode cell once ran past papermill's limit and the whole `camp run` died with a traceback; the lesson
    # must fail with a message instead, and full mode must allow the hour-long training cells it has.
    course = _course_with(tmp_path, [new_code_cell("import time\ntime.sleep(30)")])
    notebook = course / "solutions" / "01_broken" / "01_broken.ipynb"
    run = runner.execute(notebook, tmp_path / "out" / "01_broken.ipynb", quick=True, timeout=3)
    assert not run.ok and "ran past the 3 s limit per cell" in run.error
    assert runner.CELL_TIMEOUT_S["full"] >= 3 * 3600 > runner.CELL_TIMEOUT_S["quick"] > runner.CELL_TIMEOUT_S["smoke"]


def _ran(folder: Path, figure: float, seconds: float, reward: float) -> Path:
    """A run folder holding one executed notebook: a key figure, a line that reports a time, and a result."""
    from camp.utils import KEY_FIGURE_MIME

    cell = new_code_cell("...")
    cell.outputs = [nbformat.v4.new_output("display_data", data={
                        KEY_FIGURE_MIME: {"label": "gain", "value": figure, "unit": ""}, "text/plain": f"gain: {figure}"}),
                    nbformat.v4.new_output("stream", name="stdout", text=f"trained in {seconds} s\nreward {reward}\n"),
                    nbformat.v4.new_output("stream", name="stderr", text=f"progress {seconds}\n")]
    folder.mkdir()
    nbformat.write(new_notebook(cells=[cell]), folder / "06_rl_fine_tuning.ipynb")
    return folder


def test_compare_runs_sees_a_moved_figure_or_result_but_not_a_time(tmp_path):
    before = _ran(tmp_path / "a", 0.12, 10.5, 0.3)
    same = runner.compare_runs(before, _ran(tmp_path / "b", 0.12, 99.0, 0.3))["06_rl_fine_tuning"]
    assert same["figures_identical"] and same["text_outputs_differing"] == 0  # only the times moved
    moved = runner.compare_runs(before, _ran(tmp_path / "c", 0.13, 10.5, 0.4))["06_rl_fine_tuning"]
    assert not moved["figures_identical"] and moved["figures"]["gain"] == {"before": 0.12, "after": 0.13}
    assert moved["text_outputs_differing"] == 2 and "reward 0.4" in moved["differences"][1]["after"]
