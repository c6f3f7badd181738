"""The instructor's round trip for lesson 00, through nbgrader's own command line:
generate, collect one correct and one blank submission, autograde, export grades, feedback."""

from pathlib import Path

import nbformat
import pytest

from camp.course.classroom import answered, course_folder, grades, nbgrader, submit

ROOT = Path(__file__).resolve().parents[1]
LESSON = "00_welcome"


def test_round_trip_scores_correct_and_blank_submissions(tmp_path):
    # 1. Generate the release (with the gradebook database, as an instructor would).
    course = course_folder(ROOT, [LESSON], tmp_path)
    release = course / "lessons" / LESSON / f"{LESSON}.ipynb"
    assert "BEGIN SOLUTION" not in release.read_text()

    # 2. Collect two submissions: alice solved the exercise, bob handed in the blank notebook.
    submit(course, "alice", LESSON, answered(release, course / "solutions" / LESSON / f"{LESSON}.ipynb"))
    submit(course, "bob", LESSON, nbformat.read(release, 4))

    # 3. Autograde (hidden tests are restored here) and export the grades.
    nbgrader(course, "autograde", LESSON)
    marks = grades(course)
    assert marks["alice", LESSON] == {"score": 2.0, "max_score": 2.0}
    assert marks["bob", LESSON]["score"] == 0.0

    # 4. Feedback goes back to students without the hidden tests.
    nbgrader(course, "generate_feedback", LESSON)
    for student in ("alice", "bob"):
        page = (course / "feedback" / student / LESSON / f"{LESSON}.html").read_text()
        assert "discounted_return" in page
        assert "HIDDEN TESTS" not in page and "_rng = _random.Random(7)" not in page


@pytest.mark.slow  # the full tier: nbgrader autogrades all nine lessons, in smoke size, one after another
def test_autograde_gives_every_lesson_s_reference_answers_full_points():
    # nbgrader scores a test cell that raises, or that writes to stderr (a library's warning), as 0 points
    from camp.course.classroom import time_autograde
    from camp.course.release import lesson_names

    def by_hand(lesson: str) -> float:  # written answers (lesson 08's model card) wait for a person's points
        cells = nbformat.read(ROOT / "solutions" / lesson / f"{lesson}.ipynb", 4).cells
        return sum(c.metadata["nbgrader"]["points"] for c in cells
                   if c.metadata.get("nbgrader", {}).get("grade") and c.metadata["nbgrader"].get("solution"))

    result = time_autograde([name[:2] for name in lesson_names(ROOT)], ROOT)
    short = {lesson: (row.get("score"), row.get("max_score")) for lesson, row in result["lessons"].items()
             if row.get("score") != row.get("max_score") - by_hand(lesson)}
    assert len(result["lessons"]) == 9 and not short, f"reference answers short of full points: {short}"
