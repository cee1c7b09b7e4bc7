"""Make the folders a sandbox may read reachable by its unprivileged user, wherever they are installed.

Graded as root, a sandbox runs under a user id of its own, which cannot enter a closed folder on the
way to Python or its packages: pyenv or conda under ``/root`` (``0700``), a checkout with its venv in
a ``mktemp -d`` folder, Ubuntu's ``0750`` homes under sudo. Every module the submission imports for the
first time then fails with ``ModuleNotFoundError``. :func:`open_up` fixes that inside the sandbox
only: in a mount namespace of its own, each closed folder is covered by an empty read-only tmpfs in
which only the readable paths are mounted back (bind mounts), so the sandbox reaches them and sees
nothing else of the closed folder, the hidden suites included. :func:`check` tries it before grading,
as a sandbox user would, and says what cannot be read and how to fix it.
"""
from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

from autograder.sandbox import namespaces
from autograder.sandbox.namespaces import MS_BIND, MS_NODEV, MS_NOSUID, MS_RDONLY, MS_REC, MS_REMOUNT


def closed_ancestor(path: str) -> str | None:
    """The outermost folder above ``path`` that other users cannot enter (no ``o+x``), or None."""
    for parent in reversed(Path(path).parents):
        if not os.stat(parent).st_mode & stat.S_IXOTH:
            return str(parent)
    return None


def covers(paths: list[str]) -> dict[str, list[str]]:
    """{closed folder: the readable paths below it} for every readable path behind a closed folder."""
    real = sorted({os.path.realpath(p) for p in paths if os.path.isdir(p)})
    outermost = [p for p in real if not any(p != q and Path(p).is_relative_to(q) for q in real)]
    found: dict[str, list[str]] = {}
    for path in outermost:
        if folder := closed_ancestor(path):
            found.setdefault(folder, []).append(path)
    return found


def open_up(paths: list[str]) -> list[str]:
    """In this process (root, before it drops to the sandbox's user, in its own mount namespace:
    :func:`.namespaces.enter`), make ``paths`` reachable; returns the closed folders it covered."""
    closed = covers(paths)
    if not closed:
        return []
    umask = os.umask(0o022)  # the folders leading to the paths: enterable by all (the sandbox's umask is 077)
    try:
        for folder, inside in closed.items():
            _cover(folder, inside)
    finally:
        os.umask(umask)
    return sorted(closed)


def _cover(folder: str, inside: list[str]) -> None:
    """An empty read-only tmpfs over ``folder`` with only ``inside`` mounted back."""
    handles = {path: os.open(path, os.O_PATH | os.O_DIRECTORY) for path in inside}  # before the tmpfs hides them
    try:
        namespaces.mount("tmpfs", folder, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64k")
        for path, fd in handles.items():
            os.makedirs(path, mode=0o755)
            namespaces.mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
        namespaces.mount(None, folder, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    finally:
        for fd in handles.values():
            os.close(fd)


def python_folders(readable: list[str]) -> list[str]:
    """The folders the sandbox imports from (the standard library, its extension modules, the packages):
    the entries of ``sys.path`` among the ``readable`` paths."""
    return sorted({p for p in sys.path if os.path.isabs(p) and os.path.isdir(p)
                   and any(Path(p).is_relative_to(folder) for folder in readable)})


def unreadable(folders: list[str]) -> list[str]:
    """What this process cannot read among ``folders`` and the entries directly inside them."""
    problems = []
    for folder in folders:
        try:
            entries = list(os.scandir(folder))
        except OSError as error:
            problems.append(f"{folder} ({error.strerror})")
            continue
        for entry in entries:
            mode = os.R_OK | os.X_OK if entry.is_dir() else os.R_OK
            if not os.access(entry.path, mode):
                problems.append(f"{entry.path} (mode {stat.filemode(entry.stat(follow_symlinks=False).st_mode)})")
    return problems


def check(readable: list[str], uid: int) -> str:
    """Try it as the sandbox will: open up ``readable`` in a child, drop to ``uid`` and read Python's folders.
    Returns '' when all is readable, else a message for the instructor naming the folders and the fix."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            os.umask(0o077)  # as in the sandbox
            try:
                namespaces.enter(2**16)  # this process stays outside, and ends as the rest of this one does
                if namespaces.STATE["unavailable"]:
                    raise OSError(namespaces.STATE["unavailable"])
                open_up(readable)
                report = []
            except OSError as error:  # fatal only where a closed folder needs covering (else the sandbox warns)
                report = [f"!{error}"] if covers(readable) else []
            if not report:
                os.setgroups([])
                os.setresgid(uid, uid, uid)
                os.setresuid(uid, uid, uid)
                report = unreadable(python_folders(readable))
            os.write(write_end, "\n".join(report).encode()[:60000])
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        lines = pipe.read().decode().splitlines()
    os.waitpid(pid, 0)
    if not lines:
        return ""
    if lines[0].startswith("!"):
        closed = " and ".join(covers(readable))
        return (f"student code runs as an unprivileged user, which cannot enter {closed} on the way to Python or its "
                f"packages, and this machine does not let the grader open a way for it ({lines[0][1:]}). Let other "
                f"users enter (chmod o+x {closed}: entering only, nothing listed) or install Python and the course's "
                f"venv outside, e.g. under /opt")
    shown = "; ".join(lines[:5]) + (f"; and {len(lines) - 5} more" if len(lines) > 5 else "")
    return (f"student code runs as an unprivileged user, which cannot read part of Python's installation: {shown}. "
            f"Make it readable by other users (chmod -R o+rX on those folders; a pip run under umask 077 "
            f"leaves packages closed) or reinstall with umask 022")
