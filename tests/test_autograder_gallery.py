"""The autograder against a class of wrong and hostile conv_basics submissions (tests/gallery/).

One real grading run (`python -m autograder grade`, 2 workers) grades every gallery entry
beside an honest student; each test below checks one defence from the security model.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from autograder.results import SubmissionResult

ROOT = Path(__file__).resolve().parent.parent
GALLERY = ROOT / "tests" / "gallery"
SOLUTION = ROOT / "solutions" / "conv_basics" / "conv_basics.ipynb"
SUITE_FILE = ROOT / "autograder" / "suites" / "conv_basics" / "test_corr2d.py"
ENTRIES = sorted(p.stem for p in GALLERY.iterdir() if p.suffix in (".py", ".ipynb"))
DEVICE = os.environ.get("GRADER_DEVICE", "auto")  # `make gpu-check` grades the gallery with cuda


def hostile_notebook(source: str) -> nbformat.NotebookNode:
    """The reference solution followed by the gallery entry's cells (separated by ``# %%``)."""
    notebook = nbformat.read(SOLUTION, as_version=4)
    notebook.cells += [nbformat.v4.new_code_cell(cell.strip()) for cell in source.split("# %%")]
    return notebook


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Grade the gallery and an honest student; returns (results by student, out folder, submitted, digests)."""
    base = tmp_path_factory.mktemp("gallery")
    submitted, out = base / "submitted", base / "out"
    places = {"{SUITE_FILE}": str(SUITE_FILE), "{SUBMITTED}": str(submitted), "{OUT}": str(out)}
    for student in ["honest", *ENTRIES]:
        folder = submitted / student / "conv_basics"
        folder.mkdir(parents=True)
        target = folder / "conv_basics.ipynb"
        entry = next(GALLERY.glob(f"{student}.*"), None)
        if entry is None:
            target.write_bytes(SOLUTION.read_bytes())
        elif entry.suffix == ".ipynb":
            target.write_bytes(entry.read_bytes())
        else:
            source = entry.read_text()
            for key, value in places.items():
                source = source.replace(key, value)
            nbformat.write(hostile_notebook(source), target)
    before = tree_digest(submitted)
    run = subprocess.run([sys.executable, "-m", "autograder", "grade", "conv_basics", str(submitted), "--out",
                          str(out), "--workers", "2", "--timeout", "60", "--device", DEVICE],
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0 and "could not grade" not in run.stderr, run.stderr[-3000:]
    results = {p.parent.parent.name: SubmissionResult.read(p) for p in out.glob("*/conv_basics/results.json")}
    return results, out, submitted, before


def graded_tests(result: SubmissionResult, function: str):
    return [t for t in result.tests if t.name.startswith(f"{function}:") and t.status != "skipped"]


def test_every_student_graded(graded):
    results, out, _, _ = graded
    assert sorted(results) == sorted(["honest", *ENTRIES])
    rows = (out / "grades.csv").read_text().splitlines()
    assert len(rows) == 1 + len(results)


def test_honest_student_full_marks(graded):
    honest = graded[0]["honest"]
    assert honest.score == honest.max_score > 0, honest.feedback_text()


@pytest.mark.parametrize("entry, message", [("invalid_json", "not a valid Jupyter notebook"),
                                            ("empty", "the notebook file is empty")])
def test_unreadable_notebook_gets_zero_with_reason(graded, entry, message):
    result = graded[0][entry]
    assert result.score == 0 and result.max_score == graded[0]["honest"].max_score
    assert all(message in t.output for t in result.graded)


def test_missing_function(graded):
    result = graded[0]["missing_function"]
    assert all(t.score == 0 and "does not define `corr2d`" in t.output for t in graded_tests(result, "corr2d"))
    assert all(t.status == "passed" for t in graded_tests(result, "pool2d") + graded_tests(result, "conv_output_shape"))


@pytest.mark.parametrize("entry, function, error", [("syntax_error", "pool2d", "SyntaxError"),
                                                    ("import_error", "conv_output_shape", "ModuleNotFoundError")])
def test_broken_cell_is_explained(graded, entry, function, error):
    result = graded[0][entry]
    assert error in result.output
    assert all(t.score == 0 and f"does not define `{function}`" in t.output for t in graded_tests(result, function))
    assert all(t.status == "passed" for t in graded_tests(result, "corr2d"))


def test_exit_calls(graded):
    result = graded[0]["exit_calls"]
    assert "SystemExit: leaving early" in result.output
    assert all("exited with status 0" in t.output for t in graded_tests(result, "pool2d"))
    assert all(t.status == "passed" for t in graded_tests(result, "corr2d"))


@pytest.mark.parametrize("entry, function, message", [("killed", "corr2d_multi_in_out", "sigkill"),
                                                      ("infinite_loop", "conv_output_shape", "time limit"),
                                                      ("fork_bomb", "conv_output_shape", "time limit"),
                                                      ("memory_hog", "corr2d_multi_in_out", "memory"),
                                                      ("gpu_memory_hog", "corr2d_multi_in_out", "memory")])
def test_runaway_function_fails_alone(graded, entry, function, message):
    result = graded[0][entry]
    failed = graded_tests(result, function)
    assert failed and all(t.score == 0 and message in t.output.lower() for t in failed), failed
    assert any(t.status == "passed" for t in graded_tests(result, "corr2d"))


def test_no_sandbox_process_survives(graded):
    """The escaped daemon and the fork bomb's children are gone: no process of a sandbox uid outlives the grading
    process that owned that uid (``sandbox_uid``: 100,000 + its pid). Sandboxes whose grading process is alive
    belong to another grading run on this machine."""
    leftovers = []
    for entry in Path("/proc").iterdir():
        try:
            alive = entry.name.isdigit() and (entry / "stat").read_text().split(") ")[1][0] != "Z"
            uid = entry.stat().st_uid
            if alive and uid >= 100_000 and not Path(f"/proc/{uid - 100_000}").exists():
                leftovers.append(f"{entry.name} (uid {uid})")
        except OSError:
            pass
    assert not leftovers


def test_huge_output_truncated(graded):
    results, out, _, _ = graded
    result = results["huge_output"]
    assert "more bytes of output dropped" in result.output and result.score == result.max_score
    assert (out / "huge_output" / "conv_basics" / "results.json").stat().st_size < 200_000


def test_monkeypatched_comparisons_do_not_help(graded):
    result = graded[0]["monkeypatch"]
    assert all(t.score == 0 for t in graded_tests(result, "corr2d"))


def test_forged_reply_is_refused(graded):
    results, out, _, _ = graded
    assert not (out / "pwned").exists()
    assert any("not plain data" in t.output for t in graded_tests(results["forged_reply"], "corr2d"))


@pytest.mark.skipif(os.geteuid() != 0, reason="the private sandbox user needs a grader running as root")
def test_snooping_refused(graded):
    results, out, submitted, before = graded
    printed = results["snoop"].output
    assert "read " + str(SUITE_FILE) + ": PermissionError" in printed
    assert SUITE_FILE.read_text()[:200] not in printed
    assert "allowed" not in printed, printed
    assert tree_digest(submitted) == before
    assert results["honest"].score == results["honest"].max_score


def test_results_are_gradescope_json(graded):
    _, out, _, _ = graded
    data = json.loads((out / "honest" / "conv_basics" / "results.json").read_text())
    assert {"score", "execution_time", "output", "tests"} <= set(data)
    for test in data["tests"]:
        assert {"name", "score", "max_score", "status", "output", "visibility"} <= set(test)
        assert ":" in test["name"]
    assert (out / "honest" / "conv_basics" / "feedback.txt").read_text().startswith("conv_basics")
