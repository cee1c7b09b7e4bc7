"""The grader's handle on one submission's sandbox: start it, call into it, kill it.

A sandbox is a child process running the submission's cells (:mod:`.child`). The first one
and a few spares are forked from a clean process (torch already imported, no hidden test
loaded yet); a replacement after a timeout or a crash is a spare, or else a fresh interpreter,
so the suite's memory never reaches submission code. Every failure caused by the submission is raised as a
:class:`SubmissionError`, which the suite's tests report as a failed test with its message.

A function that runs out of time is remembered: in this sandbox and every replacement it fails at
once from then on, so one hang costs one call's time and the independent functions are still graded.

On CUDA, the grader's GPU memory watcher (:mod:`.gpu_watch`) watches the sandbox's real GPU
memory and stops it past its share; its later requests then fail at once. A CUDA out-of-memory error
is remembered, so that a test that failed only because another sandbox took the memory can run again
(:meth:`Sandbox.memory_taken_by_another`).
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

from autograder.sandbox import gpu_watch
from autograder.sandbox import channel, child, namespaces, trusted
from autograder.sandbox.confine import kill_every_process, readable_paths, sandbox_uid
from autograder.sandbox.limits import Limits

SPARES = 2      # clean replacements forked up front; later ones start a fresh interpreter
MAX_STARTS = 16
GRACE = 2.0     # seconds a request may overrun its limit (the sandbox stops it itself) before it is killed


class SubmissionError(AssertionError):
    """The submission failed: it raised, is missing a name, timed out, crashed or sent junk."""


def well_formed(reply) -> bool:
    """A reply as :func:`.child.answer` makes it (a forged one may be anything)."""
    if not isinstance(reply, dict):
        return False
    if reply.get("ok") is True:
        return "value" in reply
    return (reply.get("ok") is False and isinstance(reply.get("message"), str) and "missing" in reply
            and isinstance(reply.get("hung", ""), str))


class Sandbox:
    """Runs ``cells`` (a list of ``(index, source)``) in a confined process, on demand.

    ``watch``: the GPU memory watcher's folder, for a CUDA sandbox of a grading run. ``hung``: the
    functions that ran out of time, shared with the submission's other sandbox.
    """

    def __init__(self, cells: list[tuple[int, str]], *, device: str = "cpu", limits: Limits = Limits(),
                 load_error: str = "", watch: Path | None = None, hung: dict[str, float] | None = None) -> None:
        self.cells, self.device, self.limits, self.watch = cells, device, limits, watch
        self.broken = load_error  # set: every request fails at once with this message
        self.deadline = time.monotonic() + limits.submission_seconds
        self.readable = readable_paths()
        self.uid = sandbox_uid(device)
        self.starts = 0
        self.notes: list[str] = []  # warnings, cell errors, crashes: shown in the feedback
        self.hung: dict[str, float] = {} if hung is None else hung  # function -> the time limit it ran past
        self.limits_hit: set[str] = set()  # fields of `limits` that stopped something (they decide regrades)
        self._output = bytearray()
        self._dropped = 0
        self._lock = threading.Lock()
        self._pid = 0
        self._sock: socket.socket | None = None
        self._spares: list[tuple[int, socket.socket, int, str]] = []
        self._workdir = ""
        self._memory_exceeded = False
        self._starting: threading.Thread | None = None
        self._watch_key = ""                    # this process's registration with the GPU memory watcher
        self._watch_keys: list[str] = []        # every one this sandbox had
        self._gpu_stop: gpu_watch.Event | None = None  # the watcher stopped this process
        self._out_of_gpu_memory: list[tuple[float, float]] = []  # requests that ended so, not yet looked into
        self._broken_by_full_gpu = ""           # `broken` when CUDA could not start on a full GPU

    # -- what tests use -------------------------------------------------------------------
    def call(self, name: str, *args, timeout: float | None = None, **kwargs):
        """``name(*args, **kwargs)`` in the submission; returns its value as plain data."""
        return self._request({"op": "call", "name": name, "args": list(args), "kwargs": kwargs},
                             timeout, what=f"`{name}`")

    def run(self, code: str, *, timeout: float | None = None, what: str = "the grader's check", **inputs):
        """Execute ``code`` with the notebook's names and ``inputs`` in scope; returns its ``result``."""
        return self._request({"op": "run", "code": code, "inputs": inputs}, timeout, what=what)

    @property
    def output(self) -> str:
        with self._lock:
            text = self._output.decode("utf-8", "replace")
        return text + (f"\n[... {self._dropped:,} more bytes of output dropped]" if self._dropped else "")

    def start(self, wait: bool = True) -> None:
        """Run the notebook now, before the suite is imported: this sandbox and its spares
        (replacements after a crash or a timeout) are forked while this process is clean. With
        ``wait=False`` the notebook runs in the background; the first request waits for it."""
        if self.broken:
            return
        self._spares = [self._fork(clean=True) for _ in range(1 + SPARES)]
        if wait:
            self._first_start()
        else:
            self._starting = threading.Thread(target=self._first_start, daemon=True)
            self._starting.start()

    def _first_start(self) -> None:
        try:
            self._request_start()
        except SubmissionError:
            pass  # `broken` holds the reason; every test will fail with it

    def memory_taken_by_another(self) -> str:
        """Why this sandbox's CUDA out-of-memory errors since the last look were not its own doing, or ''.

        They were not when another sandbox on the GPU was past its share meanwhile (the watcher saw
        it). This returns once the GPU has that sandbox's memory back; a start that failed for it will be
        tried again by the next request.
        """
        pending, self._out_of_gpu_memory = self._out_of_gpu_memory, []
        if not (pending and self.watch):
            return ""
        hog = gpu_watch.past_share_between(self.watch, min(b for b, _ in pending), max(e for _, e in pending),
                                           self._watch_keys)
        if hog is None:
            return ""
        if self.broken and self.broken == self._broken_by_full_gpu:
            self.broken = ""
        return f"it ran out of GPU memory while another submission's sandbox held {hog.describe()}"

    def restart(self) -> None:
        """Stop the process now (the grader's side of a request may have been cut short); the next request
        starts a fresh one."""
        self._wait_for_start()
        if self._pid:
            self._stop()

    def close(self) -> None:
        self._wait_for_start()
        if self._pid:
            self._stop()
        for pid, sock, read_end, workdir in self._spares:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            sock.close()
            os.close(read_end)
            shutil.rmtree(workdir, ignore_errors=True)
        self._spares = []

    # -- lifecycle --------------------------------------------------------------------------
    def _wait_for_start(self) -> None:
        if self._starting is not None and self._starting is not threading.current_thread():
            self._starting.join()
            self._starting = None

    def _request_start(self) -> None:
        self._wait_for_start()
        if not self._pid:
            self._start()

    def _request(self, message: dict, timeout: float | None, what: str):
        self._request_start()
        deadline = self._deadline(timeout)
        limit = timeout or self.limits.call_seconds
        message["seconds"] = max(deadline - time.monotonic(), 0.001)  # the sandbox stops the code itself then
        message["hung"] = self.hung
        began = time.monotonic()
        try:
            self._sock.settimeout(max(deadline + GRACE - time.monotonic(), 0.001))
            self._sock.sendall(channel.encode(message))
            reply = channel.recv(self._sock, deadline + GRACE)
        except (channel.ChannelTimeout, TimeoutError):  # it did not stop: a C loop, or the code caught the signal
            self._stop()
            if message["op"] == "call":
                self.hung[message["name"]] = limit
            raise SubmissionError(self._timeout_message(what, timeout)) from None
        except (channel.ChannelClosed, OSError):
            ended = self._stop()
            self.notes.append(ended)
            if self._gpu_stop:  # so that it cannot take the GPU's memory again
                self.broken = f"not run: in an earlier test the notebook's process held {self._gpu_stop.describe()}"
            raise SubmissionError(f"{what} did not return: {ended}") from None
        except channel.ChannelError as error:
            self._stop()
            raise SubmissionError(f"{what} sent back {error}") from None
        if not well_formed(reply):
            self._stop()
            raise SubmissionError(f"{what} sent back a malformed reply")
        if reply.get("out_of_gpu_memory") is True:
            self._out_of_gpu_memory.append((began, time.monotonic()))
        if not reply["ok"] and "hung" in reply:
            raise SubmissionError(self._stopped(reply, what, timeout, limit))
        if not reply["ok"]:
            raise SubmissionError(reply["message"] if reply["missing"] else f"{what} raised an exception:\n"
                                  f"{reply['message']}")
        return reply["value"]

    def _stopped(self, reply: dict, what: str, timeout: float | None, limit: float) -> str:
        """A request the sandbox stopped at its time limit: remember the function, restart clean."""
        self._stop()  # along with whatever the code started
        message = self._timeout_message(what, timeout)
        if reply["message"]:
            message += f"; it was stopped here:\n{reply['message']}"
        if reply["hung"] and not self.broken:
            self.hung[reply["hung"]] = limit
            message += f"\n`{reply['hung']}` is not run again in later tests, so that they finish in time"
        return message

    def _deadline(self, timeout: float | None) -> float:
        if self.broken or self._out_of_time():
            raise SubmissionError(self.broken)
        return min(time.monotonic() + (timeout or self.limits.call_seconds), self.deadline)

    def _out_of_time(self) -> bool:
        """True (and ``broken`` set) once the submission's whole time budget is spent."""
        if time.monotonic() < self.deadline:
            return False
        self.limits_hit.add("submission_seconds")
        self.broken = f"the submission used up its time limit ({self.limits.submission_seconds:g} s for all its tests)"
        return True

    def _timeout_message(self, what: str, timeout: float | None) -> str:
        if self._out_of_time():
            return self.broken
        if timeout is None:  # a limit a test sets itself belongs to the suite
            self.limits_hit.add("call_seconds")
        return f"{what} did not finish within {timeout or self.limits.call_seconds:g} s (time limit)"

    def _fork(self, clean: bool) -> tuple[int, socket.socket, int, str]:
        """A new sandbox process waiting for its instructions: (pid, socket, output pipe, its own folder)."""
        parent, sandbox_end = socket.socketpair()
        read_end, write_end = os.pipe()
        workdir = tempfile.mkdtemp(prefix="sandbox-")  # stays empty here: the sandbox has a tmpfs on it
        if self.uid is not None:
            os.chown(workdir, self.uid, self.uid)
        pid = os.fork()
        if pid == 0:
            try:
                trusted.lift()
                parent.close()
                os.close(read_end)
                if clean:  # forked while no hidden test is in this process's memory
                    child.main(sandbox_end.fileno(), write_end)
                else:  # a fresh interpreter: nothing of this process's memory comes along
                    # Its namespaces are entered now, while it may mount (a user namespace's capabilities are lost
                    # when it runs another program); this process stays outside.
                    namespaces.enter(self.limits.file_mb * 2**20, workdir, self.uid)
                    os.setsid()
                    os.set_inheritable(sandbox_end.fileno(), True)
                    os.set_inheritable(write_end, True)
                    os.execv(sys.executable, [sys.executable, "-m", "autograder.sandbox", str(sandbox_end.fileno()),
                                              str(write_end), json.dumps(namespaces.STATE)])
            except BaseException:  # noqa: BLE001 - the sandbox could not set itself up: say why in its output
                traceback.print_exc()
            finally:
                os._exit(70)
        sandbox_end.close()
        os.close(write_end)
        return pid, parent, read_end, workdir

    def _start(self) -> None:
        deadline = self._deadline(self.limits.start_seconds)
        if self.starts >= MAX_STARTS:
            self.broken = f"the notebook's process had to be restarted {MAX_STARTS} times; grading stopped"
            raise SubmissionError(self.broken)
        self.starts += 1
        began = time.monotonic()
        self._pid, self._sock, read_end, self._workdir = self._spares.pop(0) if self._spares else self._fork(False)
        parent = self._sock
        threading.Thread(target=self._collect_output, args=(read_end,), daemon=True).start()
        cpu_seconds = int(self.deadline - time.monotonic()) + 5
        try:
            channel.send(parent, {"cells": self.cells, "limits": dataclasses.asdict(self.limits), "workdir": self._workdir,
                                  "uid": self.uid, "readable": self.readable, "cpu_seconds": cpu_seconds,
                                  "device": self.device})
            if self.device == "cuda":  # sent before the submission's first cell: still the grader's own numbers
                self._watch_gpu(channel.recv(parent, deadline), began)
            ready = channel.recv(parent, deadline)
        except channel.ChannelTimeout:
            self._stop()
            if not self._out_of_time():  # else `broken` says the submission's own limit ran out
                self.limits_hit.add("start_seconds")
                self.broken = ("running the notebook's cells did not finish within "
                               f"{self.limits.start_seconds:g} s (time limit); does a cell train or loop forever?")
            raise SubmissionError(self.broken) from None
        except (channel.ChannelClosed, channel.ChannelError, OSError, AttributeError, TypeError, ValueError):
            self.broken = f"running the notebook's cells failed: {self._stop()}"
            raise SubmissionError(self.broken) from None
        for note in ready["warnings"] + ready["cell_errors"]:
            if note not in self.notes:
                self.notes.append(note)

    def _stop(self) -> str:
        """Kill the sandbox and everything it started; returns how it ended, for messages."""
        if not self._pid:
            return "the notebook's process is not running"
        self._kill_all()
        self._gpu_stop = None
        if self._watch_key:
            gpu_watch.unregister(self.watch, self._watch_key)
            self._gpu_stop = gpu_watch.stopped(self.watch, self._watch_key)
            self._watch_key = ""
        _, status = os.waitpid(self._pid, 0)
        self._pid = 0
        self._sock.close()
        shutil.rmtree(self._workdir, ignore_errors=True)
        return f"the notebook's process {self._describe_end(status)}"

    def _kill_all(self) -> None:
        if self.uid is not None:  # every process of the sandbox's own uid, wherever it went
            kill_every_process(self.uid)
        for kill in (os.kill, os.killpg):  # the sandbox itself, then its process group
            try:
                kill(self._pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _describe_end(self, status: int) -> str:
        if self._gpu_stop:
            return f"was stopped: it held {self._gpu_stop.describe()}"
        if self._memory_exceeded:
            self.limits_hit.add("memory_mb")
            return f"was stopped: it used more than {self.limits.memory_mb} MB of memory"
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            if sig == signal.SIGXCPU:  # its CPU time is what was left of the submission's time
                self.limits_hit.add("submission_seconds")
                return "was stopped: it used up its CPU time"
            if sig == signal.SIGKILL:
                return "was killed (SIGKILL: the grader's time limit, the memory limit or the system)"
            return f"was killed by signal {signal.Signals(sig).name}"
        code = os.waitstatus_to_exitcode(status)
        return f"exited with status {code} (does the notebook call sys.exit, os._exit or exit?)"

    # -- watchers ---------------------------------------------------------------------------
    def _watch_gpu(self, started: dict, began: float) -> None:
        """CUDA started (or not) in the sandbox: watch its heap here, its GPU memory in the grader's watcher."""
        if "cuda_error" in started:
            self._stop()
            self.broken = f"CUDA did not start for the notebook: {started['cuda_error']}"
            if started.get("out_of_gpu_memory") is True:
                self._out_of_gpu_memory.append((began, time.monotonic()))
                self._broken_by_full_gpu = self.broken
            raise SubmissionError(self.broken)
        pid = int(started["pid"])  # the sandbox's own process, as this machine's /proc and NVML see it
        threading.Thread(target=self._watch_memory, args=(self._pid, pid, int(started["anonymous_memory"])),
                         daemon=True).start()
        if self.watch:
            self._watch_key = gpu_watch.register(self.watch, pid, self.uid, int(started["gpu_share"]))
            self._watch_keys.append(self._watch_key)

    def _collect_output(self, fd: int) -> None:
        with os.fdopen(fd, "rb", buffering=0) as pipe:
            while chunk := pipe.read(65536):
                with self._lock:
                    room = self.limits.output_bytes - len(self._output)
                    self._output += chunk[:max(room, 0)]
                    self._dropped += max(len(chunk) - max(room, 0), 0)

    def _watch_memory(self, handle: int, pid: int, baseline: int) -> None:
        """On CUDA (no address-space limit): kill a sandbox whose heap grows past the cap, while ``handle`` (the
        process this grader forked) is the sandbox's; ``pid`` is the sandbox's own process.

        ``baseline`` is the heap right after CUDA started, before any submission code ran; the
        CUDA libraries are file-backed and not counted.
        """
        while self._pid == handle:
            try:
                used = child.anonymous_memory(pid) - baseline
            except (OSError, ValueError, IndexError):
                return
            if used > self.limits.memory_mb * 2**20:
                self._memory_exceeded = True
                self._kill_all()
                return
            time.sleep(0.05)
