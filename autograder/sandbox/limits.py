"""What a sandbox may use: time, memory, processes, output, files; and what the container allows.

In a container with a memory limit (Gradescope's default is 768 MB) the sandboxes' memory cap is
fitted below that limit by :func:`fit_to_container`, so that a submission that eats memory hits
its own cap (an allocation fails, the student reads why) before the kernel's OOM killer picks a
victim, which may be the grader itself. What a sandbox writes in its folder and its ``/dev/shm`` (each a
tmpfs of ``file_mb``: :func:`.namespaces.enter`) is memory too, charged to the container but outside its
address-space cap: both are fitted in the same share.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

MB = 2**20
# Per worker, beyond the shared interpreter: the trusted side's suite, data and checks (its private memory
# peaks at 50 MB, in cnn_vs_fc's training tests), the pages a sandbox copies from the grader (about 20 MB,
# not counted by its address-space cap), the processes of its namespaces (a reaper and the one that waits for
# it) and its spares; measured as in tests/gradescope_sim.py: with 120 the memory-hungry cnn_vs_fc reached 768 MB of
# 768 and the OOM killer struck once in two runs; with 136 (and the tmpfs fitted apart) it peaks at 733-738 MB.
GRADER_RESERVE_MB = 136
MIN_MEMORY_MB = 64       # below this a sandbox could not even run a notebook's cells
TMPFS_MOUNTS = 2         # a sandbox's folder and its /dev/shm (namespaces.enter), file_mb each
GPU_IN_ALL = 0.9         # of the GPU's memory, promised to all the CUDA sandboxes at once (the rest: their contexts)


@dataclass(frozen=True)
class Limits:
    call_seconds: float = 10.0          # one call into the submission (tests may ask for more)
    start_seconds: float = 60.0         # running the notebook's cells
    submission_seconds: float = 300.0   # everything for one submission
    memory_mb: int = 2048               # beyond the interpreter's own footprint
    processes: int = 16                 # processes and threads of the sandbox user
    output_bytes: int = 32_000          # captured stdout + stderr kept for feedback
    file_mb: int = 64                   # largest file the sandbox may write, and the size of each of its tmpfs
    open_files: int = 256
    gpu_fraction: float = 0.4           # of the GPU's memory, on CUDA (its allocator refuses more; the grader's
                                        # GPU memory watcher stops a sandbox that takes more anyway)


@dataclass(frozen=True)
class ContainerMemory:
    limit: int   # bytes the container may use (the smallest limit on the way to the cgroup root)
    used: int    # bytes in use now that the kernel cannot drop: all but the page cache (tmpfs kept)


def fit_to_container(limits: Limits, workers: int, memory: ContainerMemory | None) -> Limits:
    """``limits`` with each of ``workers`` sandboxes fitted in its share of the container's free memory: its
    address-space cap and its tmpfs together (its folder and ``/dev/shm``, ``file_mb`` each). Where the share
    cannot hold them as they are, both are scaled down alike (a tmpfs keeps 1 MB at least: a size of 0 has none)."""
    if memory is None:
        return limits
    free_mb = (memory.limit - memory.used) // MB
    share = free_mb // max(workers, 1) - GRADER_RESERVE_MB
    wanted = limits.memory_mb + TMPFS_MOUNTS * limits.file_mb
    if share >= wanted:
        return limits
    return dataclasses.replace(limits, memory_mb=max(MIN_MEMORY_MB, limits.memory_mb * share // wanted),
                               file_mb=max(1, limits.file_mb * share // wanted))


def fit_to_gpu(limits: Limits, workers: int) -> Limits:
    """``limits`` with each worker's CUDA sandbox promised a share of the GPU that all of them can hold at once."""
    return dataclasses.replace(limits, gpu_fraction=min(limits.gpu_fraction, GPU_IN_ALL / max(workers, 1)))


def container_memory(proc: Path = Path("/proc/self")) -> ContainerMemory | None:
    """The memory limit of the cgroup this process runs in (cgroup v2 ``memory.max``, or v1
    ``memory.limit_in_bytes``) and what is in use; None where there is no limit or no cgroup."""
    for version, mount_point, folder in own_cgroup_folders(proc):
        try:
            found = _v2(mount_point, folder) if version == 2 else _v1(folder)
        except (OSError, ValueError):
            continue
        if found:
            return found
    return None


def own_cgroup_folders(proc: Path) -> list[tuple[int, Path, Path]]:
    """(version, mount point, folder) of this process's cgroup in each hierarchy that can hold a memory limit."""
    try:
        memberships = (proc / "cgroup").read_text().splitlines()
        mount_lines = (proc / "mountinfo").read_text().splitlines()
    except OSError:
        return []
    found = []
    for line in mount_lines:
        fields = line.split()
        separator = fields.index("-")
        root, mount_point, fstype, options = fields[3], fields[4], fields[separator + 1], fields[separator + 3]
        if fstype == "cgroup2":
            paths = [m.split(":", 2)[2] for m in memberships if m.startswith("0::")]
            version = 2
        elif fstype == "cgroup" and "memory" in options.split(","):
            paths = [m.split(":", 2)[2] for m in memberships if "memory" in m.split(":", 2)[1].split(",")]
            version = 1
        else:
            continue
        for path in paths:  # the cgroup's path, seen from the mount's root (a container sees its own as "/")
            relative = os.path.relpath(path, root) if Path(path).is_relative_to(root) else "."
            found.append((version, Path(mount_point), Path(mount_point) / relative))
    return sorted(found)  # v1 first: in a hybrid layout the memory controller is v1's


def _v2(mount_point: Path, folder: Path) -> ContainerMemory | None:
    limits = []
    for level in [folder, *folder.parents]:
        if not level.is_relative_to(mount_point):
            break
        if (level / "memory.max").exists():  # the root cgroup has none
            text = (level / "memory.max").read_text().strip()
            limits += [] if text == "max" else [int(text)]
    if not limits:
        return None
    used = int((folder / "memory.current").read_text()) - _stat(folder, "file") + _stat(folder, "shmem")
    return ContainerMemory(min(limits), used)


def _v1(folder: Path) -> ContainerMemory | None:
    limit = _stat(folder, "hierarchical_memory_limit") or int((folder / "memory.limit_in_bytes").read_text())
    if limit >= 2**62:  # "unlimited" is the largest page-aligned 64-bit number
        return None
    used = (int((folder / "memory.usage_in_bytes").read_text()) - _stat(folder, "total_cache")
            + _stat(folder, "total_shmem"))
    return ContainerMemory(limit, used)


def _stat(folder: Path, key: str) -> int:
    for line in (folder / "memory.stat").read_text().splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    return 0
