"""Length-prefixed messages between the grader and a sandbox, decoded without executing code.

Every message is ``torch.save`` bytes. Both ends decode with ``torch.load(weights_only=True)``,
PyTorch's restricted unpickler: tensors, numbers, strings, bytes, lists, tuples and dicts
come through; any other object (a submission's class, a function, a ``__reduce__`` trick)
is refused. The size is checked before a byte of the body is read.
"""
from __future__ import annotations

import io
import socket
import struct
import time

import torch

HEADER = struct.Struct(">Q")
MAX_BYTES = 256 * 2**20


class ChannelClosed(EOFError):
    """The other end went away (the sandbox exited or was killed)."""


class ChannelTimeout(TimeoutError):
    """No complete message arrived before the deadline."""


class ChannelError(ValueError):
    """A message that is too large or not plain data."""


def encode(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    body = buffer.getvalue()
    return HEADER.pack(len(body)) + body


def send(sock: socket.socket, obj) -> None:
    sock.sendall(encode(obj))


def recv(sock: socket.socket, deadline: float | None = None, max_bytes: int = MAX_BYTES):
    """Read one message; ``deadline`` is a ``time.monotonic()`` value or None to wait forever."""
    (size,) = HEADER.unpack(_read_exactly(sock, HEADER.size, deadline))
    if size > max_bytes:
        raise ChannelError(f"a message of {size:,} bytes exceeds the limit of {max_bytes:,}")
    body = _read_exactly(sock, size, deadline)
    try:
        return torch.load(io.BytesIO(body), weights_only=True, map_location="cpu")
    except Exception as error:  # the restricted unpickler refuses anything but plain data
        raise ChannelError(f"a message that is not plain data ({type(error).__name__}: {error})") from None


def _read_exactly(sock: socket.socket, size: int, deadline: float | None) -> bytes:
    chunks, remaining = [], size
    while remaining:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChannelTimeout()
            sock.settimeout(left)
        try:
            chunk = sock.recv(min(remaining, 1 << 20))
        except socket.timeout:
            raise ChannelTimeout() from None
        except ConnectionError:
            raise ChannelClosed() from None
        if not chunk:
            raise ChannelClosed()
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
