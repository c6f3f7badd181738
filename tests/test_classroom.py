"""The instructor's round trip for lesson 00, through nbgrader's own command line:
generate, collect one correct and one blank submission, autograde, export grades, feedback."""

from pathlib import Path

import nbformat

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
