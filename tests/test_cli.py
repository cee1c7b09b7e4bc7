"""The instructor's command line as a new instructor meets it, through `python -m autograder` itself.

Fast tests (no grading, and no torch: the CLI checks arguments and layouts before loading it): help, wrong
arguments, wrong layouts. Slow ones grade a fake class with the mistakes real classes have (a renamed notebook, two
notebooks in a folder, unreadable files, a syntax error, a cell that raises, a flat LMS export, a timeout too
short) and assert the summary, the exit status, grades.csv and the feedback; then LMS downloads as they come (a
Canvas .zip with a roster, a regraded download, Moodle's folders, Blackboard's attempts), a class of the other
assignment, a Python without the venv and Ctrl-C.
"""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from autograder.results import SubmissionResult
from test_autograder import autograder  # imports nothing this module does not (no torch)

ROOT = Path(__file__).resolve().parent.parent
SOLUTION = ROOT / "solutions" / "conv_basics" / "conv_basics.ipynb"
EXERCISE = ROOT / "exercises" / "conv_basics" / "conv_basics.ipynb"
# Runs the CLI as `python -m autograder` does, then says whether torch was imported.
PROBE = """
import runpy, sys
sys.argv[0] = "autograder"
try:
    runpy.run_module("autograder", run_name="__main__", alter_sys=True)
finally:
    print(f"\\ntorch imported: {'torch' in sys.modules}")
"""


def light(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The CLI run with ``args``, asserted not to import torch; stdout without the probe's line."""
    run = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, cwd=cwd, timeout=120)
    run.stdout, _, imported = run.stdout.rpartition("\ntorch imported: ")
    assert imported.strip() == "False", f"`{' '.join(args)}` imported torch"
    return run


# --- help -------------------------------------------------------------------------------------------------------

def test_help_lists_every_verb_and_exits_0():
    run = light("--help")
    assert run.returncode == 0 and run.stderr == ""
    for verb in ("grade", "merge", "package", "slurm"):
        assert re.search(rf"^  {verb} +\S.{{20,}}$", run.stdout, re.MULTILINE), run.stdout
    for args, problem in ([[], "no command given"], [["frobnicate"], "unknown command 'frobnicate'"]):
        wrong = light(*args)
        assert wrong.returncode == 2 and problem in wrong.stderr and "  grade " in wrong.stderr


@pytest.mark.parametrize("verb", ["grade", "merge", "package", "slurm"])
def test_every_option_says_what_it_does_and_its_default(verb):
    run = light(verb, "--help")
    assert run.returncode == 0, run.stderr
    options = re.split(r"\n  (?=-)", run.stdout.split("options:")[1].split("\n\n")[0])[1:]
    for option in options:
        name, _, text = option.partition(" ")
        assert len(text.split()) >= 4, f"{verb} {name} does not say what it does: {option!r}"
        flag = name in ("-h,", "--force", "--dry-run", "--wait") or (  # a switch; a required folder or count
            verb in ("merge", "slurm") and name == "--out") or (verb == "slurm" and name == "--tasks")
        assert flag or "default" in text, f"{verb} {name} shows no default: {option!r}"


def test_grade_help_explains_device_time_limits_layouts_and_exit_statuses():
    text = " ".join(light("grade", "--help").stdout.split())
    assert "(default: auto)" in text and "cuda needs a CUDA GPU" in text
    assert "auto is cuda when a GPU is present" in text
    assert "(default: 300)" in text and "own limit of 10 s" in text
    assert "SUBMITTED/<student>/ASSIGNMENT/ASSIGNMENT.ipynb" in text and "SUBMITTED/<student>.ipynb" in text
    for status in ("0 every submission found has a result", "1 some could not be graded", "2 nothing was graded"):
        assert status in text


# --- wrong arguments: one line, exit 2, nothing written, torch never loaded ---------------------------------------

BAD_ARGUMENTS = {
    "no workers": (["grade", "conv_basics", "{class}", "--workers", "0"], "--workers: must be 1 or more, got 0"),
    "negative workers": (["grade", "conv_basics", "{class}", "--workers", "-1"], "must be 1 or more, got -1"),
    "workers not a number": (["grade", "conv_basics", "{class}", "--workers", "two"], "expected a whole number"),
    "zero timeout": (["grade", "conv_basics", "{class}", "--timeout", "0"], "seconds above 0, got 0"),
    "negative timeout": (["grade", "conv_basics", "{class}", "--timeout", "-5"], "seconds above 0, got -5"),
    "timeout nan": (["grade", "conv_basics", "{class}", "--timeout", "nan"], "seconds above 0, got nan"),
    "shard 1of4": (["grade", "conv_basics", "{class}", "--shard", "1of4"], "expected K/N such as 1/4"),
    "shard 3/2": (["grade", "conv_basics", "{class}", "--shard", "3/2"], "K must be between 1 and N"),
    "shard 0/4": (["grade", "conv_basics", "{class}", "--shard", "0/4"], "K must be between 1 and N"),
    "out is a file": (["grade", "conv_basics", "{class}", "--out", "{file}"], "is a file; give a folder"),
    "out under a file": (["grade", "conv_basics", "{class}", "--out", "{file}/out"], "which is a file"),
    "submission is a .json": (["grade", "conv_basics", "{file}"], "is neither a folder, an LMS's .zip nor a notebook"),
    "no such submission": (["grade", "conv_basics", "{tmp}/nowhere"], "does not exist"),
    "out inside the class folder": (["grade", "conv_basics", "{class}", "--out", "{class}/graded"],
                                    "lies inside SUBMITTED"),
    "out is the class folder": (["grade", "conv_basics", "{class}", "--out", "{class}"], "lies inside SUBMITTED"),
    "roster without ids": (["grade", "conv_basics", "{class}", "--roster", "{file}"], "has no 'id' column"),
    "no such roster": (["grade", "conv_basics", "{class}", "--roster", "{tmp}/roster.csv"], "is not a file"),
    "lms pattern without ids": (["grade", "conv_basics", "{class}", "--lms", "(?P<x>.*)"],
                                "with the groups (?P<student_id>...) and (?P<file_id>...)"),
    "no such assignment": (["grade", "conv_basic", "{class}"], "no hidden suite for 'conv_basic'"),
    "gradebook is a folder": (["grade", "conv_basics", "{class}", "--nbgrader-db", "{tmp}"], "give a file name"),
    "unknown device": (["grade", "conv_basics", "{class}", "--device", "gpu"], "invalid choice: 'gpu'"),
    "package into a folder": (["package", "conv_basics", "--out", "{tmp}"], "is a folder; give a file name"),
    "package an unknown assignment": (["package", "cnn"], "(there are: cnn_vs_fc, conv_basics, receptive_fields)"),
    "merge a missing folder": (["merge", "{tmp}/nowhere", "--out", "{tmp}/merged"], "nowhere is not a folder"),
    "merge into a file": (["merge", "{class}", "--out", "{file}"], "is a file; give a folder"),
}


@pytest.mark.parametrize("case", BAD_ARGUMENTS)
def test_wrong_argument_gets_one_line(tmp_path, case):
    args, message = BAD_ARGUMENTS[case]
    (tmp_path / "class" / "alice" / "conv_basics").mkdir(parents=True)
    shutil.copy(SOLUTION, tmp_path / "class" / "alice" / "conv_basics")
    (tmp_path / "results.json").write_text("{}")
    places = {"{class}": str(tmp_path / "class"), "{file}": str(tmp_path / "results.json"), "{tmp}": str(tmp_path)}
    before = sorted(tmp_path.rglob("*"))
    run = light(*[re.sub(r"\{\w+\}", lambda m: places[m[0]], arg) for arg in args], cwd=tmp_path)
    assert run.returncode == 2 and message in run.stderr, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr, run.stderr
    assert run.stderr.startswith(f"python -m autograder {args[0]}: error: ")
    assert sorted(tmp_path.rglob("*")) == before, "a wrong argument wrote something"


def test_out_folders_are_created_with_their_parents(tmp_path):
    (tmp_path / "class" / "alice" / "conv_basics").mkdir(parents=True)
    shutil.copy(SOLUTION, tmp_path / "class" / "alice" / "conv_basics")
    zip_path = tmp_path / "new" / "deeper" / "autograder.zip"
    assert light("package", "conv_basics", "--out", str(zip_path)).returncode == 0 and zip_path.is_file()
    out = tmp_path / "a" / "b" / "graded"  # an empty shard: the folder and grades.csv, no grading
    run = light("grade", "conv_basics", str(tmp_path / "class"), "--shard", "2/2", "--out", str(out))
    assert run.returncode == 0 and (out / "grades.csv").read_text().startswith("student,assignment,score"), run.stderr
    assert "graded 0, unchanged and skipped 0, could not grade 0" in run.stdout


# --- wrong layouts: exit 2, the expected layouts beside what was found --------------------------------------------

def folder_of(base: Path, files: dict[str, Path | str]) -> Path:
    for name, content in files.items():
        (base / name).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            shutil.copy(content, base / name)
        else:
            (base / name).write_text(content)
    return base


WRONG_LAYOUTS = {
    "one student's folder": ({"alice/conv_basics/conv_basics.ipynb": SOLUTION}, "alice",
                             ["holds conv_basics/, as one student's folder does",
                              "alice/conv_basics/conv_basics.ipynb"]),
    "one student's assignment folder": ({"alice/conv_basics/conv_basics.ipynb": SOLUTION}, "alice/conv_basics",
                                        ["holds conv_basics.ipynb, as one student's assignment folder does"]),
    "an assignment nobody submitted": ({"alice/cnn_vs_fc/cnn_vs_fc.ipynb": SOLUTION, "bob/cnn_vs_fc/x.ipynb": SOLUTION},
                                       ".", ["alice/   cnn_vs_fc/", "bob/   cnn_vs_fc/"]),
    "an empty folder": ({}, ".", ["is empty"]),
    "files that are not notebooks": ({"alice.py": "x = 1", "notes/readme.txt": "hi"}, ".",
                                     ["alice.py", "notes/   readme.txt"]),
}


@pytest.mark.parametrize("case", WRONG_LAYOUTS)
def test_nothing_to_grade_shows_the_layouts_and_what_was_found(tmp_path, case):
    files, given, found = WRONG_LAYOUTS[case]
    submitted = folder_of(tmp_path / "submitted", files) / given
    submitted.mkdir(parents=True, exist_ok=True)
    run = light("grade", "conv_basics", str(submitted), "--out", str(tmp_path / "out"))
    assert run.returncode == 2 and run.stdout == "", run.stdout + run.stderr
    assert f"found no conv_basics submission in {submitted}" in run.stderr
    for layout in ("<student>/conv_basics/conv_basics.ipynb  nbgrader's layout", "<student>.ipynb ",
                   "one notebook, given instead of a folder"):
        assert layout in run.stderr, run.stderr
    for excerpt in found:
        assert excerpt in run.stderr, run.stderr
    assert not (tmp_path / "out").exists()


def test_make_help_lists_every_target_the_readme_uses(repo):
    listed = set(re.findall(r"^make ([\w-]+)", subprocess.run(["make", "-s", "help"], cwd=repo, capture_output=True,
                                                             text=True).stdout, re.MULTILINE))
    used = set(re.findall(r"`make ([\w-]+)", (repo / "README.md").read_text()))
    phony = set(re.search(r"^\.PHONY:(.*)$", (repo / "Makefile").read_text(), re.MULTILINE)[1].split())
    assert used - {"help"} <= listed and phony - {"help"} <= listed, (used | phony) - listed


def test_readme_shows_the_nbgrader_export_step_and_its_folder(repo):
    readme = (repo / "README.md").read_text()
    assert re.search(r"^python -m autograder grade .* --nbgrader-db gradebook\.db", readme, re.MULTILINE)
    assert re.search(r"^nbgrader export +# in the same folder: reads \./gradebook\.db, writes \./grades\.csv",
                     readme, re.MULTILINE)


# --- a class graded as an instructor grades it (slow) -------------------------------------------------------------

def solution_with(edit=None, extra: str | None = None) -> nbformat.NotebookNode:
    notebook = nbformat.read(SOLUTION, as_version=4)
    for cell in notebook.cells:
        if edit and cell.cell_type == "code":
            cell.source = edit(cell.source)
    if extra:
        notebook.cells.append(nbformat.v4.new_code_cell(extra))
    return notebook


def code_cell_position(notebook: nbformat.NotebookNode, first_line: str) -> int:
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    return next(i for i, cell in enumerate(code, 1) if cell.source.startswith(first_line))


BROKEN_POOL = 'def pool2d(X, pool_size, mode="max", stride=None, padding=0)'  # its colon is missing
RAISES = "kernel_check = corr2d(torch.ones(3, 3), kernel_i_never_defined)"
CLASS = {  # student -> {file in submitted/<student>/conv_basics/: content}
    "alice": {"conv_basics.ipynb": SOLUTION},
    "bob": {"my_conv.ipynb": SOLUTION},                                    # renamed: the only notebook is graded
    "carol": {"conv_basics.ipynb": EXERCISE},                              # untouched
    "dave": {"conv_basics.ipynb": solution_with(lambda s: s.replace(BROKEN_POOL + ":", BROKEN_POOL))},
    "ella": {"conv_basics.ipynb": solution_with(extra=RAISES)},            # an exception at the top level
    "erin": {"conv_basics.ipynb": SOLUTION, "conv_basics-Copy1.ipynb": EXERCISE},  # the one named like it counts
    "frank": {"my_conv.ipynb": SOLUTION, "zz_final.ipynb": EXERCISE},      # which one? refused
    "gina": {"conv_basics.ipynb": ""},                                     # empty
    "hank": {"conv_basics.ipynb": "this is not JSON"},
    "ivy": {"conv_basics.ipynb": SOLUTION.read_text()[:5000]},             # truncated
    "jack": {"notes.txt": "I could not finish"},                           # no notebook
}
NOT_GRADED = {"frank": ("several notebooks", "none named conv_basics.ipynb: my_conv.ipynb, zz_final.ipynb"),
              "gina": ("unreadable", "the notebook file is empty"),
              "hank": ("unreadable", "not a valid Jupyter notebook"),
              "ivy": ("unreadable", "not a valid Jupyter notebook"),
              "jack": ("no notebook", "jack/conv_basics/ holds no notebook (.ipynb); it holds notes.txt")}


def write_class(submitted: Path) -> None:
    for student, files in CLASS.items():
        folder = submitted / student / "conv_basics"
        folder.mkdir(parents=True)
        for name, content in files.items():
            if isinstance(content, nbformat.NotebookNode):
                nbformat.write(content, folder / name)
            else:
                folder_of(folder, {name: content})
    folder_of(submitted, {"kim/cnn_vs_fc/cnn_vs_fc.ipynb": SOLUTION,  # submitted another assignment only
                          "conv_basics.ipynb": EXERCISE})  # outside the layout: said, not graded


@pytest.fixture(scope="module")
def course(tmp_path_factory,
           course_gradebook) -> tuple[Path, subprocess.CompletedProcess, subprocess.CompletedProcess]:
    """The class graded twice from the course folder, as the README says: (course folder, first run, rerun)."""
    base = tmp_path_factory.mktemp("course")
    shutil.copy(course_gradebook, base / "gradebook.db")
    write_class(base / "submitted")
    grade = ["grade", "conv_basics", "submitted", "--out", "autograded", "--workers", "2"]
    return base, autograder(*grade, "--nbgrader-db", "gradebook.db", cwd=base), autograder(*grade, cwd=base)


def not_graded_lines(stdout: str) -> dict[str, str]:
    tail = stdout.split("could not grade")[1]
    return dict(re.findall(r"^  (\w+): (.*)$", tail, re.MULTILINE))


@pytest.mark.slow
def test_summary_counts_and_names_who_could_not_be_graded(course):
    _, first, rerun = course
    assert first.returncode == 1, first.stdout + first.stderr[-3000:]
    assert "11 conv_basics submission(s) in submitted (nbgrader's layout)" in first.stdout
    assert "conv_basics on cpu: graded 6, unchanged and skipped 0, could not grade 5:" in first.stdout
    assert ("not graded, by rule (2 files):\n  conv_basics.ipynb: not in a <student>/conv_basics/ folder\n"
            "  kim: holds no conv_basics/ folder (another assignment's)") in first.stdout
    listed = not_graded_lines(first.stdout.split("not graded, by rule")[0])
    assert set(listed) == set(NOT_GRADED), first.stdout
    for student, (status, reason) in NOT_GRADED.items():
        assert listed[student].startswith(f"{status}: ") and reason in listed[student], listed[student]
    # nothing changed: the graded are skipped, those not graded are tried again and listed again
    assert rerun.returncode == 1 and "graded 0, unchanged and skipped 6, could not grade 5:" in rerun.stdout
    assert not_graded_lines(rerun.stdout.split("not graded, by rule")[0]) == listed


@pytest.mark.slow
def test_grades_csv_has_a_status_for_everyone(course):
    rows = {r["student"]: r for r in csv.DictReader((course[0] / "autograded" / "grades.csv").open())}
    assert set(rows) == set(CLASS)
    for student, row in rows.items():
        assert row["status"] == NOT_GRADED.get(student, ("graded",))[0], row
        assert float(row["max_score"]) == 56
    assert {s for s, row in rows.items() if float(row["score"]) == 56} == {"alice", "bob", "ella", "erin"}


@pytest.mark.slow
def test_the_graded_file_is_recorded(course):
    expected = {"alice": "conv_basics.ipynb", "bob": "my_conv.ipynb", "erin": "conv_basics.ipynb",
                "gina": "conv_basics.ipynb", "frank": "", "jack": ""}
    for student, name in expected.items():
        data = (course[0] / "autograded" / student / "conv_basics" / "results.json").read_text()
        assert f'"notebook": "{name}"' in data, student
        feedback = (course[0] / "autograded" / student / "conv_basics" / "feedback.txt").read_text()
        assert (f"Graded file: {name}\n" in feedback) == bool(name), feedback[:300]
    frank = (course[0] / "autograded" / "frank" / "conv_basics" / "feedback.txt").read_text()
    assert frank.startswith("conv_basics — frank\nScore: 0 / 56\n\nNot graded (several notebooks):\n")
    assert "my_conv.ipynb, zz_final.ipynb" in frank and frank.count("none named conv_basics.ipynb") == 1


@pytest.mark.slow
def test_feedback_follows_the_notebook_and_leaves_out_cuda_tests(course):
    solution = nbformat.read(SOLUTION, as_version=4)
    defined = [cell.metadata["nbgrader"]["grade_id"] for cell in solution.cells
               if cell.metadata.get("nbgrader", {}).get("solution")]  # the notebook's order of what students write
    feedback = (course[0] / "autograded" / "alice" / "conv_basics" / "feedback.txt").read_text()
    subjects = [line.split("] ")[1].split(":")[0] for line in feedback.splitlines() if line.startswith("[")]
    assert list(dict.fromkeys(subjects)) == defined, subjects
    assert "Score: 56 / 56" in feedback and "[SKIP]" not in feedback and "(0/" not in feedback
    skipped = [line for line in feedback.splitlines() if "CUDA" in line]
    assert len(skipped) == 1 and skipped[0].startswith("Skipped on this machine, not counted (needs a CUDA GPU")


@pytest.mark.slow
@pytest.mark.parametrize("student, first_line, error", [("dave", BROKEN_POOL, "SyntaxError"),
                                                        ("ella", RAISES, "NameError")])
def test_a_notebook_that_stops_leads_with_the_cause(course, student, first_line, error):
    notebook = nbformat.read(course[0] / "submitted" / student / "conv_basics" / "conv_basics.ipynb", as_version=4)
    position = code_cell_position(notebook, first_line)
    feedback = (course[0] / "autograded" / student / "conv_basics" / "feedback.txt").read_text()
    cause = feedback.split("\n[")[0]  # everything before the first test
    assert f"code cell {position} (`{first_line}`)" in cause and error in cause, feedback[:2000]
    assert "does not define" not in cause
    expected = "45 / 56" if student == "dave" else "56 / 56"  # dave's pool2d is missing; ella's cell changes nothing
    assert f"Score: {expected}" in feedback


@pytest.mark.slow
def test_the_readme_nbgrader_export_step(course):
    base = course[0]
    run = subprocess.run([str(Path(sys.executable).parent / "nbgrader"), "export"], cwd=base, capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    # nbgrader exports a row per student and assignment the gradebook knows (every one `make exercises` recorded)
    rows = {r["student_id"]: r for r in csv.DictReader((base / "grades.csv").open()) if r["assignment"] == "conv_basics"}
    assert float(rows["alice"]["score"]) == 56 and float(rows["alice"]["max_score"]) == 56, rows["alice"]
    assert float(rows["gina"]["score"]) == 0, rows["gina"]


@pytest.fixture(scope="module")
def lms_export(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("lms")
    folder_of(base / "export", {"lee.ipynb": SOLUTION, "mo.ipynb": EXERCISE})
    return base


@pytest.mark.slow
def test_a_flat_export_and_a_bad_timeout_do_not_stick(lms_export):
    base = lms_export
    out = ["--out", str(base / "out"), "--workers", "2"]
    zero = light("grade", "conv_basics", str(base / "export"), *out, "--timeout", "0")
    assert zero.returncode == 2 and not (base / "out").exists()
    short = autograder("grade", "conv_basics", str(base / "export"), *out, "--timeout", "0.1")
    assert short.returncode == 0, short.stdout + short.stderr[-3000:]
    assert "2 conv_basics submission(s) in" in short.stdout and "(a flat folder of notebooks)" in short.stdout
    assert "graded 2, unchanged and skipped 0, could not grade 0" in short.stdout
    assert "were stopped by a limit" in short.stdout and "lee (--timeout 0.1 s)" in short.stdout
    lee = SubmissionResult.read(base / "out" / "lee" / "conv_basics" / "results.json")
    assert lee.score < lee.max_score and lee.limits_hit == ["submission_seconds"]
    assert lee.causes == ["the submission used up its time limit (0.1 s for all its tests)"]

    again = autograder("grade", "conv_basics", str(base / "export"), *out)
    assert again.returncode == 0 and "graded 2, unchanged and skipped 0" in again.stdout, again.stdout
    lee = SubmissionResult.read(base / "out" / "lee" / "conv_basics" / "results.json")
    assert lee.score == lee.max_score == 56 and not lee.limits_hit and not lee.causes


# --- the skip rule itself ------------------------------------------------------------------------------------------

def test_a_rerun_skips_only_what_grading_again_could_not_change(tmp_path):
    import dataclasses

    from autograder import runner
    from autograder.notebook import read_submission
    from autograder.sandbox import Limits

    submission = read_submission(SOLUTION, "alice", "conv_basics")
    job = runner.Job("alice", "conv_basics", SOLUTION, tmp_path, device="cpu", suite_sha256="s")

    def skipped(device="cpu", status="graded", hit=(), previous=Limits(), now=Limits(), force=False) -> bool:
        SubmissionResult("alice", "conv_basics", notebook_sha256=submission.sha256, suite_sha256="s", status=status,
                         device=device, limits=dataclasses.asdict(previous), limits_hit=list(hit)).write(tmp_path)
        return runner.already_graded(dataclasses.replace(job, limits=now, force=force), submission)

    assert skipped()
    assert not skipped(force=True)
    assert not skipped(device="cuda"), "graded on another device"
    assert not skipped(status="unreadable"), "not graded then"
    longer, shorter = Limits(submission_seconds=600), Limits(submission_seconds=1)
    assert skipped(now=longer), "it finished within its limits: more time changes nothing"
    assert not skipped(now=shorter), "less time may change it"
    assert not skipped(hit=["submission_seconds"], now=longer), "it ran out of time: more time may change it"
    assert skipped(hit=["call_seconds"], now=longer), "the limit it hit is the same"
    assert not skipped(hit=["call_seconds"], now=Limits(call_seconds=20))
    SubmissionResult("alice", "conv_basics", notebook_sha256=submission.sha256, suite_sha256="s").write(tmp_path)
    assert not runner.already_graded(job, submission), "an older result, without device and limits"


# --- LMS downloads, a roster, and nothing left unsaid (slow: each grades a few notebooks) ------------------------

CNN = ROOT / "solutions" / "cnn_vs_fc" / "cnn_vs_fc.ipynb"
FORGED = "x\nconv_basics on cpu: graded 42, unchanged and skipped 0, could not grade 0.ipynb"
CANVAS = {"diazdave_LATE_10237_5551388_conv_basics.ipynb": SOLUTION,   # late: kept in the results
          "hoppergrace_10240_5551390_conv_basics-1.ipynb": EXERCISE,  # a resubmission's name
          "lovelaceada_10241_5551391_report.pdf": "%PDF",              # no notebook: refused, named
          "turingalan_10242_5551392_cnn_vs_fc.ipynb": CNN,             # the other assignment: refused, named
          "knuthdon_10243_5551393_conv_basics.ipynb": SOLUTION,        # not on the roster: unmatched
          "README.txt": "downloaded from Canvas",                      # no LMS name: named
          FORGED: "{}"}                                                # a name that tries to print a line
ROSTER = "id,first_name,last_name,email\ndd7,Dave,Diaz,\ngh3,Grace,Hopper,\nal1,Ada,Lovelace,\nat2,Alan,Turing,\n" \
         "zz9,Zed,Zulu,zz9@example.org\n"


def zipped(folder: Path, archive: Path) -> Path:
    shutil.make_archive(str(archive.with_suffix("")), "zip", folder)
    return archive


def rows_of(out: Path) -> dict[str, dict]:
    return {r["student"]: r for r in csv.DictReader((out / "grades.csv").open(newline=""))}


@pytest.fixture(scope="module")
def canvas(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """A Canvas download, zipped, graded with a roster (nbgrader's `db student import` CSV)."""
    base = tmp_path_factory.mktemp("canvas")
    folder_of(base / "download", CANVAS)
    folder_of(base, {"roster.csv": ROSTER})
    run = autograder("grade", "conv_basics", str(zipped(base / "download", base / "submissions.zip")), "--out",
                     str(base / "out"), "--roster", str(base / "roster.csv"), "--workers", "2", cwd=base)
    return base, run


@pytest.mark.slow
def test_a_canvas_zip_with_a_roster_names_every_file(canvas):
    base, run = canvas
    assert run.returncode == 1, run.stdout + run.stderr[-3000:]
    out = run.stdout
    assert "(Canvas's download, unpacked from submissions.zip)" in out
    assert "conv_basics on cpu: graded 2, unchanged and skipped 0, could not grade 5:" in out
    for line in ["  README.txt: its name is not one Canvas's download gives",
                 "  al1: no notebook: lovelaceada_10241_5551391_report.pdf is not a Jupyter notebook (.ipynb)",
                 "  at2: another assignment: this notebook is not conv_basics: it has none of Conv2D, conv_output_shape,"
                 " corr2d, corr2d_multi_in_out, pool2d; it looks like cnn_vs_fc",
                 "  knuthdon_10243_5551393_conv_basics.ipynb: matches no student of the roster",
                 "  x\\nconv_basics on cpu: graded 42, unchanged and skipped 0, could not grade 0.ipynb: its name is not",
                 "on the roster, no submission (1): zz9", "marked late by the LMS (1): dd7"]:
        assert "\n" + line in out, out
    assert not re.search(r"^conv_basics on cpu: graded 42", out + run.stderr, re.MULTILINE)
    rows = rows_of(base / "out")
    assert set(rows) == {"dd7", "gh3", "al1", "at2", "zz9"}
    assert [rows[s]["status"] for s in sorted(rows)] == ["no notebook", "another assignment", "graded", "graded",
                                                         "no submission"]
    assert (rows["dd7"]["score"], rows["dd7"]["late"], rows["gh3"]["late"]) == ("56", "yes", "")
    assert rows["zz9"]["max_score"] == "56" and rows["zz9"]["score"] == "0"
    assert (base / "out" / "grades.csv").read_text().count("\n") == 6, "one line per row: no name breaks a line"
    assert "Feedback links the book at" not in run.stderr and "feedback links the book at https://" in run.stderr
    assert SubmissionResult.read(base / "out" / "dd7" / "conv_basics" / "results.json").late
    report = (base / "out" / "report.html").read_text()
    assert "<h3>Not counted in the scores</h3>" in report and "<td>at2</td><td>another assignment</td>" in report


@pytest.mark.slow
def test_a_regraded_download_marks_who_left_and_adds_no_row(canvas, tmp_path):
    base, _ = canvas
    shutil.copytree(base / "download", tmp_path / "again")
    (tmp_path / "again" / "hoppergrace_10240_5551390_conv_basics-1.ipynb").unlink()  # withdrawn from the course
    run = autograder("grade", "conv_basics", str(tmp_path / "again"), "--out", str(base / "out"), "--roster",
                     str(base / "roster.csv"), "--workers", "2")
    assert run.returncode == 1 and "graded 0, unchanged and skipped 1, could not grade 5" in run.stdout, run.stdout
    assert f"no longer in {tmp_path / 'again'}: results kept, marked in grades.csv and the report (1): gh3" in run.stdout
    rows = rows_of(base / "out")
    assert set(rows) == {"dd7", "gh3", "al1", "at2", "zz9"} and rows["gh3"]["in_last_run"] == "no"
    assert rows["dd7"]["in_last_run"] == "yes"


@pytest.mark.slow
def test_moodle_folders_and_blackboard_attempts(tmp_path):
    folder_of(tmp_path / "moodle", {"Grace Hopper_77_assignsubmission_file_/conv_basics.ipynb": SOLUTION,
                                    "José Núñez_78_assignsubmission_file_/mine.ipynb": SOLUTION,
                                    "José Núñez_78_assignsubmission_onlinetext_/onlinetext.html": "<p>done</p>"})
    folder_of(tmp_path / "bb", {"conv_basics_ghopper_attempt_2024-10-01-09-30-00_conv_basics.ipynb": SOLUTION,
                                "conv_basics_ghopper_attempt_2024-09-30-18-00-00_conv_basics.ipynb": EXERCISE,
                                "conv_basics_ghopper_attempt_2024-10-01-09-30-00.txt": "receipt"})
    moodle = autograder("grade", "conv_basics", str(tmp_path / "moodle"), "--out", str(tmp_path / "out"))
    assert moodle.returncode == 0 and "(Moodle's download)" in moodle.stdout, moodle.stdout + moodle.stderr[-2000:]
    assert "graded 2, unchanged and skipped 0, could not grade 0" in moodle.stdout
    assert ("  José Núñez_78_assignsubmission_onlinetext_/onlinetext.html: not a notebook, beside this student's "
            "notebook") in moodle.stdout
    blackboard = autograder("grade", "conv_basics", str(zipped(tmp_path / "bb", tmp_path / "bb.zip")), "--out",
                            str(tmp_path / "out"))
    assert blackboard.returncode == 0 and "graded 1," in blackboard.stdout, blackboard.stdout
    assert "an earlier attempt (2024-09-30-18-00-00); the latest, 2024-10-01-09-30-00, is graded" in blackboard.stdout
    assert "conv_basics_ghopper_attempt_2024-10-01-09-30-00.txt: the LMS's receipt of an attempt" in blackboard.stdout
    rows = rows_of(tmp_path / "out")
    assert {s: r["score"] for s, r in rows.items()} == {"Grace_Hopper": "56", "Jose_Nunez": "56", "ghopper": "56"}
    assert rows["Grace_Hopper"]["in_last_run"] == "no", "the Blackboard run did not hold the Moodle students"


def test_a_class_of_the_other_assignment_is_refused_naming_it(tmp_path):
    folder_of(tmp_path / "export", {"alice.ipynb": SOLUTION, "bob.ipynb": EXERCISE})
    run = light("grade", "cnn_vs_fc", str(tmp_path / "export"), "--out", str(tmp_path / "out"))
    assert run.returncode == 2 and run.stdout == "", run.stdout
    assert ("none of the 2 notebooks in" in run.stderr and "is cnn_vs_fc: they look like conv_basics "
            "(python -m autograder grade conv_basics ...); nothing graded") in run.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_one_notebook_of_the_other_assignment_gets_a_result_saying_so(tmp_path):
    """One notebook alone (Gradescope's upload, nbgrader autograde's one student) of the other assignment is the
    student's mistake, not the instructor's: a result of 0 that names the assignment it looks like, exit 1."""
    run = autograder("grade", "cnn_vs_fc", str(SOLUTION), "--out", str(tmp_path / "out"))
    assert run.returncode == 1, run.stdout + run.stderr[-2000:]
    result = json.loads((tmp_path / "out" / "conv_basics" / "cnn_vs_fc" / "results.json").read_text())
    assert result["score"] == 0 and result["extra_data"]["status"] == "another assignment", result
    assert ("this notebook is not cnn_vs_fc: it has none of" in result["output"]
            and "it looks like conv_basics" in result["output"] and "submit your cnn_vs_fc notebook" in result["output"])


def test_without_the_venv_one_line_and_nothing_written(tmp_path):
    folder_of(tmp_path / "export", {"alice.ipynb": SOLUTION})
    run = subprocess.run([sys.executable, "-S", "-m", "autograder", "grade", "conv_basics", "export", "--out", "out"],
                         cwd=tmp_path, capture_output=True, text=True, env={"PYTHONPATH": str(ROOT)}, timeout=120)
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "run `make setup` once" in run.stderr, run.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_ctrl_c_ends_in_one_line_and_130(tmp_path):
    import signal
    import time

    slow = solution_with(extra="import time\ntime.sleep(30)")
    (tmp_path / "export").mkdir()
    for student in ("ann", "ben", "cat"):
        nbformat.write(slow, tmp_path / "export" / f"{student}.ipynb")
    grading = subprocess.Popen([sys.executable, "-m", "autograder", "grade", "conv_basics", "export", "--out", "out",
                                "--workers", "2"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    time.sleep(12)  # the workers have forked their sandboxes, which sleep in the notebook's last cell
    os.killpg(grading.pid, signal.SIGINT)  # as a terminal's Ctrl-C does: to the whole process group
    stdout, stderr = grading.communicate(timeout=60)
    assert grading.returncode == 130 and "Traceback" not in stderr, stderr[-3000:]
    assert stderr.strip().splitlines()[-1] == ("python -m autograder grade: interrupted; the results written so far "
                                               "are kept, and the same command grades the rest"), stderr[-2000:]


def test_symlinked_folders_are_named_not_followed(tmp_path):
    """A folder of the class that is a symbolic link (to another student's folder, the hidden suite...) is not
    followed, in nbgrader's layout or a flat one: each is named with why, and every other student is found."""
    from autograder.submissions import LINK, find_submissions

    notebook = ROOT / "solutions" / "conv_basics" / "conv_basics.ipynb"
    elsewhere = tmp_path / "elsewhere" / "conv_basics"
    elsewhere.mkdir(parents=True)
    shutil.copy(notebook, elsewhere)
    nbgrader, flat = tmp_path / "nbgrader", tmp_path / "flat"
    (nbgrader / "alice" / "conv_basics").mkdir(parents=True)
    shutil.copy(notebook, nbgrader / "alice" / "conv_basics")
    (nbgrader / "bob").mkdir()
    (nbgrader / "bob" / "conv_basics").symlink_to(elsewhere)
    (nbgrader / "carol").symlink_to(elsewhere.parent)
    (flat / "folder").mkdir(parents=True)
    shutil.copy(notebook, flat / "dave.ipynb")
    (flat / "erin").symlink_to(elsewhere)
    (flat / "folder" / "linked").symlink_to(elsewhere)
    found = find_submissions(nbgrader, "conv_basics")
    assert list(found.notebooks) == ["alice"] and found.ignored == {"carol": LINK}
    assert found.refused["bob"].reason == f"bob/conv_basics/ is {LINK}; copy the notebook into it instead"
    found = find_submissions(flat, "conv_basics")
    assert list(found.notebooks) == ["dave"] and found.unusable == {"erin": LINK, "folder/linked": LINK}
