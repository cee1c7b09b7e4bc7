"""Grade one submission: a sandbox for its code, the hidden suite on the trusted side.

:func:`grade_numbered` is what a worker runs per submission. The worker itself stays clean
(torch imported, nothing read, not even the job): a fresh fork reads its job and the notebook, forks the
sandbox from that still-clean state, and only then imports the hidden suite and runs it under pytest.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib
import os
import pickle
import re
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from autograder import SUITES
from autograder.results import GRADED as GRADED_STATUS
from autograder.results import RESULTS, SubmissionResult, in_notebook_order, result_folder
from autograder.sandbox import Limits, reachable, trusted
from autograder.sandbox.confine import readable_paths, sandbox_uid
from autograder.submissions import Refusal

if TYPE_CHECKING:
    from autograder.notebook import Submission
    from autograder.sandbox import Sandbox

# Exit codes of a grading fork: graded, unchanged since its result, a result saying why it could not be
# graded (the notebook or the layout's fault), the grader failed (its message is the reason).
GRADED, SKIPPED, NOT_GRADED, FAILED = 0, 3, 5, 4
CELL_ERROR = re.compile(r"^cell (\d+): ")  # how the sandbox reports a code cell that raised


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
    refusal: Refusal | None = None  # why the layout gives no notebook to grade (a result says so)
    gpu_watch: str = ""     # the GPU memory watcher's folder, on CUDA (:mod:`autograder.sandbox.gpu_watch`)
    late: bool = False      # the LMS marked the file late (kept in the result)

    @property
    def graded_file(self) -> str:
        return "" if self.refusal else self.notebook.name


def prepare() -> None:
    """Do once, before the workers fork, what grading every submission would otherwise repeat: build
    nbformat's validator and import what running a suite imports (pytest's own plugins, the modules they
    import when a session starts, the suites' helpers). Nothing of a hidden suite is read here."""
    import _pytest.config

    from autograder import notebook

    notebook.prepare()
    for module in [*(f"_pytest.{plugin}" for plugin in _pytest.config.default_plugins), "pdb", "readline",
                   "autograder.expect", "autograder.plugin"]:
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
    """Run the hidden suite against ``submission``. On CUDA, the tests that need the GPU get a CUDA sandbox of
    their own, started in the background while the others run in a CPU sandbox: CUDA costs only what it is used for."""
    import pytest

    from autograder.plugin import GradingPlugin
    from autograder.sandbox import Sandbox

    started = time.monotonic()
    sandbox = Sandbox(submission.cells, limits=job.limits, load_error=submission.error)
    gpu = None
    if job.device == "cuda":
        gpu = Sandbox(submission.cells, device="cuda", limits=job.limits, load_error=submission.error,
                      watch=Path(job.gpu_watch) if job.gpu_watch else None, hung=sandbox.hung)
    if not submission.error:
        sandbox.start()
        if gpu:
            gpu.start(wait=False)
    plugin = GradingPlugin(sandbox, job.device, gpu)
    suite = job.suites / job.assignment
    args = [str(suite), "-c", str(job.suites / "pytest.ini"), "--rootdir", str(job.suites)]
    # No terminal reporter and no gc.collect() rounds at exit: with torch loaded they cost more than the
    # tests themselves (outcomes reach the plugin all the same).
    code = pytest.main([*args, "-p", "no:terminal", "-p", "no:unraisableexception", "-p", "no:threadexception"],
                       plugins=[plugin])
    boxes = [sandbox, gpu] if gpu else [sandbox]
    for box in boxes:
        box.close()
    if code not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED) or not plugin.results:
        raise GraderError(f"the hidden suite {suite} did not run (pytest exit code {int(code)}):\n"
                          f"{collection_report(args)[-3000:]}")
    causes, notes = causes_and_notes(submission, boxes)
    output = "\n".join(notes)
    if sandbox.output.strip():
        output += "\n\nYour notebook printed:\n" + sandbox.output
    if gpu and gpu.output.strip() and gpu.output != sandbox.output:
        output += "\n\nIn the tests on the GPU, it printed:\n" + gpu.output
    return SubmissionResult(job.student, job.assignment, in_notebook_order(plugin.results, submission.defined),
                            execution_time=time.monotonic() - started, output=output.strip(),
                            notebook_sha256=submission.sha256, suite_sha256=job.suite_sha256,
                            status=submission.status, notebook=job.graded_file, causes=causes, device=job.device,
                            limits=dataclasses.asdict(job.limits),
                            limits_hit=sorted(set().union(*(box.limits_hit for box in boxes))), reruns=plugin.reruns,
                            grader_usage=trusted.usage(), late=job.late)


def causes_and_notes(submission: Submission, boxes: list[Sandbox]) -> tuple[list[str], list[str]]:
    """What kept the notebook from running as written (an unreadable file, a sandbox stopped, the code
    cells that raised, each named as Jupyter shows it), and the other notes (warnings, crashes)."""
    if submission.error:
        return [submission.error], []
    causes, notes = list(dict.fromkeys(box.broken for box in boxes if box.broken)), []
    for note in dict.fromkeys(note for box in boxes for note in box.notes):
        cell = CELL_ERROR.match(note)
        if cell and int(cell[1]) in submission.labels:
            causes.append(f"{submission.labels[int(cell[1])]} raised:\n{note[cell.end():]}")
        elif note not in causes:
            notes.append(note)
    return causes, notes


def collection_report(args: list[str]) -> str:
    """What pytest says when it only collects the suite: the instructor's view of a broken suite."""
    import pytest

    from autograder.plugin import GradingPlugin

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
    """No --force, and grading again could not change the result there is: it graded this very notebook
    with this very suite (same SHA-256s) on this device, no limit is lower now, and those it hit are the same."""
    path = result_folder(job.out, job.student, job.assignment) / RESULTS
    if job.force or not path.exists() or submission.error:
        return False
    previous = SubmissionResult.read(path)
    same_limits = all(name in previous.limits and (value == previous.limits[name] if name in previous.limits_hit
                                                   else value >= previous.limits[name])
                      for name, value in dataclasses.asdict(job.limits).items())
    return (previous.status == GRADED_STATUS and previous.device == job.device and same_limits
            and (previous.notebook_sha256, previous.suite_sha256) == (submission.sha256, job.suite_sha256))


def submission_of(job: Job) -> Submission:
    from autograder.notebook import Submission, read_submission

    if job.refusal:
        return Submission(job.student, job.assignment, job.notebook, error=job.refusal.reason,
                          status=job.refusal.status)
    return read_submission(job.notebook, job.student, job.assignment)


def write_jobs(folder: Path, jobs: list[Job]) -> None:
    """Each job into a file of its own in ``folder`` (``0.job``, ...), for :func:`grade_numbered`."""
    for number, job in enumerate(jobs):
        (folder / f"{number}.job").write_bytes(pickle.dumps(job))


def time_allowed(limits: Limits) -> float:
    """Seconds a grading fork may take before its worker kills it: its submission's limits, and room for the suite."""
    return limits.submission_seconds + limits.start_seconds + 120


def grade_numbered(folder: str, seconds: float, number: int) -> tuple[int, int, str]:
    """What a worker runs for job ``number`` of ``folder`` (:func:`write_jobs`): a fork reads the job, grades it
    (:func:`grade_job`) and leaves its message in ``number.message``. Returns (``number``, the fork's exit code,
    '' or why it failed as the worker saw it). The worker itself never reads a job, so a later submission's
    sandbox, forked from it in turn, finds nothing of this one."""
    pid = os.fork()
    if pid == 0:
        code, message = FAILED, ""
        try:
            trusted.bound()
            code, message = grade_job(pickle.loads((Path(folder) / f"{number}.job").read_bytes()))
        except BaseException as error:  # noqa: BLE001 - reported to the grader, never lost
            message = f"{type(error).__name__}: {error}"
        finally:
            try:
                (Path(folder) / f"{number}.message").write_bytes(message.encode()[:8000])
            finally:
                os._exit(code)
    deadline = time.monotonic() + seconds
    while (status := os.waitpid(pid, os.WNOHANG))[0] == 0:
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return number, FAILED, "grading did not finish in time"
        time.sleep(0.02)
    return number, os.waitstatus_to_exitcode(status[1]), ""


def grade_job(job: Job) -> tuple[int, str]:
    """In a grading fork: grade ``job`` and write its result; returns (exit code, message): the limits hit when
    graded, ``status: reason`` when not graded."""
    submission = submission_of(job)
    if already_graded(job, submission):
        return SKIPPED, ""
    result = grade(job, submission)
    result.write(job.out)
    if result.status == GRADED_STATUS:
        return GRADED, ", ".join(result.limits_hit)
    return NOT_GRADED, f"{result.status}: {result.causes[0]}"


def outcome(job: Job, folder: Path, number: int, code: int, note: str) -> tuple[str, int, str]:
    """In the grader, what :func:`grade_numbered` returned for ``job``: (student, exit code, message). A grading
    fork that failed gets a result saying so (its message, else the worker's ``note``)."""
    path = folder / f"{number}.message"
    message = path.read_bytes().decode("utf-8", "replace") if path.exists() else ""
    if code in (GRADED, SKIPPED, NOT_GRADED) and not note:
        return job.student, code, message
    return failed(job, note or message or f"status {code}")


def failed(job: Job, message: str) -> tuple[str, int, str]:
    """Record a submission the grader could not grade, so it is never silently missing."""
    SubmissionResult(job.student, job.assignment, suite_sha256=job.suite_sha256, status="grader error",
                     notebook=job.graded_file, device=job.device, late=job.late,
                     causes=[f"the grader failed ({message}); your instructor has been told"]).write(job.out)
    return job.student, FAILED, message
