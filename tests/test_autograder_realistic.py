"""A realistic class (tests/realistic/), graded in one run per assignment: every student gets exactly
the score and the failed tests a careful human grader gives, each failure with the message expected."""
from __future__ import annotations

import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from autograder.results import SubmissionResult

ROOT = Path(__file__).resolve().parent.parent
CLASS = ROOT / "tests" / "realistic"
BASE = "careful_student"
# conv_basics gets a tight budget per submission: a hang must not cost the independent functions.
TIMEOUTS = {"conv_basics": 60, "cnn_vs_fc": 300, "receptive_fields": 60}

pytestmark = pytest.mark.slow


@dataclass
class Student:
    score: str                          # "N/MAX"
    failures: list[tuple[str, str]]     # (test name prefix, message excerpt)
    cells: list[tuple[str, str]]        # (grade_id or "new", source)


def read_student(path: Path) -> Student:
    header, *sections = path.read_text().split("\n# %% ")
    fields = defaultdict(list)
    for line in header.splitlines():
        key, _, value = line.removeprefix("# ").partition(": ")
        fields[key].append(value)
    failures = [tuple(part.strip() for part in value.split(" | ", 1)) for value in fields["fail"]]
    cells = [(key.strip(), source.strip()) for key, _, source in (s.partition("\n") for s in sections)]
    return Student(fields["score"][0], failures, cells)


def students(assignment: str) -> dict[str, Student]:
    return {path.stem: read_student(path) for path in sorted((CLASS / assignment).glob("*.ipy"))}


def notebook(assignment: str, student: Student, base: Student) -> nbformat.NotebookNode:
    """The exercise notebook with the careful student's cells, then this student's own."""
    book = nbformat.read(ROOT / "exercises" / assignment / f"{assignment}.ipynb", as_version=4)
    index = {cell.metadata.get("nbgrader", {}).get("grade_id"): i for i, cell in enumerate(book.cells)}
    added, after = defaultdict(list), next(i for i, cell in enumerate(book.cells) if cell.cell_type == "code")
    for key, source in [c for c in base.cells if c[0] != "new"] + student.cells:
        if key == "new":
            added[after].append(nbformat.v4.new_code_cell(source))
        else:
            book.cells[index[key]].source = source
            after = index[key]
    book.cells = [cell for i, original in enumerate(book.cells) for cell in [original, *added[i]]]
    return book


def find_results(out: Path, assignment: str) -> dict[str, SubmissionResult]:
    """Each student's result, wherever the grader put its results.json under ``out``."""
    results = (SubmissionResult.read(path) for path in out.glob("**/results.json"))
    return {result.student: result for result in results if result.assignment == assignment}


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> dict[str, dict[str, SubmissionResult]]:
    graded = {}
    for assignment, timeout in TIMEOUTS.items():
        base = tmp_path_factory.mktemp(assignment)
        everyone = students(assignment)
        for name, student in everyone.items():
            folder = base / "submitted" / name / assignment
            folder.mkdir(parents=True)
            nbformat.write(notebook(assignment, student, everyone[BASE]), folder / f"{assignment}.ipynb")
        run = subprocess.run([sys.executable, "-m", "autograder", "grade", assignment, str(base / "submitted"),
                              "--out", str(base / "out"), "--workers", "2", "--timeout", str(timeout),
                              "--device", "cpu"], capture_output=True, text=True, timeout=1200)
        assert run.returncode == 0, run.stderr[-3000:]
        graded[assignment] = find_results(base / "out", assignment)
    return graded


CASES = [(assignment, name) for assignment in TIMEOUTS for name in students(assignment)]


def test_every_misconception_is_met_by_a_student_of_the_class():
    """Each misconception that feedback names (autograder/misconceptions.py) is one a student of the class has,
    and the header of that student expects it named in the failure messages."""
    from autograder.misconceptions import TABLE

    expected = {(prefix.split(":")[0], excerpt.removeprefix("likely mistake: "))
                for student in students("conv_basics").values()
                for prefix, excerpt in student.failures if excerpt.startswith("likely mistake: ")}
    assert expected == {(function, m.name) for function, ms in TABLE.items() for m in ms}


def test_class_is_large_enough():
    assert len(CASES) >= 25


@pytest.mark.parametrize("assignment, name", CASES)
def test_score_and_failures_as_a_human_grader_gives_them(graded, assignment, name):
    expected, result = students(assignment)[name], graded[assignment][name]
    feedback = result.feedback_text()
    assert f"{result.score:g}/{result.max_score:g}" == expected.score, feedback
    failed = {test.name for test in result.tests if test.status == "failed"}
    explained = set()
    for prefix, excerpt in expected.failures:
        named = [test for test in result.graded if test.name.startswith(prefix)]
        assert named, f"no test is named {prefix!r}"
        for test in named:
            assert test.status == "failed" and excerpt in test.output, f"{test.name}: {test.output}"
            explained.add(test.name)
    assert failed == explained, feedback
