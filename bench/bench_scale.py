"""Grading a large class: on one machine as it grows, then as a Slurm job array on a local cluster.

    .venv/bin/python bench/bench_scale.py [--students 1000] [--tasks 8] [--workers 2]

The class cycles through the realistic conv_basics students (tests/realistic/, all but the one whose
corr2d hangs: each of its copies would wait out a time limit). It is graded once with
`python -m autograder grade --workers W` while this script samples the grader's process tree; at
each quarter of the class it prints, for the submissions graded since the previous line, the wall time
and the CPU-seconds (every process of the grader, sandboxes included) per submission, the resident
memory of the grader (its main process and its largest worker) and the largest peak of one sandbox
(a process running under a sandbox's own user id; run as root). Flat columns mean nothing grows with the class.

Then (as root, with Debian's slurm-wlm and munge) the same class is graded into a fresh folder by
`python -m autograder slurm --tasks N --wait` on a single-node cluster of this machine's CPUs
(tools/local_slurm.py), one CPU per task. What Slurm adds to each task is measured, not inferred from
the two wall times (which other users' load moves more): the wait from a CPU coming free to the task's
start, the task's start-up until it grades its first submission (Python, torch, the class read), and
once for all the merge job.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tools")]
import local_slurm  # noqa: E402
from test_autograder_realistic import BASE, notebook, students  # noqa: E402

from autograder.submissions import shard  # noqa: E402

ASSIGNMENT = "conv_basics"
HUNG = "hang_in_corr2d"
TICK = os.sysconf("SC_CLK_TCK")
MB = 2**20


def make_class(submitted: Path, size: int) -> None:
    realistic = students(ASSIGNMENT)
    styles = [nbformat.writes(notebook(ASSIGNMENT, student, realistic[BASE]))
              for name, student in sorted(realistic.items()) if name != HUNG]
    for i in range(size):
        folder = submitted / f"student{i:04d}" / ASSIGNMENT
        folder.mkdir(parents=True)
        (folder / f"{ASSIGNMENT}.ipynb").write_text(styles[i % len(styles)])


@dataclass
class Process:
    pid: int
    uid: int
    cpu: float          # seconds: its own and its reaped children's, user and system
    rss: int            # bytes
    peak: int           # bytes (VmHWM)


def read_process(pid: int) -> Process | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    except (OSError, IndexError, ValueError):
        return None  # ended meanwhile
    kb = lambda key: int(status.get(key, "0 kB").split()[0]) * 1024  # noqa: E731
    return Process(pid, int(status["Uid"].split()[1]), sum(map(int, stat[11:15])) / TICK, kb("VmRSS"), kb("VmHWM"))


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (each thread's children; one that ends meanwhile is left out)."""
    found, stack = [], [pid]
    while stack:
        parent = stack.pop()
        found.append(parent)
        try:
            for children in Path(f"/proc/{parent}/task").glob("*/children"):
                stack += [int(child) for child in children.read_text().split()]
        except (OSError, ValueError):
            pass
    return found


@dataclass
class Window:
    graded: int
    seconds: float
    cpu: float
    grader_rss: int
    worker_rss: int
    sandbox_peak: int
    load: float = 0.0   # the machine's 1-minute load average then (others' work slows the wall time, not the CPU)


def machine_busy() -> float:
    """CPU-seconds this machine has spent busy since boot (every process, anyone's), from /proc/stat."""
    user, nice, system, idle, iowait, irq, softirq, steal = map(int, Path("/proc/stat").read_text().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / TICK


@dataclass
class Sampler:
    """Follows a grading run: its tree's CPU time, the grader's memory, the largest sandbox."""
    grader: int
    sandbox_peak: int = 0
    worker_rss: int = 0

    def sample(self) -> tuple[float, int]:
        """CPU-seconds of the live tree so far (the ended are in their reaping parent's count); the main RSS."""
        tree = [p for p in map(read_process, descendants(self.grader)) if p]
        workers = Path(f"/proc/{self.grader}/task/{self.grader}/children")
        worker_pids = {int(pid) for pid in (workers.read_text().split() if workers.exists() else [])}
        for process in tree:
            if process.uid != os.getuid():  # a sandbox, under its own user id
                self.sandbox_peak = max(self.sandbox_peak, process.peak)
            elif process.pid in worker_pids:
                self.worker_rss = max(self.worker_rss, process.rss)
        main = next((p.rss for p in tree if p.pid == self.grader), 0)
        return sum(p.cpu for p in tree), main


def grade_locally(submitted: Path, out: Path, size: int, workers: int) -> tuple[list[Window], float]:
    """Grade the class, one line's figures at each quarter; returns them and the machine's busy CPU-seconds."""
    marks = [size * q // 4 for q in (1, 2, 3, 4)]
    before, busy = resource.getrusage(resource.RUSAGE_CHILDREN), machine_busy()
    started = time.perf_counter()
    grader = subprocess.Popen([sys.executable, "-m", "autograder", "grade", ASSIGNMENT, str(submitted), "--out",
                               str(out), "--workers", str(workers), "--device", "cpu"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sampler, windows = Sampler(grader.pid), []
    try:
        while grader.poll() is None:
            cpu, rss = sampler.sample()
            graded = sum(1 for entry in os.scandir(out) if entry.is_dir()) if out.exists() else 0  # one per result
            while marks and graded >= marks[0]:
                windows.append(Window(marks.pop(0), time.perf_counter() - started, cpu, rss, sampler.worker_rss,
                                      sampler.sandbox_peak, os.getloadavg()[0]))
                sampler.sandbox_peak = sampler.worker_rss = 0
            time.sleep(0.1)
    except BaseException:  # this script failed or was interrupted: the grader stops too
        grader.terminate()
        grader.wait()
        raise
    seconds, busy = time.perf_counter() - started, machine_busy() - busy
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if grader.returncode or len(windows) < 3:
        sys.exit(f"grading failed (exit status {grader.returncode})")
    if marks:  # the last results came between two samples
        windows.append(Window(marks.pop(), seconds, 0.0, windows[-1].grader_rss, sampler.worker_rss,
                              sampler.sandbox_peak, os.getloadavg()[0]))
    windows[-1].cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime  # the whole tree, exact
    return windows, busy


def report_local(windows: list[Window], busy: float, workers: int) -> None:
    print(f"{'graded':>7} {'wall s':>8} {'s/sub':>7} {'CPU-s/sub':>10} {'grader MB':>10} {'worker MB':>10} "
          f"{'sandbox MB':>11} {'load':>5}   (per submission: over the submissions since the previous line)")
    previous = Window(0, 0.0, 0.0, 0, 0, 0)
    for w in windows:
        n = w.graded - previous.graded
        print(f"{w.graded:7d} {w.seconds:8.1f} {(w.seconds - previous.seconds) / n:7.3f} "
              f"{(w.cpu - previous.cpu) / n:10.3f} {w.grader_rss / MB:10.0f} {w.worker_rss / MB:10.0f} "
              f"{w.sandbox_peak / MB:11.0f} {w.load:5.1f}")
        previous = w
    last = windows[-1]
    print(f"  all {last.graded}: {last.seconds:.1f} s with {workers} workers, {last.cpu / last.graded:.3f} CPU-s per "
          f"submission (the machine, every process of anyone's: {busy / last.graded:.3f} busy CPU-s per submission)")


def job_times(cluster: local_slurm.Cluster, job: str) -> dict[str, tuple[datetime, datetime, datetime]]:
    """``{job id, or <array>_<i> for a task: (submitted, started, ended)}``, as slurmctld recorded them (seconds)."""
    times = {}
    for line in cluster.run("scontrol", "--oneliner", "show", "job", job).stdout.splitlines():
        fields = dict(re.findall(r"(?:^|\s)(\w+)=(\S*)", line))
        name = f"{fields['ArrayJobId']}_{fields['ArrayTaskId']}" if "ArrayTaskId" in fields else fields["JobId"]
        times[name] = tuple(datetime.fromisoformat(fields[key]) for key in ("SubmitTime", "StartTime", "EndTime"))
    return times


def grade_on_slurm(submitted: Path, out: Path, size: int, tasks: int, local_seconds: float) -> None:
    """Grade the class as an array of ``tasks`` (one CPU each) and say what Slurm added to each task."""
    with local_slurm.running() as cluster:
        started = time.perf_counter()
        run = subprocess.run([sys.executable, "-m", "autograder", "slurm", ASSIGNMENT, str(submitted), "--out",
                              str(out), "--tasks", str(tasks), "--wait"], env=cluster.env, capture_output=True,
                             text=True)
        seconds = time.perf_counter() - started
        if run.returncode:
            sys.exit(f"grading on Slurm failed:\n{run.stdout}\n{run.stderr[-3000:]}")
        array, merge = re.search(r"submitted grading array (\d+) .* merge job (\d+)", run.stdout).groups()
        times, (_, merge_start, merge_end) = job_times(cluster, array), job_times(cluster, merge)[merge]
    everyone = sorted(p.name for p in submitted.iterdir())
    ends = [end for _, _, end in times.values()]
    dispatch, startup, tail, rate = [], [], [], []
    for i in range(tasks):
        submit, start, end = times[f"{array}_{i}"]
        dispatch.append((start - max([submit, *(e for e in ends if e <= start)])).total_seconds())
        results = sorted((out / s / ASSIGNMENT / "results.json" for s in shard(everyone, i + 1, tasks)),
                         key=lambda path: path.stat().st_mtime)
        own = json.loads(results[0].read_text())["execution_time"]  # the first submission's own grading time
        grading = results[0].stat().st_mtime - own  # when the task began grading
        startup.append(grading - start.timestamp())
        tail.append(end.timestamp() - results[-1].stat().st_mtime)  # grades.csv of all OUT, exit
        rate.append((results[-1].stat().st_mtime - grading) / len(results))
    median = statistics.median
    ending = max(median(tail), 0.0)  # Slurm's second may round the end to before the last result's write
    per_task = median(dispatch) + median(startup) + ending
    merging = (merge_end - max(ends)).total_seconds()
    print(f"Slurm: {size} submissions as {tasks} tasks of 1 CPU, {os.cpu_count()} at a time on a local single-node "
          f"cluster: {seconds:.1f} s from sbatch to the merge job's end (one machine, {os.cpu_count()} workers: "
          f"{local_seconds:.1f} s)")
    print(f"  each task (medians; Slurm records seconds): started {median(dispatch):.0f} s after a CPU came free, "
          f"began grading {median(startup):.1f} s after it started (Python, torch, the class read), graded "
          f"{median(rate):.3f} s per submission (one machine: {local_seconds * os.cpu_count() / size:.3f} per "
          f"worker), ended {ending:.0f} s after its last result; the merge job ended {merging:.0f} s after "
          f"the last task (ran {(merge_end - merge_start).total_seconds():.0f} s)")
    print(f"  Slurm's overhead: about {per_task:.1f} s of a CPU per task; {per_task * tasks + merging:.0f} s for the "
          f"array and the merge job, {(per_task * tasks + merging) / size:.3f} s per submission")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{load:.2f}' for load in os.getloadavg())}; {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        submitted = Path(tmp) / "submitted"
        make_class(submitted, args.students)
        print(f"conv_basics, {args.students} submissions cycling through {len(students(ASSIGNMENT)) - 1} realistic "
              f"styles, graded on one machine with {args.workers} workers:")
        windows, busy = grade_locally(submitted, Path(tmp) / "local", args.students, args.workers)
        report_local(windows, busy, args.workers)
        if os.geteuid() != 0:
            print("Slurm: skipped (a local cluster needs root)")
            return
        grade_on_slurm(submitted, Path(tmp) / "slurm", args.students, args.tasks, windows[-1].seconds)
    print(f"load average after: {' '.join(f'{load:.2f}' for load in os.getloadavg())}")


if __name__ == "__main__":
    main()
