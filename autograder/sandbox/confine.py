"""Confine the current (sandbox) process: its own session, resource limits, Landlock, no root.

It is also the kernel's first choice when memory runs out: the OOM killer takes a sandbox before the grader.

Runs in the sandbox process before any submission code, once it is in namespaces of its own (:mod:`.namespaces`),
in this order: limits are set while still privileged, the folders it may read
are made reachable by its own user (:mod:`.reachable`), Landlock is applied, then root (if we are root) is
dropped for good. It writes only in its own folder, its private ``/dev/shm``, ``/dev/null`` and, on CUDA,
the GPU's device files.
"""
from __future__ import annotations

import glob
import os
import resource
import signal
import sys

from autograder.sandbox import landlock, namespaces, reachable
from autograder.sandbox.limits import Limits
from autograder.sandbox.trusted import address_space_in_use

SYSTEM_READ_ONLY = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc", "/proc", "/sys")
READ_DEVICES = ("/dev/zero", "/dev/urandom", "/dev/random", "/dev/full")
WRITE_DEVICES = ("/dev/null",)


def readable_paths() -> list[str]:
    """Folders the submission may read: the system, Python's installation and its packages."""
    python = {sys.prefix, sys.base_prefix, sys.exec_prefix}
    python.update(p for p in sys.path if "site-packages" in p or "dist-packages" in p)
    return sorted(set(SYSTEM_READ_ONLY) | {p for p in python if p and os.path.isdir(p)})


def sandbox_uid(device: str = "cpu") -> int | None:
    """A user id of its own for this grader process's sandbox on ``device`` when we are root, else None.

    A private uid makes the process limit per sandbox, and lets the grader kill every process
    the submission started (``kill(-1)`` as that uid), even ones that left its session. A grader
    process may hold a CPU and a CUDA sandbox at once: pids stay below 2**22 (Linux's PID_MAX_LIMIT).
    """
    return 100_000 + os.getpid() + (2**22 if device == "cuda" else 0) if os.geteuid() == 0 else None


def kill_every_process(uid: int) -> None:
    """SIGKILL every process of ``uid`` (a sandbox's own), wherever it went: ``kill(-1)`` from a child that
    takes that uid reaches them all, and nothing else."""
    sweeper = os.fork()
    if sweeper == 0:
        try:
            os.setresuid(uid, uid, uid)
            os.kill(-1, signal.SIGKILL)
        finally:
            os._exit(0)
    os.waitpid(sweeper, 0)


def confine(limits: Limits, workdir: str, uid: int | None, readable: list[str], cpu_seconds: int,
            device: str) -> list[str]:
    """Apply every restriction; returns warnings about the ones this machine cannot enforce."""
    warnings = []
    os.umask(0o077)
    try:  # out of memory, the kernel kills a sandbox first (best effort: some containers forbid it)
        with open("/proc/self/oom_score_adj", "w") as oom:
            oom.write("1000")
    except OSError:
        pass
    nproc = limits.processes + namespaces.processes_in_use(os.getuid() if uid is None else None)  # the grader's uid
    rlimits = {
        resource.RLIMIT_NPROC: nproc,
        resource.RLIMIT_CPU: cpu_seconds,
        resource.RLIMIT_FSIZE: limits.file_mb * 2**20,
        resource.RLIMIT_NOFILE: limits.open_files,
        resource.RLIMIT_CORE: 0,
    }
    if device == "cpu":  # CUDA reserves huge address ranges: the grader watches its memory instead
        rlimits[resource.RLIMIT_AS] = address_space_in_use() + limits.memory_mb * 2**20
    if limits.memory_mb < Limits.memory_mb:  # fitted into a small container (see limits.fit_to_container)
        warnings.append(f"this grader runs in a container with little memory: your code may use about "
                        f"{limits.memory_mb} MB here (beyond that an allocation raises MemoryError)"
                        + (f", and write {limits.file_mb} MB in its folder and as much in /dev/shm"
                           if limits.file_mb < Limits.file_mb else ""))
    for which, value in rlimits.items():
        resource.setrlimit(which, (value, value))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the file limit fails (saying why), not the process
    writable = [workdir, *WRITE_DEVICES, *(glob.glob("/dev/nvidia*") if device == "cuda" else [])]
    if private := not namespaces.STATE["unavailable"]:  # entered when the process started (namespaces.enter)
        writable.append(namespaces.SHM)
    else:  # without them: no /dev/shm, and System V IPC and /proc are the machine's
        warnings.append("this grader cannot give your code namespaces of its own "
                        f"({namespaces.STATE['unavailable']}): it has no /dev/shm")
    if uid is not None and private:  # its own user may not enter a closed home holding Python: root opens a way
        reachable.open_up(readable)  # (the grader refuses to grade where it is needed and cannot be done)
    try:
        landlock.restrict(read_only=[*readable, *READ_DEVICES], read_write=writable)
    except OSError as error:
        warnings.append(f"filesystem isolation unavailable ({error}); hidden tests are protected "
                        "only by file permissions")
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    elif private:
        namespaces.drop_capabilities()
    os.chdir(workdir)
    os.environ.clear()
    os.environ.update(HOME=workdir, TMPDIR=workdir, USER="student", LOGNAME="student", MPLBACKEND="Agg",
                      MPLCONFIGDIR=workdir, PATH="/usr/bin:/bin", PYTHONDONTWRITEBYTECODE="1",
                      **({} if device == "cuda" else {"CUDA_VISIBLE_DEVICES": ""}))  # a CPU sandbox sees no GPU
    return warnings

