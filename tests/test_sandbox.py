"""The sandbox's parts on their own: the plain-data channel and the confinement of a child."""
from __future__ import annotations

import io
import os
import socket
import struct

import pytest
import torch

from autograder.sandbox import Sandbox, SubmissionError, channel
from autograder.sandbox.landlock import abi_version


class Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def raw_message(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    body = buffer.getvalue()
    return struct.pack(">Q", len(body)) + body


def test_channel_round_trips_plain_data():
    a, b = socket.socketpair()
    value = {"tensor": torch.arange(6.0).reshape(2, 3), "numbers": [1, 2.5, None, True], "text": "ok", "pair": (1, 2)}
    channel.send(a, value)
    got = channel.recv(b)
    assert torch.equal(got["tensor"], value["tensor"]) and got["numbers"] == value["numbers"] and got["pair"] == (1, 2)


def test_channel_refuses_code_on_arrival():
    a, b = socket.socketpair()
    a.sendall(raw_message({"value": Exploit()}))
    with pytest.raises(channel.ChannelError, match="not plain data"):
        channel.recv(b)


def test_channel_refuses_oversized_message_before_reading_it():
    a, b = socket.socketpair()
    a.sendall(struct.pack(">Q", 2**40))
    with pytest.raises(channel.ChannelError, match="exceeds the limit"):
        channel.recv(b)


def test_channel_deadline():
    a, b = socket.socketpair()
    import time
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
    with pytest.raises(SubmissionError, match="PermissionError"):
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
