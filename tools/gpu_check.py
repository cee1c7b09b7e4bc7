"""``make gpu-check``: run every CUDA path of the course once on a GPU machine, one summary line per check.

1. ``grade`` the solutions and the untouched exercises of both assignments with ``--device cuda``:
   full marks with every CUDA-only test run and passed, and 0. The same notebooks graded with
   ``--device cpu`` name the CUDA-only tests (skipped there) and give the CPU time per submission.
2. The hostile gallery (``tests/test_autograder_gallery.py``) graded with ``--device cuda``: the same
   defences as on the CPU, a GPU memory hog included, and no GPU memory left held afterwards.
3. The cnn_vs_fc solution notebook and chapter 7 executed top to bottom (nbclient) on CUDA and,
   with the GPU hidden, on the CPU of the same machine: their times side by side.

It exits 1 when a check fails. On a machine without CUDA it checks its arguments, says so and
exits 0, so it can live in CI. Offline GPU machines: ``make gpu-wheels`` (here) prepares the few
pure-Python packages they lack in ``.whl/``; ``make gpu-check`` installs them from there.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
ASSIGNMENTS = ("conv_basics", "cnn_vs_fc")
NOTEBOOKS = {"cnn_vs_fc solution": ROOT / "solutions" / "cnn_vs_fc" / "cnn_vs_fc.ipynb",
             "chapter 7": ROOT / "book" / "07_convnet_vs_fc.md"}
CHECKS = ("grading", "gallery", "notebooks")
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
       "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


@dataclass
class Summary:
    lines: list[str] = field(default_factory=list)
    failed: int = 0

    def check(self, ok: bool, name: str, detail: str) -> bool:
        self.failed += not ok
        line = f"{'PASS' if ok else 'FAIL'}  {name}: {detail}"
        self.lines.append(line)
        print(line, flush=True)
        return ok


def grade(assignment: str, notebook: Path, device: str, out: Path):
    """Grade one notebook with the real CLI; returns its SubmissionResult."""
    from autograder.results import SubmissionResult

    run = subprocess.run([sys.executable, "-m", "autograder", "grade", assignment, str(notebook), "--out", str(out),
                          "--device", device, "--workers", "1", "--force"], cwd=ROOT, env=ENV,
                         capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"grade exited with {run.returncode}: {run.stderr[-2000:]}")
    found = [SubmissionResult.read(p) for p in out.rglob("results.json")]
    found = [r for r in found if r.assignment == assignment and r.student == notebook.stem]
    if len(found) != 1:
        raise RuntimeError(f"expected one result for {notebook.stem} in {out}, found {len(found)}")
    return found[0]


def check_grading(summary: Summary, work: Path) -> None:
    for assignment in ASSIGNMENTS:
        solution = ROOT / "solutions" / assignment / f"{assignment}.ipynb"
        on_cpu = grade(assignment, solution, "cpu", work / f"{assignment}-cpu")
        on_gpu = grade(assignment, solution, "cuda", work / f"{assignment}-cuda")
        cuda_only = {t.name for t in on_cpu.tests if t.status == "skipped"}
        ran = {t.name: t for t in on_gpu.tests}
        not_passed = [f"{name} ({ran[name].status if name in ran else 'missing'})" for name in sorted(cuda_only)
                      if name not in ran or ran[name].status != "passed"]
        failures = [f"{t.name}: {t.output.splitlines()[0] if t.output else ''}"
                    for t in on_gpu.tests if t.status == "failed"]
        summary.check(on_gpu.score == on_gpu.max_score > 0 and cuda_only and not not_passed,
                      f"{assignment} solution on cuda",
                      f"{on_gpu.score:g}/{on_gpu.max_score:g}, {len(cuda_only)} CUDA-only tests "
                      f"{'all passed' if cuda_only and not not_passed else 'NOT passed: ' + '; '.join(not_passed)}; "
                      f"graded in {on_gpu.execution_time:.1f} s (cpu: {on_cpu.execution_time:.1f} s, "
                      f"{on_cpu.score:g}/{on_cpu.max_score:g})" + "".join(f"\n      {f}" for f in failures))
        exercise = ROOT / "exercises" / assignment / f"{assignment}.ipynb"
        untouched = grade(assignment, exercise, "cuda", work / f"{assignment}-exercise")
        summary.check(untouched.score == 0 and untouched.max_score == on_gpu.max_score,
                      f"{assignment} untouched exercise on cuda", f"{untouched.score:g}/{untouched.max_score:g}")


def check_gallery(summary: Summary) -> None:
    import torch

    started = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          str(ROOT / "tests" / "test_autograder_gallery.py")], cwd=ROOT,
                         env={**ENV, "GRADER_DEVICE": "cuda"}, capture_output=True, text=True)
    last = (run.stdout.strip().splitlines() or ["no output"])[-1]
    detail = f"{last} in {time.perf_counter() - started:.0f} s"
    if run.returncode != 0:
        detail += "\n" + "\n".join("      " + line for line in run.stdout.splitlines()
                                   if line.startswith(("FAILED", "ERROR", "E ")))[-4000:]
    summary.check(run.returncode == 0, "hostile gallery on cuda", detail)
    free, total = torch.cuda.mem_get_info()
    held = (total - free) / 2**30
    summary.check(held < 2, "GPU memory after grading",
                  f"{held:.1f} GiB of {total / 2**30:.0f} GiB in use (sandboxes gave it back)")


def execute(path: Path, gpu: bool) -> float:
    """Run a notebook (or a MyST chapter) top to bottom in its folder; returns the seconds it took."""
    import jupytext
    import nbclient

    notebook = jupytext.read(path)
    env = ENV if gpu else {**ENV, "CUDA_VISIBLE_DEVICES": ""}
    started = time.perf_counter()
    nbclient.NotebookClient(notebook, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}}).execute(env=env)
    return time.perf_counter() - started


def check_notebooks(summary: Summary, cpu_baseline: bool) -> None:
    for name, path in NOTEBOOKS.items():
        try:
            gpu = execute(path, gpu=True)
            cpu = f"{execute(path, gpu=False):.1f} s" if cpu_baseline else "not measured"
        except Exception as error:  # noqa: BLE001 - one line in the summary, whatever the cell raised
            # nbclient's CellExecutionError names the cell's exception; its str() is the coloured traceback
            why = f"{getattr(error, 'ename', type(error).__name__)}: {getattr(error, 'evalue', error)}"
            summary.check(False, f"{name} on cuda", why[:1500])
            continue
        summary.check(True, f"{name} on cuda", f"ran in {gpu:.1f} s (same machine's CPU, 1 thread: {cpu})")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="make gpu-check", description=__doc__.splitlines()[0])
    p.add_argument("--only", choices=CHECKS, action="append", help="run only these checks (repeatable)")
    p.add_argument("--no-cpu-baseline", action="store_true", help="skip the notebooks' CPU runs")
    p.add_argument("--summary", type=Path, help="also write the summary lines to this file")
    return p


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not cuda_available():
        print("gpu-check: no CUDA device on this machine; nothing to check (run it on a GPU machine)")
        return 0
    import torch

    print(f"gpu-check on {torch.cuda.get_device_name()} (torch {torch.__version__}, Python {sys.version.split()[0]})",
          flush=True)
    summary, checks = Summary(), args.only or CHECKS
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        if "grading" in checks:
            check_grading(summary, Path(tmp))
        if "gallery" in checks:
            check_gallery(summary)
        if "notebooks" in checks:
            check_notebooks(summary, not args.no_cpu_baseline)
    summary.lines.append(f"{len(summary.lines) - summary.failed} passed, {summary.failed} failed "
                         f"in {time.perf_counter() - started:.0f} s")
    print(summary.lines[-1])
    if args.summary:
        args.summary.write_text("\n".join(summary.lines) + "\n")
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
