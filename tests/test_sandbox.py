"""The sandbox's parts on their own: the plain-data channel and the confinement of a child."""
from __future__ import annotations

import contextlib
import ctypes
import io
import os
import socket
import tempfile
import threading
import time
import traceback
from pathlib import Path

import pytest
import torch

from autograder.sandbox import Sandbox, SubmissionError, channel, namespaces, reachable, trusted
from autograder.sandbox.confine import readable_paths
from autograder.sandbox.landlock import abi_version


class Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def raw_message(obj) -> bytes:
    """``obj`` pickled by torch.save, framed as a channel message: what a forged reply would send."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    body = buffer.getvalue()
    return channel.HEADER.pack(len(body), len(body)) + body


def test_channel_round_trips_plain_data():
    a, b = socket.socketpair()
    value = {"tensor": torch.arange(6.0).reshape(2, 3), "numbers": [1, 2.5, None, True, float("inf")], "text": "ok",
             "pair": (1, (2, b"\x00")), 7: [torch.tensor(True), torch.zeros(0, 3, dtype=torch.int64),
                                         torch.rand(3, 2, dtype=torch.float64).t(), torch.rand(2, dtype=torch.bfloat16)]}
    channel.send(a, value)
    got = channel.recv(b)
    assert got.keys() == value.keys() and got["numbers"] == value["numbers"] and got["pair"] == (1, (2, b"\x00"))
    for sent, came in zip([value["tensor"], *value[7]], [got["tensor"], *got[7]]):
        assert came.dtype == sent.dtype and came.shape == sent.shape and torch.equal(came, sent)


@pytest.mark.parametrize("forged", [b'{"T":["float32",[4],3]}', b'{"T":["object",[1],8]}', b'[1,2]', b'{"x":1}',
                                    b'{"d":[[true,1]]}'])
def test_channel_refuses_what_it_does_not_describe(forged):
    """Only the kinds it writes come through: a tensor whose bytes do not fit, an unknown dtype or kind, an untagged
    list, a key that is not a string or an int."""
    a, b = socket.socketpair()
    a.sendall(channel.HEADER.pack(len(forged), len(forged)) + forged)
    with pytest.raises(channel.ChannelError, match="not plain data"):
        channel.recv(b)


def test_channel_refuses_code_on_arrival():
    a, b = socket.socketpair()
    a.sendall(raw_message({"value": Exploit()}))
    with pytest.raises(channel.ChannelError, match="not plain data"):
        channel.recv(b)


def test_channel_refuses_oversized_message_before_reading_it():
    a, b = socket.socketpair()
    a.sendall(channel.HEADER.pack(2**40, 0))
    with pytest.raises(channel.ChannelError, match="exceeds the limit"):
        channel.recv(b)


@pytest.mark.parametrize("description, message", [
    (b"[" * 100_000, "nested 100000 levels deep"),
    (b'{"l":[' + b"1," * 150_000 + b'1]}', "more than 100,000 values"),
    (b'{"l":["' + b"[,{" * 200_000 + b'"]}', None)])  # brackets and commas inside a string are text
def test_channel_bounds_a_description_before_parsing_it(description, message):
    a, b = socket.socketpair()
    sender = threading.Thread(target=a.sendall, args=(channel.HEADER.pack(len(description), len(description))
                                                      + description,))
    sender.start()
    try:
        if message is None:
            assert channel.recv(b) == ["[,{" * 200_000]
            return
        with pytest.raises(channel.ChannelError, match=message):
            channel.recv(b)
    finally:
        sender.join()


def test_channel_refuses_a_long_description_before_reading_it():
    a, b = socket.socketpair()
    a.sendall(channel.HEADER.pack(channel.MAX_BYTES, channel.MAX_DESCRIPTION + 1))  # no body follows
    with pytest.raises(channel.ChannelError, match="description of 4,194,305 bytes exceeds the limit"):
        channel.recv(b)


def test_channel_deadline():
    a, b = socket.socketpair()
    with pytest.raises(channel.ChannelTimeout):
        channel.recv(b, deadline=time.monotonic() + 0.2)


CELLS = [(1, "import os\ndef read(path):\n    return open(path).read()[:20]\n"
             "def whoami():\n    return (os.getuid(), os.getcwd())\n"
             "def visible_gpus():\n    return os.environ.get('CUDA_VISIBLE_DEVICES')\n"
             "def connect(port):\n    import socket\n    socket.socket().connect((b'127.0.0.1', port))\n"
             "    return 'connected'\n")]


@pytest.fixture
def sandbox():
    box = Sandbox(CELLS)
    box.start()
    yield box
    box.close()


@pytest.mark.skipif(abi_version() < 1, reason="the kernel has no Landlock")
def test_sandbox_cannot_read_the_repository(sandbox, repo):
    """Landlock refuses it; where the checkout lies behind a folder the sandbox's user cannot enter, the sandbox
    does not even see it (only Python's folders are mounted back: autograder/sandbox/reachable.py)."""
    with pytest.raises(SubmissionError, match="PermissionError|FileNotFoundError"):
        sandbox.call("read", str(repo / "autograder" / "suites" / "conv_basics" / "test_corr2d.py"))
    assert sandbox.call("read", "/etc/hostname")  # the system stays readable


@pytest.mark.skipif(abi_version() < 4, reason="Landlock ABI 4 (TCP rules) needed")
def test_sandbox_cannot_open_tcp_connections(sandbox):
    server = socket.create_server(("127.0.0.1", 0))
    try:
        with pytest.raises(SubmissionError, match="PermissionError"):
            sandbox.call("connect", server.getsockname()[1])
    finally:
        server.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="a private uid needs a grader running as root")
def test_sandbox_runs_as_private_user_in_private_folder(sandbox):
    uid, cwd = sandbox.call("whoami")
    assert uid >= 100_000 and cwd.startswith("/tmp/sandbox-")


def test_a_cpu_sandbox_sees_no_gpu(sandbox):
    """On a GPU machine a CPU sandbox could otherwise take GPU memory that no watcher counts."""
    assert sandbox.call("visible_gpus") == ""


def in_grading_fork(work, in_test: bool = True) -> str:
    """``work()`` in a forked process bounded as a grading process is (:func:`trusted.bound`), as a test's body
    (``in_test``) or as pytest's own work: what it raised."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            trusted.bound()
            trusted.TEST_SECONDS = 1  # a test's CPU time, made short to keep this test short
            trusted.next_test()
            with trusted.checking() if in_test else contextlib.nullcontext():
                work()
            outcome = "returned"
        except BaseException as error:  # noqa: BLE001 - reported to the test
            outcome = f"{type(error).__name__}: {error}"
        os.write(write_end, outcome.encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        outcome = pipe.read().decode()
    os.waitpid(pid, 0)
    return outcome


def test_grading_process_cpu_per_test_is_bounded():
    def spin():
        while True:
            pass
    assert in_grading_fork(spin).startswith("GraderBoundExceeded: checking what the notebook returned took the "
                                            "grader more than 1 s of CPU time")


def test_grading_process_cpu_bound_spares_pytests_own_work():
    def spin_a_while():
        started = time.process_time()
        while time.process_time() - started < 2.5:
            pass
    assert in_grading_fork(spin_a_while, in_test=False) == "returned"


def test_grading_process_memory_is_bounded():
    assert in_grading_fork(lambda: bytearray((trusted.MEMORY_MB + 64) * 2**20)).startswith("MemoryError")
    assert in_grading_fork(lambda: bytearray((trusted.MEMORY_MB - 256) * 2**20)) == "returned"


PRIVATE = r'''
import ctypes, os, socket, subprocess
def plant(tag, seconds):
    subprocess.run(["/bin/sh", "-c", f"sleep {seconds} &"], start_new_session=True, check=True)  # a daemon
    with open(f"/dev/shm/{tag}", "w") as note:
        note.write(tag)
    os.mkfifo(f"/dev/shm/{tag}.fifo")
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.shmget(0x5EED, 4096, 0o1666) >= 0  # IPC_CREAT: a System V segment that outlives its process
    global listener
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(b"\0" + tag.encode())
    listener.listen()
def look(tag):
    found = {"shm": sorted(os.listdir("/dev/shm")), "sysv": ctypes.CDLL(None).shmget(0x5EED, 0, 0) >= 0}
    try:
        socket.socket(socket.AF_UNIX).connect(b"\0" + tag.encode())
        found["socket"] = "connected"
    except OSError as error:
        found["socket"] = type(error).__name__
    found["others"] = [p for p in os.listdir("/proc") if p.isdigit() and p != str(os.getpid())]
    for path in ("/tmp/planted", "/var/tmp/planted", "/dev/planted"):
        try:
            open(path, "w").close()
            found[path] = "written"
        except OSError as error:
            found[path] = type(error).__name__
    return found
'''


def test_sandboxes_share_nothing():
    """Two students' sandboxes at once: one leaves files, a FIFO, a System V segment and an abstract socket; the
    other sees none of them, nor any other process, and writes nowhere outside its folder; nothing of it is left
    after it is closed, not even the daemon it started."""
    shm_before = sorted(os.listdir("/dev/shm"))
    seconds = f"{time.time():.6f}"  # a number of seconds no other process sleeps (about 55 years)
    daemon = f"sleep\0{seconds}\0".encode()  # its command line
    first, second = Sandbox([(1, PRIVATE)]), Sandbox([(1, PRIVATE)])
    try:
        first.start(), second.start()
        first.call("plant", "first", seconds)
        if os.geteuid() == 0:  # (hidden from a non-root grader that is itself confined)
            deadline = time.monotonic() + 30  # the shell returns once it has forked the daemon, before its exec
            while daemon not in running() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert daemon in running()
        assert set(first.call("look", "first")["shm"]) == {"first", "first.fifo"}
        seen = second.call("look", "first")
    finally:
        first.close(), second.close()
    assert seen["shm"] == [] and not seen["sysv"] and seen["socket"] != "connected", seen
    assert {seen[p] for p in ("/tmp/planted", "/var/tmp/planted", "/dev/planted")} == {"PermissionError"}, seen
    assert seen["others"] == [], seen  # its own processes only (a process namespace of its own): the sandbox itself
    assert sorted(os.listdir("/dev/shm")) == shm_before
    deadline = time.monotonic() + 30  # the kernel ends the daemon with the sandbox's namespace, soon after
    while daemon in running() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert daemon not in running()
    assert ctypes.CDLL(None).shmget(0x5EED, 0, 0) == -1  # not in the grader's System V IPC either


def running() -> list[bytes]:
    """The command lines of this machine's processes (as this process's /proc shows them)."""
    lines = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            lines.append(Path(f"/proc/{pid}/cmdline").read_bytes())
    return lines


@pytest.mark.skipif(os.geteuid() != 0, reason="becoming another user needs root")
def test_sandboxes_share_nothing_for_a_non_root_grader():
    """The same for an instructor who is not root (sandboxes share that user's uid: a user namespace each, in which
    a process namespace of its own hides every other process).
    Python's closed folders are covered first, as for a sandbox's user (autograder/sandbox/reachable.py)."""
    read_end, write_end = os.pipe()
    folder = tempfile.mkdtemp()  # the test's own, as a sandbox's
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            os.close(read_end)
            namespaces.enter(2**16, folder, None)
            reachable.open_up(readable_paths())
            os.setgroups([])
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)
            ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE, as a user's login shell is: /proc/self its own
            test_sandboxes_share_nothing()
            status = 0
        except BaseException:  # noqa: BLE001 - reported to the test
            os.write(write_end, traceback.format_exc().encode())
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        report = pipe.read().decode()
    os.rmdir(folder)
    assert os.waitpid(pid, 0)[1] == 0, report
