"""``python -m autograder grade``: grade one notebook or a whole class, in parallel, safely."""
from __future__ import annotations

import argparse
import gc
import multiprocessing
import os
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from autograder import runner
from autograder.results import LayoutError, grades_csv, read_all, upgrade_layout, write_atomic
from autograder.sandbox import Limits
from autograder.sandbox.child import preload
from autograder.sandbox.limits import container_memory, fit_to_container
from autograder.submissions import find_notebooks, shard


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m autograder grade", description=__doc__)
    p.add_argument("assignment", help="conv_basics or cnn_vs_fc (a folder of autograder/suites)")
    p.add_argument("submitted", type=Path, help="nbgrader's submitted/ folder, or one .ipynb file")
    p.add_argument("--out", type=Path, default=Path("autograded"), help="where results go (default autograded/)")
    p.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2)), help="parallel graders")
    p.add_argument("--timeout", type=float, default=Limits.submission_seconds, help="seconds per submission")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--force", action="store_true", help="grade again students already graded")
    p.add_argument("--nbgrader-db", type=Path, help="also write the scores into this nbgrader gradebook")
    p.add_argument("--shard", metavar="K/N", help="grade only the K-th of N slices of the class")
    p.add_argument("--suites", type=Path, default=runner.SUITES, help=argparse.SUPPRESS)
    return p


def cuda_present() -> bool:
    os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = "1"  # answers without initialising CUDA (fork-safe)
    return torch.cuda.is_available()


def resolve_device(device: str) -> str:
    return ("cuda" if cuda_present() else "cpu") if device == "auto" else device


def fitted_limits(limits: Limits, workers: int) -> Limits:
    """``limits``, with the sandboxes' memory cap below the container's memory limit when there is one
    (measured with torch loaded, as the workers will start)."""
    memory = container_memory()
    fitted = fit_to_container(limits, workers, memory)
    if memory is not None:
        print(f"container memory limit {memory.limit / 2**20:.0f} MB, {memory.used / 2**20:.0f} MB in use: "
              f"each of {workers} sandbox(es) may use {fitted.memory_mb} MB", file=sys.stderr)
    return fitted


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if not (args.suites / args.assignment).is_dir():
        p.error(f"no hidden suite for {args.assignment!r} in {args.suites}")
    if not args.submitted.exists():
        p.error(f"{args.submitted} does not exist")
    try:
        runner.check_hidden(args.suites)
        runner.check_reachable()
        notebooks = find_notebooks(args.submitted, args.assignment)
        students = shard(sorted(notebooks), args.shard)
        args.out.mkdir(parents=True, exist_ok=True)
        for moved in upgrade_layout(args.out):
            print(moved, file=sys.stderr)
    except (runner.GraderError, ValueError, LayoutError) as error:
        p.error(str(error))
    device = resolve_device(args.device)
    if device == "cuda" and not cuda_present():
        p.error("--device cuda: no CUDA device is available here (use --device auto or cpu)")
    workers = max(1, min(args.workers, len(students) or 1))
    preload()  # once, before the workers fork: torch is imported once per grading run
    runner.prepare()
    gc.freeze()  # all that exists now is shared by every fork: the collector must not copy its pages into each
    limits = fitted_limits(Limits(submission_seconds=args.timeout), workers)
    suite = runner.suite_sha256(args.suites, args.assignment)
    jobs = [runner.Job(s, args.assignment, notebooks[s], args.out, args.suites, device, limits, args.force, suite)
            for s in students]
    torch.set_num_threads(1)  # the trusted side's checks are small: threads only slow them down
    failures = []
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        progress = tqdm(pool.imap_unordered(runner.grade_in_fork, jobs), total=len(jobs), unit="notebook",
                        desc=f"grading {args.assignment} on {device}", file=sys.stderr)
        for student, code, message in progress:
            if code not in (runner.GRADED, runner.SKIPPED):
                failures.append(f"{student}: {message or f'grading exited with status {code}'}")
    results = read_all(args.out)  # every assignment graded into this folder
    write_atomic(args.out / "grades.csv", grades_csv(results))
    if args.nbgrader_db:
        from autograder import gradebook  # nbgrader's database layer takes seconds to import: only on demand

        gradebook.record(args.nbgrader_db, [r for r in results if r.assignment == args.assignment])
    for failure in failures:
        print(f"could not grade {failure}", file=sys.stderr)
    print(f"{len(jobs) - len(failures)} of {len(jobs)} submissions graded; {len(results)} results in {args.out}, "
          f"grades in {args.out / 'grades.csv'}")
    return 0
