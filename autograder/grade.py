"""``python -m autograder grade``: grade one notebook or a whole class, in parallel, each in its own sandbox.

Arguments and the layout are checked before anything is written; torch, pytest and the sandboxes are
loaded only when there is something to grade.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from autograder import SUITES, arguments
from autograder.sandbox import gpu_watch
from autograder.results import (LayoutError, grades_csv, mark_absent, published_book, read_all,
                                upgrade_layout, write_atomic)
from autograder.sandbox import Limits
from autograder.submissions import (LMS, LMS_EXAMPLES, Found, NothingToGrade, find_submissions, layouts, read_roster,
                                    refuse_other_assignments, shard, shown)
from autograder.workers import Workers

ALL_GRADED, SOME_NOT_GRADED, USAGE = 0, 1, 2  # exit statuses, as the epilog documents them
EPILOG = f"""\
layouts of SUBMITTED (a folder, an LMS's .zip, or one notebook):
{layouts(Path("SUBMITTED"), "ASSIGNMENT")}
  A student with several notebooks: the one named ASSIGNMENT.ipynb is graded (of the latest attempt, where the
  LMS writes attempts), else the student is listed as not graded, with the files' names. Every other file is
  named at the end with why it is not graded. A notebook of another assignment (none of the names ASSIGNMENT
  asks for is in it) is not graded, and its result names the assignment it looks like.

LMS file names (--lms; nbgrader zip_collect's named_regexp groups, matched against the path in SUBMITTED):
""" + "\n".join(f"  {name:<10} {pattern}\n  {'':<10} such as {LMS_EXAMPLES[name]}"
                  for name, pattern in LMS.items()) + f"""
  The id is student_id (with --roster: the roster's student whose id, or name as the LMS writes it, matches).


Each student gets OUT/<student>/ASSIGNMENT/results.json (Gradescope's schema) and feedback.txt; OUT/grades.csv
has a row per student and assignment in OUT, with a status column. A rerun skips a student only when grading
again could not change the result: the same notebook, hidden suite and device, no limit lower, and the limits that
stopped their grading (a --timeout spent) the same; --force regrades.

exit status:
  {ALL_GRADED}  every submission found has a result: graded now, or unchanged since (whatever the scores)
  {SOME_NOT_GRADED}  some could not be graded (unreadable, several or no notebooks, another assignment's, a file
     no student matches, a grader failure): they are listed at the end, and their results say why; every other
     student is graded
  {USAGE}  nothing was graded: a wrong argument, or no submission in a layout above
"""


def parser() -> arguments.Parser:
    p = arguments.Parser("grade", epilog=EPILOG)
    p.add_argument("assignment", help="the assignment: a folder of autograder/suites (conv_basics, cnn_vs_fc, receptive_fields)")
    p.add_argument("submitted", type=Path, help="nbgrader's submitted/ folder, a flat folder of notebooks, or one "
                                                ".ipynb (layouts below)")
    p.add_argument("--out", type=arguments.folder, default=Path("autograded"), metavar="OUT",
                   help="where results go; created with its parents (default: %(default)s)")
    p.add_argument("--workers", type=arguments.at_least_one, default=os.cpu_count() or 1, metavar="N",
                   help="submissions graded in parallel, each in its own sandbox (default: the CPU count, "
                        "%(default)s here)")
    p.add_argument("--timeout", type=arguments.seconds, default=Limits.submission_seconds, metavar="SECONDS",
                   help="time for all of one submission's tests; each call into the notebook also has its own "
                        f"limit of {Limits.call_seconds:g} s, and running its cells {Limits.start_seconds:g} s "
                        "(default: %(default)g)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="where the notebooks' code runs: cuda needs a CUDA GPU; cpu leaves out the tests that need "
                        "one (they do not count); auto is cuda when a GPU is present, else cpu (default: %(default)s)")
    p.add_argument("--force", action="store_true", help="regrade students whose results are up to date")
    p.add_argument("--nbgrader-db", type=arguments.file("gradebook.db"), metavar="DB",
                   help="also write the scores into this nbgrader gradebook (such as gradebook.db), for "
                        "`nbgrader export` (default: none)")
    p.add_argument("--lms", type=arguments.lms_pattern, default="auto", metavar="NAME|REGEX",
                   help="how file names give the student id: canvas, moodle, blackboard (patterns below), none (the "
                        "file's or folder's name), a regular expression with the groups student_id and file_id, or "
                        "auto: the LMS whose pattern the most files match, else none (default: %(default)s)")
    p.add_argument("--roster", type=arguments.existing_file, metavar="CSV",
                   help="the class list (a CSV with an id column, as `nbgrader db student import` reads): "
                        "submissions are filed under its ids, and its students without one listed (default: none)")
    one = p.add_mutually_exclusive_group()
    one.add_argument("--shard", type=arguments.shard, metavar="K/N",
                     help="grade only slice K of N disjoint slices of the class (merge them with "
                          "`python -m autograder merge`; default: everyone)")
    one.add_argument("--student", metavar="ID",
                     help="grade only this student of the class, as `nbgrader autograde --student` does (the "
                          "formgrader's Autograde button runs it so); the others' results stay as they are "
                          "(default: everyone)")
    p.add_argument("--suites", type=Path, default=SUITES, help=argparse.SUPPRESS)
    return p


@dataclass
class Run:
    """What one run did, for its closing summary (every name in it printed with :func:`shown`)."""
    graded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    not_graded: dict[str, str] = field(default_factory=dict)   # student, or a file no student has -> why
    limited: dict[str, str] = field(default_factory=dict)      # graded student -> the limits that stopped something
    ignored: dict[str, str] = field(default_factory=dict)      # a file not graded by rule -> why
    missing: list[str] = field(default_factory=list)           # the roster's students without a submission
    late: list[str] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)            # results kept of students no longer submitted

    def summary(self, assignment: str, device: str, submitted: Path) -> str:
        lines = [f"{assignment} on {device}: graded {len(self.graded)}, unchanged and skipped {len(self.skipped)}, "
                 f"could not grade {len(self.not_graded)}" + (":" if self.not_graded else "")]
        lines += [f"  {shown(student)}: {shown(why)}" for student, why in sorted(self.not_graded.items())]
        if self.limited:
            lines.append(f"of those graded, {len(self.limited)} were stopped by a limit, which may have cost points (a "
                         "rerun under another limit regrades them): "
                         + ", ".join(f"{s} ({why})" for s, why in sorted(self.limited.items())))
        if self.ignored:
            lines.append(f"not graded, by rule ({len(self.ignored)} files):")
            lines += [f"  {shown(name)}: {shown(why)}" for name, why in sorted(self.ignored.items())]
        for what, names in [("on the roster, no submission", self.missing), ("marked late by the LMS", self.late),
                            (f"no longer in {submitted}: results kept, marked in grades.csv and the report",
                             self.absent)]:
            if names:
                lines.append(f"{what} ({len(names)}): {', '.join(map(shown, sorted(names)))}")
        return "\n".join(lines)


def start_gpu_watch(device: str) -> gpu_watch.WatcherProcess | None:
    """The GPU memory watcher, started now in a process of its own, where a GPU may be used.

    Neither this process nor the one the sandboxes come from (:mod:`autograder.workers`) may start CUDA or NVML,
    not even to ask whether there is a GPU (``torch.cuda.is_available()`` starts NVML): the watcher answers.
    """
    if device == "cpu" or os.environ.get("CUDA_VISIBLE_DEVICES") == "" or not gpu_watch.nvidia_driver_loaded():
        return None
    return gpu_watch.WatcherProcess(Path(tempfile.mkdtemp(prefix="gpu-watch-")))


def resolve_device(device: str, watcher: gpu_watch.WatcherProcess | None) -> tuple[str, str]:
    """(the device to grade on, why not CUDA when it is not); stops the watcher when it is not."""
    if device == "cpu":
        return "cpu", ""
    if watcher is None:
        return "cpu", "no NVIDIA driver is loaded"
    import torch  # for its CUDA version only: nothing here starts CUDA

    why = ""
    try:
        gpus, driver_cuda = watcher.ready()
    except RuntimeError as error:
        return "cpu", str(error)
    if torch.version.cuda is None:
        why = f"torch {torch.__version__} is built without CUDA"
    elif not gpus:
        why = "NVML finds no GPU"
    elif int(driver_cuda.split(".")[0]) < int(torch.version.cuda.split(".")[0]):
        why = f"the NVIDIA driver supports CUDA {driver_cuda}, this torch needs CUDA {torch.version.cuda}"
    if why:
        watcher.stop()
    return ("cpu", why) if why else ("cuda", "")


def fitted_limits(limits: Limits, workers: int) -> Limits:
    """``limits``, with the sandboxes' memory cap below the container's memory limit when there is one
    (measured once the workers are started, torch loaded)."""
    from autograder.sandbox.limits import container_memory, fit_to_container

    memory = container_memory()
    fitted = fit_to_container(limits, workers, memory)
    if memory is not None:
        print(f"container memory limit {memory.limit / 2**20:.0f} MB, {memory.used / 2**20:.0f} MB in use: "
              f"each of {workers} sandbox(es) may use {fitted.memory_mb} MB", file=sys.stderr)
    return fitted


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    arguments.check_assignment(p, args.suites, args.assignment)
    if not args.submitted.exists():
        p.error(f"{args.submitted} does not exist")
    if args.submitted.is_file() and args.submitted.suffix not in (".ipynb", ".zip"):
        p.error(f"{args.submitted} is neither a folder, an LMS's .zip nor a notebook (.ipynb)")
    if args.submitted.is_dir() and args.out.resolve().is_relative_to(args.submitted.resolve()):
        p.error(f"--out {args.out} lies inside SUBMITTED {args.submitted}: results would be read as submissions; "
                "give a folder outside it")
    arguments.check_installed(p)
    # Forked before anything about the class is read, the sandboxes' ancestor; a notebook graded alone is all this
    # process will know of
    workers = Workers(forked=not (args.submitted.suffix == ".ipynb" and args.submitted.is_file() and not args.roster))
    try:
        try:
            roster = read_roster(args.roster) if args.roster else None
        except ValueError as error:
            p.error(str(error))
        try:
            found = find_submissions(args.submitted, args.assignment, args.lms, roster)
        except NothingToGrade as error:
            print(f"{p.prog}: {error}", file=sys.stderr)
            return USAGE
        try:
            return grade_found(p, args, found, workers)
        finally:
            found.close()
    finally:
        workers.close()


def grade_found(p: arguments.Parser, args, found: Found, workers: Workers) -> int:
    present = set(found.students)  # the class in SUBMITTED: whose results are not marked absent
    if args.student:
        if args.student not in present:
            p.error(f"--student {args.student}: {args.submitted} holds no {args.assignment} submission of theirs")
        found.keep(args.student)
    if like := refuse_other_assignments(found, args.suites, args.assignment):
        print(f"{p.prog}: none of the {len(found.refused)} notebooks in {args.submitted} is {args.assignment}: they "
              f"look like {like} (python -m autograder grade {like} ...); nothing graded", file=sys.stderr)
        return USAGE
    students = shard(found.students, *args.shard) if args.shard else found.students
    watcher = start_gpu_watch(args.device) if students else None  # it ends, and cleans up, when this process does
    device, why_not_cuda = resolve_device(args.device, watcher) if students else (args.device, "")
    if args.device == "cuda" and device != "cuda":
        p.error(f"--device cuda: no CUDA device is available here ({why_not_cuda}); use --device auto or cpu")
    if watcher and device != "cuda":
        print(f"grading on the CPU: {why_not_cuda}", file=sys.stderr)
    for folder in [args.out, *([args.nbgrader_db.parent] if args.nbgrader_db else [])]:
        arguments.make_folder(p, folder)
    try:
        for moved in upgrade_layout(args.out):
            print(moved, file=sys.stderr)
    except LayoutError as error:
        p.error(str(error))
    if args.nbgrader_db and students:
        from autograder import gradebook  # nbgrader's database layer takes seconds to import: only on demand

        try:  # a gradebook that cannot take this assignment is said before anything is graded
            gradebook.read_layout(args.nbgrader_db, args.assignment, [], gradebook.course_id())
        except gradebook.GradebookError as error:
            p.error(str(error))
    if students:
        print(f"feedback links the book at {published_book() or '(nowhere: no address known)'}"
              + ("" if os.environ.get("COURSE_BOOK_URL") else " (set COURSE_BOOK_URL to link your own copy)"),
              file=sys.stderr)
    run = grade_all(p, args, found, students, device, watcher, workers) if students else Run()
    if not args.student and (not args.shard or args.shard[0] == 1):  # said of the class as a whole: said once
        run.not_graded.update(found.unusable)
        run.ignored, run.missing, run.late = found.ignored, found.missing, sorted(found.late)
    if found.layout != "one notebook":
        run.absent = mark_absent(args.out, args.assignment, present)
    copy_submission_files(found, students, args.out, args.assignment)
    results = read_all(args.out)  # every assignment graded into this folder
    write_atomic(args.out / "grades.csv", grades_csv(results, found.missing, args.assignment))
    if reported := len({r.student for r in results}) > 1:  # a class (not Gradescope's one notebook): its report
        write_atomic(args.out / "report.html", workers.call(drawn_report, results, args.out))
    if args.nbgrader_db and students:
        write_gradebook(p, args, found, students, [r for r in results if r.assignment == args.assignment])
    sliced = f", {len(students)} in shard {args.shard[0]}/{args.shard[1]}" if args.shard else ""
    print(f"{len(found.students) + len(found.unusable)} {args.assignment} submission(s) in {args.submitted} "
          f"({found.layout}){sliced}; results in {args.out}/<student>/{args.assignment}/, grades in "
          f"{args.out / 'grades.csv'}" + (f", report in {args.out / 'report.html'}" if reported else ""))
    print(run.summary(args.assignment, device, args.submitted), flush=True)
    return SOME_NOT_GRADED if run.not_graded else ALL_GRADED


def drawn_report(results: list, out: Path) -> str:
    """The class's report, drawn where the workers' process has matplotlib loaded already (:meth:`Workers.call`)."""
    from autograder.report import report  # matplotlib: only once there are results to draw

    return report(results, out)


def copy_submission_files(found: Found, students: list[str], out: Path, assignment: str) -> None:
    """nbgrader's files of each submission (``timestamp.txt``, ``submission_secret.txt``) beside its results, as
    ``nbgrader autograde`` copies them: the gradebook's submission time, and what ``release_feedback`` needs."""
    from autograder.gradebook import SUBMISSION_FILES

    for student in students:
        folder, notebook = out / student / assignment, found.submitted(student)
        if notebook is None or not folder.is_dir():
            continue
        for name in SUBMISSION_FILES:
            if (notebook.parent / name).is_file():
                write_atomic(folder / name, (notebook.parent / name).read_text())


def write_gradebook(p: arguments.Parser, args, found: Found, students: list[str], results: list) -> None:
    """The autograded notebooks of this run's students (another assignment's too, saying so), then every result of
    the assignment into the gradebook; a gradebook that cannot take them is said in one line (exit status 2) and
    left as it was."""
    from autograder import autograded_notebook, gradebook

    for result in results:
        if result.student in students and (notebook := found.submitted(result.student)):
            autograded_notebook.write(result, notebook, args.out)
    gradebook.record_or_refuse(p, args.nbgrader_db, results, args.out,
                               f"the results in {args.out} are written; the gradebook is not")


def grade_all(p: arguments.Parser, args, found: Found, students: list[str], device: str,
              watcher: gpu_watch.WatcherProcess | None, workers: Workers) -> Run:
    """Grade ``students`` with ``workers`` (:mod:`autograder.workers`: torch is imported once, before they fork);
    on CUDA, ``watcher`` keeps each sandbox within its share of the GPU."""
    from tqdm import tqdm

    from autograder import runner
    from autograder.sandbox.limits import fit_to_gpu

    try:
        runner.check_hidden(args.suites)
        runner.check_reachable()
    except runner.GraderError as error:
        p.error(str(error))
    count = min(args.workers, len(students))
    workers.start(count)  # the limits are fitted to what is in use once they are started
    limits = fitted_limits(Limits(submission_seconds=args.timeout), count)
    if device == "cuda":
        limits = fit_to_gpu(limits, count)
    suite = runner.suite_sha256(args.suites, args.assignment)
    jobs = [runner.Job(s, args.assignment, found.notebooks.get(s, args.submitted / s / args.assignment), args.out,
                       args.suites, device, limits, args.force, suite, found.refused.get(s),
                       str(watcher.state) if device == "cuda" else "", s in found.late) for s in students]
    run = Run()
    with tempfile.TemporaryDirectory(prefix="grading-jobs-") as folder:
        runner.write_jobs(Path(folder), jobs)
        progress = tqdm(workers.grade(folder, len(jobs), runner.time_allowed(limits)), total=len(jobs),
                        unit="notebook", desc=f"grading {args.assignment} on {device}", file=sys.stderr)
        for number, code, note in progress:
            student, code, message = runner.outcome(jobs[number], Path(folder), number, code, note)
            if code == runner.GRADED:
                run.graded.append(student)
                if message:
                    run.limited[student] = ", ".join(limit_text(name, limits) for name in message.split(", "))
            elif code == runner.SKIPPED:
                run.skipped.append(student)
            else:
                why = message if code == runner.NOT_GRADED else f"grader error: {message}"
                run.not_graded[student] = why.splitlines()[0][:300] if why.strip() else "grader error"
    if device == "cuda":
        print(watcher.summary(), file=sys.stderr)
    return run


def limit_text(name: str, limits: Limits) -> str:
    return {"submission_seconds": f"--timeout {limits.submission_seconds:g} s",
            "call_seconds": f"{limits.call_seconds:g} s per call",
            "start_seconds": f"{limits.start_seconds:g} s to run the cells",
            "memory_mb": f"{limits.memory_mb} MB of memory"}.get(name, name)
