"""``make gpu-check``: run every CUDA path of the course once on a GPU machine, one summary line per check.

1. ``grade`` a class of 24 correct submissions of each assignment with 4 workers, with ``--device cpu``
   and with ``--device cuda``: full marks everywhere, every CUDA-only test run and passed on CUDA, and
   grading on CUDA at most 10 % slower than on the CPU (both times printed). The untouched exercise
   graded on CUDA gets 0.
2. No process that sandboxes are forked from maps NVML while a class is graded on CUDA
   (``tests/test_grader_nvml.py``, which skips where NVML is missing).
3. The hostile gallery (``tests/test_autograder_gallery.py``) graded with ``--device cuda``: the same
   defences as on the CPU, and the GPU hogs (PyTorch's fraction lifted, a raw driver allocation, an
   allocator refused at the share) graded in parallel with honest students on the one GPU; no GPU
   memory left held afterwards.
4. The cnn_vs_fc solution notebook and chapter 7 executed top to bottom (nbclient) on CUDA and,
   with the GPU hidden, on the CPU of the same machine: their times side by side.

It exits 1 when a check fails. On a machine without CUDA it checks its arguments, says so and
exits 0, so it can live in CI. Offline GPU machines: ``make gpu-wheels`` (here) prepares the few
pure-Python packages they lack in ``.whl/``; ``make gpu-check`` installs them from there.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
ASSIGNMENTS = ("conv_basics", "cnn_vs_fc", "receptive_fields")
NOTEBOOKS = {"cnn_vs_fc solution": ROOT / "solutions" / "cnn_vs_fc" / "cnn_vs_fc.ipynb",
             "chapter 7": ROOT / "book" / "07_convnet_vs_fc.md"}
CHECKS = ("grading", "nvml", "gallery", "notebooks")
CLASS_SIZE, CLASS_WORKERS, SLOWER_AT_MOST = 24, 4, 1.10
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


def grade(assignment: str, submitted: Path, device: str, out: Path, workers: int = 1) -> tuple[list, float]:
    """Grade a notebook or a class with the real CLI; returns (its SubmissionResults, the run's seconds)."""
    from autograder.results import read_all

    started = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "autograder", "grade", assignment, str(submitted), "--out", str(out),
                          "--device", device, "--workers", str(workers), "--force"], cwd=ROOT, env=ENV,
                         capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if run.returncode != 0:
        raise RuntimeError(f"grade exited with {run.returncode}: {run.stderr[-2000:]}")
    return [r for r in read_all(out) if r.assignment == assignment], seconds


def solved_class(assignment: str, work: Path) -> Path:
    """nbgrader's submitted/ folder with :data:`CLASS_SIZE` copies of the solution."""
    solution = ROOT / "solutions" / assignment / f"{assignment}.ipynb"
    for n in range(CLASS_SIZE):
        folder = work / f"{assignment}-class" / f"student{n:02}" / assignment
        folder.mkdir(parents=True)
        shutil.copy(solution, folder)
    return work / f"{assignment}-class"


def check_grading(summary: Summary, work: Path) -> None:
    for assignment in ASSIGNMENTS:
        exercise = ROOT / "exercises" / assignment / f"{assignment}.ipynb"
        [untouched], _ = grade(assignment, exercise, "cuda", work / f"{assignment}-exercise")  # also warms the caches
        submitted = solved_class(assignment, work)
        on_cpu, cpu_seconds = grade(assignment, submitted, "cpu", work / f"{assignment}-cpu", CLASS_WORKERS)
        on_gpu, gpu_seconds = grade(assignment, submitted, "cuda", work / f"{assignment}-cuda", CLASS_WORKERS)
        cuda_only = {t.name for t in on_cpu[0].tests if t.status == "skipped"}
        wrong = [f"{r.student} on {device}: {r.score:g}/{r.max_score:g}; " + "; ".join(
                 f"{t.name}: {t.output.splitlines()[0] if t.output else ''}" for t in r.tests if t.status == "failed")
                 for device, results in (("cpu", on_cpu), ("cuda", on_gpu)) for r in results
                 if r.score != r.max_score or r.reruns
                 or (device == "cuda" and any(t.status != "passed" for t in r.tests if t.name in cuda_only))]
        summary.check(len(on_cpu) == len(on_gpu) == CLASS_SIZE and cuda_only and not wrong,
                      f"{assignment}: {CLASS_SIZE} solutions on cuda",
                      f"{on_gpu[0].score:g}/{on_gpu[0].max_score:g} each, with the {len(cuda_only)} CUDA-only tests "
                      f"passed (cpu: {on_cpu[0].score:g}/{on_cpu[0].max_score:g})"
                      + "".join(f"\n      {w}" for w in wrong[:5]))
        summary.check(gpu_seconds <= SLOWER_AT_MOST * cpu_seconds,
                      f"{assignment}: {CLASS_SIZE} submissions, {CLASS_WORKERS} workers",
                      f"cuda {gpu_seconds:.1f} s, cpu {cpu_seconds:.1f} s ({gpu_seconds / cpu_seconds - 1:+.0%}; "
                      f"at most {SLOWER_AT_MOST - 1:+.0%})")
        summary.check(untouched.score == 0 and untouched.max_score == on_gpu[0].max_score,
                      f"{assignment} untouched exercise on cuda", f"{untouched.score:g}/{untouched.max_score:g}")


def run_tests(test_file: str, env: dict[str, str]) -> tuple[bool, str]:
    """pytest on one of the project's test files: (all passed, its last line with the failures and skips)."""
    started = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                          str(ROOT / "tests" / test_file)], cwd=ROOT, env=env, capture_output=True, text=True)
    lines = run.stdout.strip().splitlines() or ["no output"]
    detail = f"{lines[-1]} in {time.perf_counter() - started:.0f} s" + "".join(
        f"\n      {line}" for line in lines if line.startswith(("FAILED", "ERROR", "E ", "SKIPPED")))[-4000:]
    return run.returncode == 0, detail


def check_nvml(summary: Summary) -> None:
    ok, detail = run_tests("test_grader_nvml.py", ENV)
    summary.check(ok and "1 passed" in detail and "skipped" not in detail,
                  "no grader process that sandboxes are forked from maps NVML", detail)


def check_gallery(summary: Summary) -> None:
    import torch

    ok, detail = run_tests("test_autograder_gallery.py", {**ENV, "GRADER_DEVICE": "cuda"})
    summary.check(ok, "hostile gallery on cuda, GPU hogs beside honest students", detail)
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
        if "nvml" in checks:
            check_nvml(summary)
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
