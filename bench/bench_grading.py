"""Grading throughput: this autograder against `nbgrader autograde`, on the same class.

Builds a class of N copies of the instructor's conv_basics solution in nbgrader's layout, grades
it with `python -m autograder grade --workers 2` and with `nbgrader autograde` (which executes
each notebook in its own kernel), and prints both wall times and the ratio. Then grades a few
cnn_vs_fc solutions to report the time per submission of the training-heavy assignment.

    .venv/bin/python bench/bench_grading.py [--students 40]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}  # nbgrader runs its `alembic` from PATH


def make_class(course: Path, assignment: str, students: int) -> None:
    for i in range(students):
        folder = course / "submitted" / f"student{i:03d}" / assignment
        folder.mkdir(parents=True)
        shutil.copy(ROOT / "solutions" / assignment / f"{assignment}.ipynb", folder)


def timed(command: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True, env=ENV)
    return time.perf_counter() - started


def ours(course: Path, assignment: str, workers: int = 2) -> float:
    return timed([sys.executable, "-m", "autograder", "grade", assignment, "submitted", "--out", "autograded-ours",
                  "--workers", str(workers), "--force"], course)


def nbgrader(course: Path, assignment: str) -> float:
    shutil.copytree(ROOT / "solutions", course / "solutions")
    shutil.copy(ROOT / "nbgrader_config.py", course)
    subprocess.run([str(BIN / "nbgrader"), "generate_assignment", assignment, "--force"], cwd=course, check=True,
                   capture_output=True, env=ENV)
    return timed([str(BIN / "nbgrader"), "autograde", assignment, "--force"], course)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=40)
    parser.add_argument("--cnn-students", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        course = Path(tmp)
        make_class(course, "conv_basics", args.students)
        ours_s, theirs_s = ours(course, "conv_basics"), nbgrader(course, "conv_basics")
        print(f"conv_basics, {args.students} correct submissions, 2 workers:")
        print(f"  this autograder:    {ours_s:7.1f} s  ({ours_s / args.students:.2f} s per submission)")
        print(f"  nbgrader autograde: {theirs_s:7.1f} s  ({theirs_s / args.students:.2f} s per submission)")
        print(f"  throughput ratio:   {theirs_s / ours_s:7.1f}x")
    with tempfile.TemporaryDirectory() as tmp:
        course = Path(tmp)
        make_class(course, "cnn_vs_fc", args.cnn_students)
        total = ours(course, "cnn_vs_fc")
        times = [json.loads(p.read_text())["execution_time"] for p in course.glob("autograded-ours/*/cnn_vs_fc/results.json")]
        print(f"cnn_vs_fc, {args.cnn_students} correct submissions, 2 workers: {total:.1f} s in all, "
              f"{max(times):.1f} s at most per submission (its own grading time)")


if __name__ == "__main__":
    main()
