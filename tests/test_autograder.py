"""The grader end to end, through its command line: scores, formats, gradebook, re-runs, shards."""
from __future__ import annotations

import csv
import hashlib
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

from autograder.results import SubmissionResult

ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENTS = ["conv_basics", "cnn_vs_fc", "receptive_fields"]


def autograder(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m autograder ARGS`` (in ``cwd``, with ``env`` when given), its output captured as text."""
    return subprocess.run([sys.executable, "-m", "autograder", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=900)


# Loops that do not train and an evaluation that reports perfect accuracy: the grader must not believe it.
LIAR = """
def train_one_epoch(model, loader, optimizer, criterion, device="cpu"):
    return 0.0


def evaluate(model, loader, criterion, device="cpu"):
    return 0.0, 1.0
"""


def make_class(folder: Path, assignment: str) -> Path:
    """nbgrader's submitted/ layout: the instructor's solution, an untouched student version and,
    for cnn_vs_fc, a submission whose loops only report good numbers."""
    for student, source in [("solved", "solutions"), ("untouched", "exercises")]:
        target = folder / "submitted" / student / assignment
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / source / assignment / f"{assignment}.ipynb", target)
    if assignment == "cnn_vs_fc":
        notebook = nbformat.read(ROOT / "solutions" / assignment / f"{assignment}.ipynb", as_version=4)
        notebook.cells.append(nbformat.v4.new_code_cell(LIAR))
        (folder / "submitted" / "liar" / assignment).mkdir(parents=True)
        nbformat.write(notebook, folder / "submitted" / "liar" / assignment / f"{assignment}.ipynb")
    return folder / "submitted"


@pytest.fixture(scope="module")
def graded(tmp_path_factory, course_gradebook) -> tuple[Path, Path]:
    """Every assignment graded into one folder and the course's gradebook, as a course does: (submitted, out)."""
    base = tmp_path_factory.mktemp("course")
    out = base / "out"
    shutil.copy(course_gradebook, base / "gradebook.db")
    for assignment in ASSIGNMENTS:
        submitted = make_class(base, assignment)
        run = autograder("grade", assignment, str(submitted), "--out", str(out), "--workers", "2",
                         "--nbgrader-db", str(base / "gradebook.db"))
        assert run.returncode == 0, run.stderr[-3000:]
    return submitted, out


def result(graded, assignment: str, student: str) -> SubmissionResult:
    return SubmissionResult.read(graded[1] / student / assignment / "results.json")


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_gets_full_marks(graded, assignment):
    solved = result(graded, assignment, "solved")
    assert solved.score == solved.max_score >= 20, solved.feedback_text()


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_untouched_exercise_gets_zero(graded, assignment):
    untouched = result(graded, assignment, "untouched")
    assert untouched.score == 0 and untouched.max_score == result(graded, assignment, "solved").max_score
    assert any("NotImplementedError" in t.output for t in untouched.tests)


def test_reported_numbers_are_not_believed(graded):
    liar = result(graded, "cnn_vs_fc", "liar")
    failed = {t.name.split(":")[0] for t in liar.tests if t.status == "failed"}
    assert [t for t in liar.tests if "accuracy" in t.name and t.status == "failed"] and failed == {
        "ConvNet", "FCNet", "DesignNet", "train_one_epoch", "evaluate"}, liar.feedback_text()


def grades(out: Path) -> dict[tuple[str, str], float]:
    rows = list(csv.DictReader((out / "grades.csv").open()))
    scores = {(r["student"], r["assignment"]): float(r["score"]) for r in rows}
    assert len(scores) == len(rows), "one row per (student, assignment)"
    return scores


def test_grades_csv_lists_every_assignment_and_feedback(graded):
    expected = {(s, a) for a in ASSIGNMENTS for s in ("solved", "untouched")} | {("liar", "cnn_vs_fc")}
    assert set(grades(graded[1])) == expected
    for assignment in ASSIGNMENTS:
        assert grades(graded[1])[("solved", assignment)] == result(graded, assignment, "solved").max_score
        assert grades(graded[1])[("untouched", assignment)] == 0.0
        feedback = (graded[1] / "untouched" / assignment / "feedback.txt").read_text()
        assert feedback.startswith(assignment) and "Score: 0" in feedback and "[FAIL]" in feedback


def test_test_names_say_what_they_grade(graded):
    api = {"corr2d", "conv_output_shape", "corr2d_multi_in_out", "pool2d", "Conv2D", "ConvNet", "FCNet",
           "DesignNet", "train_one_epoch", "evaluate", "receptive_field", "conv_transpose2d", "conv2d_input_grad",
           "overlap_counts"}
    names = [t.name for a in ASSIGNMENTS for t in result(graded, a, "solved").tests]
    assert all(name.split(":")[0] in api for name in names), names
    assert api == {name.split(":")[0] for name in names}


def test_cuda_tests_reported_as_skipped_on_cpu(graded):
    for assignment in ASSIGNMENTS:
        data = json.loads((graded[1] / "solved" / assignment / "results.json").read_text())
        skipped = data["extra_data"]["skipped"]
        assert skipped and all("CUDA" in t["output"] for t in skipped)
        assert "Skipped on this machine" in data["output"]


def test_gradebook_export_lists_scores(graded, tmp_path):
    db = graded[1].parent / "gradebook.db"
    export = tmp_path / "export.csv"
    run = subprocess.run([str(Path(sys.executable).parent / "nbgrader"), "export",
                          f"--CourseDirectory.db_url=sqlite:///{db}", f"--CsvExportPlugin.to={export}"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = {(r["student_id"], r["assignment"]): r for r in csv.DictReader(export.open())}
    for assignment in ASSIGNMENTS:
        solved = result(graded, assignment, "solved")
        row = rows[("solved", assignment)]
        assert float(row["score"]) == solved.score and float(row["max_score"]) == solved.max_score
        assert float(rows[("untouched", assignment)]["score"]) == 0


def results_digest(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.glob("*/*/*")) if p.name in ("results.json", "feedback.txt")}


def test_rerun_skips_graded_unless_forced(graded):
    submitted, out = graded
    before = results_digest(out)
    path = out / "solved" / "conv_basics" / "results.json"
    mtime = path.stat().st_mtime_ns
    assert autograder("grade", "conv_basics", str(submitted), "--out", str(out)).returncode == 0
    assert path.stat().st_mtime_ns == mtime and results_digest(out) == before
    assert autograder("grade", "conv_basics", str(submitted / "solved" / "conv_basics" / "conv_basics.ipynb"),
                      "--out", str(out / "single"), "--force").returncode == 0
    single = SubmissionResult.read(out / "single" / "conv_basics" / "conv_basics" / "results.json")  # id = stem
    assert single.score == single.max_score


def test_regrading_one_assignment_keeps_the_other(graded, tmp_path):
    """Both assignments in one folder; --force re-grades conv_basics; cnn_vs_fc's results stay byte for byte."""
    submitted, out = graded
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    before = results_digest(copy)
    run = autograder("grade", "conv_basics", str(submitted), "--out", str(copy), "--force")
    assert run.returncode == 0, run.stderr[-2000:]
    after = results_digest(copy)
    assert set(after) == set(before)
    changed = {path.split("/")[1] for path in before if after[path] != before[path]}
    assert changed == {"conv_basics"}  # re-graded (a new execution time), while cnn_vs_fc is intact
    assert grades(copy) == grades(out)


def test_a_changed_suite_regrades_an_unchanged_notebook(graded, tmp_path):
    """The skip keys on the notebook AND the hidden suite: after the suite changes, every student is re-graded."""
    submitted, out = graded
    copy, suites = tmp_path / "out", tmp_path / "suites"
    shutil.copytree(out, copy)
    shutil.copytree(ROOT / "autograder" / "suites", suites, ignore=shutil.ignore_patterns("__pycache__"))
    before = results_digest(copy)
    same = autograder("grade", "conv_basics", str(submitted), "--out", str(copy), "--suites", str(suites))
    assert same.returncode == 0 and results_digest(copy) == before, "an identical copy of the suite is no change"

    (suites / "conv_basics" / "test_added.py").write_text(textwrap.dedent('''
        import pytest
        import torch


        @pytest.mark.points(2)
        def test_added(submission):
            """corr2d: a test the instructor added after the first grading run"""
            got = submission.call("corr2d", torch.ones(2, 3), torch.full((1, 1), 2.0))
            assert torch.equal(got, torch.full((2, 3), 2.0)), f"corr2d(ones(2, 3), [[2.0]]) returned {got}"
        '''))
    run = autograder("grade", "conv_basics", str(submitted), "--out", str(copy), "--suites", str(suites))
    assert run.returncode == 0, run.stderr[-2000:]
    for student in ("solved", "untouched"):
        old, new = result(graded, "conv_basics", student), SubmissionResult.read(
            copy / student / "conv_basics" / "results.json")
        assert new.suite_sha256 != old.suite_sha256 and new.notebook_sha256 == old.notebook_sha256
        assert new.max_score == old.max_score + 2 and new.score == old.score + (2 if student == "solved" else 0)
        added = [t for t in new.tests if t.name == "corr2d: a test the instructor added after the first grading run"]
        assert len(added) == 1 and (added[0].status == "passed") == (student == "solved"), new.feedback_text()
    assert SubmissionResult.read(copy / "solved" / "cnn_vs_fc" / "results.json") == result(graded, "cnn_vs_fc", "solved")


def test_results_of_the_old_layout_are_moved_not_dropped(graded, tmp_path):
    """OUT/<student>/results.json (one assignment per folder, before nbgrader's layout) is moved into place."""
    submitted, out = graded
    old = tmp_path / "old"
    (old / "solved").mkdir(parents=True)
    for name in ("results.json", "feedback.txt"):
        shutil.copy(out / "solved" / "conv_basics" / name, old / "solved" / name)
    kept = (old / "solved" / "results.json").read_bytes()
    run = autograder("grade", "conv_basics", str(submitted), "--out", str(old))
    assert run.returncode == 0, run.stderr[-2000:]
    assert f"moved {old / 'solved' / 'results.json'} to {old / 'solved' / 'conv_basics'}" in run.stderr
    assert (old / "solved" / "conv_basics" / "results.json").read_bytes() == kept  # same notebook and suite: skipped
    assert not (old / "solved" / "results.json").exists()
    assert grades(old) == {key: value for key, value in grades(out).items() if key[1] == "conv_basics"}


@pytest.mark.parametrize("content, message", [("{not json", "cannot be read"), (None, "both hold")])
def test_results_of_the_old_layout_that_cannot_move_are_refused(graded, tmp_path, content, message):
    """An unreadable old-layout file, or one whose new place is taken, stops grading with a clear message."""
    submitted, out = graded
    shutil.copytree(out / "solved", tmp_path / "out" / "solved")
    old = tmp_path / "out" / "solved" / "results.json"
    old.write_text(content) if content else shutil.copy(out / "solved" / "conv_basics" / "results.json", old)
    for args in (["grade", "conv_basics", str(submitted)], ["merge", str(tmp_path / "out")]):
        run = autograder(*args, "--out", str(tmp_path / "out"))
        assert run.returncode == 2 and message in run.stderr and str(old) in run.stderr, run.stderr[-2000:]
        assert old.exists()


@pytest.mark.parametrize("args, message", [(["grade", "no_such_assignment", "."], "no hidden suite"),
                                           (["grade", "conv_basics", "/no/such/folder"], "does not exist"),
                                           (["grade", "conv_basics", ".", "--shard", "3/2"], "--shard"),
                                           (["frobnicate"], "usage")])
def test_usage_errors_exit_non_zero(args, message):
    run = autograder(*args)
    assert run.returncode != 0 and message in run.stderr


def test_gradescope_package(tmp_path):
    """The zip, unpacked as Gradescope lays it out, grades a correct and a broken submission."""
    assert autograder("package", "conv_basics", "--out", str(tmp_path / "autograder.zip")).returncode == 0
    shutil.unpack_archive(tmp_path / "autograder.zip", tmp_path / "autograder" / "source")
    source = tmp_path / "autograder" / "source"
    assert not (source / "autograder" / "suites" / "cnn_vs_fc").exists()  # only this assignment's suite
    scores = {}
    for name, notebook in [("correct", ROOT / "solutions" / "conv_basics" / "conv_basics.ipynb"),
                           ("broken", ROOT / "tests" / "gallery" / "invalid_json.ipynb")]:
        root = tmp_path / "autograder"
        shutil.rmtree(root / "submission", ignore_errors=True)
        shutil.rmtree(root / "results", ignore_errors=True)
        (root / "submission").mkdir()
        shutil.copy(notebook, root / "submission" / "conv_basics.ipynb")
        run = subprocess.run(["bash", str(source / "run_autograder")], capture_output=True, text=True, timeout=600,
                             env={"AUTOGRADER_ROOT": str(root), "PYTHON": sys.executable, "PATH": "/usr/bin:/bin"})
        assert run.returncode == 0, run.stderr[-2000:]
        scores[name] = json.loads((root / "results" / "results.json").read_text())
    assert scores["correct"]["score"] == scores["correct"]["extra_data"]["max_score"] > 0
    assert scores["broken"]["score"] == 0
    assert "not a valid Jupyter notebook" in scores["broken"]["tests"][0]["output"]
