"""A sandbox's own view of the machine: nothing in it is shared with another student's sandbox.

:func:`enter` moves the sandbox (before any submission code runs) into namespaces of its own: mounts,
System V and POSIX IPC (shared memory, semaphores, message queues) and the network (only a loopback of
its own). Its ``/dev/shm`` is a private tmpfs of bounded size and file count, and, graded as root, its
``/proc`` shows only its own user's processes (the sandbox's uid is its own). All of it is gone with the
sandbox's last process: the kernel frees a namespace, and the tmpfs in it, when nothing uses it any more.
Not root, the sandbox enters a user namespace first (its uid mapped to itself), which lets it do the same
but for ``/proc``; its capabilities there are dropped once it is set up.
"""
from __future__ import annotations

import ctypes
import os

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWUSER = 0x00020000, 0x08000000, 0x40000000, 0x10000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = (
    1, 2, 4, 8, 32, 4096, 16384, 1 << 18)
SHM = "/dev/shm"
SHM_FILES = 256  # files and folders the private /dev/shm may hold
_CAPABILITY_VERSION_3 = 0x20080522
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


def enter(shm_bytes: int) -> None:
    """Move this process into namespaces of its own, with a private ``/dev/shm`` of ``shm_bytes``. Raises
    OSError where the machine does not allow it (a container without namespaces)."""
    root = os.geteuid() == 0
    uid, gid = os.getuid(), os.getgid()
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWNET | (0 if root else CLONE_NEWUSER)),
           "private namespaces")
    if not root:
        for name, text in (("uid_map", f"{uid} {uid} 1"), ("setgroups", "deny"), ("gid_map", f"{gid} {gid} 1")):
            with open(f"/proc/self/{name}", "w") as mapping:
                mapping.write(text)
    mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing done here reaches the grader's mounts
    if os.path.isdir(SHM):
        mount("tmpfs", SHM, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
              f"size={shm_bytes},nr_inodes={SHM_FILES},mode=1777")
    if root:  # a fresh /proc in which a user sees only its own processes
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=2")


def drop_capabilities() -> None:
    """Give up the capabilities a user namespace granted (not root, after :func:`enter`)."""
    _check(_libc.capset(ctypes.byref(_CapHeader(_CAPABILITY_VERSION_3, 0)), (_CapData * 2)()), "capset")
