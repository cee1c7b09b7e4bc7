"""A real nbgrader course, release to returned feedback, graded by the kit (issue 21).

The instructor's course folder holds this repository's nbgrader_config.py and solutions/; `nbgrader
generate_assignment` makes the gradebook (as `make exercises` does), `release_assignment` puts conv_basics in a
scratch exchange. alice (solved), bob (solved but for one bug in pool2d) and carol (untouched) fetch, and submit
with nbgrader's exchange commands; the instructor collects and grades with the README's command into the existing
gradebook. Then nbgrader's own views must agree with the kit: `nbgrader export`, and NbGraderAPI, the layer the
formgrader's Manage Submissions and Manage Students pages are drawn from. A manual override survives a regrade;
`nbgrader autograde` (what the formgrader's Autograde button runs) grades in the sandbox and gives the same files
and scores; generate_feedback and release_feedback return the kit's messages, which bob fetches.
"""
from __future__ import annotations

import csv
import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from test_deploy_assignment import MARKER, environment, nbgrader, person

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENT = "conv_basics"
STUDENTS = ("alice", "bob", "carol")
BUG = ('if mode not in ("max", "avg"):', 'if mode not in ("max", "average"):')  # bob's one bug: avg refused
BUG_MESSAGE = "mode must be 'max' or 'avg', not 'avg'"


def solve(path: Path, bug: bool) -> None:
    """The instructor's solution in each solution cell, as a student writes it (no markers); with bob's bug."""
    solutions = {cell.metadata["nbgrader"]["grade_id"]: cell.source
                 for cell in nbformat.read(ROOT / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", 4).cells
                 if cell.metadata.get("nbgrader", {}).get("solution")}
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            source = "\n".join(line for line in solutions[cell.metadata.nbgrader.grade_id].splitlines()
                               if not MARKER.match(line))
            cell.source = source.replace(*BUG) if bug and BUG[0] in source else source
    assert not bug or BUG[1] in "".join(cell.source for cell in notebook.cells)
    nbformat.write(notebook, path)


def kit(course: Path, home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autograder", *args], cwd=course, env=environment(home),
                          capture_output=True, text=True, timeout=600)


def export(course: Path, home: Path) -> dict[str, dict]:
    nbgrader(home, course, "export")
    with open(course / "grades.csv", newline="") as table:
        return {row["student_id"]: row for row in csv.DictReader(table) if row["assignment"] == ASSIGNMENT}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def submissions(course: Path, home: Path) -> dict[str, dict]:
    """What the formgrader's Manage Submissions page shows, from the API it is drawn from (in a process of the
    instructor's, in the course folder)."""
    script = ("import json\nfrom nbgrader.apps.api import NbGraderAPI\nfrom nbgrader.coursedir import CourseDirectory\n"
              "api = NbGraderAPI(coursedir=CourseDirectory(root='.'))\n"
              f"print(json.dumps({{s['student']: s for s in api.get_submissions({ASSIGNMENT!r})}}, default=str))")
    run = subprocess.run([sys.executable, "-c", script], cwd=course, env=environment(home), capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def released(base: Path) -> tuple[Path, Path, Path]:
    """An instructor whose course folder holds this repository's nbgrader_config.py and conv_basics' solution, with
    the assignment generated (as `make exercises` does: the gradebook exists now) and released into an exchange:
    (exchange, instructor's home, course folder)."""
    exchange = base / "exchange"
    instructor = person(base, "instructor", exchange)
    course = instructor / "course"
    (course / "solutions").mkdir(parents=True)
    shutil.copytree(ROOT / "solutions" / ASSIGNMENT, course / "solutions" / ASSIGNMENT)
    shutil.copy(ROOT / "nbgrader_config.py", course)
    nbgrader(instructor, course, "generate_assignment", ASSIGNMENT)
    nbgrader(instructor, course, "release_assignment", ASSIGNMENT)
    return exchange, instructor, course


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """The course after release, work, submission, collection and the kit's grading:
    (course folder, instructor's home, {student: (home, fetched notebook)}, the grading run)."""
    base = tmp_path_factory.mktemp("nbgrader-course")
    exchange, instructor, course = released(base)
    students = {}
    for student in STUDENTS:
        home = person(base, student, exchange)
        nbgrader(home, home, "fetch_assignment", ASSIGNMENT)
        notebook = home / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        if student != "carol":
            solve(notebook, bug=student == "bob")
        nbgrader(home, home, "submit", ASSIGNMENT, "--student", student)
        students[student] = (home, notebook)
    nbgrader(instructor, course, "collect", ASSIGNMENT)
    grading = kit(course, instructor, "grade", ASSIGNMENT, "submitted/", "--out", "autograded/",
                  "--nbgrader-db", "gradebook.db", "--workers", "2")
    assert grading.returncode == 0, grading.stdout[-3000:] + grading.stderr[-3000:]
    return course, instructor, students, grading


def test_export_and_formgrader_agree_with_the_kit(course):
    folder, instructor, _, grading = course
    rows = export(folder, instructor)
    assert set(rows) == set(STUDENTS)
    for student, row in rows.items():
        timestamp = (folder / "submitted" / student / ASSIGNMENT / "timestamp.txt").read_text().strip()
        assert row["timestamp"] and row["timestamp"][:19] == timestamp[:19], (student, row, timestamp)
        assert float(row["max_score"]) == 56
    assert float(rows["alice"]["score"]) == 56 and float(rows["carol"]["score"]) == 0
    assert 0 < float(rows["bob"]["score"]) < 56
    seen = submissions(folder, instructor)
    for student in STUDENTS:
        kit_score = float(next(l for l in (folder / "autograded" / student / ASSIGNMENT / "feedback.txt").read_text()
                               .splitlines() if l.startswith("Score:")).split()[1])
        assert seen[student]["autograded"] and not seen[student]["needs_manual_grade"], seen[student]
        assert seen[student]["score"] == kit_score == float(rows[student]["score"])
        assert seen[student]["max_score"] == 56
    with sqlite3.connect(folder / "gradebook.db") as db:
        names = {row[0] for row in db.execute("SELECT name FROM base_cell")}
    assert not [name for name in names if name.startswith("hidden:")]
    assert "SAWarning" not in grading.stderr + grading.stdout
    added = [line for line in grading.stderr.splitlines() if "was not a student" in line]
    assert len(added) == 3, grading.stderr  # nbgrader's own default: autograde creates the student, said once each


def test_override_survives_an_unchanged_regrade_and_autograde_gives_the_same(course):
    folder, instructor, students, _ = course
    bob = folder / "autograded" / "bob" / ASSIGNMENT
    before = {name: digest(bob / name) for name in (f"{ASSIGNMENT}.ipynb", "feedback.txt", "feedback.html")}
    set_manual(folder, "bob", "test_Conv2D", 3.0)
    regrade = kit(folder, instructor, "grade", ASSIGNMENT, "submitted/", "--out", "autograded/",
                  "--nbgrader-db", "gradebook.db")
    assert regrade.returncode == 0 and "changed" not in regrade.stderr, regrade.stderr[-2000:]
    assert float(export(folder, instructor)["bob"]["score"]) == submissions(folder, instructor)["bob"]["score"]
    assert manual(folder, "bob", "test_Conv2D") == 3.0
    autograded = nbgrader(instructor, folder, "autograde", ASSIGNMENT, "--student", "bob", "--force")
    assert "conv_basics on cpu: graded 1" in autograded, autograded  # the kit graded it, in its sandbox
    assert {name: digest(bob / name) for name in before} == before
    assert (bob / "results.json").is_file() and manual(folder, "bob", "test_Conv2D") == 3.0


def set_manual(course: Path, student: str, cell: str, score: float) -> None:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        gb.find_grade(cell, ASSIGNMENT, ASSIGNMENT, student).manual_score = score
        gb.db.commit()


def manual(course: Path, student: str, cell: str) -> float | None:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        return gb.find_grade(cell, ASSIGNMENT, ASSIGNMENT, student).manual_score


def test_feedback_goes_back_through_the_exchange(course):
    folder, instructor, students, _ = course
    nbgrader(instructor, folder, "generate_feedback", ASSIGNMENT)
    nbgrader(instructor, folder, "release_feedback", ASSIGNMENT)
    home, notebook = students["bob"]
    nbgrader(home, home, "fetch_feedback", ASSIGNMENT)
    fetched = list((home / ASSIGNMENT / "feedback").glob(f"*/{ASSIGNMENT}.html"))
    assert len(fetched) == 1, list((home / ASSIGNMENT).rglob("*"))
    page = fetched[0].read_text()
    assert BUG_MESSAGE in page and "pool2d: average pooling" in page and "book/05_pooling.html" in page


def test_a_regrade_that_changes_an_overridden_cell_is_reported(course):
    folder, instructor, students, _ = course
    set_manual(folder, "bob", "test_pool2d", 10.0)
    home, notebook = students["bob"]
    solve(notebook, bug=False)
    nbgrader(home, home, "submit", ASSIGNMENT, "--student", "bob")
    nbgrader(instructor, folder, "collect", ASSIGNMENT, "--update")
    regrade = kit(folder, instructor, "grade", ASSIGNMENT, "submitted/", "--out", "autograded/",
                  "--nbgrader-db", "gradebook.db")
    assert regrade.returncode == 0, regrade.stderr[-2000:]
    assert "bob: test_pool2d's autograder score changed from 9 to 11; the manual score 10 given in the formgrader " \
           "stays, marked for review" in regrade.stderr
    assert manual(folder, "bob", "test_pool2d") == 10.0 and submissions(folder, instructor)["bob"]["needs_manual_grade"]


def test_bad_gradebooks_get_one_line_and_change_nothing(course, tmp_path):
    folder, instructor, _, _ = course
    other = tmp_path / "other.db"
    shutil.copy(folder / "gradebook.db", other)
    with sqlite3.connect(other) as db:
        db.execute("UPDATE assignment SET name = 'week1'")
    cases = {tmp_path / "missing.db": "does not exist: create the course's gradebook",
             other: "does not know the assignment conv_basics (it knows: week1)"}
    for db, message in cases.items():
        state = db.exists() and digest(db)
        run = kit(folder, instructor, "grade", ASSIGNMENT, "submitted/", "--out", str(tmp_path / "out"),
                  "--nbgrader-db", str(db))
        assert run.returncode == 2 and message in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr
        assert (db.exists() and digest(db)) == state and not (tmp_path / "out" / "grades.csv").exists()


def test_a_submission_copied_by_hand_is_said(course, tmp_path):
    folder, instructor, _, _ = course
    db = tmp_path / "gradebook.db"
    shutil.copy(folder / "gradebook.db", db)
    (tmp_path / "submitted" / "dora" / ASSIGNMENT).mkdir(parents=True)
    shutil.copy(ROOT / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", tmp_path / "submitted" / "dora" / ASSIGNMENT)
    run = kit(folder, instructor, "grade", ASSIGNMENT, str(tmp_path / "submitted"), "--out", str(tmp_path / "out"),
              "--nbgrader-db", str(db))
    assert run.returncode == 0, run.stderr[-2000:]
    assert "gradebook: dora: no timestamp.txt in the submission (collected by hand?)" in run.stderr


def test_late_penalties_configured_in_nbgrader_apply(course, tmp_path):
    """A due date before alice's submission and nbgrader's "zero" penalty: the gradebook keeps her raw score and
    nbgrader's penalty takes it all, as `nbgrader autograde` would record it."""
    folder, instructor, _, _ = course
    work = tmp_path / "course"
    shutil.copytree(folder / "submitted" / "alice", work / "submitted" / "alice")
    shutil.copy(folder / "gradebook.db", work)
    (work / "nbgrader_config.py").write_text((folder / "nbgrader_config.py").read_text()
                                             + "c.LateSubmissionPlugin.penalty_method = 'zero'\n")
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{work / 'gradebook.db'}") as gb:
        gb.update_or_create_assignment(ASSIGNMENT, duedate="2000-01-01 00:00:00 UTC")
    run = kit(work, instructor, "grade", ASSIGNMENT, "submitted/", "--out", "autograded/", "--nbgrader-db",
              "gradebook.db")
    assert run.returncode == 0, run.stderr[-2000:]
    row = export(work, instructor)["alice"]
    assert (float(row["raw_score"]), float(row["late_submission_penalty"]), float(row["score"])) == (56, 56, 0), row
