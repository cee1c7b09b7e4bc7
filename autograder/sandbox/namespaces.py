"""A sandbox's own view of the machine: nothing in it is shared with another student's sandbox.

:func:`enter` is the first thing a sandbox process does, before any submission code: it moves into namespaces of
its own, mounts, System V and POSIX IPC (shared memory, semaphores, message queues), the network (only a loopback
of its own) and process ids. Its own folder and its ``/dev/shm`` are private tmpfs of bounded size and file count,
and its ``/proc``
shows only the processes of its own namespace (``hidepid=2``: of those, the ones it may trace). Not root, it enters
a user namespace first (its uid mapped to itself), which lets it do all of that; its capabilities there are dropped
once it is confined (:mod:`.confine`).

The process that called :func:`enter` stays outside: the grader's handle on the sandbox, it waits for it and ends
as it ended. Inside, a reaper is the namespace's first process (pid 1): the sandbox is not, so signals reach it as
usual. When the outside process ends (the sandbox ended, or the grader killed it), the reaper is killed and the
kernel kills every process left in the namespace: whatever the sandbox started ends with it, whatever its user. The
namespaces, and the tmpfs in them, are gone with their last process.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import select
import signal

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWUSER, CLONE_NEWPID = (
    0x00020000, 0x08000000, 0x40000000, 0x10000000, 0x20000000)
PR_SET_PDEATHSIG, PR_SET_DUMPABLE = 1, 4
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = (
    1, 2, 4, 8, 32, 4096, 16384, 1 << 18)
SHM = "/dev/shm"
SHM_FILES = 256  # files and folders the private /dev/shm may hold
WORK_FILES = 4096  # files and folders the sandbox's own folder may hold
_CAPABILITY_VERSION_3 = 0x20080522
# This sandbox's namespaces, as :func:`enter` left them: why it has none ('' when it has them), its pid as the
# grader sees it, and a file descriptor of the machine's /proc (-1 once closed), for :func:`processes_in_use`.
STATE = {"unavailable": "", "host_pid": 0, "machine_proc": -1}
_libc = ctypes.CDLL(None, use_errno=True)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    encode = lambda text: text.encode() if text is not None else None  # noqa: E731
    _check(_libc.mount(encode(source), encode(target), encode(fstype), ctypes.c_ulong(flags), encode(data)),
           f"mount {target}")


def enter(tmpfs_bytes: int, workdir: str | None = None, owner: int | None = None) -> None:
    """Move this process into namespaces of its own (see the module's docstring), with a private ``/dev/shm`` and,
    on ``workdir`` (the sandbox's own folder, empty; None: none), a tmpfs owned by ``owner`` (None: this process's
    user), each of ``tmpfs_bytes`` at most. Returns in the sandbox, never in the process that called it. Where the machine does not
    allow namespaces (a container without them), returns at once in this process, with ``STATE["unavailable"]``
    saying why."""
    root = os.geteuid() == 0
    uid, gid = os.getuid(), os.getgid()
    STATE["host_pid"] = os.getpid()
    try:
        _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWPID | (0 if root else CLONE_NEWUSER)),
               "private namespaces")
        if not root:
            for name, text in (("uid_map", f"{uid} {uid} 1"), ("setgroups", "deny"), ("gid_map", f"{gid} {gid} 1")):
                with open(f"/proc/self/{name}", "w") as mapping:
                    mapping.write(text)
    except OSError as error:
        STATE["unavailable"] = str(error)
        return
    alive, held = os.pipe()  # readable (at its end) once this process has ended
    if os.fork() == 0:
        _reap(alive)
    os.close(alive)
    sandbox = os.fork()
    if sandbox:
        _end_as(sandbox, held)
    os.close(held)
    STATE["host_pid"] = int(os.readlink("/proc/self"))  # the machine's /proc, still: the grader's pid for it
    STATE["machine_proc"] = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY)  # inheritable: kept by a fresh interpreter
    os.set_inheritable(STATE["machine_proc"], True)
    mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing done here reaches the grader's mounts
    if os.path.isdir(SHM):
        mount("tmpfs", SHM, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
              f"size={tmpfs_bytes},nr_inodes={SHM_FILES},mode=1777")
    owner, group = (uid, gid) if owner is None else (owner, owner)  # what it leaves there is gone with it
    if workdir is not None:
        mount("tmpfs", workdir, "tmpfs", MS_NOSUID | MS_NODEV,
              f"size={tmpfs_bytes},nr_inodes={WORK_FILES},mode=0700,uid={owner},gid={group}")
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=2")


def _reap(alive: int) -> None:
    """The namespace's first process: reap what the sandbox's processes leave, until the process outside ends
    (``alive`` then reads its end; the kernel kills this one, and with it every process in the namespace). Never
    returns."""
    try:
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)  # hidden from the sandbox's /proc, its memory out of reach
        os.dup2(alive, 0)
        os.closerange(1, os.sysconf("SC_OPEN_MAX"))  # the grader sees the sandbox end when it does
        if not select.select([0], [], [], 0)[0]:  # else it ended before the kernel was told to kill this one
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
            while True:
                with contextlib.suppress(ChildProcessError):
                    while os.waitpid(-1, os.WNOHANG)[0]:
                        pass
                signal.sigwait({signal.SIGCHLD})
    finally:
        os._exit(0)


def _end_as(sandbox: int, held: int) -> None:
    """Outside the namespaces: wait for the sandbox, then end as it did (its exit status, or killed by its signal),
    which is what the grader sees. ``held`` stays open until then (the reaper's sign of life). Never returns."""
    status = 0
    try:
        os.closerange(0, held)
        os.closerange(held + 1, os.sysconf("SC_OPEN_MAX"))
        _, status = os.waitpid(sandbox, 0)
        if os.WIFSIGNALED(status):
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            with contextlib.suppress(OSError, ValueError):  # SIGKILL's action cannot be changed (it is the default)
                signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
            os.kill(os.getpid(), os.WTERMSIG(status))
    finally:
        os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 70)


def processes_in_use(uid: int | None) -> int:
    """Threads running as ``uid`` on the machine (RLIMIT_NPROC counts them all, whatever the namespace; 0 for None),
    read through the machine's /proc: the one kept by :func:`enter`, closed now (the submission never holds it)."""
    kept, STATE["machine_proc"] = STATE["machine_proc"], -1
    proc = kept if kept >= 0 else os.open("/proc", os.O_RDONLY | os.O_DIRECTORY)
    count = 0
    try:
        for entry in os.scandir(proc) if uid is not None else ():
            if entry.name.isdigit():
                try:
                    if entry.stat().st_uid == uid:
                        tasks = os.open(f"{entry.name}/task", os.O_RDONLY | os.O_DIRECTORY, dir_fd=proc)
                        count += len(os.listdir(tasks))
                        os.close(tasks)
                except OSError:
                    continue
    finally:
        os.close(proc)
    return count


def drop_capabilities() -> None:
    """Give up the capabilities a user namespace granted (not root, after :func:`enter`)."""
    _check(_libc.capset(ctypes.byref(_CapHeader(_CAPABILITY_VERSION_3, 0)), (_CapData * 2)()), "capset")
