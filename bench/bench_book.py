"""Benchmarks of the book: cold build, no-change rebuild, and chapter 7's training time.

    .venv/bin/python bench/bench_book.py            # all three
    .venv/bin/python bench/bench_book.py --only training

1. Cold build: `jupyter-book build` into a scratch --path-output, so the execution cache starts empty and every
   chapter runs (target < 3 min on a 2-core CPU).
2. Rebuild with nothing changed, into the same scratch folder (target < 15 s): the cache answers every chapter.
3. Training: the code cells of book/07_convnet_vs_fc.md run in one namespace; each run's time is the sum of
   the epoch times its `fit` records in `histories` (the three networks compared) and `high_lr_histories` (LeNet
   with and without batch normalisation); all of them together (target < 60 s).
The scratch folder is deleted afterwards; the repository's own _build/ is not touched.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CHAPTER = ROOT / "book" / "07_convnet_vs_fc.md"
TARGETS = {"cold build": 180.0, "rebuild, nothing changed": 15.0, "ch. 7 training, all runs": 60.0}


def build(output: Path) -> float:
    command = [str(BIN / "jupyter-book"), "build", str(ROOT), "--path-output", str(output),
               "--warningiserror", "--keep-going"]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"build failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return elapsed


def training_seconds() -> dict[str, float]:
    """Run chapter 7's code cells; return each network's training time (the sum of its epochs' seconds)."""
    from IPython.core.inputtransformer2 import TransformerManager
    from myst_nb.core.read import read_myst_markdown_notebook

    os.environ["MPLBACKEND"] = "Agg"
    notebook = read_myst_markdown_notebook(CHAPTER.read_text(encoding="utf8"))
    cells = ["".join(cell.source) for cell in notebook.cells if cell.cell_type == "code"]
    namespace: dict = {"__name__": "__bench__"}
    cwd = Path.cwd()
    os.chdir(CHAPTER.parent)  # where the book executes the chapter
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the chapter's own prints are not the benchmark's
            for source in cells:
                code = TransformerManager().transform_cell(source)  # magics as IPython reads them
                exec(compile(code, str(CHAPTER), "exec"), namespace)
    finally:
        os.chdir(cwd)
    runs = {**namespace["histories"], **{f"{name}, high lr": h for name, h in namespace["high_lr_histories"].items()}}
    return {name: sum(h["seconds"]) for name, h in runs.items()}


def report(name: str, seconds: float) -> None:
    """One line per measurement, with the load average at its end (the machine may be shared)."""
    target = TARGETS[name]
    verdict = "ok" if seconds < target else "OVER TARGET"
    print(f"{name:28s} {seconds:7.1f} s   (target < {target:.0f} s: {verdict}; load average "
          f"{os.getloadavg()[0]:.1f})", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["build", "training"], help="run only the build or the training part")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start", flush=True)
    if args.only != "training":
        scratch = Path(tempfile.mkdtemp(prefix="bench_book_"))
        try:
            report("cold build", build(scratch))
            report("rebuild, nothing changed", build(scratch))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    if args.only != "build":
        fits = training_seconds()
        for name, seconds in fits.items():
            print(f"  fit({name}): {seconds:.1f} s")
        report("ch. 7 training, all runs", sum(fits.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
