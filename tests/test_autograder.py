"""The grader end to end, through its command line: scores, formats, gradebook, re-runs, shards."""
from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from autograder.results import SubmissionResult

ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENTS = ["conv_basics", "cnn_vs_fc"]


def autograder(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autograder", *args], capture_output=True, text=True, timeout=900)


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
        target.mkdir(parents=True)
        shutil.copy(ROOT / source / assignment / f"{assignment}.ipynb", target)
    if assignment == "cnn_vs_fc":
        notebook = nbformat.read(ROOT / "solutions" / assignment / f"{assignment}.ipynb", as_version=4)
        notebook.cells.append(nbformat.v4.new_code_cell(LIAR))
        (folder / "submitted" / "liar" / assignment).mkdir(parents=True)
        nbformat.write(notebook, folder / "submitted" / "liar" / assignment / f"{assignment}.ipynb")
    return folder / "submitted"


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """Each assignment graded once: {assignment: (submitted, out)}; conv_basics also into a gradebook."""
    runs = {}
    for assignment in ASSIGNMENTS:
        base = tmp_path_factory.mktemp(assignment)
        submitted, out = make_class(base, assignment), base / "out"
        extra = ["--nbgrader-db", str(base / "gradebook.db")] if assignment == "conv_basics" else []
        run = autograder("grade", assignment, str(submitted), "--out", str(out), "--workers", "2", *extra)
        assert run.returncode == 0, run.stderr[-3000:]
        runs[assignment] = (submitted, out)
    return runs


def result(graded, assignment: str, student: str) -> SubmissionResult:
    return SubmissionResult.read(graded[assignment][1] / student / "results.json")


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
        "ConvNet", "FCNet", "train_one_epoch", "evaluate"}, liar.feedback_text()


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_grades_csv_and_feedback(graded, assignment):
    out = graded[assignment][1]
    rows = {r["student"]: float(r["score"]) for r in csv.DictReader((out / "grades.csv").open())}
    assert rows["solved"] == result(graded, assignment, "solved").max_score and rows["untouched"] == 0.0
    feedback = (out / "untouched" / "feedback.txt").read_text()
    assert "Score: 0" in feedback and "[FAIL]" in feedback


def test_test_names_say_what_they_grade(graded):
    api = {"corr2d", "conv_output_shape", "corr2d_multi_in_out", "pool2d", "Conv2D", "ConvNet", "FCNet",
           "train_one_epoch", "evaluate"}
    names = [t.name for a in ASSIGNMENTS for t in result(graded, a, "solved").tests]
    assert all(name.split(":")[0] in api for name in names), names
    assert api == {name.split(":")[0] for name in names}


def test_cuda_tests_reported_as_skipped_on_cpu(graded):
    for assignment in ASSIGNMENTS:
        data = json.loads((graded[assignment][1] / "solved" / "results.json").read_text())
        skipped = data["extra_data"]["skipped"]
        assert skipped and all("CUDA" in t["output"] for t in skipped)
        assert "Skipped on this machine" in data["output"]


def test_gradebook_export_lists_scores(graded, tmp_path):
    db = graded["conv_basics"][1].parent / "gradebook.db"
    export = tmp_path / "export.csv"
    run = subprocess.run([str(Path(sys.executable).parent / "nbgrader"), "export",
                          f"--CourseDirectory.db_url=sqlite:///{db}", f"--CsvExportPlugin.to={export}"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = {r["student_id"]: r for r in csv.DictReader(export.open()) if r["assignment"] == "conv_basics"}
    solved = result(graded, "conv_basics", "solved")
    assert float(rows["solved"]["score"]) == solved.score and float(rows["solved"]["max_score"]) == solved.max_score
    assert float(rows["untouched"]["score"]) == 0


def test_rerun_skips_graded_unless_forced(graded):
    submitted, out = graded["conv_basics"]
    path = out / "solved" / "results.json"
    before = path.stat().st_mtime_ns
    assert autograder("grade", "conv_basics", str(submitted), "--out", str(out)).returncode == 0
    assert path.stat().st_mtime_ns == before
    assert autograder("grade", "conv_basics", str(submitted / "solved" / "conv_basics" / "conv_basics.ipynb"),
                      "--out", str(out / "single"), "--force").returncode == 0
    single = SubmissionResult.read(out / "single" / "conv_basics" / "results.json")  # student id = file stem
    assert single.score == single.max_score


def test_shards_merge_into_one_class(graded, tmp_path):
    submitted, out = graded["conv_basics"]
    for k in (1, 2):
        run = autograder("grade", "conv_basics", str(submitted), "--out", str(tmp_path / f"shard{k}"),
                         "--shard", f"{k}/2")
        assert run.returncode == 0, run.stderr[-2000:]
        assert len(list((tmp_path / f"shard{k}").glob("*/results.json"))) == 1
    assert autograder("merge", str(tmp_path / "shard1"), str(tmp_path / "shard2"), "--out",
                      str(tmp_path / "merged")).returncode == 0
    merged = list(csv.DictReader((tmp_path / "merged" / "grades.csv").open()))
    assert sorted((r["student"], r["score"]) for r in merged) == sorted(
        (r["student"], r["score"]) for r in csv.DictReader((out / "grades.csv").open()))


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
