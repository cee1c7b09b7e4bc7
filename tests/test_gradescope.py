"""The Gradescope autograder as Gradescope runs it, and within Gradescope's default container.

`python -m autograder package` builds the zip; it is unpacked into a simulated /autograder and its
own `run_autograder` grades one submission per container, here a cgroup with Gradescope's default
limits: 768 MB of memory and half a CPU (cgroup v1 memory and cpu controllers, as root). Each run's
wall time and peak memory are printed (`pytest -s`): they are the figures in the instructors' page.
"""
from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
CONTAINER_MB, CPU_SHARE = 768, 0.5
V1 = Path("/sys/fs/cgroup")

# One function of each assignment misbehaves; the tests named after it (and only those) lose their points.
HUNGRY = {"conv_basics": "corr2d_multi_in_out", "cnn_vs_fc": "evaluate"}
MISBEHAVIOUR = {
    "memory_hungry": """
def {function}(*args, **kwargs):
    hoard = []
    while True:  # 1 MB at a time, touched: resident memory grows until something stops it
        hoard.append(bytearray(2**20))
""",
    "infinite_loop": """
def {function}(*args, **kwargs):
    while True:
        pass
""",
}


class Container:
    """A cgroup v1 memory + cpu pair with Gradescope's limits, below this process's own cgroups, that
    watches its anonymous memory (what the kernel cannot drop, unlike the page cache) while it runs."""

    def __init__(self, name: str) -> None:
        self.memory = V1 / "memory" / own_cgroup("memory").lstrip("/") / name
        self.cpu = V1 / "cpu" / own_cgroup("cpu").lstrip("/") / name
        for folder in (self.memory, self.cpu):
            folder.mkdir()
        self.peak_anonymous = 0
        self._watching = threading.Event()
        try:
            (self.memory / "memory.limit_in_bytes").write_text(str(CONTAINER_MB * 2**20))
            period = int((self.cpu / "cpu.cfs_period_us").read_text())
            (self.cpu / "cpu.cfs_quota_us").write_text(str(int(period * CPU_SHARE)))
        except OSError:
            self.remove()
            raise

    def run(self, command: list[str], env: dict) -> tuple[subprocess.CompletedProcess, float]:
        """Run ``command`` inside; returns it and its wall time."""
        watcher = threading.Thread(target=self._watch)
        watcher.start()
        started = time.monotonic()
        try:
            run = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, preexec_fn=self._enter)
        finally:
            self._watching.set()
            watcher.join()
        return run, time.monotonic() - started

    def _enter(self) -> None:
        """preexec_fn: the new process joins both cgroups before it runs anything."""
        for folder in (self.memory, self.cpu):
            (folder / "cgroup.procs").write_text(str(os.getpid()))

    def _watch(self) -> None:
        while not self._watching.wait(0.05):
            stat = dict(line.split() for line in (self.memory / "memory.stat").read_text().splitlines())
            self.peak_anonymous = max(self.peak_anonymous, int(stat["total_rss"]) + int(stat["total_shmem"]))

    def peak_mb(self) -> tuple[float, float]:
        """(most memory charged, page cache included; most anonymous memory seen), in MB."""
        return int((self.memory / "memory.max_usage_in_bytes").read_text()) / 2**20, self.peak_anonymous / 2**20

    def oom_kills(self) -> int:
        fields = dict(line.split() for line in (self.memory / "memory.oom_control").read_text().splitlines())
        return int(fields.get("oom_kill", 0))

    def remove(self) -> None:
        for folder in (self.memory, self.cpu):
            for _ in range(50):  # the last processes may still be exiting
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)


def own_cgroup(controller: str) -> str:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return path
    raise FileNotFoundError(f"no cgroup v1 {controller} controller")


@pytest.fixture
def container():
    """``container(name)`` makes a Container, removed after the test; skips where cgroups cannot be made."""
    if os.geteuid() != 0:
        pytest.skip("simulating Gradescope's container needs root (cgroup v1 memory and cpu controllers)")
    made = []

    def make(name: str) -> Container:
        try:
            made.append(Container(f"gradescope-test-{os.getpid()}-{name}"))
        except OSError as error:
            pytest.skip(f"cgroup v1 memory and cpu controllers are not writable here ({error})")
        return made[-1]

    yield make
    for each in made:
        each.remove()


def submission(assignment: str, kind: str) -> nbformat.NotebookNode:
    notebook = nbformat.read(ROOT / "solutions" / assignment / f"{assignment}.ipynb", as_version=4)
    if kind in MISBEHAVIOUR:
        notebook.cells.append(nbformat.v4.new_code_cell(MISBEHAVIOUR[kind].format(function=HUNGRY[assignment])))
    return notebook


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ["conv_basics", "cnn_vs_fc"])
def test_run_autograder_within_gradescope_limits(container, assignment, tmp_path):
    """Correct, memory-hungry and endless submissions, each in a container of its own (run side by side
    to save time): each gets its own results.json, with the right score, and the OOM killer never strikes."""
    zip_path = tmp_path / "autograder.zip"
    packaged = subprocess.run([sys.executable, "-m", "autograder", "package", assignment, "--out", str(zip_path)],
                              cwd=ROOT, capture_output=True, text=True)
    assert packaged.returncode == 0, packaged.stderr
    source = tmp_path / "source"
    shutil.unpack_archive(zip_path, source)
    kinds = ["correct", *MISBEHAVIOUR]
    containers = {kind: container(kind) for kind in kinds}
    roots = {kind: tmp_path / kind for kind in kinds}  # a fresh /autograder per submission, as on Gradescope
    for kind, root in roots.items():
        (root / "submission").mkdir(parents=True)
        (root / "source").symlink_to(source)
        nbformat.write(submission(assignment, kind), root / "submission" / f"{assignment}.ipynb")
    with concurrent.futures.ThreadPoolExecutor(len(kinds)) as pool:
        runs = dict(zip(kinds, pool.map(lambda kind: containers[kind].run(
            ["bash", str(source / "run_autograder")],
            env={"AUTOGRADER_ROOT": str(roots[kind]), "PYTHON": sys.executable, "PATH": "/usr/bin:/bin"}), kinds)))
    print(f"\n{assignment} under {CONTAINER_MB} MB and {CPU_SHARE:g} CPU: wall time, peak memory charged "
          "(page cache included), peak anonymous memory")
    results = {}
    for kind in kinds:
        run, seconds = runs[kind]
        charged, anonymous = containers[kind].peak_mb()
        cap = next((line for line in run.stderr.splitlines() if line.startswith("container memory")), "no cap")
        print(f"  {kind:14} {seconds:6.1f} s  {charged:4.0f} MB  {anonymous:4.0f} MB   ({cap})")
        assert run.returncode == 0, run.stderr[-3000:]
        assert containers[kind].oom_kills() == 0, f"the kernel's OOM killer struck during {kind}:\n{run.stderr}"
        results[kind] = json.loads((roots[kind] / "results" / "results.json").read_text())

    correct = results["correct"]
    assert correct["score"] == correct["extra_data"]["max_score"] > 0, correct["output"]
    function = HUNGRY[assignment]
    its_points = sum(t["max_score"] for t in correct["tests"] if t["name"].startswith(f"{function}:"))
    assert its_points > 0
    for kind, words in [("memory_hungry", "MemoryError"), ("infinite_loop", "time limit")]:
        result = results[kind]
        assert [t["name"] for t in result["tests"]] == [t["name"] for t in correct["tests"]]
        assert result["score"] == correct["score"] - its_points, result["output"]
        failed = [t for t in result["tests"] if t["score"] < t["max_score"]]
        assert failed and all(t["name"].startswith(f"{function}:") and words in t["output"] for t in failed), failed
    assert "your code may use about" in results["memory_hungry"]["output"]
