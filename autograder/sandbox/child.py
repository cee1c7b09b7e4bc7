"""The sandbox process: runs a submission's cells, then answers the grader's requests.

Requests and replies are plain data (see :mod:`autograder.sandbox.channel`). Two requests:
``call`` a function the notebook defined, or ``run`` a snippet of the suite's code with the
notebook's names in scope and send back its ``result``. Nothing here decides a score.
"""
from __future__ import annotations

import fcntl
import importlib
import linecache
import os
import socket
import sys
import traceback

import numpy
import torch

from autograder.sandbox import channel
from autograder.sandbox.confine import confine
from autograder.sandbox.limits import Limits

SOCKET_FD = 3
MAX_DEPTH = 16
# Imported once in the grader, before it forks: a sandbox dropped to an unprivileged user may be
# unable to read the Python installation (e.g. one under /root), and fork-ing saves the import time.
PRELOAD = ("torch", "torch.nn", "torch.nn.functional", "torch.optim", "torch.utils.data", "torchvision",
           "torchvision.datasets", "torchvision.transforms", "torchinfo", "numpy", "matplotlib.pyplot", "tqdm",
           "math", "random", "itertools", "collections", "functools", "time", "typing", "dataclasses")


def preload() -> None:
    os.environ.setdefault("MPLBACKEND", "Agg")
    for module in PRELOAD:
        importlib.import_module(module)


def main(sock_fd: int, output_fd: int) -> None:
    """Entry point in the new process: wire up file descriptors, confine, execute, serve."""
    if os.getsid(0) != os.getpid():
        os.setsid()
    sock_fd, output_fd = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (sock_fd, output_fd))
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(output_fd, 1)
    os.dup2(output_fd, 2)
    os.dup2(sock_fd, SOCKET_FD)
    os.closerange(SOCKET_FD + 1, os.sysconf("SC_OPEN_MAX"))  # nothing of the grader stays reachable
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    sock = socket.socket(fileno=SOCKET_FD)
    spec = channel.recv(sock)
    if spec["device"] == "cuda":  # CUDA opens its devices and starts its threads before the process is confined
        torch.cuda.set_per_process_memory_fraction(spec["gpu_fraction"])
        torch.zeros(1, device="cuda")
    warnings = confine(Limits(**spec["limits"]), spec["workdir"], spec["uid"], spec["readable"], spec["cpu_seconds"],
                       spec["device"])
    torch.set_num_threads(1)  # parallelism comes from grading workers; small ops run slower on more threads
    if spec["device"] == "cuda":  # the watchdog's baseline, measured before any submission code runs
        channel.send(sock, {"anonymous_memory": anonymous_memory(os.getpid())})
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    errors = [execute(index, source, namespace) for index, source in spec["cells"]]
    channel.send(sock, {"warnings": warnings, "cell_errors": [e for e in errors if e]})
    serve(sock, namespace)


def anonymous_memory(pid: int) -> int:
    """Bytes of ``pid``'s resident memory that no file backs (its heap, not the libraries it mapped)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise OSError(f"no RssAnon in /proc/{pid}/status")


def execute(index: int, source: str, namespace: dict) -> str:
    """Run one cell like Jupyter would; returns the formatted error, or '' when it ran."""
    filename = f"<cell {index}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    try:
        exec(compile(source, filename, "exec"), namespace)
    except BaseException as error:  # noqa: BLE001 - SystemExit and KeyboardInterrupt are the notebook's too
        return f"cell {index}: " + describe(error)
    return ""


def serve(sock: socket.socket, namespace: dict) -> None:
    while True:
        try:
            request = channel.recv(sock)
        except channel.ChannelClosed:
            return
        channel.send(sock, answer(request, namespace))


def answer(request: dict, namespace: dict) -> dict:
    try:
        if request["op"] == "call":
            function = namespace.get(request["name"])
            if not callable(function):
                return {"ok": False, "missing": True,
                        "message": f"the notebook does not define `{request['name']}`"}
            value = function(*request["args"], **request["kwargs"])
        else:
            scope = dict(namespace)
            scope.update(request["inputs"])
            exec(compile(request["code"], "<grader>", "exec"), scope)
            value = scope.get("result")
        return {"ok": True, "value": plain(value)}
    except BaseException as error:  # noqa: BLE001
        name = getattr(error, "name", None) if isinstance(error, NameError) else None
        if name and name not in namespace:
            return {"ok": False, "missing": True, "message": f"the notebook does not define `{name}`"}
        return {"ok": False, "missing": False, "message": describe(error)}


def describe(error: BaseException) -> str:
    """The exception with only the submission's own frames, as a student would want to read it."""
    frames = [frame for frame in traceback.extract_tb(error.__traceback__) if frame.filename.startswith("<cell")]
    lines = traceback.format_list(frames[-5:]) + traceback.format_exception_only(type(error), error)
    return "".join(lines).strip()[:4000]


def plain(value, depth: int = 0):
    """Reduce a value to what the channel carries: tensors on the CPU, numbers, strings, containers."""
    if depth > MAX_DEPTH:
        return {"__unsupported__": "nesting too deep"}
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return value
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()
    if isinstance(value, (numpy.generic,)):
        return value.item()
    if isinstance(value, numpy.ndarray):
        return torch.from_numpy(value.copy())
    if isinstance(value, (torch.Size, tuple)):
        return tuple(plain(item, depth + 1) for item in value)
    if isinstance(value, list):
        return [plain(item, depth + 1) for item in value]
    if isinstance(value, dict):
        return {k if isinstance(k, (str, int)) else str(k): plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (torch.dtype, torch.device)):
        return str(value)
    return {"__unsupported__": type(value).__qualname__}
