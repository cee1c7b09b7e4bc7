"""nbgrader for this course: instructor notebooks in solutions/, student versions in exercises/.

Run nbgrader from the repository root: `nbgrader generate_assignment conv_basics` (or
`make exercises`) writes exercises/conv_basics/.
Grading uses the sandboxed autograder (`python -m autograder grade ...`), not `nbgrader autograde`.
"""
c = get_config()  # noqa: F821 - provided by nbgrader

c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "exercises"
# Released with each assignment: every file beside its notebook (cnn_vs_fc's mnist_sample/), except these.
# `data` is where the notebook downloads full MNIST (MNIST_FULL=1): an instructor's copy must not be released.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "data"]
