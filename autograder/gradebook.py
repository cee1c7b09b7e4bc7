"""Write grading results into nbgrader's gradebook as nbgrader itself would, so that ``nbgrader export``, the
formgrader's pages and ``nbgrader generate_feedback`` all see the kit's grades.

The gradebook's cells are the assignment's own (``nbgrader generate_assignment`` records them): each graded
function ``f`` has one visible test cell ``test_f`` whose points are the sum of ``f``'s hidden points. A
function's share of its hidden points passed, times that cell's points, is the cell's auto score (partial
credit, as nbgrader allows). The submission gets its time from ``timestamp.txt``, which ``grade`` copies beside
the results as ``nbgrader autograde`` does, and nbgrader's late penalty plugin is applied. A score a grader
overrode in the formgrader stays; when a regrade changes that cell's auto score, it is said and the cell is marked
for review again.

Everything that could make the gradebook wrong is checked first, and refused with one line, before anything is
written: a missing file, a gradebook that does not know the assignment, or whose cells do not fit its hidden suite.
"""
from __future__ import annotations

import os
import sqlite3
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

from autograder.results import GRADED, SubmissionResult, result_folder

TIMESTAMP = "timestamp.txt"  # nbgrader's name for a submission's time, in submitted/ and autograded/
SUBMISSION_FILES = (TIMESTAMP, "submission_secret.txt")  # what nbgrader's exchange keeps with a submission


class GradebookError(ValueError):
    """The gradebook cannot take these results; the message says why in one line, and nothing was written."""


def function_of(test_name: str) -> str:
    """The function (or class) a hidden test checks: the name before its colon, as in ``corr2d: padding 1``."""
    return test_name.split(":")[0].split(".")[0].strip()


def cell_scores(result: SubmissionResult, cells: dict[str, float]) -> dict[str, float | None]:
    """Each grade cell's auto score: the share of its function's hidden points ``result`` got, times the cell's
    points (``cells``: name -> points); 0 for a notebook that was not graded, None after a grader failure."""
    if result.status != GRADED:
        return dict.fromkeys(cells, None if result.status == "grader error" else 0.0)
    scores = {}
    for cell, points in cells.items():
        tests = [t for t in result.graded if f"test_{function_of(t.name)}" == cell]
        total = sum(t.max_score for t in tests)
        scores[cell] = round(points * sum(t.score for t in tests) / total, 6) if total else 0.0
    return scores


@dataclass
class Layout:
    """What the gradebook knows of one assignment: its notebook and grade cells (name -> points)."""
    notebook: str
    cells: dict[str, float]


def read_layout(db: Path, assignment: str, results: list[SubmissionResult], course_id: str) -> Layout:
    """The assignment's notebook and grade cells as ``db`` records them, read without changing the file;
    :class:`GradebookError` when they cannot take ``results``."""
    make = f"`nbgrader generate_assignment {assignment}` (`make exercises`) in the course folder"
    if not db.is_file():
        raise GradebookError(f"{db} does not exist: create the course's gradebook with {make}, then grade again")
    try:
        with sqlite3.connect(f"file:{db.resolve()}?mode=ro", uri=True) as connection:
            courses = [row[0] for row in connection.execute("SELECT id FROM course")]
            notebooks = connection.execute(
                "SELECT notebook.id, notebook.name FROM notebook JOIN assignment ON notebook.assignment_id = "
                "assignment.id WHERE assignment.name = ?", (assignment,)).fetchall()
            known = [row[0] for row in connection.execute("SELECT name FROM assignment ORDER BY name")]
            chosen = dict((name, id_) for id_, name in notebooks)
            notebook = assignment if assignment in chosen else (notebooks[0][1] if len(notebooks) == 1 else "")
            cells = dict(connection.execute(
                "SELECT base_cell.name, grade_cells.max_score FROM grade_cells JOIN base_cell ON grade_cells.id = "
                "base_cell.id WHERE base_cell.notebook_id = ?", (chosen.get(notebook, ""),)).fetchall())
    except sqlite3.Error as error:
        raise GradebookError(f"{db} is not an nbgrader gradebook ({error})") from None
    if course_id and courses and course_id not in courses:
        raise GradebookError(f"{db} is the gradebook of course {', '.join(courses)}, not of this course "
                             f"({course_id}, as nbgrader_config.py says): give this course's gradebook")
    if not notebooks:
        raise GradebookError(f"{db} does not know the assignment {assignment} (it knows: {', '.join(known) or 'none'}"
                             f"): record it with {make}, or give this course's gradebook")
    if not notebook:
        raise GradebookError(f"{db} records several notebooks for {assignment}, none named {assignment}: "
                             f"{', '.join(sorted(chosen))}")
    graded = {f"test_{function_of(t.name)}" for r in results for t in r.graded}
    if missing := sorted(graded - set(cells)):
        raise GradebookError(f"{db} has no grade cell {', '.join(missing)} in {assignment}'s notebook (it has "
                             f"{', '.join(sorted(cells)) or 'none'}): each function the hidden suite grades needs "
                             f"its test cell test_<function>; is it another course's gradebook, or older than "
                             f"solutions/? Run {make}")
    return Layout(notebook, cells)


def course_config():
    """The course's nbgrader configuration (``nbgrader_config.py`` here and in Jupyter's config folders), as
    nbgrader's own commands would read it here."""
    from nbgrader.apps.baseapp import NbGrader

    app = NbGrader()
    app.log.setLevel("ERROR")  # "no nbgrader_config.py found" is no news here
    app.load_config_file()
    return app.config


def course_id() -> str:
    return course_config().CourseDirectory.get("course_id", "")


def record_all(db: Path, results: list[SubmissionResult], out: Path) -> list[str]:
    """:func:`record` for each assignment among ``results``; every assignment is checked before any is written."""
    assignments = sorted({r.assignment for r in results})
    for assignment in assignments:
        read_layout(db, assignment, [r for r in results if r.assignment == assignment], course_id())
    return [line for a in assignments for line in record(db, [r for r in results if r.assignment == a], out)]


def submission_time(out: Path, student: str, assignment: str):
    """The submission's time, from the ``timestamp.txt`` beside its results, read as nbgrader reads it; None
    without one."""
    from nbgrader.utils import parse_utc

    path = result_folder(out, student, assignment) / TIMESTAMP
    text = path.read_text().strip() if path.is_file() else ""
    return parse_utc(text) if text else None


def record(db: Path, results: list[SubmissionResult], out: Path) -> list[str]:
    """Write ``results`` (one assignment's, graded into ``out``) into ``db``; returns the lines to print (overrides
    to review, students added, submissions without a time). Raises :class:`GradebookError` before writing."""
    if not results:
        return []
    assignment = results[0].assignment
    config = course_config()
    layout = read_layout(db, assignment, results, course_id())
    # nbgrader runs the `alembic` command it installs beside Python; find it without an activated venv.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    from nbgrader.api import Gradebook, MissingEntry
    from nbgrader.preprocessors import AssignLatePenalties
    from sqlalchemy.exc import SAWarning

    create_student = config.Autograde.get("create_student", True)
    late = AssignLatePenalties(config=config)
    late.init_plugin()
    lines = []
    with warnings.catch_warnings(), Gradebook(f"sqlite:///{db.resolve()}") as gb:
        # nbgrader 0.9's own relationships make SQLAlchemy 2 warn at each submission; nothing a user can act on
        warnings.simplefilter("ignore", SAWarning)
        for result in sorted(results, key=lambda r: r.student):
            try:
                gb.find_student(result.student)
            except MissingEntry:
                if not create_student:
                    lines.append(f"{result.student} is not a student in {db}: not recorded there (add them with "
                                 f"`nbgrader db student add {result.student}`)")
                    continue
                gb.add_student(result.student)
                lines.append(f"{result.student} was not a student in {db}: added, as `nbgrader autograde` does")
            timestamp = submission_time(out, result.student, assignment)
            if timestamp is None and result.status == GRADED:
                lines.append(f"{result.student}: no {TIMESTAMP} in the submission (collected by hand?): recorded "
                             "without a submission time, so no late penalty applies")
            submission = gb.update_or_create_submission(assignment, result.student, timestamp=timestamp)
            for cell, score in cell_scores(result, layout.cells).items():
                grade = gb.find_grade(cell, layout.notebook, assignment, result.student)
                if grade.manual_score is not None and grade.auto_score != score:
                    lines.append(f"{result.student}: {cell}'s autograder score changed from {grade.auto_score:g} to "
                                 f"{score:g}; the manual score {grade.manual_score:g} given in the formgrader stays, "
                                 "marked for review")
                    grade.needs_manual_grade = True
                elif grade.manual_score is None:
                    grade.needs_manual_grade = score is None
                grade.auto_score = score
            notebook = gb.find_submission_notebook(layout.notebook, assignment, result.student)
            notebook.late_submission_penalty = None
            if submission.total_seconds_late > 0:
                penalty = late.plugin_inst.late_submission_penalty(result.student, notebook.score,
                                                                   submission.total_seconds_late)
                if penalty is not None:
                    notebook.late_submission_penalty = late._check_late_penalty(notebook, penalty)
            gb.db.commit()
    return lines


def record_or_refuse(parser, db: Path, results: list[SubmissionResult], out: Path, unwritten: str) -> None:
    """:func:`record_all` for a verb: what it has to say on stderr; a gradebook that cannot take ``results`` is
    ``parser``'s one-line error (exit status 2), with ``unwritten`` saying what was done all the same."""
    try:
        lines = record_all(db, results, out)
    except GradebookError as error:
        parser.error(f"{error} ({unwritten})")
    for line in lines:
        print(f"gradebook: {line}", file=sys.stderr)
