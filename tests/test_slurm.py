"""Grading a class on a real Slurm: a single-node cluster (tools/local_slurm.py) in a temporary folder.

A class of 40 conv_basics submissions (the realistic class, wrong and hostile ones from the gallery,
correct ones) is graded once locally, as the reference, then as a job array of 4 tasks with --wait;
eight of its notebooks are graded again as 2 tasks, one of them cancelled while it runs, then rerun. The
receptive_fields realistic class is graded as 2 tasks too, to the scores its headers give.
"""
from __future__ import annotations

import csv
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook
from test_autograder import autograder
from test_autograder_gallery import SOLUTION, entry_notebook, tree_digest
from test_autograder_realistic import BASE, find_results, notebook, students

from autograder.results import SubmissionResult
from autograder.submissions import shard

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import local_slurm  # noqa: E402

pytestmark = pytest.mark.slow
ASSIGNMENT = "conv_basics"
# Hostile entries that cost about what a correct notebook does; the slow ones (a time limit of 10 s per call,
# a 30 s sleep) are the gallery test's to wait for.
HOSTILE = ["empty", "escape", "huge_output", "import_error", "invalid_json", "memory_hog",
           "missing_function", "monkeypatch", "snoop", "syntax_error"]
SLOW = {"hang_in_corr2d"}
RERUN_CLASS = ["careful_student", "d2l_loops", "float32_everywhere", "max_only_pool", "monkeypatch",
               "numpy_im2col", "syntax_error", "unfold_windows"]


@dataclass
class Course:
    submitted: Path
    out: Path
    students: list[str]
    before: dict[str, str]  # the submitted tree's digests before anything graded it


def make_class(submitted: Path, out: Path) -> list[str]:
    """40 submissions in nbgrader's layout; the gallery's placeholders name this class's folders."""
    realistic = students(ASSIGNMENT)
    books: dict[str, Path | nbformat.NotebookNode] = {
        name: notebook(ASSIGNMENT, student, realistic[BASE]) for name, student in realistic.items() if name not in SLOW}
    books |= {entry: entry_notebook(entry, submitted, out) for entry in HOSTILE}
    books["untouched"] = ROOT / "exercises" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    books["honest"] = SOLUTION
    order = sorted(books)
    if (order.index("snoop") - order.index("honest")) % 4 == 0:  # the snoop would share its target's shard of 4
        books["resubmitted"] = SOLUTION  # sorts between them (the correct ones below sort before both)
    books |= {f"correct{i}": SOLUTION for i in range(40 - len(books))}
    for name, book in books.items():
        target = submitted / name / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        target.parent.mkdir(parents=True)
        target.write_bytes(book.read_bytes()) if isinstance(book, Path) else nbformat.write(book, target)
    return sorted(books)


def outcome(result: SubmissionResult) -> tuple:
    """What grading decided: the status, the score and each test's status and points (not timings or pids)."""
    return result.status, result.score, result.max_score, [(t.name, t.status, t.score) for t in result.tests]


def up_to_date(out: Path, submitted: Path) -> list[str]:
    """Students whose result was graded from the notebook now submitted (what a rerun skips, the suite unchanged)."""
    return sorted(student for student, result in find_results(out, ASSIGNMENT).items()
                  if result.notebook_sha256 == hashlib.sha256(
                      (submitted / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_bytes()).hexdigest())


def summary(stdout: str) -> dict[int, str]:
    """``{K: 'STATE, n of m graded...'}`` from the --wait summary."""
    return {int(k): line for k, line in re.findall(r"^shard (\d+)/\d+ \(job \d+_\d+\): (.*)$", stdout, re.MULTILINE)}


@pytest.fixture(scope="module")
def cluster():
    if os.geteuid() != 0:
        pytest.skip("a local Slurm cluster needs root (slurmd starts each job as its user); CI runs make test as root")
    with local_slurm.running() as running:
        yield running


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Course:
    base = tmp_path_factory.mktemp("slurm")
    submitted, out = base / "submitted", base / "out"
    names = make_class(submitted, out)
    return Course(submitted, out, names, tree_digest(submitted))


@pytest.fixture(scope="module")
def reference(course, tmp_path_factory) -> dict[str, SubmissionResult]:
    """What local `grade` gives for each notebook of the class."""
    out = tmp_path_factory.mktemp("local")
    local = autograder("grade", ASSIGNMENT, str(course.submitted), "--out", str(out), "--workers", "2",
                       "--device", "cpu")
    assert local.returncode == 1 and "could not grade 2:" in local.stdout, local.stdout + local.stderr[-3000:]
    # All graded but the two unreadable notebooks (exit status 1), whose results say why.
    return find_results(out, ASSIGNMENT)


@pytest.fixture(scope="module")
def on_slurm(cluster, course, reference, course_gradebook) -> subprocess.CompletedProcess:
    """The class graded as a job array of 4 tasks into OUT and a gradebook beside it, waiting for the merge job
    (after the local grading)."""
    shutil.copy(course_gradebook, course.out.parent / "gradebook.db")
    return autograder("slurm", ASSIGNMENT, str(course.submitted), "--out", str(course.out), "--tasks", "4", "--wait",
                      "--nbgrader-db", str(course.out.parent / "gradebook.db"), env=cluster.env)


def test_class_graded_as_four_tasks_equals_local_grading(course, reference, on_slurm):
    """Every result is what local grading gives; the two unreadable notebooks make their tasks exit 1, as grade
    does, and the command exit 1 saying so."""
    expected = {}
    for k in (1, 2, 3, 4):
        unreadable = sum(reference[s].status != "graded" for s in shard(course.students, k, 4))
        expected[k] = (f"FAILED (exit 1), {10 - unreadable} of 10 graded, {unreadable} could not be (their results "
                       "say why)" if unreadable else "COMPLETED, 10 of 10 graded")
    assert summary(on_slurm.stdout) == expected, on_slurm.stdout + on_slurm.stderr[-3000:]
    assert on_slurm.returncode == 1 and on_slurm.stderr.strip().endswith(
        f"2 submission(s) could not be graded: their results say why (the status column of {course.out}/grades.csv)")
    rows = list(csv.DictReader((course.out / "grades.csv").open()))
    assert len(rows) == 40 and sorted(row["student"] for row in rows) == course.students
    graded = find_results(course.out, ASSIGNMENT)
    assert {s: outcome(r) for s, r in graded.items()} == {s: outcome(r) for s, r in reference.items()}
    assert all(float(row["score"]) == graded[row["student"]].score for row in rows)
    written = {path.parent.parent.name for path in course.out.glob(f"*/{ASSIGNMENT}/{ASSIGNMENT}.ipynb")}
    assert written == {s for s, r in graded.items() if r.status == "graded"}  # the merge job's autograded notebooks
    with Gradebook(f"sqlite:///{course.out.parent / 'gradebook.db'}") as gradebook:  # written by the merge job
        assert {s: gradebook.find_submission(ASSIGNMENT, s).score for s in course.students} == {
            s: r.score for s, r in graded.items()}


def test_the_array_runs_the_dry_run_script(cluster, course, on_slurm):
    """What --dry-run prints is what was submitted: Slurm's copy of the array's batch script is the same."""
    array = re.search(r"submitted grading array (\d+)", on_slurm.stdout).group(1)
    stored = cluster.run("scontrol", "write", "batch_script", array, "-")
    assert stored.returncode == 0, stored.stderr
    dry = autograder("slurm", ASSIGNMENT, str(course.submitted), "--out", str(course.out), "--tasks", "4", "--dry-run")
    assert dry.returncode == 0 and stored.stdout in dry.stdout and f"--chdir={ROOT}\n" in stored.stdout


def test_hostile_submissions_change_nothing_in_other_shards(course, reference, on_slurm):
    """The snoop tries to write into another shard's results and submissions and to kill its grader; the memory
    hog asks for more than its cap on the node every task shares. The other shards grade as they do locally."""
    home = {student: k for k in (1, 2, 3, 4) for student in shard(course.students, k, 4)}
    assert home["snoop"] != home["honest"], "the class must put the snoop and its target in different shards"
    graded = find_results(course.out, ASSIGNMENT)
    for hostile in ("snoop", "memory_hog"):
        others = [s for s in course.students if home[s] != home[hostile]]
        assert {s: outcome(graded[s]) for s in others} == {s: outcome(reference[s]) for s in others}
    assert graded["honest"].score == graded["honest"].max_score > 0
    attempts = dict(re.findall(r"^((?:read|write|kill) \S+): (\w+)$", graded["snoop"].output, re.MULTILINE))
    # four files, and killing the namespace's first process (its grader is outside the namespace: parent 0)
    assert f"write {course.out}/honest/{ASSIGNMENT}/results.json" in attempts and len(attempts) == 5, attempts
    assert "parent: 0" in graded["snoop"].output, graded["snoop"].output
    # refused by Landlock or the private uid, or not even visible behind a folder the sandbox's user cannot enter
    assert set(attempts.values()) <= {"PermissionError", "FileNotFoundError"}, graded["snoop"].output
    assert tree_digest(course.submitted) == course.before


def test_cancelled_task_is_named_and_a_rerun_grades_only_what_is_missing(cluster, course, reference, tmp_path):
    submitted, out = tmp_path / "submitted", tmp_path / "out"
    for student in RERUN_CLASS:
        (submitted / student / ASSIGNMENT).mkdir(parents=True)
        (submitted / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").write_bytes(
            (course.submitted / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_bytes())
    command = [sys.executable, "-m", "autograder", "slurm", ASSIGNMENT, str(submitted), "--out", str(out),
               "--tasks", "2", "--wait"]
    second = shard(RERUN_CLASS, 2, 2)
    with subprocess.Popen(command, env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as first:
        array = re.search(r"submitted grading array (\d+)", first.stdout.readline()).group(1)
        deadline = time.monotonic() + 600
        while not any((out / s / ASSIGNMENT / "results.json").exists() for s in second):  # task 1 is grading
            assert time.monotonic() < deadline and first.poll() is None, "shard 2 never started grading"
            time.sleep(0.1)
        cancel = cluster.run("scancel", f"{array}_1")
        stdout, stderr = first.communicate(timeout=600)
    assert cancel.returncode == 0, cancel.stderr
    assert first.returncode == 1 and "not fully graded: shard 2/2 (CANCELLED, " in stderr, stdout + stderr
    assert summary(stdout)[1] == "COMPLETED, 4 of 4 graded"
    kept = up_to_date(out, submitted)
    assert set(second) - set(kept), "the cancel came too late: shard 2 had finished"
    before = {s: tree_digest(out / s / ASSIGNMENT) for s in kept}

    rerun = subprocess.run(command, env=cluster.env, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr[-3000:]
    unchanged = len(set(second) & set(kept))  # what shard 2 finished before the cancel is skipped, and said so
    assert summary(rerun.stdout) == {1: "COMPLETED, 0 of 4 graded, 4 unchanged and skipped",
                                     2: f"COMPLETED, {4 - unchanged} of 4 graded, {unchanged} unchanged and skipped"}
    assert up_to_date(out, submitted) == sorted(RERUN_CLASS)
    assert {s: tree_digest(out / s / ASSIGNMENT) for s in kept} == before  # untouched, byte for byte
    graded = find_results(out, ASSIGNMENT)
    assert {s: outcome(r) for s, r in graded.items()} == {s: outcome(reference[s]) for s in RERUN_CLASS}
    assert len((out / "grades.csv").read_text().splitlines()) == 1 + len(RERUN_CLASS)


@pytest.mark.parametrize("args, path, message", [
    (["--tasks", "0"], None, "argument --tasks: must be 1 or more, got 0"),
    (["--tasks", "41"], None, "holds 40 submissions of conv_basics; ask for at most 40 tasks"),
    (["--tasks", "2", "--partition", "gpu"], None, "no partition 'gpu' on this cluster (it has: debug)"),
    (["--tasks", "2", "--gpus-per-task", "1"], None,  # a cluster without GPUs
     "sbatch refused the grading array: sbatch: error: Invalid generic resource (gres) specification"),
    (["--tasks", "2"], "/nonexistent", "sbatch and scontrol not found on PATH"),
])
def test_bad_input_is_refused_in_one_line_and_submits_nothing(cluster, course, tmp_path, args, path, message):
    env = cluster.env | ({"PATH": path} if path else {})
    run = autograder("slurm", ASSIGNMENT, str(course.submitted), "--out", str(tmp_path / "out"), *args, env=env)
    assert run.returncode == 2 and run.stderr.count("\n") == 1, run.stderr
    assert run.stderr.startswith("python -m autograder slurm: error: ") and message in run.stderr, run.stderr
    assert not cluster.run("squeue", "--noheader").stdout.strip() and not (tmp_path / "out" / "grades.csv").exists()


def test_dry_run_prints_both_scripts_without_slurm(course, tmp_path):
    run = autograder("slurm", ASSIGNMENT, str(course.submitted), "--out", str(tmp_path / "out"), "--tasks", "3",
                     "--partition", "gpu", "--gpus-per-task", "2", "--cpus-per-task", "4", "--time", "30",
                     "--nbgrader-db", str(tmp_path / "gradebook.db"), "--lms", "canvas", "--dry-run",
                     env=os.environ | {"PATH": "/nonexistent"})
    assert run.returncode == 0, run.stderr
    array, merge = run.stdout.split("# the merge job: sbatch --parsable --dependency=afterany:<the array's job id>\n")
    for line in ["#SBATCH --array=0-2", "#SBATCH --cpus-per-task=4", "#SBATCH --partition=gpu", "#SBATCH --time=30",
                 "#SBATCH --gres=gpu:2", f"#SBATCH --chdir={ROOT}", f"exec {sys.executable} -m autograder grade",
                 '--shard "$((SLURM_ARRAY_TASK_ID + 1))/3"', '--workers "$SLURM_CPUS_ON_NODE" --device cuda \\\n    --lms canvas\n']:
        assert line in array, array
    assert "--gres" not in merge and "#SBATCH --partition=gpu" in merge, merge
    assert (f"merge {tmp_path / 'out'} \\\n    --out {tmp_path / 'out'} --nbgrader-db {tmp_path / 'gradebook.db'} \\\n"
            f"    --submitted {course.submitted}\n") in merge, merge
    assert not (tmp_path / "out").exists()
    for what, path in [("SUBMITTED", course.submitted), ("OUT", tmp_path / "out"),
                       ("--nbgrader-db", tmp_path / "gradebook.db")]:  # the test's folders are all under /tmp
        assert f"warning: {what} {path} is on node-local storage (/tmp): jobs on other nodes will not see it" \
            in run.stderr, run.stderr


def test_the_test_cluster_stops_on_a_signal_as_on_enter():
    """tools/local_slurm.py in a script: started in the background with no terminal, stopped by kill."""
    cluster = subprocess.Popen([sys.executable, str(ROOT / "tools" / "local_slurm.py")], stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = cluster.stdout.readline()
    assert line.startswith("export SLURM_CONF=") and "Enter, Ctrl-C or kill" in line, line + cluster.stderr.read()
    conf = Path(line.split("=", 1)[1].split()[0])
    assert conf.is_file() and cluster.poll() is None, "stdin at its end must not stop it"
    cluster.send_signal(signal.SIGTERM)
    assert cluster.wait(timeout=120) == 0 and not conf.exists(), cluster.stderr.read()


def test_another_assignment_graded_on_slurm_as_a_careful_grader_scores_it(cluster, tmp_path):
    """receptive_fields' realistic class as 2 tasks: each student gets the score its header gives (written from the
    spec before grading), as local grading does in test_autograder_realistic."""
    realistic = students("receptive_fields")
    submitted, out = tmp_path / "submitted", tmp_path / "out"
    for name, student in realistic.items():
        target = submitted / name / "receptive_fields" / "receptive_fields.ipynb"
        target.parent.mkdir(parents=True)
        nbformat.write(notebook("receptive_fields", student, realistic[BASE]), target)
    run = autograder("slurm", "receptive_fields", str(submitted), "--out", str(out), "--tasks", "2", "--wait",
                     env=cluster.env)
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    assert set(summary(run.stdout).values()) == {"COMPLETED, 5 of 5 graded"}, run.stdout
    graded = find_results(out, "receptive_fields")
    assert {s: f"{r.score:g}/{r.max_score:g}" for s, r in graded.items()} == {
        name: student.score for name, student in realistic.items()}
