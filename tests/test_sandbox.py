"""The sandbox's parts on their own: the plain-data channel and the confinement of a child."""
from __future__ import annotations

import io
import os
import socket

import pytest
import torch

from autograder.sandbox import Sandbox, SubmissionError, channel
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
                                    b'{"d":[[true,1]]}', b"[" * 100_000])
def test_channel_refuses_what_it_does_not_describe(forged):
    """Only the kinds it writes come through: a tensor whose bytes do not fit, an unknown dtype or kind, an untagged
    list, a key that is not a string or an int, nesting too deep to parse."""
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
