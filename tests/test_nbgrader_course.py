"""A real nbgrader course, release to returned feedback, graded by the kit (issue 21).

The instructor's course folder holds this repository's nbgrader_config.py and solutions/; `nbgrader
generate_assignment` makes the gradebook (as `make exercises` does), `release_assignment` puts conv_basics in a
scratch exchange. alice (solved), bob (solved but for one bug in pool2d) and carol (untouched) fetch, and submit
with nbgrader's exchange commands; the instructor collects and grades with the README's command into the existing
gradebook. Then nbgrader's own views must agree with the kit: `nbgrader export`, and NbGraderAPI, the layer the
formgrader's Manage Submissions and Manage Students pages are drawn from. A manual override survives a regrade;
`nbgrader autograde` (what the formgrader's Autograde button runs) grades in the sandbox and gives the same files
and scores, and one of another assignment gets the result a class grade gives it; generate_feedback and release_feedback
return the kit's messages, which bob fetches. `merge --nbgrader-db` (as after Slurm) writes the same autograded
notebooks and scores as grade.

The course is built and graded once per session (conftest's ``nbgrader_class``, shared with
test_nbgrader_lab.py); each module works on a copy of it.
"""
from __future__ import annotations

import csv
import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
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


GRADING = "grading.json"  # the class's grading run (its output), kept beside the course


def graded_class(base: Path) -> Path:
    """A course in ``base`` after release, work, submission, collection and the kit's grading (the README's
    commands): exchange/, the instructor's home (instructor/, the course folder in it), and each student's home;
    the gradebook as generate_assignment left it is kept as gradebook-released.db."""
    exchange, instructor, course = released(base)
    shutil.copy(course / "gradebook.db", base / "gradebook-released.db")

    def work(student: str) -> None:
        home = person(base, student, exchange)
        nbgrader(home, home, "fetch_assignment", ASSIGNMENT)
        if student != "carol":
            solve(home / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", bug=student == "bob")
        nbgrader(home, home, "submit", ASSIGNMENT, "--student", student)

    with ThreadPoolExecutor(len(STUDENTS)) as pool:  # each student on their own machine
        list(pool.map(work, STUDENTS))
    nbgrader(instructor, course, "collect", ASSIGNMENT)
    grading = kit(course, instructor, "grade", ASSIGNMENT, "submitted/", "--out", "autograded/",
                  "--nbgrader-db", "gradebook.db", "--workers", "2")
    assert grading.returncode == 0, grading.stdout[-3000:] + grading.stderr[-3000:]
    (base / GRADING).write_text(json.dumps({"stdout": grading.stdout, "stderr": grading.stderr}))
    return base


def copy_class(snapshot: Path, base: Path) -> Path:
    """A copy of :func:`graded_class`'s course in ``base``, its people's nbgrader configuration pointing at the
    copy's exchange."""
    shutil.copytree(snapshot, base, symlinks=True)
    for config in base.glob("*/.jupyter/nbgrader_config.py"):
        config.write_text(config.read_text().replace(str(snapshot / "exchange"), str(base / "exchange")))
    return base


@pytest.fixture(scope="module")
def course(nbgrader_class, tmp_path_factory):
    """The graded course: (course folder, instructor's home, {student: (home, fetched notebook)}, the grading run)."""
    base = nbgrader_class(tmp_path_factory.mktemp("nbgrader-course") / "class")
    output = json.loads((base / GRADING).read_text())
    grading = subprocess.CompletedProcess("grade", 0, output["stdout"], output["stderr"])
    students = {student: (base / student, base / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb") for student in STUDENTS}
    return base / "instructor" / "course", base / "instructor", students, grading


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


@pytest.fixture(scope="module")
def late_class(course, tmp_path_factory):
    """One grading run for two cases: the course's gradebook with a due date before alice's submission and
    nbgrader's "zero" penalty configured, alice's submission (her results from the class's run: unchanged, so not
    graded again) and dora's, copied into submitted/ by hand (no timestamp.txt)."""
    folder, instructor, _, _ = course
    work = tmp_path_factory.mktemp("late") / "course"
    shutil.copytree(folder / "submitted" / "alice", work / "submitted" / "alice")
    shutil.copytree(folder / "autograded" / "alice", work / "autograded" / "alice")
    (work / "submitted" / "dora" / ASSIGNMENT).mkdir(parents=True)
    shutil.copy(ROOT / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", work / "submitted" / "dora" / ASSIGNMENT)
    shutil.copy(folder / "gradebook.db", work)
    (work / "nbgrader_config.py").write_text((folder / "nbgrader_config.py").read_text()
                                             + "c.LateSubmissionPlugin.penalty_method = 'zero'\n")
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{work / 'gradebook.db'}") as gb:
        gb.update_or_create_assignment(ASSIGNMENT, duedate="2000-01-01 00:00:00 UTC")
    run = kit(work, instructor, "grade", ASSIGNMENT, "submitted/", "--out", "autograded/", "--nbgrader-db",
              "gradebook.db")
    assert run.returncode == 0, run.stderr[-2000:]
    return run, export(work, instructor)


def test_a_submission_copied_by_hand_is_said(late_class):
    run, rows = late_class
    assert "gradebook: dora: no timestamp.txt in the submission (collected by hand?)" in run.stderr
    row = rows["dora"]
    assert not row["timestamp"] and (float(row["late_submission_penalty"]), float(row["score"])) == (0, 56), row


def test_late_penalties_configured_in_nbgrader_apply(late_class):
    """A due date before alice's submission and nbgrader's "zero" penalty: the gradebook keeps her raw score and
    nbgrader's penalty takes it all, as `nbgrader autograde` would record it."""
    row = late_class[1]["alice"]
    assert (float(row["raw_score"]), float(row["late_submission_penalty"]), float(row["score"])) == (56, 56, 0), row


def test_merge_writes_what_grade_writes(course, tmp_path):
    """The class's results merged from two folders (as after Slurm, or `grade --shard`) into the gradebook as
    generate_assignment left it: merge writes the autograded notebooks grade wrote, byte for byte, and the same
    scores; without --submitted it refuses in one line and writes nothing."""
    folder, instructor, _, _ = course
    parts = [tmp_path / "part1", tmp_path / "part2"]
    for i, student in enumerate(STUDENTS):
        shutil.copytree(folder / "autograded" / student, parts[i % 2] / student,
                        ignore=shutil.ignore_patterns("*.ipynb"))  # what a shard without --nbgrader-db leaves
    work = tmp_path / "course"
    work.mkdir()
    shutil.copy(folder / "nbgrader_config.py", work)
    shutil.copy(folder.parent.parent / "gradebook-released.db", work / "gradebook.db")
    before = digest(work / "gradebook.db")
    refused = kit(work, instructor, "merge", *map(str, parts), "--out", "merged", "--nbgrader-db", "gradebook.db")
    assert refused.returncode == 2 and "--nbgrader-db needs --submitted SUBMITTED" in refused.stderr, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and not (work / "merged").exists()
    assert digest(work / "gradebook.db") == before
    run = kit(work, instructor, "merge", *map(str, parts), "--out", "merged", "--nbgrader-db", "gradebook.db",
              "--submitted", str(folder / "submitted"))
    assert run.returncode == 0, run.stderr[-2000:]
    for student in STUDENTS:
        name = Path(student) / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        assert (work / "merged" / name).read_bytes() == (folder / "autograded" / name).read_bytes(), student
    from autograder.results import read_all

    rows = export(work, instructor)  # the kit's scores (the course's own gradebook holds the tests' overrides)
    assert {s: float(row["score"]) for s, row in rows.items()} == {r.student: r.score
                                                                  for r in read_all(folder / "autograded")}
    for student, row in rows.items():
        timestamp = (folder / "submitted" / student / ASSIGNMENT / "timestamp.txt").read_text().strip()
        assert float(row["max_score"]) == 56 and row["timestamp"][:19] == timestamp[:19], (student, row)


def test_autograde_of_another_assignment_says_so_and_keeps_the_class(course):
    """carol's submitted notebook replaced by another assignment's (no conv_basics function in it): `nbgrader
    autograde` (the formgrader's button; nbgrader first removes her autograded folder) leaves what a class grade
    leaves: a result of 0 that names the assignment it looks like, an autograded notebook opening with it, and her
    gradebook row at 0; her submission, every other student's files and grades, and their place in grades.csv stay
    as they were. (Last: it leaves carol's submission replaced.)"""
    folder, instructor, _, _ = course
    submitted = folder / "submitted" / "carol" / ASSIGNMENT
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "class ConvNet:\n    pass\n\n\nclass FCNet:\n    pass\n\n\ndef train_one_epoch(model, loader):\n    pass\n")])
    nbformat.write(notebook, submitted / f"{ASSIGNMENT}.ipynb")
    files = {path: digest(path) for path in submitted.rglob("*") if path.is_file()}
    others = {path: digest(path) for student in ("alice", "bob")
              for path in (folder / "autograded" / student).rglob("*") if path.is_file()}
    grades = scores(folder)
    run = subprocess.run([str(Path(sys.executable).parent / "nbgrader"), "autograde", ASSIGNMENT, "--student",
                          "carol", "--force"], cwd=folder, env=environment(instructor), capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    carol = folder / "autograded" / "carol" / ASSIGNMENT
    result = json.loads((carol / "results.json").read_text())
    assert result["score"] == 0 and result["extra_data"]["status"] == "another assignment", result
    reason = f"this notebook is not {ASSIGNMENT}: it has none of"
    assert reason in result["output"] and "it looks like cnn_vs_fc" in result["output"], result["output"]
    first = nbformat.read(carol / f"{ASSIGNMENT}.ipynb", as_version=4).cells[0]
    assert first.cell_type == "markdown" and "Not graded (another assignment)" in first.source, first
    assert "looks like cnn_vs_fc" in (carol / "feedback.txt").read_text()
    assert {path: digest(path) for path in submitted.rglob("*") if path.is_file()} == files
    assert {path: digest(path) for path in others} == others
    after = scores(folder)
    assert after["carol"][0] == 0 and {s: after[s] for s in ("alice", "bob")} == {s: grades[s] for s in ("alice", "bob")}
    with open(folder / "autograded" / "grades.csv", newline="") as table:
        rows = {row["student"]: row for row in csv.DictReader(table)}
    assert [rows[s]["in_last_run"] for s in STUDENTS] == ["yes", "yes", "yes"], rows
    assert rows["carol"]["status"] == "another assignment", rows["carol"]


def scores(course: Path) -> dict[str, tuple]:
    """Each student's score, late penalty and manual scores in the course's gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        return {student: (gb.find_submission(ASSIGNMENT, student).score,
                          gb.find_submission_notebook(ASSIGNMENT, ASSIGNMENT, student).late_submission_penalty,
                          sorted((g.name, g.auto_score, g.manual_score)
                                 for g in gb.find_submission_notebook(ASSIGNMENT, ASSIGNMENT, student).grades))
                for student in STUDENTS}
