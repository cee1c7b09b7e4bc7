"""The autograder against a class of wrong and hostile conv_basics submissions (tests/gallery/).

One real grading run (`python -m autograder grade`, 2 workers) grades every gallery entry
beside an honest student; each test below checks one defence from the security model, and
that nothing of any of them outlives grading.
On a CUDA grader, the entries that hog the GPU (``gpu_*``) are graded in parallel with honest
students on one GPU (4 workers): the hogs lose the hogging tests, the honest students nothing.
"""
from __future__ import annotations

import ctypes
import hashlib
import json
import os
import re
from pathlib import Path

import nbformat
import pytest
import torch

from autograder.sandbox.gpu_watch import nvidia_driver_loaded
from autograder.results import SubmissionResult
from test_autograder import autograder

ROOT = Path(__file__).resolve().parent.parent
GALLERY = ROOT / "tests" / "gallery"
SOLUTION = ROOT / "solutions" / "conv_basics" / "conv_basics.ipynb"
SUITE_FILE = ROOT / "autograder" / "suites" / "conv_basics" / "test_corr2d.py"
ALL_ENTRIES = sorted(p.stem for p in GALLERY.iterdir() if p.suffix in (".py", ".ipynb", ".sparse"))
GPU_ENTRIES = [e for e in ALL_ENTRIES if e.startswith("gpu_")]
ENTRIES = [e for e in ALL_ENTRIES if e not in GPU_ENTRIES and not e.startswith("container_")]  # test_gradescope's
DEVICE = os.environ.get("GRADER_DEVICE", "auto")  # `make gpu-check` grades the gallery with cuda
CUDA_TESTS = ("corr2d: a CUDA input", "pool2d: a CUDA input")  # the suite's CUDA tests, in the order they run
SPARSE_BYTES = 2 * 2**30  # a `.sparse` entry: its text, then a hole up to this size
UNREADABLE = {"empty", "invalid_json", "symlinked", "sparse_2gb"}
PLANTED = "a note another grading run left in /dev/shm"
SANDBOX_UID = 100_000  # sandbox uids start here (autograder/sandbox/confine.py)


def hostile_notebook(source: str) -> nbformat.NotebookNode:
    """The reference solution followed by the gallery entry's cells (separated by ``# %%``)."""
    notebook = nbformat.read(SOLUTION, as_version=4)
    notebook.cells += [nbformat.v4.new_code_cell(cell.strip()) for cell in source.split("# %%")]
    return notebook


def entry_notebook(entry: str, submitted: Path, out: Path) -> Path | nbformat.NotebookNode:
    """Gallery entry ``entry`` as a notebook for a class in ``submitted`` graded into ``out``: its .ipynb file, or
    the reference solution followed by its cells, the placeholders replaced by this class's paths."""
    path = next(GALLERY.glob(f"{entry}.*"))
    if path.suffix in (".ipynb", ".sparse"):
        return path
    source = path.read_text()
    for key, value in {"{SUITE_FILE}": str(SUITE_FILE), "{SUBMITTED}": str(submitted), "{OUT}": str(out)}.items():
        source = source.replace(key, value)
    return hostile_notebook(source)


def tree_digest(folder: Path) -> dict[str, str]:
    """The files below ``folder`` (a link as where it points, a sparse file by its size) and their SHA-256."""
    return {str(p.relative_to(folder)): os.readlink(p) if p.is_symlink() else str(p.stat().st_size)
            if p.stat().st_size > 2**30 else hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def grade_class(base: Path, students: list[str], workers: int, device: str):
    """Grade gallery entries (an honest student where no entry has the name); returns (results by student,
    out folder, submitted, digests)."""
    submitted, out = base / "submitted", base / "out"
    for student in students:
        folder = submitted / student / "conv_basics"
        folder.mkdir(parents=True)
        target = folder / "conv_basics.ipynb"
        book = entry_notebook(student, submitted, out) if student in ALL_ENTRIES else SOLUTION
        if not isinstance(book, Path):
            nbformat.write(book, target)
        elif book.is_symlink():  # submitted as a link to the same file
            target.symlink_to(book.resolve())
        else:
            target.write_bytes(book.read_bytes())
            if book.suffix == ".sparse":
                os.truncate(target, SPARSE_BYTES)
    before = tree_digest(submitted)
    # The default limit per submission (300 s): with 60 s, exit_calls (its sandbox starts again after each exit)
    # ran out of time at load 7-9 and the outcome depended on the machine's load; no entry comes near it at load 2.
    run = autograder("grade", "conv_basics", str(submitted), "--out", str(out), "--workers", str(workers),
                     "--device", device)
    # Exit status 1: the unreadable notebooks could not be graded (each still gets a result saying why).
    unreadable = UNREADABLE & set(students)
    not_graded = set(re.findall(r"^  (\w+): unreadable: ", run.stdout.split(f"could not grade {len(unreadable)}:")[-1],
                                re.MULTILINE))
    assert run.returncode == (1 if unreadable else 0) and not_graded == unreadable, run.stdout + run.stderr[-3000:]
    results = {p.parent.parent.name: SubmissionResult.read(p) for p in out.glob("*/conv_basics/results.json")}
    return results, out, submitted, before


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """The gallery and an honest student, graded together, with a note another run left in /dev/shm."""
    planted = Path(f"/dev/shm/gallery-planted-{os.getpid()}")
    planted.write_text(PLANTED)
    planted.chmod(0o644)
    try:
        yield grade_class(tmp_path_factory.mktemp("gallery"), ["honest", *ENTRIES], 2, DEVICE)
    finally:
        planted.unlink()


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
                                            ("empty", "the notebook file is empty"),
                                            ("symlinked", "the notebook is a symbolic link"),
                                            ("sparse_2gb", "the notebook is larger than 20 MB")])
def test_unreadable_notebook_gets_zero_with_reason(graded, entry, message):
    results, out, _, _ = graded
    result = results[entry]
    assert result.score == 0 and result.max_score == results["honest"].max_score
    assert all(message in t.output for t in result.graded)
    written = (out / entry / "conv_basics" / "results.json").read_text() + (out / "grades.csv").read_text()
    assert SUITE_FILE.read_text().splitlines()[0] not in written  # nothing of the file it points to is quoted


def test_missing_function(graded):
    result = graded[0]["missing_function"]
    assert all(t.score == 0 and "does not define `corr2d`" in t.output for t in graded_tests(result, "corr2d"))
    assert all(t.status == "passed" for t in graded_tests(result, "pool2d") + graded_tests(result, "conv_output_shape"))


@pytest.mark.parametrize("entry, function, error", [("syntax_error", "pool2d", "SyntaxError"),
                                                    ("import_error", "conv_output_shape", "ModuleNotFoundError")])
def test_broken_cell_is_explained(graded, entry, function, error):
    result = graded[0][entry]
    code = [c.source for c in hostile_notebook((GALLERY / f"{entry}.py").read_text()).cells if c.cell_type == "code"]
    first_line = code[-1].splitlines()[0]  # the entry's last cell is the one that fails, named as Jupyter shows it
    assert len(result.causes) == 1 and result.causes[0].startswith(f"code cell {len(code)} (`{first_line}`)")
    assert error in result.causes[0]
    assert all(t.score == 0 and f"does not define `{function}`" in t.output for t in graded_tests(result, function))
    assert all(t.status == "passed" for t in graded_tests(result, "corr2d"))


def test_exit_calls(graded):
    result = graded[0]["exit_calls"]
    assert any("SystemExit: leaving early" in cause for cause in result.causes)
    assert all("exited with status 0" in t.output for t in graded_tests(result, "pool2d"))
    assert all(t.status == "passed" for t in graded_tests(result, "corr2d"))


@pytest.mark.parametrize("entry, function, message", [("killed", "corr2d_multi_in_out", "sigkill"),
                                                      ("infinite_loop", "conv_output_shape", "time limit"),
                                                      ("fork_bomb", "conv_output_shape", "time limit"),
                                                      ("memory_hog", "corr2d_multi_in_out", "memory")])
def test_runaway_function_fails_alone(graded, entry, function, message):
    result = graded[0][entry]
    failed = graded_tests(result, function)
    assert failed and all(t.score == 0 and message in t.output.lower() for t in failed), failed
    assert any(t.status == "passed" for t in graded_tests(result, "corr2d"))


def test_no_sandbox_process_survives(graded):
    """The escaped daemon and the fork bomb's children are gone: no process of a sandbox uid outlives the grading
    process that owned that uid (``sandbox_uid``: 100,000 + its pid, + 2**22 for a CUDA sandbox). Sandboxes whose
    grading process is alive belong to another grading run on this machine."""
    leftovers = []
    for entry in Path("/proc").iterdir():
        try:
            alive = entry.name.isdigit() and (entry / "stat").read_text().split(") ")[1][0] != "Z"
            uid = entry.stat().st_uid
            if alive and uid >= 100_000 and not Path(f"/proc/{(uid - 100_000) % 2**22}").exists():
                leftovers.append(f"{entry.name} (uid {uid})")
        except OSError:
            pass
    assert not leftovers


def test_a_full_folder_fails_its_function_alone(graded):
    """many_files: its own folder is bounded (a tmpfs of 4,096 files): the function creating a million files fails,
    saying why, the others count."""
    result = graded[0]["many_files"]
    failed = graded_tests(result, "conv_output_shape")
    assert failed and all(t.score == 0 and "No space left on device" in t.output for t in failed), failed
    assert any("Your code's own folder holds at most 4,096 files" in t.output for t in failed), failed
    assert result.score == result.max_score - sum(t.max_score for t in failed) > 0


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
    # refused by Landlock, or, with the checkout behind a folder the sandbox's user cannot enter, not even there
    # (the sandbox sees only Python's folders of it: autograder/sandbox/reachable.py)
    assert re.search(f"read {re.escape(str(SUITE_FILE))}: (PermissionError|FileNotFoundError)", printed), printed
    assert SUITE_FILE.read_text()[:200] not in printed
    assert "allowed" not in printed and "parent: 0" in printed, printed  # the grader is outside its namespace
    assert tree_digest(submitted) == before
    assert results["honest"].score == results["honest"].max_score


def test_nothing_shared_between_students(graded):
    """What another run left in /dev/shm and what shm_leftovers left there, in IPC or on an abstract socket stay
    out of reach; so do the grader's and every other process (as root, the sandbox's uid is its own)."""
    results = graded[0]
    printed = results["neighbours"].output
    assert "/dev/shm holds []" in printed and PLANTED not in printed and "for the next student" not in printed, printed
    assert all(f"{found} found False" in printed for found in ("shm_open", "mq_open", "shmget")), printed
    assert "connect gallery-leftover: " in printed and "connected" not in printed, printed
    assert all(f"write {folder}/gallery-planted: PermissionError" in printed for folder in ("/tmp", "/var/tmp", "/dev"))
    if os.geteuid() == 0:
        assert not re.search(r"^process \d+", printed, re.MULTILINE), printed
    planted = results["shm_leftovers"].output
    assert "leftover1: OSError" in planted and "shmget True" in planted, planted  # its /dev/shm is small
    assert all(results[e].score == results[e].max_score for e in ("honest", "neighbours", "shm_leftovers"))


def test_sandbox_holds_nothing_about_other_students(graded):
    """The honest student's notebook path, and any other student's, is nowhere in scan_for_classmates's memory: its
    sandbox comes from a worker started before the class was read, which never reads a job itself
    (autograder/workers.py)."""
    printed = graded[0]["scan_for_classmates"].output
    scanned = re.search(r"scanned (\d+) MB of its memory: the honest student's notebook path found (\d+) times, "
                        r"another student's (\d+) times", printed)
    assert scanned and int(scanned[1]) > 100 and scanned[2] == scanned[3] == "0", printed


def test_nothing_outlives_grading(graded):
    """No file the sandboxes made is left in /dev/shm, /tmp or /var/tmp, nor in System V or POSIX IPC."""
    names = ("leftover", "note.txt", "pipe", "gallery-leftover", "sem.gallery-leftover", "gallery-planted")
    left = [p for folder in ("/dev/shm", "/tmp", "/var/tmp") for p in Path(folder).iterdir()
            if p.name.startswith(names) and not p.name.startswith(f"gallery-planted-{os.getpid()}")]
    left += [p for p in Path("/dev/shm").iterdir() if p.lstat().st_uid >= SANDBOX_UID]
    assert not left
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.shmget(0x6A11E7, 0, 0) == -1 and libc.mq_open(b"/gallery-leftover", os.O_RDONLY) == -1


def test_replies_bounded_before_parsing(graded):
    """A 64 MB description, one nested 50,000 deep, one of a million values: each refused unparsed."""
    result = graded[0]["channel_flood"]
    failed = graded_tests(result, "corr2d_multi_in_out")
    messages = ("description of 67,108,864 bytes exceeds the limit", "nested 50000 levels deep",
                "more than 100,000 values")
    assert all(t.score == 0 for t in failed) and {m for m in messages for t in failed if m in t.output} == set(
        messages), failed
    assert all(t.status == "passed" for t in graded_tests(result, "corr2d") + graded_tests(result, "pool2d"))


def test_trusted_side_bounded(graded):
    """What grading each submission cost the trusted side: hostile ones barely more than an honest one."""
    results = graded[0]
    honest = results["honest"].grader_usage
    for student, result in results.items():
        usage = result.grader_usage
        assert usage["peak_mb"] < honest["peak_mb"] + 200 and usage["cpu_seconds"] < 15, (student, usage, honest)


def test_results_are_gradescope_json(graded):
    _, out, _, _ = graded
    data = json.loads((out / "honest" / "conv_basics" / "results.json").read_text())
    assert {"score", "execution_time", "output", "tests"} <= set(data)
    for test in data["tests"]:
        assert {"name", "score", "max_score", "status", "output", "visibility"} <= set(test)
        assert ":" in test["name"]
    assert (out / "honest" / "conv_basics" / "feedback.txt").read_text().startswith("conv_basics")


# -- one GPU shared by a class ------------------------------------------------------------------------------
HONEST = [f"honest_{n}" for n in range(1, 6)]


@pytest.fixture(scope="module")
def gpu_graded(tmp_path_factory):
    """The GPU hogs and five honest students graded in parallel (4 workers) on one GPU: results by student."""
    if DEVICE != "cuda" and (torch.version.cuda is None or not nvidia_driver_loaded()):
        pytest.skip("no NVIDIA driver or no CUDA build of torch here: the GPU gallery needs a CUDA grader "
                    "(`make gpu-check` runs it)")
    return grade_class(tmp_path_factory.mktemp("gpu_gallery"), [*GPU_ENTRIES, *HONEST], 4, "cuda")[0]


def cuda_tests(result: SubmissionResult):
    return [next(t for t in result.tests if t.name.startswith(prefix)) for prefix in CUDA_TESTS]


def other_tests(result: SubmissionResult):
    return [t for t in result.tests if not t.name.startswith(CUDA_TESTS)]


def test_gpu_honest_students_lose_nothing(gpu_graded):
    """Whatever the hogs did meanwhile (a test that ran out of memory because of one is run again)."""
    for student in HONEST:
        result = gpu_graded[student]
        assert result.score == result.max_score and all(t.status == "passed" for t in cuda_tests(result)), (
            result.feedback_text())
        assert all("another submission's sandbox held" in r["reason"] for r in result.reruns), result.reruns


@pytest.mark.parametrize("entry", ["gpu_fraction_lift", "gpu_raw_malloc"])
def test_gpu_hog_past_its_share_is_stopped(gpu_graded, entry):
    result = gpu_graded[entry]
    hogging, later = cuda_tests(result)
    assert hogging.score == 0 and "GiB of GPU memory, more than its share of" in hogging.output, hogging
    assert later.score == 0 and "not run: in an earlier test the notebook's process held" in later.output, later
    assert all(t.status == "passed" for t in other_tests(result)), result.feedback_text()


def test_gpu_share_refused_by_pytorch_says_so(gpu_graded):
    """The allocator refuses past the share: a clean out-of-memory error (not NVML's internal assert), in GiB."""
    result = gpu_graded["gpu_memory_hog"]
    hogging, later = cuda_tests(result)
    assert hogging.score == 0 and "OutOfMemoryError" in hogging.output, hogging
    assert "Your code ran out of its share of GPU memory: " in hogging.output and " GiB (of the GPU's" in hogging.output
    assert later.status == "passed" and all(t.status == "passed" for t in other_tests(result)), result.feedback_text()
