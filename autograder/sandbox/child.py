"""The sandbox process: runs a submission's cells, then answers the grader's requests.

Requests and replies are plain data (see :mod:`autograder.sandbox.channel`). Two requests:
``call`` a function the notebook defined, or ``run`` a snippet of the suite's code with the
notebook's names in scope and send back its ``result``. Each runs under a time limit: when it
runs out, the reply names the notebook function that was running, and the grader has that
function fail at once from then on (one hang costs one call's time). Nothing here decides a score.
"""
from __future__ import annotations

import errno
import fcntl
import importlib
import linecache
import os
import signal
import socket
import sys
import traceback

import numpy
import torch

from autograder.sandbox import channel, namespaces
from autograder.sandbox.confine import confine
from autograder.sandbox.limits import Limits

SOCKET_FD = 3
MAX_DEPTH = 16
GPU_SHARE: tuple[int, int] | None = None  # on CUDA: (this sandbox's share, the GPU's memory) in bytes
FOLDER_MB = Limits.file_mb  # the size of its own folder and of its /dev/shm (namespaces.enter)
# Imported once in the grader, before it forks: every sandbox starts with them, instead of importing them itself.
PRELOAD = ("torch", "torch.nn", "torch.nn.functional", "torch.optim", "torch.utils.data", "torchvision",
           "torchvision.datasets", "torchvision.transforms", "torchinfo", "numpy", "matplotlib.pyplot", "tqdm",
           "math", "random", "itertools", "collections", "functools", "time", "typing", "dataclasses")


class CallTimeout(BaseException):
    """Raised in the submission's code when a request runs out of time (not an Exception: few catch it)."""


def on_alarm(signum, frame):
    raise CallTimeout()


class Shell:
    """What ``get_ipython()`` returns here: magics and shell commands (``%matplotlib``, ``!pip``) do
    nothing; the code Jupyter runs for ``%%time`` and the like is plain code already (:mod:`autograder.notebook`)."""

    def run_line_magic(self, *args, **kwargs):
        return None

    run_cell_magic = system = run_line_magic

    def getoutput(self, *args, **kwargs):
        return []


def preload() -> None:
    os.environ.setdefault("MPLBACKEND", "Agg")
    for module in PRELOAD:
        importlib.import_module(module)


def main(sock_fd: int, output_fd: int, entered: bool = False) -> None:
    """Entry point in the new process: wire up file descriptors, enter namespaces of its own (unless ``entered``
    before), confine, execute, serve."""
    global FOLDER_MB
    if os.getsid(0) != os.getpid():
        os.setsid()
    sock_fd, output_fd = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (sock_fd, output_fd))
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(output_fd, 1)
    os.dup2(output_fd, 2)
    os.dup2(sock_fd, SOCKET_FD)
    kept = namespaces.STATE["machine_proc"] >= 0  # the machine's /proc, closed once confine has counted processes
    if kept:
        namespaces.STATE["machine_proc"] = os.dup2(namespaces.STATE["machine_proc"], SOCKET_FD + 1)
    os.closerange(SOCKET_FD + 1 + kept, os.sysconf("SC_OPEN_MAX"))  # nothing of the grader stays reachable
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    sock = socket.socket(fileno=SOCKET_FD)
    spec = channel.recv(sock)
    limits = Limits(**spec["limits"])
    FOLDER_MB = limits.file_mb
    if not entered:  # now that it is used (a spare waits outside them, its memory its grader's)
        namespaces.enter(limits.file_mb * 2**20, spec["workdir"], spec["uid"])  # this process stays outside
    if spec["device"] == "cuda":
        try:
            start_cuda(limits.gpu_fraction)
        except RuntimeError as error:  # a full GPU (another sandbox took it) or a broken one: say which
            channel.send(sock, {"cuda_error": f"{type(error).__name__}: {error}"[:2000],
                                "out_of_gpu_memory": out_of_gpu_memory(error)})
            return
    warnings = confine(limits, spec["workdir"], spec["uid"], spec["readable"], spec["cpu_seconds"], spec["device"])
    torch.set_num_threads(1)  # parallelism comes from grading workers; small ops run slower on more threads
    if spec["device"] == "cuda":  # the watchdogs' numbers, measured before any submission code runs
        channel.send(sock, {"anonymous_memory": anonymous_memory(os.getpid()), "gpu_share": GPU_SHARE[0],
                            "pid": namespaces.STATE["host_pid"]})
    namespace = {"__name__": "__main__", "__builtins__": __builtins__, "get_ipython": Shell}
    errors = [execute(index, source, namespace) for index, source in spec["cells"]]
    signal.signal(signal.SIGALRM, on_alarm)
    channel.send(sock, {"warnings": warnings, "cell_errors": [e for e in errors if e]})
    serve(sock, namespace)


def start_cuda(fraction: float) -> None:
    """Start CUDA while the process may still open the GPU's device files: confined, it no longer can.

    The same holds for NVML, which PyTorch's allocator starts (once) to word its first out-of-memory
    error: a request beyond the process's share, refused before any memory is taken, starts it now, in
    this process of its own (the grader never starts NVML: a forked sandbox would inherit its state).
    """
    global GPU_SHARE
    torch.cuda.set_per_process_memory_fraction(fraction)
    torch.zeros(1, device="cuda")
    total = torch.cuda.mem_get_info()[1]
    try:
        torch.empty(total, dtype=torch.uint8, device="cuda")
    except RuntimeError:  # torch.OutOfMemoryError, as intended
        pass
    GPU_SHARE = (int(total * fraction), total)


def out_of_gpu_memory(error: BaseException) -> bool:
    """Whether ``error``, or an exception it came from, is CUDA running out of memory."""
    for _ in range(8):
        text = str(error)
        if isinstance(error, torch.OutOfMemoryError) or "CUDA error: out of memory" in text or "ALLOC_FAILED" in text:
            return True
        error = error.__cause__ or error.__context__
        if error is None:
            return False
    return False


def share_note() -> str:
    if GPU_SHARE is None:
        return ""
    share, total = GPU_SHARE
    return (f"\nYour code ran out of its share of GPU memory: {share / 2**30:.1f} GiB (of the GPU's "
            f"{total / 2**30:.0f} GiB, shared with the other submissions graded at the same time).")


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
    for path, seconds in request["hung"].items():  # functions that ran out of time in an earlier test
        stop_running(namespace, path, seconds)
    signal.setitimer(signal.ITIMER_REAL, request["seconds"])
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
    except CallTimeout as error:
        signal.setitimer(signal.ITIMER_REAL, 0)
        return {"ok": False, "missing": False, "message": describe(error, with_error=False),
                "hung": hung_function(error, namespace)}
    except BaseException as error:  # noqa: BLE001
        signal.setitimer(signal.ITIMER_REAL, 0)
        name = getattr(error, "name", None) if isinstance(error, NameError) else None
        if name and name not in namespace:
            return {"ok": False, "missing": True, "message": f"the notebook does not define `{name}`"}
        if out_of_gpu_memory(error):  # the grader may run the test again if another sandbox took the memory
            return {"ok": False, "missing": False, "message": describe(error) + share_note(),
                    "out_of_gpu_memory": True}
        return {"ok": False, "missing": False, "message": describe(error)}
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def hung_function(error: CallTimeout, namespace: dict) -> str:
    """The innermost notebook function (``name``) or method (``Class.name``) that was running out of time."""
    for frame, _ in reversed(list(traceback.walk_tb(error.__traceback__))):
        code = frame.f_code
        if not code.co_filename.startswith("<cell"):
            continue
        if getattr(namespace.get(code.co_name), "__code__", None) is code:
            return code.co_name
        owner = type(frame.f_locals.get("self"))
        if namespace.get(owner.__name__) is owner and getattr(getattr(owner, code.co_name, None), "__code__",
                                                               None) is code:
            return f"{owner.__name__}.{code.co_name}"
    return ""


def stop_running(namespace: dict, path: str, seconds: float) -> None:
    """Replace the function (or method) at ``path`` by one that fails at once, saying why."""
    def timed_out(*args, **kwargs):
        raise TimeoutError(f"`{path}` did not finish within {seconds:g} s (time limit) in an earlier test, "
                           "so it is not run again")

    owner_name, _, name = path.rpartition(".")
    if not owner_name:
        namespace[name] = timed_out
    elif isinstance(namespace.get(owner_name), type):
        setattr(namespace[owner_name], name, timed_out)


def describe(error: BaseException, with_error: bool = True) -> str:
    """The exception with only the submission's own frames, as a student would want to read it."""
    frames = [frame for frame in traceback.extract_tb(error.__traceback__) if frame.filename.startswith("<cell")]
    lines = traceback.format_list(frames[-5:])
    if with_error:
        lines += traceback.format_exception_only(type(error), error)
    text = "".join(lines).strip()[:4000]
    full = isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EFBIG)  # a folder, or the file limit
    if full and not namespaces.STATE["unavailable"]:
        text += (f"\nYour code's own folder holds at most {namespaces.WORK_FILES:,} files and {FOLDER_MB} MB, its "
                 f"/dev/shm {namespaces.SHM_FILES} files and {FOLDER_MB} MB; a file may be {FOLDER_MB} MB at most.")
        if FOLDER_MB < Limits.file_mb:  # fitted into a small container (see limits.fit_to_container)
            text += (f" That is less than the usual {Limits.file_mb} MB: this grader runs in a container with little "
                     "memory, and what the two folders hold is memory.")
    return text


def plain(value, depth: int = 0):
    """Reduce a value to what the channel carries: tensors on the CPU, numbers, strings, containers."""
    if depth > MAX_DEPTH:
        return {"__unsupported__": "nesting too deep"}
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return value
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu()
        if tensor.layout != torch.strided or tensor.dtype not in channel.DTYPES.values():
            return {"__unsupported__": f"a {tensor.layout} tensor of {tensor.dtype}"}
        return tensor
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
