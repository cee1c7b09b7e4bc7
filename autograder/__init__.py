"""The course's autograder: ``python -m autograder --help`` lists its commands."""
from pathlib import Path

SUITES = Path(__file__).resolve().parent / "suites"  # the hidden suites, one folder per assignment
# The command line's verbs, each the module autograder.<verb>, and what each does (their --help says more).
VERBS = {
    "grade": "grade one notebook or a whole class, in parallel, each notebook in its own sandbox",
    "merge": "join the output folders of sharded `grade --shard K/N` runs into one, with one grades.csv",
    "package": "build a Gradescope autograder zip for one assignment",
    "report": "one HTML page for the instructor: scores, pass rates, common failures, slowest submissions",
    "slurm": "grade a class on a Slurm cluster: one job array of `grade --shard K/N` tasks, then one merge job",
}
