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
