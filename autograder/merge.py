"""``python -m autograder merge FOLDER... --out OUT``: join the outputs of sharded grading runs.

OUT gets every ``<student>/<assignment>/`` folder and one grades.csv for all it holds. Results an
older grader wrote as ``<student>/results.json`` are first moved into that layout, in place. With
``--nbgrader-db``, each result also gets its autograded notebook, as ``grade --nbgrader-db`` writes it (from the
notebook graded, found in ``--submitted`` by its SHA-256), and the gradebook its scores.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

from autograder import arguments
from autograder.results import RESULTS, LayoutError, grades_csv, read_all, upgrade_layout, write_atomic


def main(argv: list[str] | None = None) -> int:
    p = arguments.Parser("merge", epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("outputs", nargs="+", type=Path, metavar="FOLDER",
                   help="the --out folders of `grade --shard K/N` runs; a student in several: the last one's result")
    p.add_argument("--out", type=arguments.folder, required=True,
                   help="folder for the merged results and grades.csv; created with its parents (may be one of the "
                        "FOLDERs)")
    p.add_argument("--nbgrader-db", type=arguments.file("gradebook.db"), metavar="DB",
                   help="also write every merged score into this nbgrader gradebook (default: none); needs "
                        "--submitted")
    p.add_argument("--submitted", type=Path, metavar="SUBMITTED",
                   help="the notebooks graded (grade's SUBMITTED: a folder or an LMS's .zip), for the autograded "
                        "notebooks nbgrader's formgrader and generate_feedback read (with --nbgrader-db; default: "
                        "none)")
    args = p.parse_args(argv)
    for folder in args.outputs:
        if not folder.is_dir():
            p.error(f"{folder} is not a folder")
    if args.nbgrader_db and not (args.submitted and args.submitted.exists()):
        p.error(f"--nbgrader-db needs --submitted SUBMITTED, the notebooks graded"
                + (f" ({args.submitted} does not exist)" if args.submitted else "")
                + ": nbgrader's formgrader and generate_feedback read the autograded notebooks made from them")
    for folder in [args.out, *([args.nbgrader_db.parent] if args.nbgrader_db else [])]:
        arguments.make_folder(p, folder)
    copied: dict[Path, Path] = {}  # <student>/<assignment> -> the output it came from
    for folder in [args.out, *args.outputs]:
        try:
            for moved in upgrade_layout(folder):
                print(moved, file=sys.stderr)
        except LayoutError as error:
            p.error(str(error))
    for folder in args.outputs:
        for path in sorted(folder.glob(f"*/*/{RESULTS}")):
            place = path.parent.relative_to(folder)
            if place in copied:
                print(f"warning: {place} is in both {copied[place]} and {folder}; keeping {folder}'s", file=sys.stderr)
            copied[place] = folder
            if path.parent.resolve() != (args.out / place).resolve():
                shutil.copytree(path.parent, args.out / place, dirs_exist_ok=True)
    results = read_all(args.out)
    write_atomic(args.out / "grades.csv", grades_csv(results))
    if args.nbgrader_db:
        from autograder import autograded_notebook, gradebook  # nbgrader's: seconds to import, only on demand

        for student in autograded_notebook.write_from(results, args.submitted, args.out):
            print(f"gradebook: {student}: no notebook in {args.submitted} is the one graded (changed since?): no "
                  f"autograded notebook written, so the formgrader cannot open it; grade {student} again",
                  file=sys.stderr)
        gradebook.record_or_refuse(p, args.nbgrader_db, results, args.out,
                                   f"the results are merged into {args.out}; the gradebook is not written")
    print(f"merged {len(copied)} results from {len(args.outputs)} folders; {len(results)} results in "
          f"{args.out / 'grades.csv'}")
    return 0
