"""The Gradescope package's headroom: each assignment's reference solution graded by the packaged
``run_autograder``, RUNS times, each in a fresh simulated container with less memory than Gradescope
gives (680 MB of its 768 MB) and half a CPU. Prints each run's score, wall time, peak memory and OOM
kills; exits 1 unless every run got full marks without an OOM kill. Needs root (cgroup v1).

    .venv/bin/python bench/bench_gradescope.py [--runs 5] [--memory-mb 680]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from gradescope_sim import CPU_SHARE, HEADROOM_MB, Container, package, results, run_autograder, solution  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--memory-mb", type=int, default=HEADROOM_MB)
    args = parser.parse_args()
    clean = 0
    print(f"reference solutions under {args.memory_mb} MB and {CPU_SHARE:g} CPU (load average "
          f"{os.getloadavg()[0]:.1f}): score, wall time, peak memory charged, peak anonymous memory, OOM kills")
    with tempfile.TemporaryDirectory() as tmp:
        for assignment in ("conv_basics", "cnn_vs_fc", "receptive_fields"):
            source = package(assignment, Path(tmp))
            for run_number in range(1, args.runs + 1):
                container = Container(f"bench-gradescope-{os.getpid()}-{assignment}-{run_number}", args.memory_mb)
                try:
                    root = Path(tmp) / f"{assignment}-{run_number}"
                    run, seconds = run_autograder(container, source, root, solution(assignment), assignment)
                    charged, anonymous = container.peak_mb()
                    kills = container.oom_kills()
                finally:
                    container.remove()
                result = results(root) if run.returncode == 0 else {"score": 0, "extra_data": {"max_score": "?"}}
                full = run.returncode == 0 and result["score"] == result["extra_data"]["max_score"]
                clean += full and kills == 0
                print(f"  {assignment:11} run {run_number}: {result['score']:g}/{result['extra_data']['max_score']}  "
                      f"{seconds:5.1f} s  {charged:4.0f} MB  {anonymous:4.0f} MB  {kills} OOM kills"
                      + ("" if run.returncode == 0 else f"  (exit {run.returncode}: {run.stderr[-300:]})"), flush=True)
    print(f"{clean} of {2 * args.runs} runs with full marks and no OOM kill")
    return 0 if clean == 2 * args.runs else 1


if __name__ == "__main__":
    sys.exit(main())
