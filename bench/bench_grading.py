"""Grading throughput: this autograder against `nbgrader autograde`, on the same class.

Builds a class of N copies of the instructor's conv_basics solution in nbgrader's layout, grades
it with `python -m autograder grade --workers 2` and with `nbgrader autograde` (which executes
each notebook in its own kernel; at most --nbgrader-students of them, as it takes seconds each),
and prints wall time and CPU-seconds per submission of both (CPU: every process the command ran,
from getrusage) and the ratio. Then grades a few cnn_vs_fc solutions to report the time per
submission of the training-heavy assignment.

    .venv/bin/python bench/bench_grading.py [--students 40] [--nbgrader-students 40]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}  # nbgrader runs its `alembic` from PATH


STOCK_AUTOGRADE = ("\nfrom nbgrader.converters import Autograde\n"
                   "c.Autograde.autograde_preprocessors = Autograde.autograde_preprocessors.default_value\n")


def make_class(course: Path, assignment: str, students: int) -> None:
    for i in range(students):
        folder = course / "submitted" / f"student{i:03d}" / assignment
        folder.mkdir(parents=True)
        shutil.copy(ROOT / "solutions" / assignment / f"{assignment}.ipynb", folder)


def timed(command: list[str], cwd: Path) -> tuple[float, float]:
    """Run ``command``; returns (wall seconds, CPU-seconds of all its processes)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True, env=ENV)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter() - started, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def ours(course: Path, assignment: str, workers: int = 2) -> tuple[float, float]:
    return timed([sys.executable, "-m", "autograder", "grade", assignment, "submitted", "--out", "autograded-ours",
                  "--workers", str(workers), "--force"], course)


def nbgrader(course: Path, assignment: str) -> tuple[float, float]:
    shutil.copytree(ROOT / "solutions", course / "solutions")
    # The baseline is nbgrader's own autograde, each notebook run in a kernel: not the course's, which grades with
    # this autograder (autograder/nbgrader_autograde.py).
    (course / "nbgrader_config.py").write_text((ROOT / "nbgrader_config.py").read_text() + STOCK_AUTOGRADE)
    subprocess.run([str(BIN / "nbgrader"), "generate_assignment", assignment, "--force"], cwd=course, check=True,
                   capture_output=True, env=ENV)
    return timed([str(BIN / "nbgrader"), "autograde", assignment, "--force"], course)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=40)
    parser.add_argument("--nbgrader-students", type=int, default=40,
                        help="class size for nbgrader (at most --students)")
    parser.add_argument("--cnn-students", type=int, default=4)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    results = {}
    for name, size, grade in [("this autograder (2 workers)", args.students, ours),
                              ("nbgrader autograde", min(args.nbgrader_students, args.students), nbgrader)]:
        with tempfile.TemporaryDirectory() as tmp:
            make_class(Path(tmp), "conv_basics", size)
            wall, cpu = grade(Path(tmp), "conv_basics")
        results[name] = wall / size, cpu / size
        print(f"conv_basics, {name}, {size} correct submissions: {wall:7.1f} s  "
              f"({wall / size:.2f} s and {cpu / size:.2f} CPU-s per submission)")
    (ours_wall, ours_cpu), (theirs_wall, theirs_cpu) = results.values()
    print(f"  throughput ratio: {theirs_wall / ours_wall:.1f}x (wall), {theirs_cpu / ours_cpu:.1f}x (CPU)")
    with tempfile.TemporaryDirectory() as tmp:
        course = Path(tmp)
        make_class(course, "cnn_vs_fc", args.cnn_students)
        total, _ = ours(course, "cnn_vs_fc")
        times = [json.loads(p.read_text())["execution_time"]
                 for p in course.glob("autograded-ours/*/cnn_vs_fc/results.json")]
        print(f"cnn_vs_fc, {args.cnn_students} correct submissions, 2 workers: {total:.1f} s in all, "
              f"{max(times):.1f} s at most per submission (its own grading time)")


if __name__ == "__main__":
    main()
