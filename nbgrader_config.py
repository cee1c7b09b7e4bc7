"""nbgrader for this course: instructor notebooks in solutions/, student versions in exercises/.

Run nbgrader from the repository root: `nbgrader generate_assignment conv_basics` (or
`make exercises`) writes exercises/conv_basics/.
Grading uses the sandboxed autograder (`python -m autograder grade ...`), not `nbgrader autograde`.
"""
c = get_config()  # noqa: F821 - provided by nbgrader

c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "exercises"
