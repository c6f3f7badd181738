"""Graded exercises refuse a submission that calls camp's (or scikit-learn's) own implementation instead of the
learner's. Each test runs the exercise's test cell, visible and hidden parts, from the solution notebook, first
with the reference answer (it passes), then with a cheat (it must fail). More exercises join this with issue 20."""

import nbformat
import pytest
from conftest import ROOT


def _cells(lesson: str) -> dict[str, str]:
    nb = nbformat.read(ROOT / "solutions" / lesson / f"{lesson}.ipynb", 4)
    return {c.metadata["nbgrader"]["grade_id"]: c.source for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id")}


def test_macro_f1_must_be_written_from_scratch():
    cells = _cells("02_emotion_classifier")
    honest: dict = {}
    exec(cells["macro_f1"], honest)
    exec(cells["macro_f1_tests"], honest)  # the reference answer passes

    import camp.metrics

    def cheat(y_true, y_pred, num_classes):
        return camp.metrics.classification_metrics(y_true, y_pred, num_classes)["macro_f1"]

    with pytest.raises(AssertionError, match="write it from scratch"):
        exec(cells["macro_f1_tests"], {"macro_f1": cheat})
