"""No grader process that sandboxes are forked from ever loads NVML (``libnvidia-ml``).

A sandbox forked from a process that started NVML, once it closes its inherited descriptors, finds
NVML's state alive and its files gone: its first CUDA out-of-memory error reads "NVML_SUCCESS ==
DriverAPI::get()->nvmlInit_v2_() INTERNAL ASSERT FAILED" (seen on an H200). So while a real grading
run (``--device auto``: CUDA where there is a GPU) works, this reads the memory map of the grader, its
workers and their grading forks (everything sandboxes are forked from): none may map libnvidia-ml.
The GPU memory watcher, a process of its own, does map it where NVML works: the check can see it.

It can only bite where NVML is installed: elsewhere it is skipped, and ``make gpu-check`` runs it.
"""
from __future__ import annotations

import ctypes.util
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NVML = "libnvidia-ml"

pytestmark = pytest.mark.skipif(ctypes.util.find_library("nvidia-ml") is None,
                                reason="NVML (libnvidia-ml) is not installed here, so no process can map it; "
                                       "`make gpu-check` runs this test on a GPU machine")


def children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) if entry.name.isdigit() else None
        except (OSError, IndexError, ValueError):
            continue
        if parent is not None:
            tree.setdefault(parent, []).append(int(entry.name))
    return tree


def maps_nvml(pid: int) -> bool | None:
    try:
        return NVML in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return None  # gone meanwhile


def test_no_process_sandboxes_are_forked_from_maps_nvml(tmp_path):
    for student in ("ada", "bo", "cy"):
        (tmp_path / "submitted" / student / "conv_basics").mkdir(parents=True)
        shutil.copy(ROOT / "solutions" / "conv_basics" / "conv_basics.ipynb",
                    tmp_path / "submitted" / student / "conv_basics")
    grader = subprocess.Popen([sys.executable, "-m", "autograder", "grade", "conv_basics",
                               str(tmp_path / "submitted"), "--out", str(tmp_path / "out"), "--workers", "2",
                               "--device", "auto"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    seen: dict[str, set[int]] = {"grader": set(), "worker": set(), "grading fork": set(), "watcher": set()}
    mapped: dict[int, str] = {}
    while grader.poll() is None:
        tree = children()
        levels = {"grader": [grader.pid]}
        levels["worker"] = [c for c in tree.get(grader.pid, []) if not is_watcher(c)]
        levels["grading fork"] = [g for w in levels["worker"] for g in tree.get(w, [])]
        levels["watcher"] = [c for c in tree.get(grader.pid, []) if is_watcher(c)]
        for level, pids in levels.items():
            for pid in pids:
                if (found := maps_nvml(pid)) is not None:
                    seen[level].add(pid)
                    if found:
                        mapped[pid] = level
        time.sleep(0.02)
    _, stderr = grader.communicate()
    assert grader.returncode == 0, stderr[-3000:]
    assert seen["grader"] and seen["worker"] and seen["grading fork"], seen  # the check looked at each
    offending = {pid: level for pid, level in mapped.items() if level != "watcher"}
    assert not offending, f"{NVML} is mapped in {offending}: sandboxes forked from them inherit NVML's state"
    if seen["watcher"] and "on cuda" in stderr:  # where it watched the GPU, NVML is in the watcher alone
        assert set(mapped.values()) == {"watcher"}, (seen, mapped)


def is_watcher(pid: int) -> bool:
    try:
        return b"autograder.sandbox.gpu_watch" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
