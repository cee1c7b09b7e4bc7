"""The Gradescope autograder as Gradescope runs it, and within Gradescope's default container.

`python -m autograder package` builds the zip; it is unpacked into a simulated /autograder and its
own `run_autograder` grades one submission per container, here a cgroup with Gradescope's default
limits, 768 MB of memory and half a CPU, and 680 MB for the reference solutions, which must fit with room
(`gradescope_sim.py`; `bench/bench_gradescope.py` repeats that run). Each run's wall time and peak memory
are printed (`pytest -s`): they are the figures in the instructors' page.
"""
from __future__ import annotations

import ast
import concurrent.futures
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from packaging.requirements import Requirement

from autograder.package import GRADING, TORCH
from autograder.sandbox.limits import (GRADER_RESERVE_MB, MB, MIN_MEMORY_MB, TMPFS_MOUNTS, ContainerMemory, Limits,
                                       container_memory, fit_to_container)
from gradescope_sim import (CONTAINER_MB, CPU_SHARE, HEADROOM_MB, Container, package, results, run_autograder,
                            solution)

ROOT = Path(__file__).resolve().parent.parent
GALLERY = ROOT / "tests" / "gallery"

# One function of each assignment misbehaves; the tests named after it (and only those) lose their points.
HUNGRY = {"conv_basics": "corr2d_multi_in_out", "cnn_vs_fc": "evaluate", "receptive_fields": "conv_transpose2d"}
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
# tests/gallery's entries that misbehave against the container itself, graded here beside the others
CONTAINER_ENTRIES = {"conv_basics": sorted(p.stem for p in GALLERY.glob("container_*.py"))}


@pytest.fixture
def container():
    """``container(name, memory_mb)`` makes a Container, removed after the test; skips where cgroups cannot be made."""
    if os.geteuid() != 0:
        pytest.skip("simulating Gradescope's container needs root (cgroup v1 memory and cpu controllers)")
    made = []

    def make(name: str, memory_mb: int) -> Container:
        try:
            made.append(Container(f"gradescope-test-{os.getpid()}-{name}", memory_mb))
        except OSError as error:
            pytest.skip(f"cgroup v1 memory and cpu controllers are not writable here ({error})")
        return made[-1]

    yield make
    for each in made:
        each.remove()


def submission(assignment: str, kind: str) -> nbformat.NotebookNode:
    notebook = solution(assignment)
    if kind in MISBEHAVIOUR:
        notebook.cells.append(nbformat.v4.new_code_cell(MISBEHAVIOUR[kind].format(function=HUNGRY[assignment])))
    elif kind != "correct":
        notebook.cells.append(nbformat.v4.new_code_cell((GALLERY / f"{kind}.py").read_text()))
    return notebook


@pytest.mark.slow
@pytest.mark.parametrize("assignment", list(HUNGRY))
def test_run_autograder_within_gradescope_limits(container, assignment, tmp_path):
    """Correct, memory-hungry and endless submissions, and conv_basics's gallery entry that fills its tmpfs before
    it hoards memory, each in a container of its own (run side by side to save time): each gets its own
    results.json, with the right score, and the OOM killer never strikes. The correct one runs with less memory
    than Gradescope gives (HEADROOM_MB): the grader fits with room."""
    source = package(assignment, tmp_path)
    entries = CONTAINER_ENTRIES.get(assignment, [])
    kinds = ["correct", *MISBEHAVIOUR, *entries]
    memory = {kind: HEADROOM_MB if kind == "correct" else CONTAINER_MB for kind in kinds}
    containers = {kind: container(kind, memory[kind]) for kind in kinds}
    with concurrent.futures.ThreadPoolExecutor(len(kinds)) as pool:  # a fresh /autograder per submission
        runs = dict(zip(kinds, pool.map(lambda kind: run_autograder(
            containers[kind], source, tmp_path / kind, submission(assignment, kind), assignment), kinds)))
    print(f"\n{assignment} under {CPU_SHARE:g} CPU: wall time, peak memory charged (page cache included), "
          "peak anonymous memory")
    graded = {}
    for kind in kinds:
        run, seconds = runs[kind]
        charged, anonymous = containers[kind].peak_mb()
        cap = next((line for line in run.stderr.splitlines() if line.startswith("container memory")), "no cap")
        print(f"  {kind:14} {memory[kind]} MB {seconds:6.1f} s  {charged:4.0f} MB  {anonymous:4.0f} MB   ({cap})")
        assert run.returncode == 0, run.stderr[-3000:]
        assert containers[kind].oom_kills() == 0, f"the kernel's OOM killer struck during {kind}:\n{run.stderr}"
        graded[kind] = results(tmp_path / kind)

    correct = graded["correct"]
    assert correct["score"] == correct["extra_data"]["max_score"] > 0, correct["output"]
    function = HUNGRY[assignment]
    its_points = sum(t["max_score"] for t in correct["tests"] if t["name"].startswith(f"{function}:"))
    assert its_points > 0
    for kind, words in [("memory_hungry", "MemoryError"), ("infinite_loop", "time limit"),
                        *((entry, "MemoryError") for entry in entries)]:
        result = graded[kind]
        assert [t["name"] for t in result["tests"]] == [t["name"] for t in correct["tests"]]
        assert result["score"] == correct["score"] - its_points, result["output"]
        failed = [t for t in result["tests"] if t["score"] < t["max_score"]]
        assert failed and all(t["name"].startswith(f"{function}:") and words in t["output"] for t in failed), failed
    assert "your code may use about" in graded["memory_hungry"]["output"]
    if "container_fill_tmpfs" in entries:  # both tmpfs were filled, to the size its note gives
        output = graded["container_fill_tmpfs"]["output"]
        size = re.search(r"and write (\d+) MB in its folder and as much in /dev/shm", output)
        assert size and f"filled its folder {size[1]} MB, /dev/shm {size[1]} MB" in output, output


# --- the package: what setup.sh installs ----------------------------------------------------------

def test_package_pins_are_the_projects_own(tmp_path):
    """uv.txt, torch.txt and requirements.txt in the zip are lines of the project's requirements.txt, not copies."""
    source = package("conv_basics", tmp_path)
    project = {Requirement(line).name: line for line in requirement_lines(ROOT / "requirements.txt")}
    for name, wanted in [("uv.txt", {"uv"}), ("torch.txt", {"torch", "torchvision"}),
                         ("requirements.txt", GRADING - TORCH)]:
        assert set(requirement_lines(source / name)) == {project[n] for n in wanted}, name


def requirement_lines(path: Path) -> list[str]:
    return [line.split("#")[0].strip() for line in path.read_text().splitlines() if line.split("#")[0].strip()]


NOT_ON_GRADESCOPE = ("gradebook.py", "nbgrader_autograde.py", "package.py", "gpu_watch.py")


def test_grading_imports_only_packaged_packages():
    """Every package the grader imports is installed by setup.sh (all but gradebook.py, used only with
    --nbgrader-db, nbgrader_autograde.py, loaded only by `nbgrader autograde`, package.py, which builds the zip, and
    gpu_watch.py, started only where an NVIDIA driver is loaded, which Gradescope has not): a new import in the
    grader must be added to package.GRADING (and pinned in requirements.txt)."""
    distributions = importlib.metadata.packages_distributions()
    local = {"autograder", "coursekit"} | {p.stem for p in (ROOT / "autograder" / "suites").rglob("*.py")}
    imported = {}
    for path in [*(ROOT / "autograder").rglob("*.py"), *(ROOT / "coursekit").rglob("*.py")]:
        if path.name in NOT_ON_GRADESCOPE:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else [])
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in local and top != "__future__":
                    imported.setdefault(top, path.relative_to(ROOT))
    packaged = {canonical(d) for d in GRADING}
    unpackaged = {f"{module} ({where})" for module, where in imported.items()
                  if not {canonical(d) for d in distributions.get(module, [module])} & packaged}
    assert not unpackaged, f"imported by the grader but not installed on Gradescope: {sorted(unpackaged)}"


def canonical(name: str) -> str:
    return name.lower().replace("_", "-")


STUB_UV = """#!/bin/bash
echo "uv $*" >> "$LOG"
if [ "$1" = venv ]; then  # a "venv" whose python is the one running these tests
  mkdir -p "$4/bin" && printf '#!/bin/sh\nexec "%s" "$@"\n' "$PYTHON" > "$4/bin/python" && chmod +x "$4/bin/python"
fi
"""


def test_setup_installs_python_311_and_cpu_torch_from_the_pins(tmp_path):
    """setup.sh's logic offline (it needs the internet): uv (a stub that logs its calls) makes a Python 3.11 venv,
    installs torch.txt from PyTorch's CPU index before requirements.txt, and the venv is checked for real."""
    root, log = tmp_path / "autograder", tmp_path / "calls.log"
    package("conv_basics", tmp_path, root / "source")
    uv = tmp_path / "uv"
    uv.write_text(STUB_UV)
    uv.chmod(0o755)
    run = subprocess.run(["bash", str(root / "source" / "setup.sh")], capture_output=True, text=True,
                         env={"AUTOGRADER_ROOT": str(root), "UV": str(uv), "LOG": str(log), "PYTHON": sys.executable,
                              "PATH": "/usr/bin:/bin"})
    venv_python = root / "venv" / "bin" / "python"
    assert log.read_text().splitlines() == [
        f"uv venv --python 3.11 {root / 'venv'}",
        f"uv pip install --python {venv_python} --index-url https://download.pytorch.org/whl/cpu "
        f"-r {root / 'source' / 'torch.txt'}",
        f"uv pip install --python {venv_python} -r {root / 'source' / 'requirements.txt'}"]
    # The venv's check runs on this machine's Python for real: it refuses a CUDA build of torch.
    import torch

    if torch.version.cuda or sys.version_info[:2] != (3, 11):
        assert run.returncode != 0 and ("CUDA build" in run.stderr or "not 3.11" in run.stderr), run.stderr
    else:
        assert run.returncode == 0 and "(CPU)" in run.stdout, run.stderr
        assert (root / "source").stat().st_mode & 0o077 == 0


# --- the memory cap: read from the container's cgroup ---------------------------------------------

def fake_cgroups(tmp_path: Path, membership: str, mounts: list[tuple[str, str, str, str]],
                 files: dict[str, str]) -> Path:
    """A /proc/self (cgroup, mountinfo) and cgroup files under tmp_path; mounts: (root, point, fstype, options)."""
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "cgroup").write_text(membership)
    (proc / "mountinfo").write_text("".join(f"{30 + i} 23 0:{30 + i} {root} {tmp_path / point} rw,relatime - "
                                            f"{fstype} {fstype} {options}\n"
                                            for i, (root, point, fstype, options) in enumerate(mounts)))
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return proc


def test_container_memory_from_cgroup_v2_takes_the_smallest_limit_above(tmp_path):
    proc = fake_cgroups(tmp_path, "0::/course/grader\n", [("/", "cg", "cgroup2", "rw")], {
        "cg/cgroup.controllers": "memory", "cg/course/memory.max": str(768 * MB),
        "cg/course/grader/memory.max": "max", "cg/course/grader/memory.current": str(500 * MB),
        "cg/course/grader/memory.stat": f"anon {380 * MB}\nfile {130 * MB}\nshmem {10 * MB}\n"})
    assert container_memory(proc) == ContainerMemory(limit=768 * MB, used=380 * MB)


def test_container_memory_from_cgroup_v1_seen_from_inside_a_container(tmp_path):
    """Docker without a cgroup namespace: /proc says /docker/ID, the mount's root is that same cgroup."""
    proc = fake_cgroups(tmp_path, "5:cpu:/docker/abc\n4:memory:/docker/abc\n0::/\n", [
        ("/docker/abc", "memory", "cgroup", "rw,memory"), ("/", "unified", "cgroup2", "rw")], {
        "memory/memory.limit_in_bytes": str(2**63 - 4096), "memory/memory.usage_in_bytes": str(600 * MB),
        "memory/memory.stat": f"cache {200 * MB}\nhierarchical_memory_limit {768 * MB}\ntotal_cache {200 * MB}\n"
                              f"total_shmem {MB}\n"})
    assert container_memory(proc) == ContainerMemory(limit=768 * MB, used=401 * MB)


def test_no_container_memory_without_a_limit(tmp_path):
    proc = fake_cgroups(tmp_path, "4:memory:/\n0::/\n", [("/", "memory", "cgroup", "rw,memory"),
                                                          ("/", "unified", "cgroup2", "rw")], {
        "memory/memory.limit_in_bytes": str(2**63 - 4096), "memory/memory.usage_in_bytes": str(600 * MB),
        "memory/memory.stat": f"hierarchical_memory_limit {2**63 - 4096}\n", "unified/cgroup.controllers": ""})
    assert container_memory(proc) is None


@pytest.mark.parametrize("memory, workers", [(None, 2),                                   # no container
                                              (ContainerMemory(64 * 2**30, 2**30), 4)])  # a big machine
def test_limits_kept_where_the_share_holds_them(memory, workers):
    assert fit_to_container(Limits(), workers, memory) == Limits()


def test_memory_cap_and_tmpfs_fit_the_container_together():
    """Gradescope's 768 MB, 420 MB in use, one worker: a sandbox's address-space cap and its two tmpfs (its folder,
    its /dev/shm: memory the container is charged for) fill its share together, scaled down alike."""
    share = 768 - 420 - GRADER_RESERVE_MB
    fitted = fit_to_container(Limits(), 1, ContainerMemory(768 * MB, 420 * MB))
    assert share - 3 <= fitted.memory_mb + TMPFS_MOUNTS * fitted.file_mb <= share  # 3: each of three rounded down
    assert 0 < fitted.file_mb < Limits.file_mb
    assert abs(fitted.memory_mb / Limits.memory_mb - fitted.file_mb / Limits.file_mb) < 1 / Limits.file_mb


def test_a_share_too_small_gets_the_floors():
    """Two workers in 768 MB: the memory cap's floor, and a tmpfs of 1 MB (a size of 0 would set none)."""
    fitted = fit_to_container(Limits(), 2, ContainerMemory(768 * MB, 420 * MB))
    assert (fitted.memory_mb, fitted.file_mb) == (MIN_MEMORY_MB, 1)


def other_python() -> Path | None:
    """An interpreter of another Python than 3.11 on this machine, to play an Ubuntu image's python3."""
    places = [Path(p) for p in os.environ.get("PATH", "").split(os.pathsep) if p and "shims" not in p]
    places += [Path("/usr/bin"), *sorted(Path.home().glob(".pyenv/versions/*/bin"))]
    for minor in (12, 10, 13):
        for place in places:
            if (place / f"python3.{minor}").is_file():
                return place / f"python3.{minor}"
    return None


@pytest.mark.parametrize("has_311", [True, False], ids=["image-with-python3.11", "image-without-3.11"])
def test_setup_takes_python_311_whatever_the_images_python3(has_311, tmp_path):
    """The real, pinned uv runs setup.sh's venv step offline in an "image" whose python3 is not 3.11: it takes the
    image's python3.11 when there is one; without one it would download a standalone 3.11 (refused offline)."""
    pinned = requirement_lines(ROOT / "requirements.txt")
    uv = shutil.which("uv", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    if uv is None:
        pytest.fail("uv is not installed: `make setup` installs it (requirements.txt pins it)")
    version = subprocess.run([uv, "--version"], capture_output=True, text=True).stdout.split()[1]
    assert f"uv=={version}" in pinned, f"{uv} is uv {version}, not the pinned one"
    other = other_python()
    if other is None:
        pytest.skip("no interpreter of another Python than 3.11 here to play the image's python3")
    image = tmp_path / "image-bin"
    image.mkdir()
    (image / "python3").symlink_to(other)
    (image / "chmod").symlink_to(shutil.which("chmod"))
    if has_311:
        (image / "python3.11").symlink_to(sys._base_executable)
    root = tmp_path / "autograder"
    package("conv_basics", tmp_path, root / "source")
    run = subprocess.run([shutil.which("bash"), str(root / "source" / "setup.sh")], capture_output=True, text=True,
                         timeout=120, env={"AUTOGRADER_ROOT": str(root), "UV": uv, "PATH": str(image), "UV_OFFLINE": "1",
                                           "HOME": str(tmp_path), "UV_CACHE_DIR": str(tmp_path / "cache"),
                                           "UV_PYTHON_INSTALL_DIR": str(tmp_path / "python")})
    assert run.returncode != 0  # offline, nothing can be installed
    if has_311:
        python = subprocess.run([str(root / "venv" / "bin" / "python"), "-c", "import sys; print(sys.version_info[:2])"],
                                capture_output=True, text=True)
        assert python.stdout.strip() == "(3, 11)", run.stderr
        assert f"interpreter at: {image / 'python3.11'}" in run.stderr, run.stderr
        torch_pin = next(line for line in pinned if line.startswith("torch=="))
        assert f"you require {torch_pin}" in run.stderr, run.stderr  # the next step: the pinned torch
    else:
        assert not (root / "venv").exists()
        assert "A managed Python download is available for Python 3.11" in run.stderr, run.stderr
