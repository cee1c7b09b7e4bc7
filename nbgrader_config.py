"""nbgrader for this course: instructor notebooks in solutions/, student versions in exercises/.

Run nbgrader from the repository root: `nbgrader generate_assignment conv_basics` (or
`make exercises`) writes exercises/conv_basics/ and records the assignment in gradebook.db.
Grading is the sandboxed autograder's, whichever command starts it: `python -m autograder grade ...
--nbgrader-db gradebook.db` for a class, or nbgrader's own `nbgrader autograde` and the formgrader's
Autograde button, which grade each submission with it (autograder/nbgrader_autograde.py) instead of
running the notebook in a kernel here.
"""
c = get_config()  # noqa: F821 - provided by nbgrader

c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "exercises"
# Released with each assignment: every file beside its notebook (cnn_vs_fc's mnist_sample/), except these.
# `data` is where the notebook downloads full MNIST (MNIST_FULL=1): an instructor's copy must not be released.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "data"]
# nbgrader autograde: nbgrader's checks of the submission, then the kit's hidden suite in its sandbox.
c.Autograde.autograde_preprocessors = ["autograder.nbgrader_autograde.SandboxGrade"]
