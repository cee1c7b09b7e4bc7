"""Bounds on the trusted side itself: what grading one submission may cost the process that runs its suite.

Whatever a submission sends is bounded before it is parsed (:mod:`.channel`); these caps catch the rest.
The grading process (a fork per submission) gets an address-space cap (:data:`MEMORY_MB` beyond what it
had when it forked) and CPU time per test (:data:`TEST_SECONDS`) within :data:`SUBMISSION_SECONDS` for the
submission. A test whose checks run past either fails with a message saying so (an allocation fails:
``MemoryError``; the CPU: :class:`GraderBoundExceeded`, raised by ``SIGXCPU`` while a test's body runs,
never inside pytest's own work); the next test starts with its own CPU time, and its sandboxes afresh.
(What C code of the grader might spend past them, the wall-clock deadline of the grading fork stops.) Both caps are soft limits: the sandboxes forked from this process lift them
(:func:`lift`), then take their own.
"""
from __future__ import annotations

import contextlib
import math
import resource
import signal

MEMORY_MB = 1024        # honest submissions: about 130 MB (cnn_vs_fc, whose checks evaluate a net on test images)
TEST_SECONDS = 30       # CPU for one test's checks; honest submissions: about 1 s for all their tests
SUBMISSION_SECONDS = 120
_state = {"end": 0, "checking": False}  # the process's CPU time (s) at which the budget ends; a test's body runs


class GraderBoundExceeded(AssertionError):
    """The grader's own work on this test went past a bound on what a submission may cost it."""


def cpu_used() -> float:
    return usage()["cpu_seconds"]


def usage() -> dict:
    """What this process has used so far: CPU time (s) and its peak resident memory (MB, with the pages it
    shares with the process it was forked from)."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    return {"cpu_seconds": round(used.ru_utime + used.ru_stime, 3), "peak_mb": round(used.ru_maxrss / 1024, 1)}


def address_space_in_use() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def bound() -> None:
    """Cap this (grading) process: memory now, CPU from here on (a test at a time: :func:`next_test`). Only soft
    limits: the sandboxes it forks must get theirs back, and raising a hard limit takes a capability that a
    container's root often lacks."""
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (address_space_in_use() + MEMORY_MB * 2**20, hard))
    _state["end"] = math.ceil(cpu_used()) + SUBMISSION_SECONDS
    signal.signal(signal.SIGXCPU, _out_of_cpu)
    next_test()


def next_test() -> None:
    """The next test may use :data:`TEST_SECONDS` of CPU, within what is left of the submission's budget."""
    if _state["end"]:
        soft = min(math.ceil(cpu_used()) + TEST_SECONDS, _state["end"])
        resource.setrlimit(resource.RLIMIT_CPU, (soft, resource.getrlimit(resource.RLIMIT_CPU)[1]))


@contextlib.contextmanager
def checking():
    """While a test's body runs: a CPU bound reached then fails the test."""
    _state["checking"] = True
    try:
        yield
    finally:
        _state["checking"] = False


def lift() -> None:
    """In a process forked from the grading process: its soft caps and the SIGXCPU handler are not its own."""
    signal.signal(signal.SIGXCPU, signal.SIG_DFL)
    for which in (resource.RLIMIT_AS, resource.RLIMIT_CPU):
        _, hard = resource.getrlimit(which)
        resource.setrlimit(which, (hard, hard))


def _out_of_cpu(signum, frame):
    soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    resource.setrlimit(resource.RLIMIT_CPU, (hard, hard))  # no more signals until the next test
    if not _state["checking"]:  # pytest's own work, not a check of what the submission returned
        return
    if soft >= _state["end"]:
        raise GraderBoundExceeded(f"checking this submission used up the {SUBMISSION_SECONDS} s of CPU time "
                                  "the grader allows itself for one submission")
    raise GraderBoundExceeded(f"checking what the notebook returned took the grader more than {TEST_SECONDS} s "
                              "of CPU time, a bound on what one test of a submission may cost it")
