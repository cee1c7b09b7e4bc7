"""``python -m autograder merge OUT... --out MERGED``: join the outputs of sharded grading runs."""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from autograder.results import SubmissionResult, grades_csv, write_atomic


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m autograder merge", description=__doc__)
    p.add_argument("outputs", nargs="+", type=Path, help="output folders of `grade --shard K/N` runs")
    p.add_argument("--out", type=Path, required=True, help="folder for the merged results and grades.csv")
    args = p.parse_args(argv)
    results: dict[tuple[str, str], SubmissionResult] = {}
    for folder in args.outputs:
        if not folder.is_dir():
            p.error(f"{folder} is not a folder")
        for path in sorted(folder.glob("*/results.json")):
            result = SubmissionResult.read(path)
            key = (result.assignment, result.student)
            if key in results:
                print(f"warning: {result.student} appears in more than one shard; keeping {path}", file=sys.stderr)
            results[key] = result
            if folder.resolve() != args.out.resolve():
                shutil.copytree(path.parent, args.out / path.parent.name, dirs_exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    write_atomic(args.out / "grades.csv", grades_csv(list(results.values())))
    print(f"merged {len(results)} results from {len(args.outputs)} folders into {args.out / 'grades.csv'}")
    return 0
