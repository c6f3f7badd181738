"""`python -m camp`: an error the user can fix is one line with exit code 2; a bug keeps its traceback."""

import pytest

from camp.course import cli
from camp.utils import CampError


def test_a_camp_error_is_one_line_and_exit_code_2(monkeypatch, capsys):
    def lessons(args):
        raise CampError("no course found here: run this from the Empathy Camp checkout.")

    monkeypatch.setattr(cli, "_lessons", lessons)
    assert cli.main(["lessons"]) == 2
    assert capsys.readouterr().err == "error: no course found here: run this from the Empathy Camp checkout.\n"


def test_a_bug_keeps_its_traceback(monkeypatch):
    def lessons(args):
        return {}["a key nobody wrote"]

    monkeypatch.setattr(cli, "_lessons", lessons)
    with pytest.raises(KeyError):
        cli.main(["lessons"])


def test_camp_errors_keep_their_old_base_classes():
    # Code that caught ValueError or RuntimeError before CampError existed still catches them.
    from camp.checkpoint import CheckpointError
    from camp.course.release import CourseError
    from camp.data import DataError

    assert issubclass(CourseError, CampError) and issubclass(CourseError, ValueError)
    assert issubclass(DataError, CampError) and issubclass(DataError, ValueError)
    assert issubclass(CheckpointError, CampError) and issubclass(CheckpointError, RuntimeError)


@pytest.mark.parametrize(("args", "message"), [
    (["--resume"], "--resume: no checkpoint at"),
    (["--model", "./no-such-model"], "--model ./no-such-model: no such folder"),
])
def test_train_classifier_path_arguments_fail_before_any_model_loads(tmp_path, capsys, args, message):
    assert cli.main(["train-classifier", "--out", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1


def test_bench_runs_each_choice_from_its_table(monkeypatch, capsys):
    # `bench WHAT` runs camp.course.bench.COMMANDS[WHAT]; the parser lists the same choices (without torch).
    import contextlib
    import io
    import json
    import re

    from camp.course import bench

    usage = io.StringIO()
    with contextlib.redirect_stdout(usage), pytest.raises(SystemExit):
        cli.main(["bench", "--help"])
    assert set(re.search(r"\{([\w,-]+)\}", usage.getvalue()).group(1).split(",")) == set(bench.COMMANDS)
    monkeypatch.setitem(bench.COMMANDS, "env", lambda args: {"benchmark": "env", "steps": args.steps})
    assert cli.main(["bench", "env", "--steps", "3"]) == 0
    assert json.loads(capsys.readouterr().out) == {"benchmark": "env", "steps": 3}

    def pending(args):
        raise bench.BenchPending("reference-s0 is being run by another bench process")

    monkeypatch.setitem(bench.COMMANDS, "prefs", pending)
    assert cli.main(["bench", "prefs", "--reward-model", "rm"]) == 3  # what is saved stays; run it again later
    assert capsys.readouterr().out == "reference-s0 is being run by another bench process\n"
