"""The grading workers, forked from a process that never held the class list.

``grade`` forks :class:`Workers` before it reads the roster or the submitted folder: a process that knows of no
student. Once there is something to grade, that process imports torch and what running a suite needs, once, and
forks the workers, which share those pages. A worker is handed a submission by its number only: it forks the
grading process first, which reads its job from a file of its own (:func:`autograder.runner.grade_numbered`). A
sandbox, forked from that grading process, holds its own notebook and nothing of another student's: not the class
list, not a path, not a message.
"""
from __future__ import annotations

import functools
import gc
import multiprocessing
import os
import signal
import sys
import traceback
from collections.abc import Iterator


class _Leave(BaseException):
    """The grader ended the workers early (an error, or Ctrl-C on its side)."""


class Workers:
    """The process the grading workers are forked from, and the grader's end of the pipe to it."""

    def __init__(self) -> None:
        sys.stdout.flush(), sys.stderr.flush()
        self._conn, theirs = multiprocessing.Pipe()
        self._pid, self._started, self._pending = os.fork(), False, 0
        if self._pid == 0:
            code = 1
            try:
                self._conn.close()
                _serve(theirs)
                code = 0
            except (_Leave, EOFError, BrokenPipeError):  # the grader is gone or ended them: nothing to say
                code = 0
            except BaseException:  # noqa: BLE001 - said on stderr; the grader says the workers ended
                traceback.print_exc()
            finally:
                os._exit(code)
        theirs.close()

    def start(self, workers: int) -> None:
        """Import torch there and fork ``workers`` workers from it; returns once they are started."""
        self._conn.send(workers)
        self._receive()
        self._started = True

    def grade(self, folder: str, count: int, seconds: float) -> Iterator[tuple[int, int, str]]:
        """Grade jobs ``0`` to ``count - 1`` of ``folder`` (:func:`autograder.runner.write_jobs`), each within
        ``seconds``; yields each one's :func:`autograder.runner.grade_numbered` as it ends."""
        self._conn.send((folder, count, seconds))
        self._pending = count
        while self._pending:
            yield self._receive()
            self._pending -= 1

    def call(self, function, *args):
        """``function(*args)``, once the workers are done, in their process, where torch and matplotlib are
        loaded already (arguments and value pickled); here when no worker was started."""
        if not self._started:
            return function(*args)
        self._conn.send((function, args))
        done, value = self._receive()
        if not done:
            raise value
        return value

    def close(self) -> None:
        """End that process and its workers, all reaped (their CPU time is this process's children's)."""
        if self._pid:
            self._conn.close()
            if self._pending:  # jobs are still running: stopped, as a pool is at its end
                os.kill(self._pid, signal.SIGTERM)
            os.waitpid(self._pid, 0)
            self._pid = 0

    def _receive(self):
        try:
            return self._conn.recv()
        except EOFError:
            raise RuntimeError("the grading workers ended before their work was done") from None


def _serve(conn) -> None:
    """In the process forked by :class:`Workers`: wait to be told how many workers to start, start them, then have
    them grade the jobs it is told of, saying each outcome."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C ends the workers quietly: the grader says it once
    signal.signal(signal.SIGTERM, _leave)
    workers = conn.recv()  # EOFError: nothing to grade
    import torch

    from autograder import runner
    from autograder.sandbox.child import preload

    preload()
    runner.prepare()
    torch.set_num_threads(1)  # the trusted side's checks are small: threads only slow them down
    gc.freeze()  # all that exists now is shared by every fork: the collector must not copy its pages into each
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        conn.send("started")
        folder, count, seconds = conn.recv()
        for outcome in pool.imap_unordered(functools.partial(runner.grade_numbered, folder, seconds), range(count)):
            conn.send(outcome)
        pool.close()
        pool.join()
    while True:  # what the grader asks of this process now that its workers are done (EOFError: nothing)
        function, args = conn.recv()
        try:
            conn.send((True, function(*args)))
        except Exception as error:  # noqa: BLE001 - raised in the grader
            conn.send((False, error))


def _leave(signum, frame):
    raise _Leave()
