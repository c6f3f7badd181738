"""nbgrader configuration: solutions/ is the instructors' source, lessons/ the student release."""

from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import ClearHiddenTests, GetGrades

c = get_config()  # noqa: F821  (nbgrader injects get_config)

c.CourseDirectory.course_id = "empathy-camp"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "lessons"
# Never copy Python files (a jupytext pair would leak solutions), caches or checkpoints into a release.
c.CourseDirectory.ignore = [
    ".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "*.py", "checkpoints", "*.safetensors",
]
# Training cells outlive nbgrader's 30 s default; lessons shrink their work when NBGRADER_EXECUTION is set.
c.Execute.timeout = 600
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
# Feedback goes back to students: strip the hidden tests from it so they stay hidden next year too.
c.GenerateFeedback.preprocessors = [GetGrades, ClearHiddenTests, CSSHTMLHeaderPreprocessor]
