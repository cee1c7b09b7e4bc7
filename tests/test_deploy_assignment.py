"""Assignments that travel: cnn_vs_fc (with the data it reads) and receptive_fields as students get them, run where
they run them, then graded.

Through nbgrader's own exchange: the instructor releases the committed exercises/ (`release_assignment`) into a
scratch exchange; alice and bob, each with a home of their own and working in a folder of their own,
`fetch_assignment` (the fetched files are the released ones, byte for byte); alice fills in the solution, bob
leaves it untouched; both `submit`, the instructor `collect`s. From the built site: carol and dave unzip the
assignment page's download into empty folders (the same files again); carol solves it and runs it top to bottom
where it landed (nbclient, in the notebook's folder, as Jupyter does). Then `python -m autograder grade`: full
marks for alice and carol, 0 for bob and dave (scores read from OUT/grades.csv).
"""
from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ASSIGNMENTS = ["cnn_vs_fc", "receptive_fields"]
COURSE = "convnets"
MARKER = re.compile(r"^\s*### (BEGIN|END) SOLUTION\s*$")


def environment(home: Path) -> dict:
    """A person's environment: their own HOME (so their own ~/.jupyter), the venv's tools (nbgrader runs
    alembic from PATH), nothing of this checkout on the Python path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "JUPYTER_CONFIG_DIR", "MNIST_FULL")}
    env.update(HOME=str(home), PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}")
    return env


def person(base: Path, name: str, exchange: Path) -> Path:
    """A home whose nbgrader configuration names the course and the exchange."""
    home = base / name
    (home / ".jupyter").mkdir(parents=True)
    (home / ".jupyter" / "nbgrader_config.py").write_text(
        f"c = get_config()\nc.CourseDirectory.course_id = {COURSE!r}\nc.Exchange.root = {str(exchange)!r}\n")
    return home


def nbgrader(home: Path, cwd: Path, *args: str) -> str:
    run = subprocess.run([str(BIN / "nbgrader"), *args], cwd=cwd, env=environment(home), capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    return run.stdout + run.stderr


def solve(path: Path, assignment: str) -> None:
    """Write the instructor's solution into each solution cell, as a student would (no markers)."""
    solutions = {cell.metadata["nbgrader"]["grade_id"]: cell.source
                 for cell in nbformat.read(ROOT / "solutions" / assignment / f"{assignment}.ipynb", 4).cells
                 if cell.metadata.get("nbgrader", {}).get("solution")}
    notebook = nbformat.read(path, as_version=4)
    filled = 0
    for cell in notebook.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.metadata.get("nbgrader", {}).get("solution"):
            assert "raise NotImplementedError()" in cell.source, f"{grade_id} is not the untouched student version"
            cell.source = "\n".join(line for line in solutions[grade_id].splitlines() if not MARKER.match(line))
            filled += 1
    assert filled == len(solutions) >= 4
    nbformat.write(notebook, path)


def run_top_to_bottom(path: Path, home: Path) -> None:
    """Restart & Run All in the notebook's own folder; the student saves the result."""
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, kernel_name="python3", timeout=600,
                   resources={"metadata": {"path": str(path.parent)}}).execute(env=environment(home))
    nbformat.write(notebook, path)


def released_files(assignment: str) -> dict[str, bytes]:
    folder = ROOT / "exercises" / assignment
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def files_in(folder: Path) -> dict[str, bytes]:
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def site_download(site: Path, assignment: str) -> Path:
    """The zip the assignment page links."""
    page = site / "book" / "assignments" / f"{assignment}.html"
    link = re.search(rf'href="([^"]*/{assignment}\.zip)"', page.read_text(encoding="utf8"))
    assert link, f"{page} links no {assignment}.zip"
    return (page.parent / link.group(1)).resolve()


@pytest.fixture(scope="module", params=ASSIGNMENTS)
def graded(built_site, tmp_path_factory, request) -> dict[str, dict]:
    """Every student's grades.csv row, after the whole journey of one assignment."""
    assignment = request.param
    base = tmp_path_factory.mktemp("deploy")
    exchange = base / "exchange"
    instructor = person(base, "instructor", exchange)
    course = instructor / "course"
    course.mkdir()
    (course / "nbgrader_config.py").write_text(
        f"c = get_config()\nc.CourseDirectory.release_directory = {str(ROOT / 'exercises')!r}\n")
    nbgrader(instructor, course, "release_assignment", assignment)

    notebooks = {}
    for student in ("alice", "bob"):
        home = person(base, student, exchange)
        (home / "courses").mkdir()
        nbgrader(home, home / "courses", "fetch_assignment", assignment)
        fetched = home / "courses" / assignment
        assert files_in(fetched) == released_files(assignment), f"{student} fetched {sorted(files_in(fetched))}"
        notebooks[student] = (home, fetched / f"{assignment}.ipynb")
    for student in ("carol", "dave"):
        home = base / student
        (home / "downloads").mkdir(parents=True)
        shutil.unpack_archive(site_download(built_site, assignment), home / "downloads")
        unpacked = home / "downloads" / assignment
        assert files_in(unpacked) == released_files(assignment), f"{student} unzipped {sorted(files_in(unpacked))}"
        notebooks[student] = (home, unpacked / f"{assignment}.ipynb")

    for student in ("alice", "carol"):
        solve(notebooks[student][1], assignment)
    # carol runs hers top to bottom where she unzipped it (a failing cell raises CellExecutionError with its
    # traceback); alice's fetched folder holds the same bytes (asserted above), so one run answers for both
    run_top_to_bottom(notebooks["carol"][1], notebooks["carol"][0])

    for student in ("alice", "bob"):
        home, notebook = notebooks[student]
        nbgrader(home, notebook.parent.parent, "submit", assignment, "--student", student)
    nbgrader(instructor, course, "collect", assignment)
    submitted = course / "submitted"
    for student in ("alice", "bob"):
        collected = submitted / student / assignment / f"{assignment}.ipynb"
        assert collected.read_bytes() == notebooks[student][1].read_bytes(), f"collect lost {student}'s notebook"
    for student in ("carol", "dave"):  # an LMS download unpacked into nbgrader's layout
        (submitted / student / assignment).mkdir(parents=True)
        shutil.copy(notebooks[student][1], submitted / student / assignment)

    out = base / "autograded"
    grade = subprocess.run([sys.executable, "-m", "autograder", "grade", assignment, str(submitted), "--out", str(out),
                            "--workers", "2"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert grade.returncode == 0, grade.stdout[-3000:] + grade.stderr[-3000:]
    with open(out / "grades.csv", newline="") as table:
        return {row["student"]: row for row in csv.DictReader(table) if row["assignment"] == assignment}


def test_solved_notebooks_that_travelled_get_full_marks(graded):
    for student in ("alice", "carol"):
        row = graded[student]
        assert float(row["max_score"]) > 0 and float(row["score"]) == float(row["max_score"]), (
            f"{student} (solved, run where it was fetched or unzipped): {row}")


def test_untouched_notebooks_get_zero(graded):
    for student in ("bob", "dave"):
        row = graded[student]
        assert float(row["score"]) == 0 and float(row["max_score"]) > 0, f"{student} (untouched): {row}"
