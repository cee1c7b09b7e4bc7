"""Grade one submission: a sandbox for its code, the hidden suite on the trusted side.

:func:`grade_in_fork` is what a worker runs per submission. The worker itself stays clean
(torch imported, nothing read): a fresh fork reads the notebook, forks the sandbox from that
still-clean state, and only then imports the hidden suite and runs it under pytest.
"""
from __future__ import annotations

import hashlib
import importlib
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import _pytest.config
import pytest

from autograder import notebook
from autograder.notebook import Submission, read_submission
from autograder.plugin import GradingPlugin
from autograder.results import RESULTS, SubmissionResult, result_folder
from autograder.sandbox import Limits, Sandbox, reachable
from autograder.sandbox.confine import readable_paths, sandbox_uid

SUITES = Path(__file__).resolve().parent / "suites"
GRADED, SKIPPED, FAILED = 0, 3, 4  # exit codes of a grading fork


class GraderError(RuntimeError):
    """The grader itself cannot grade (a broken suite, an unsafe layout): the instructor's problem."""


@dataclass(frozen=True)
class Job:
    student: str
    assignment: str
    notebook: Path
    out: Path
    suites: Path = SUITES
    device: str = "cpu"
    limits: Limits = Limits()
    force: bool = False
    suite_sha256: str = ""  # of the hidden suite (:func:`suite_sha256`), recorded with each result


def prepare() -> None:
    """Do once, before the workers fork, what grading every submission would otherwise repeat: build
    nbformat's validator and import what running a suite imports (pytest's own plugins, the modules they
    import when a session starts, the suites' helpers). Nothing of a hidden suite is read here."""
    notebook.prepare()
    for module in [*(f"_pytest.{plugin}" for plugin in _pytest.config.default_plugins), "pdb", "readline",
                   "autograder.expect"]:
        importlib.import_module(module)


def check_hidden(suite: Path) -> None:
    """Refuse to grade when a sandbox could read the hidden suite (e.g. installed in site-packages)."""
    for allowed in readable_paths():
        if suite.resolve().is_relative_to(Path(allowed).resolve()):
            raise GraderError(f"the hidden suite {suite} lies inside {allowed}, which submissions may read")


def check_reachable() -> None:
    """Refuse to grade when a sandbox's user could not read Python or its packages (:mod:`.sandbox.reachable`)."""
    uid = sandbox_uid()
    if uid is not None and (problem := reachable.check(readable_paths(), uid)):
        raise GraderError(problem)


def suite_sha256(suites: Path, assignment: str) -> str:
    """One hash of everything that decides ``assignment``'s scores: its hidden suite and the suites' pytest.ini."""
    digest = hashlib.sha256()
    files = [suites / "pytest.ini", *sorted((suites / assignment).rglob("*"))]
    for path in files:
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(f"{path.relative_to(suites).as_posix()}\0{path.stat().st_size}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def grade(job: Job, submission: Submission) -> SubmissionResult:
    started = time.monotonic()
    sandbox = Sandbox(submission.cells, device=job.device, limits=job.limits, load_error=submission.error)
    if not submission.error:
        sandbox.start()
    plugin = GradingPlugin(sandbox, job.device)
    suite = job.suites / job.assignment
    args = [str(suite), "-c", str(job.suites / "pytest.ini"), "--rootdir", str(job.suites)]
    # No terminal reporter and no gc.collect() rounds at exit: with torch loaded they cost more than the
    # tests themselves (outcomes reach the plugin all the same).
    code = pytest.main([*args, "-p", "no:terminal", "-p", "no:unraisableexception", "-p", "no:threadexception"],
                       plugins=[plugin])
    sandbox.close()
    if code not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED) or not plugin.results:
        raise GraderError(f"the hidden suite {suite} did not run (pytest exit code {int(code)}):\n"
                          f"{collection_report(args)[-3000:]}")
    notes = [submission.error] if submission.error else sandbox.notes
    output = "\n".join(notes)
    if sandbox.output.strip():
        output += "\n\nYour notebook printed:\n" + sandbox.output
    return SubmissionResult(job.student, job.assignment, plugin.results, time.monotonic() - started,
                            output.strip(), submission.sha256, job.suite_sha256)


def collection_report(args: list[str]) -> str:
    """What pytest says when it only collects the suite: the instructor's view of a broken suite."""
    with tempfile.TemporaryFile("w+") as log:
        saved = os.dup(1), os.dup(2)
        sys.stdout.flush(), sys.stderr.flush()
        os.dup2(log.fileno(), 1), os.dup2(log.fileno(), 2)
        try:
            pytest.main([*args, "--collect-only", "-q"], plugins=[GradingPlugin(None, "cpu")])
        finally:
            sys.stdout.flush(), sys.stderr.flush()
            os.dup2(saved[0], 1), os.dup2(saved[1], 2)
            os.close(saved[0]), os.close(saved[1])
        log.seek(0)
        return log.read()


def already_graded(job: Job, submission: Submission) -> bool:
    """A result exists for this very notebook graded by this very suite (same SHA-256s), and no --force."""
    path = result_folder(job.out, job.student, job.assignment) / RESULTS
    if job.force or not path.exists():
        return False
    previous = SubmissionResult.read(path)
    return (previous.notebook_sha256, previous.suite_sha256) == (submission.sha256, job.suite_sha256)


def grade_in_fork(job: Job) -> tuple[str, int, str]:
    """Grade ``job`` in a forked process; returns (student, exit code, error message)."""
    read_error, write_error = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_error)
        code = FAILED
        try:
            submission = read_submission(job.notebook, job.student, job.assignment)
            if already_graded(job, submission):
                code = SKIPPED
            else:
                grade(job, submission).write(job.out)
                code = GRADED
        except BaseException as error:  # noqa: BLE001 - reported to the parent, never lost
            os.write(write_error, f"{type(error).__name__}: {error}".encode()[:8000])
        finally:
            os._exit(code)
    os.close(write_error)
    deadline = time.monotonic() + job.limits.submission_seconds + job.limits.start_seconds + 120
    while (status := os.waitpid(pid, os.WNOHANG))[0] == 0:
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(read_error)
            return failed(job, "grading did not finish in time")
        time.sleep(0.02)
    with os.fdopen(read_error, "rb") as pipe:
        message = pipe.read().decode("utf-8", "replace")
    code = os.waitstatus_to_exitcode(status[1])
    return (job.student, code, message) if code in (GRADED, SKIPPED) else failed(job, message or f"status {code}")


def failed(job: Job, message: str) -> tuple[str, int, str]:
    """Record a submission the grader could not grade, so it is never silently missing."""
    SubmissionResult(job.student, job.assignment, output=f"This submission could not be graded: {message}. "
                     "Your instructor has been told.", suite_sha256=job.suite_sha256).write(job.out)
    return job.student, FAILED, message
