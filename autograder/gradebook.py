"""Write grading results into nbgrader's gradebook, so ``nbgrader export`` lists the scores.

Each hidden test becomes an nbgrader grade cell (``hidden:<test name>``) of the assignment's
notebook, with the test's points as its maximum and the autograder's score as its auto score.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from nbgrader.api import Gradebook

from autograder.results import SubmissionResult


def record(db: Path, results: list[SubmissionResult]) -> None:
    # nbgrader runs the `alembic` command it installs beside Python; find it without an activated venv.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    with Gradebook(f"sqlite:///{db.resolve()}") as gb:
        for result in results:
            notebook = result.assignment
            gb.update_or_create_assignment(result.assignment)
            gb.update_or_create_notebook(notebook, result.assignment)
            for test in result.graded:
                gb.update_or_create_grade_cell(f"hidden:{test.name}", notebook, result.assignment,
                                               max_score=test.max_score, cell_type="code")
            gb.update_or_create_student(result.student)
            gb.update_or_create_submission(result.assignment, result.student)
            for test in result.graded:
                grade = gb.find_grade(f"hidden:{test.name}", notebook, result.assignment, result.student)
                grade.auto_score = test.score
            gb.db.commit()
