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
import time
from dataclasses import dataclass
from pathlib import Path

from autograder.results import LayoutError, upgrade_layout
from autograder.submissions import find_notebooks, shard

# The runner (and torch with it) is imported only once jobs are to be submitted: --dry-run and bad input answer at once.
SUITES = Path(__file__).resolve().parent / "suites"  # runner.SUITES
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
    --workers "$SLURM_CPUS_ON_NODE" --device {device}
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


def positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
    return int(text)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m autograder slurm", description=__doc__.split("\n\n")[0])
    p.add_argument("assignment", help="conv_basics or cnn_vs_fc (a folder of autograder/suites)")
    p.add_argument("submitted", type=Path, help="nbgrader's submitted/ folder, on storage every node reads")
    p.add_argument("--out", type=Path, required=True, help="where results go, on storage every node writes")
    p.add_argument("--tasks", type=positive, required=True, metavar="N", help="array tasks (shards of the class)")
    p.add_argument("--cpus-per-task", type=positive, default=1, metavar="C", help="CPUs (= workers) per task")
    p.add_argument("--partition", help="Slurm partition for every job (default: the cluster's default)")
    p.add_argument("--gpus-per-task", type=positive, metavar="G", help="ask for --gres=gpu:G and grade on CUDA")
    p.add_argument("--time", type=positive, metavar="MINUTES", help="time limit of each job")
    p.add_argument("--nbgrader-db", type=Path, help="the merge job also writes the scores into this gradebook")
    p.add_argument("--dry-run", action="store_true", help="print the batch scripts, submit nothing")
    p.add_argument("--wait", action="store_true", help="wait for the merge job, summarise each task")
    return p


@dataclass(frozen=True)
class Shard:
    k: int                  # 1..N, as grade --shard K/N counts
    students: list[str]

    def task(self, array: str) -> str:
        return f"{array}_{self.k - 1}"


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
                                device="cuda" if args.gpus_per_task else "cpu")
    gradebook = f" --nbgrader-db {shlex.quote(str(args.nbgrader_db))}" if args.nbgrader_db else ""
    merge = MERGE_SCRIPT.format(**common, resources=resources(args, gpus=False), gradebook=gradebook)
    return array, merge


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
    """``{job id: state}`` of a job, or of each task of an array (``<array>_<i>``), as ``scontrol`` knows
    them; {} once slurmctld has forgotten the job (MinJobAge after it ended); None when it cannot say."""
    run = subprocess.run(["scontrol", "--oneliner", "show", "job", job], capture_output=True, text=True)
    if run.returncode:
        return {} if "Invalid job id" in run.stderr + run.stdout else None
    states = {}
    for line in run.stdout.splitlines():
        fields = dict(re.findall(r"(?:^|\s)(\w+)=(\S*)", line))
        if "ArrayTaskId" not in fields:
            states[fields["JobId"]] = fields["JobState"]
        for first, last in re.findall(r"(\d+)(?:-(\d+))?", fields.get("ArrayTaskId", "")):  # "3", or "4-7" not started
            for task in range(int(first), int(last or first) + 1):
                states[f"{fields['ArrayJobId']}_{task}"] = fields["JobState"]
    return states


def wait(array: str, merge: str) -> dict[str, str]:
    """Poll until the merge job has ended; returns the last state seen of each task and of the merge job."""
    seen: dict[str, str] = {}
    while True:
        seen.update(job_states(array) or {})
        merge_state = job_states(merge)
        if merge_state is not None:
            seen.update(merge_state)
            if seen.get(merge) in ENDED or not merge_state:
                return seen
        time.sleep(POLL_SECONDS)


def up_to_date(args: argparse.Namespace, notebooks: dict[str, Path], students: list[str], suite: str) -> int:
    """How many of ``students`` a rerun would skip: a result for this very notebook and hidden suite."""
    from autograder import runner
    from autograder.notebook import read_submission

    jobs = [runner.Job(s, args.assignment, notebooks[s], args.out, suite_sha256=suite) for s in students]
    return sum(runner.already_graded(job, read_submission(job.notebook, job.student, job.assignment)) for job in jobs)


def summarise(args: argparse.Namespace, shards: list[Shard], notebooks: dict[str, Path], array: str, merge: str,
              seen: dict[str, str]) -> int:
    """One line per task and one for the merge job; 1 (naming the shards to rerun) when any fell short.

    A shard is complete when a rerun would skip every one of its students; a task slurmctld has
    already forgotten (``UNKNOWN``) is judged by that alone."""
    from autograder.runner import suite_sha256

    suite = suite_sha256(SUITES, args.assignment)
    failed = []
    for s in shards:
        state, graded = seen.get(s.task(array), "UNKNOWN"), up_to_date(args, notebooks, s.students, suite)
        print(f"shard {s.k}/{len(shards)} (job {s.task(array)}): {state}, "
              f"{graded} of {len(s.students)} submissions graded")
        if graded < len(s.students) or state not in ("COMPLETED", "UNKNOWN"):
            failed.append(f"{s.k}/{len(shards)} ({state})")
    merged = seen.get(merge, "UNKNOWN")
    print(f"merge (job {merge}): {merged}, grades in {args.out / 'grades.csv'}")
    logs = args.out / LOGS
    if failed:
        print(f"not fully graded: shard {', '.join(failed)}; logs in {logs}. Run the same command again to "
              "grade what is missing.", file=sys.stderr)
    if merged not in ("COMPLETED", "UNKNOWN"):
        print(f"the merge job ended {merged} (log in {logs}): `python -m autograder merge {args.out} --out "
              f"{args.out}` writes grades.csv", file=sys.stderr)
    return 1 if failed or merged not in ("COMPLETED", "UNKNOWN") else 0


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    args.submitted, args.out = args.submitted.absolute(), args.out.absolute()
    args.nbgrader_db = args.nbgrader_db and args.nbgrader_db.absolute()
    if not (SUITES / args.assignment).is_dir():
        p.error(f"no hidden suite for {args.assignment!r} in {SUITES}")
    if not args.submitted.is_dir():
        p.error(f"{args.submitted} is not a folder (nbgrader's submitted/ layout)")
    notebooks = find_notebooks(args.submitted, args.assignment)
    if not notebooks:
        p.error(f"no submissions of {args.assignment} in {args.submitted}")
    if args.tasks > len(notebooks):
        p.error(f"--tasks {args.tasks}: {args.submitted} holds {len(notebooks)} submissions of {args.assignment}; "
                f"ask for at most {len(notebooks)} tasks")
    array_script, merge_script = batch_scripts(args)
    if args.dry_run:
        print(f"# the grading array: sbatch --parsable\n{array_script}\n"
              f"# the merge job: sbatch --parsable --dependency=afterany:<the array's job id>\n{merge_script}", end="")
        return 0
    if problem := slurm_problem(args.partition):
        p.error(problem)
    from autograder import runner

    try:
        runner.check_hidden(SUITES)
        (args.out / LOGS).mkdir(parents=True, exist_ok=True)
        for moved in upgrade_layout(args.out):  # once, here, rather than racing in every task
            print(moved, file=sys.stderr)
        array = submit(array_script)
    except (runner.GraderError, LayoutError, OSError) as error:
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
    if not args.wait:
        print(f"follow them with `squeue -j {array},{merge}`; grades arrive in {args.out / 'grades.csv'}")
        return 0
    students = sorted(notebooks)
    shards = [Shard(k, shard(students, f"{k}/{args.tasks}")) for k in range(1, args.tasks + 1)]
    try:
        seen = wait(array, merge)
    except KeyboardInterrupt:
        print(f"\nstopped waiting; jobs {array} and {merge} go on (`squeue -j {array},{merge}`)", file=sys.stderr)
        return 130
    return summarise(args, shards, notebooks, array, merge, seen)
