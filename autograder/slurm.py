"""``python -m autograder slurm``: grade a class on a Slurm cluster, as one job array and one merge job.

Task i of the array grades shard i+1 of N (``grade --shard K/N``) with one worker per CPU Slurm gave it,
straight into OUT, where each student's results have a folder of their own. A merge job, started once
every task has ended however it ended (``--dependency=afterany``), writes OUT/grades.csv (and the
gradebook). Running the same command again regrades only what is missing or changed (grade's skip rule),
so a failed or cancelled task is recovered by rerunning. Only ``sbatch`` and ``scontrol`` are called, from
PATH (no accounting database); SLURM_CONF and sbatch's own SBATCH_* variables apply as to any Slurm command.
"""
from __future__ import annotations

import argparse
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from autograder import SUITES, arguments
from autograder.results import GRADED, RESULTS, LayoutError, SubmissionResult, result_folder, upgrade_layout
from autograder.submissions import (Found, NothingToGrade, find_submissions, read_roster, refuse_other_assignments,
                                    shard)

# The runner (and torch with it) is imported only once jobs are to be submitted: --dry-run and bad input answer at once.
ROOT = SUITES.parent.parent  # the checkout: jobs start there, so `python -m autograder` is its own
LOGS = ".slurm"  # OUT/.slurm/: the jobs' logs (no student id starts with a dot)
POLL_SECONDS = 3
ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "BOOT_FAIL",
         "DEADLINE"}

ARRAY_SCRIPT = """\
#!/bin/bash
#SBATCH --job-name=grade-{assignment}
#SBATCH --array=0-{last}
#SBATCH --cpus-per-task={cpus}
{resources}#SBATCH --chdir={root}
#SBATCH --output={logs}/grade-%A_%a.log
# Task i grades shard i+1 of {tasks} with one worker per CPU it was given.
exec {python} -m autograder grade {assignment} {submitted} \\
    --out {out} --shard "$((SLURM_ARRAY_TASK_ID + 1))/{tasks}" \\
    --workers "$SLURM_CPUS_ON_NODE" --device {device}{naming}
"""
MERGE_SCRIPT = """\
#!/bin/bash
#SBATCH --job-name=merge-{assignment}
{resources}#SBATCH --chdir={root}
#SBATCH --output={logs}/merge-%j.log
# Starts when every grading task has ended (sbatch --dependency=afterany:<array>): one grades.csv for OUT.
exec {python} -m autograder merge {out} \\
    --out {out}{gradebook}
"""
EPILOG = """\
SUBMITTED, OUT, the gradebook and this checkout with its .venv must be on storage every node mounts at the
same path: the jobs start in the checkout and run its venv's Python. Logs go to OUT/.slurm/. sbatch's own
variables (SBATCH_ACCOUNT, SBATCH_QOS, SBATCH_MEM_PER_CPU, ...) and SLURM_CONF apply.

exit status:
  0  submitted (without --wait); with --wait, every submission has a graded result
  1  with --wait: a shard fell short (run the same command again: it grades only what is missing or changed),
     or some submissions could not be graded (their results say why)
  2  nothing submitted: a wrong argument, no Slurm here, or sbatch refused the jobs
"""


def parser() -> arguments.Parser:
    p = arguments.Parser("slurm", epilog=EPILOG)
    p.add_argument("assignment", help="the assignment: a folder of autograder/suites (conv_basics, cnn_vs_fc, receptive_fields)")
    p.add_argument("submitted", type=Path, help="the class's notebooks in one of grade's layouts, on shared storage")
    p.add_argument("--out", type=arguments.folder, required=True, metavar="OUT",
                   help="where results go, on shared storage; created with its parents")
    p.add_argument("--tasks", type=arguments.at_least_one, required=True, metavar="N",
                   help="array tasks, each grading one of N slices of the class (at most the class's size)")
    p.add_argument("--cpus-per-task", type=arguments.at_least_one, default=1, metavar="C",
                   help="CPUs per task, one worker each (default: %(default)s)")
    p.add_argument("--partition", help="the partition of every job (default: the cluster's default)")
    p.add_argument("--gpus-per-task", type=arguments.at_least_one, metavar="G",
                   help="ask each task for --gres=gpu:G and grade with --device cuda (default: CPU only)")
    p.add_argument("--time", type=arguments.at_least_one, metavar="MINUTES",
                   help="time limit of each job (default: the partition's)")
    p.add_argument("--nbgrader-db", type=arguments.file("gradebook.db"), metavar="DB",
                   help="the merge job also writes the scores into this nbgrader gradebook (default: none)")
    p.add_argument("--lms", type=arguments.lms_pattern, default="auto", metavar="NAME|REGEX",
                   help="how file names give the student id, as grade's --lms (default: %(default)s)")
    p.add_argument("--roster", type=arguments.existing_file, metavar="CSV",
                   help="the class list, as grade's --roster, on shared storage (default: none)")
    p.add_argument("--dry-run", action="store_true", help="print the two batch scripts, submit nothing")
    p.add_argument("--wait", action="store_true",
                   help="wait for the merge job, then print one line per task and exit 1 if any fell short")
    return p


def resources(args: argparse.Namespace, gpus: bool) -> str:
    """``#SBATCH`` lines for the partition, the time limit and (for the grading array) the GPUs."""
    wanted = [("partition", args.partition), ("time", args.time),
              ("gres", gpus and args.gpus_per_task and f"gpu:{args.gpus_per_task}")]
    return "".join(f"#SBATCH --{option}={value}\n" for option, value in wanted if value)


def batch_scripts(args: argparse.Namespace) -> tuple[str, str]:
    """The grading array's script and the merge job's script (paths absolute: they run on other nodes)."""
    common = {"assignment": args.assignment, "root": shlex.quote(str(ROOT)), "out": shlex.quote(str(args.out)),
              "logs": shlex.quote(str(args.out / LOGS)), "python": shlex.quote(str(Path(sys.executable).absolute()))}
    array = ARRAY_SCRIPT.format(**common, last=args.tasks - 1, tasks=args.tasks, cpus=args.cpus_per_task,
                                resources=resources(args, gpus=True), submitted=shlex.quote(str(args.submitted)),
                                device="cuda" if args.gpus_per_task else "cpu", naming=naming(args))
    gradebook = (f" --nbgrader-db {shlex.quote(str(args.nbgrader_db))} \\\n    --submitted "
                 f"{shlex.quote(str(args.submitted))}" if args.nbgrader_db else "")
    merge = MERGE_SCRIPT.format(**common, resources=resources(args, gpus=False), gradebook=gradebook)
    return array, merge


def naming(args: argparse.Namespace) -> str:
    """grade's --lms and --roster for the tasks, when not their defaults."""
    options = ([f"--lms {shlex.quote(args.lms)}"] if args.lms != "auto" else []) + (
        [f"--roster {shlex.quote(str(args.roster))}"] if args.roster else [])
    return "".join(f" \\\n    {option}" for option in options)


def slurm_problem(partition: str | None) -> str | None:
    """Why this machine cannot submit to Slurm (no commands, no controller, no such partition), or None."""
    missing = [command for command in ("sbatch", "scontrol") if not shutil.which(command)]
    if missing:
        return (f"{' and '.join(missing)} not found on PATH: run this where Slurm's commands are (the cluster's "
                "login node), or use --dry-run to see the batch scripts")
    run = subprocess.run(["scontrol", "--all", "--oneliner", "show", "partition"], capture_output=True, text=True)
    if run.returncode:
        return f"scontrol cannot reach the cluster: {last_line(run)}"
    names = re.findall(r"^PartitionName=(\S+)", run.stdout, re.MULTILINE)
    if partition and partition not in names:
        return f"no partition {partition!r} on this cluster (it has: {', '.join(names) or 'none'})"
    return None


class Refused(Exception):
    """sbatch did not accept a job; the message is its reason."""


def submit(script: str, *options: str) -> str:
    """``sbatch --parsable`` the script (on stdin); returns the job id."""
    run = subprocess.run(["sbatch", "--parsable", *options], input=script, capture_output=True, text=True)
    job = run.stdout.strip().split(";")[0]  # "<id>" or "<id>;<cluster>"
    if run.returncode or not job.isdigit():
        raise Refused(last_line(run))
    return job


def last_line(run: subprocess.CompletedProcess) -> str:
    """What a Slurm command said last: its reason for failing."""
    lines = (run.stderr or run.stdout).strip().splitlines()
    return lines[-1] if lines else f"{run.args[0]} exited with status {run.returncode}"


def job_states(job: str) -> dict[str, str] | None:
    """``{job id: state}`` of a job, or of each task of an array (``<array>_<i>``), as ``scontrol`` knows them
    (``FAILED (exit 1)`` with the exit status); {} once slurmctld has forgotten the job (MinJobAge after it
    ended); None when it cannot say."""
    run = subprocess.run(["scontrol", "--oneliner", "show", "job", job], capture_output=True, text=True)
    if run.returncode:
        return {} if "Invalid job id" in run.stderr + run.stdout else None
    states = {}
    for line in run.stdout.splitlines():
        fields = dict(re.findall(r"(?:^|\s)(\w+)=(\S*)", line))
        state = fields["JobState"]
        if state == "FAILED":
            state += f" (exit {fields.get('ExitCode', '?').split(':')[0]})"
        if "ArrayTaskId" not in fields:
            states[fields["JobId"]] = state
        for first, last in re.findall(r"(\d+)(?:-(\d+))?", fields.get("ArrayTaskId", "")):  # "3", or "4-7" not started
            for task in range(int(first), int(last or first) + 1):
                states[f"{fields['ArrayJobId']}_{task}"] = state
    return states


def wait(array: str, merge: str) -> dict[str, str]:
    """Poll until the merge job has ended; returns the last state seen of each task and of the merge job."""
    seen: dict[str, str] = {}
    while True:
        seen.update(job_states(array) or {})
        merge_state = job_states(merge)
        if merge_state is not None:
            seen.update(merge_state)
            if seen.get(merge, "").split(" ")[0] in ENDED or not merge_state:
                return seen
        time.sleep(POLL_SECONDS)


NODE_LOCAL = [Path("/tmp"), Path("/var/tmp"), Path("/dev/shm"), Path("/run/user"), Path(tempfile.gettempdir())]


def node_local(args: argparse.Namespace) -> list[str]:
    """Warnings for the paths the jobs need that lie on a node's own storage, which other nodes do not see."""
    paths = [("SUBMITTED", args.submitted), ("OUT", args.out), ("--nbgrader-db", args.nbgrader_db),
             ("--roster", args.roster)]
    return [f"warning: {what} {path} is on node-local storage ({root}): jobs on other nodes will not see it; put it "
            "on storage every node mounts" for what, path in paths if path
            for root in [next((r for r in NODE_LOCAL if path.is_relative_to(r)), None)] if root]


def progress(args: argparse.Namespace, found: Found, students: list[str], suite: str,
             since: float) -> tuple[int, int, int]:
    """(graded since ``since``, unchanged and skipped, could not be graded) among ``students``, counting only
    results of the notebook now submitted (or of the same refusal) and of this hidden suite; the others are
    missing, and a rerun grades them."""
    from autograder.notebook import fingerprint

    graded = unchanged = not_graded = 0
    for student in students:
        path = result_folder(args.out, student, args.assignment) / RESULTS
        if not path.exists():
            continue
        result, refusal = SubmissionResult.read(path), found.refused.get(student)
        current = (result.status == refusal.status if refusal else result.notebook_sha256 == fingerprint(
            found.notebooks[student]))  # a grader error records no SHA-256
        if current and result.suite_sha256 == suite:
            now = path.stat().st_mtime >= since
            graded += result.status == GRADED and now
            unchanged += result.status == GRADED and not now
            not_graded += result.status != GRADED
    return graded, unchanged, not_graded


def summarise(args: argparse.Namespace, found: Found, array: str, merge: str, seen: dict[str, str],
              since: float) -> int:
    """One line per task (counted from the results on disk; Slurm's state as it was last seen) and one for
    the merge job; 1 when a shard has results missing, naming it, or some submissions could not be graded."""
    from autograder.runner import suite_sha256

    suite = suite_sha256(SUITES, args.assignment)
    short, not_gradable = [], 0
    for k in range(1, args.tasks + 1):
        task, students = f"{array}_{k - 1}", shard(found.students, k, args.tasks)
        state, (graded, unchanged, not_graded) = seen.get(task, "UNKNOWN"), progress(args, found, students, suite,
                                                                                      since)
        missing = len(students) - graded - unchanged - not_graded
        print(f"shard {k}/{args.tasks} (job {task}): {state}, {graded} of {len(students)} graded"
              + (f", {unchanged} unchanged and skipped" if unchanged else "")
              + (f", {not_graded} could not be (their results say why)" if not_graded else "")
              + (f", {missing} missing" if missing else ""))
        not_gradable += not_graded
        if missing:
            short.append(f"{k}/{args.tasks} ({state}, {missing} missing)")
    merged = seen.get(merge, "UNKNOWN")
    print(f"merge (job {merge}): {merged}, grades in {args.out / 'grades.csv'}")
    logs = args.out / LOGS
    if short:
        print(f"not fully graded: shard {'; '.join(short)}; logs in {logs}. Run the same command again to grade "
              "what is missing.", file=sys.stderr)
    if not_gradable:
        print(f"{not_gradable} submission(s) could not be graded: their results say why (the status column of "
              f"{args.out / 'grades.csv'})", file=sys.stderr)
    if merged not in ("COMPLETED", "UNKNOWN"):
        print(f"the merge job ended {merged} (log in {logs}): `python -m autograder merge {args.out} --out "
              f"{args.out}` writes grades.csv", file=sys.stderr)
    return 1 if short or not_gradable or merged not in ("COMPLETED", "UNKNOWN") else 0


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    arguments.check_assignment(p, SUITES, args.assignment)
    args.submitted, args.out = args.submitted.absolute(), args.out.absolute()
    args.nbgrader_db = args.nbgrader_db and args.nbgrader_db.absolute()
    args.roster = args.roster and args.roster.absolute()
    if not args.submitted.is_dir():
        p.error(f"{args.submitted} is not a folder: give the folder of the class's notebooks")
    try:
        found = find_submissions(args.submitted, args.assignment, args.lms,
                                 read_roster(args.roster) if args.roster else None)
    except ValueError as error:  # NothingToGrade, or a roster that cannot be read
        if not isinstance(error, NothingToGrade):
            p.error(str(error))
        print(f"{p.prog}: {error}", file=sys.stderr)
        return 2
    refuse_other_assignments(found, SUITES, args.assignment)  # as each task's grade does: their results say so
    if args.tasks > len(found.students):
        p.error(f"--tasks {args.tasks}: {args.submitted} holds {len(found.students)} submissions of "
                f"{args.assignment}; ask for at most {len(found.students)} tasks")
    array_script, merge_script = batch_scripts(args)
    if args.dry_run:
        for warning in node_local(args):
            print(warning, file=sys.stderr)
        print(f"# the grading array: sbatch --parsable\n{array_script}\n"
              f"# the merge job: sbatch --parsable --dependency=afterany:<the array's job id>\n{merge_script}", end="")
        return 0
    if problem := slurm_problem(args.partition):
        p.error(problem)
    from autograder import runner

    for folder in [args.out / LOGS, *([args.nbgrader_db.parent] if args.nbgrader_db else [])]:
        arguments.make_folder(p, folder)
    try:
        runner.check_hidden(SUITES)
        for moved in upgrade_layout(args.out):  # once, here, rather than racing in every task
            print(moved, file=sys.stderr)
        since = time.time()  # a result written from now on was graded by this array, an older one unchanged
        array = submit(array_script)
    except (runner.GraderError, LayoutError) as error:
        p.error(str(error))
    except Refused as error:
        p.error(f"sbatch refused the grading array: {error}")
    try:
        merge = submit(merge_script, f"--dependency=afterany:{array}")
    except Refused as error:
        print(f"grading array {array} submitted, but sbatch refused the merge job: {error}; once the array has "
              f"ended, `python -m autograder merge {args.out} --out {args.out}` writes grades.csv", file=sys.stderr)
        return 1
    print(f"submitted grading array {array} ({args.tasks} tasks, {array}_0 to {array}_{args.tasks - 1}) and merge "
          f"job {merge}; logs in {args.out / LOGS}", flush=True)
    for warning in node_local(args):
        print(warning, file=sys.stderr, flush=True)
    if not args.wait:
        print(f"follow them with `squeue -j {array},{merge}`; grades arrive in {args.out / 'grades.csv'}")
        return 0
    try:
        seen = wait(array, merge)
    except KeyboardInterrupt:
        print(f"\nstopped waiting; jobs {array} and {merge} go on (`squeue -j {array},{merge}`)", file=sys.stderr)
        return 130
    return summarise(args, found, array, merge, seen, since)
