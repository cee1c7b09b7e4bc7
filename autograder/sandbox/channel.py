"""Length-prefixed messages between the grader and a sandbox, decoded without executing code.

A message is plain data: None, bools, numbers, strings, bytes, lists, tuples, dicts (string or int
keys) and CPU tensors. It travels as a JSON description followed by the tensors' raw bytes; decoding
is ``json.loads`` and ``torch.frombuffer`` on a checked layout, nothing else, so no object of the
sender's making (a submission's class, a function, a pickle's ``__reduce__`` trick) can come through.
The sizes are checked before a byte of the body is read, and the description's items and nesting before it
is parsed: what the receiver builds from it stays within a few tens of MB, whatever the sender wrote.
(``torch.save``/``torch.load(weights_only=True)`` did the same job at ten times the cost: a message is
exchanged for every check of every submission.)
"""
from __future__ import annotations

import base64
import json
import math
import re
import socket
import struct
import time

import torch

HEADER = struct.Struct(">QQ")  # the body's size, the JSON description's size within it
MAX_BYTES = 256 * 2**20
MAX_DESCRIPTION = 4 * 2**20  # bytes of JSON (tensors travel as raw bytes after it)
MAX_ITEMS = 100_000          # values in it (each parsed value is a Python object)
MAX_NESTING = 100            # JSON levels (a value of :func:`.child.plain`'s deepest takes about 60)
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_STRUCTURE = bytes(set(range(256)) - set(b"[]{}"))
DTYPES = {str(dtype).removeprefix("torch."): dtype for dtype in (
    torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.float16, torch.bfloat16,
    torch.float32, torch.float64, torch.complex64, torch.complex128)}


class ChannelClosed(EOFError):
    """The other end went away (the sandbox exited or was killed)."""


class ChannelTimeout(TimeoutError):
    """No complete message arrived before the deadline."""


class ChannelError(ValueError):
    """A message that is too large or not plain data."""


def encode(obj) -> bytes:
    tensors: list[bytes] = []
    description = json.dumps(_describe(obj, tensors), separators=(",", ":")).encode()
    body_size = len(description) + sum(len(t) for t in tensors)
    return b"".join([HEADER.pack(body_size, len(description)), description, *tensors])


def send(sock: socket.socket, obj) -> None:
    sock.sendall(encode(obj))


def recv(sock: socket.socket, deadline: float | None = None, max_bytes: int = MAX_BYTES):
    """Read one message; ``deadline`` is a ``time.monotonic()`` value or None to wait forever."""
    size, described = HEADER.unpack(_read_exactly(sock, HEADER.size, deadline))
    if size > max_bytes:
        raise ChannelError(f"a message of {size:,} bytes exceeds the limit of {max_bytes:,}")
    if described > MAX_DESCRIPTION:
        raise ChannelError(f"a message whose description of {described:,} bytes exceeds the limit of "
                           f"{MAX_DESCRIPTION:,}")
    body = _read_exactly(sock, size, deadline)
    check_shape(bytes(body[:described]))
    try:
        if described > size:
            raise ValueError("its description is longer than the message")
        offsets = [described]
        value = _rebuild(json.loads(bytes(body[:described])), body, offsets)
        if offsets[0] != size:
            raise ValueError("bytes left over after its tensors")
        return value
    except (ValueError, TypeError, KeyError, IndexError, RecursionError, RuntimeError) as error:
        raise ChannelError(f"a message that is not plain data ({type(error).__name__}: {error})") from None


def check_shape(description: bytes) -> None:
    """Refuse a description with more than :data:`MAX_ITEMS` values or :data:`MAX_NESTING` levels, unparsed:
    its strings are set aside, then its commas and brackets counted."""
    skeleton = _STRING.sub(b"", description)
    items = skeleton.count(b",") + skeleton.count(b"[") + skeleton.count(b"{")
    if items > MAX_ITEMS:
        raise ChannelError(f"a message of more than {MAX_ITEMS:,} values ({items:,})")
    depth = deepest = 0
    for bracket in skeleton.translate(None, _NOT_STRUCTURE):
        depth += 1 if bracket in b"[{" else -1
        deepest = max(deepest, depth)
    if deepest > MAX_NESTING:
        raise ChannelError(f"a message nested {deepest} levels deep, more than the limit of {MAX_NESTING}")


def _describe(value, tensors: list[bytes]):
    """``value`` as JSON: scalars as themselves, everything else as a one-key object naming its kind."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"f": repr(value)}  # JSON has no nan or inf
    if isinstance(value, bytes):
        return {"b": base64.b64encode(value).decode()}
    if isinstance(value, torch.Tensor):
        return _describe_tensor(value, tensors)
    if isinstance(value, (tuple, list)):
        return {"t" if isinstance(value, tuple) else "l": [_describe(item, tensors) for item in value]}
    if isinstance(value, dict):
        if any(not isinstance(key, (str, int)) or isinstance(key, bool) for key in value):
            raise TypeError("a dict key that is not a string or an int is not plain data")
        return {"d": [[key, _describe(item, tensors)] for key, item in value.items()]}
    raise TypeError(f"{type(value).__qualname__} is not plain data")


def _describe_tensor(value: torch.Tensor, tensors: list[bytes]) -> dict:
    tensor = value.detach().cpu().resolve_conj().resolve_neg().contiguous()
    if tensor.layout != torch.strided or tensor.dtype not in DTYPES.values():
        raise TypeError(f"a {tensor.layout} tensor of {tensor.dtype} is not plain data")
    data = tensor.reshape(-1).view(torch.uint8).numpy().tobytes()
    tensors.append(data)
    return {"T": [str(tensor.dtype).removeprefix("torch."), list(tensor.shape), len(data)]}


def _rebuild(node, body: bytearray, offsets: list[int]):
    """The value ``node`` describes; ``offsets[0]`` is where the next tensor's bytes start in ``body``."""
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    if not (isinstance(node, dict) and len(node) == 1):
        raise ValueError(f"unexpected {type(node).__name__}")
    (kind, content), = node.items()
    if kind == "f" and content in ("nan", "inf", "-inf"):
        return float(content)
    if kind == "b" and isinstance(content, str):
        return base64.b64decode(content, validate=True)
    if kind in ("t", "l") and isinstance(content, list):
        items = [_rebuild(item, body, offsets) for item in content]
        return tuple(items) if kind == "t" else items
    if kind == "d" and isinstance(content, list):
        pairs = [(key, _rebuild(item, body, offsets)) for key, item in content]
        if any(not isinstance(key, (str, int)) or isinstance(key, bool) for key, _ in pairs):
            raise ValueError("a dict key that is not a string or an int")
        return dict(pairs)
    if kind == "T":
        return _rebuild_tensor(*content, body=body, offsets=offsets)
    raise ValueError(f"unknown kind {kind!r}")


def _rebuild_tensor(name: str, shape: list, size: int, *, body: bytearray, offsets: list[int]) -> torch.Tensor:
    dtype = DTYPES[name]
    if not (all(isinstance(n, int) and n >= 0 for n in shape) and isinstance(size, int)):
        raise ValueError("a malformed tensor")
    start, offsets[0] = offsets[0], offsets[0] + size
    if size != math.prod(shape) * dtype.itemsize or offsets[0] > len(body):
        raise ValueError(f"a tensor of shape {shape} whose {size} bytes do not fit")
    if not size:
        return torch.empty(shape, dtype=dtype)
    raw = torch.frombuffer(body, dtype=torch.uint8, count=size, offset=start).clone()  # aligned, its own memory
    return (raw != 0 if dtype is torch.bool else raw.view(dtype)).reshape(shape)


def _read_exactly(sock: socket.socket, size: int, deadline: float | None) -> bytearray:
    data, got = bytearray(size), 0
    view = memoryview(data)
    while got < size:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChannelTimeout()
            sock.settimeout(left)
        try:
            count = sock.recv_into(view[got:], min(size - got, 1 << 20))
        except socket.timeout:
            raise ChannelTimeout() from None
        except ConnectionError:
            raise ChannelClosed() from None
        if not count:
            raise ChannelClosed()
        got += count
    return data
