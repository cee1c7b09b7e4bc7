"""The grading workers, forked from a process that never held the class list.

For a class, ``grade`` forks :class:`Workers` before it reads the roster or the submitted folder: a process that
knows of no student. Once there is something to grade, that process imports torch and what running a suite needs,
once, and forks the workers, which share those pages. A worker is handed a submission by its number only: it forks
the grading process first, which reads its job from a file of its own (:func:`autograder.runner.grade_numbered`).
A sandbox, forked from that grading process, holds its own notebook and nothing of another student's: not the
class list, not a path, not a message.

One notebook graded alone (Gradescope's) is all the grader knows of: there the workers are forked from the grader
itself, which saves a process's memory in a small container.
"""
from __future__ import annotations

import functools
import gc
import multiprocessing
import multiprocessing.pool
import os
import signal
import sys
import traceback
from collections.abc import Iterator


class _Leave(BaseException):
    """The grader ended the workers early (an error, or Ctrl-C on its side)."""


class Workers:
    """The grading workers and the process they are forked from: forked now (``forked``), or this one."""

    def __init__(self, forked: bool = True) -> None:
        self._pool: multiprocessing.pool.Pool | None = None
        self._pid, self._started, self._pending = 0, False, 0
        if not forked:
            return
        sys.stdout.flush(), sys.stderr.flush()
        self._conn, theirs = multiprocessing.Pipe()
        self._pid = os.fork()
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
        """Import torch and fork ``workers`` workers; returns once they are started."""
        if self._pid:
            self._conn.send(workers)
            self._receive()
        else:
            self._pool = _started(workers)
        self._started = True

    def grade(self, folder: str, count: int, seconds: float) -> Iterator[tuple[int, int, str]]:
        """Grade jobs ``0`` to ``count - 1`` of ``folder`` (:func:`autograder.runner.write_jobs`), each within
        ``seconds``; yields each one's :func:`autograder.runner.grade_numbered` as it ends."""
        self._pending = count
        if self._pid:
            self._conn.send((folder, count, seconds))
        outcomes = (self._receive() for _ in range(count)) if self._pid else _outcomes(self._pool, folder, count,
                                                                                       seconds)
        for outcome in outcomes:
            yield outcome
            self._pending -= 1

    def call(self, function, *args):
        """``function(*args)`` where the workers were forked from, once they are done: torch and matplotlib are
        loaded there already (arguments and value pickled to and from a forked process)."""
        if not (self._pid and self._started):
            return function(*args)
        self._conn.send((function, args))
        done, value = self._receive()
        if not done:
            raise value
        return value

    def close(self) -> None:
        """End the workers (and the process they were forked from), all reaped: their CPU time is this process's
        children's. Those still grading are stopped, as a pool is at its end."""
        if self._pool:
            if self._pending:
                self._pool.terminate()
            self._pool.close()
            self._pool.join()
            self._pool = None
        if self._pid:
            self._conn.close()
            if self._pending:
                os.kill(self._pid, signal.SIGTERM)
            os.waitpid(self._pid, 0)
            self._pid = 0

    def _receive(self):
        try:
            return self._conn.recv()
        except EOFError:
            raise RuntimeError("the grading workers ended before their work was done") from None


def _started(workers: int) -> multiprocessing.pool.Pool:
    """Import, once, what every worker needs, then fork ``workers`` of them."""
    import torch

    from autograder import runner
    from autograder.sandbox.child import preload

    preload()
    runner.prepare()
    torch.set_num_threads(1)  # the trusted side's checks are small: threads only slow them down
    gc.freeze()  # all that exists now is shared by every fork: the collector must not copy its pages into each
    return multiprocessing.get_context("fork").Pool(workers, initializer=_quiet_on_ctrl_c)


def _outcomes(pool: multiprocessing.pool.Pool, folder: str, count: int, seconds: float) -> Iterator:
    from autograder import runner

    return pool.imap_unordered(functools.partial(runner.grade_numbered, folder, seconds), range(count))


def _serve(conn) -> None:
    """In the process forked by :class:`Workers`: wait to be told how many workers to start, start them, have them
    grade the jobs it is told of, saying each outcome, then do what the grader asks of it."""
    _quiet_on_ctrl_c()
    signal.signal(signal.SIGTERM, _leave)
    pool = _started(conn.recv())  # EOFError: nothing to grade
    with pool:
        conn.send("started")
        for outcome in _outcomes(pool, *conn.recv()):
            conn.send(outcome)
        pool.close()
        pool.join()
    while True:  # EOFError: nothing more
        function, args = conn.recv()
        try:
            conn.send((True, function(*args)))
        except Exception as error:  # noqa: BLE001 - raised in the grader
            conn.send((False, error))


def _quiet_on_ctrl_c() -> None:
    """A worker (and what it forks) ends at Ctrl-C without a traceback: the grader's process says it once."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _leave(signum, frame):
    raise _Leave()
