"""The GPU memory watcher's decisions, on real processes, with only NVML's reading replaced.

``FakeNvml`` plays NVML's part (``nvmlDeviceGetComputeRunningProcesses``): it reports the GPU memory a
test says each process holds, for as long as that process is alive, as the driver would. Everything
else is the watcher's own: the sandboxes registered by the workers' side, the processes attributed
through /proc, the decision, the kill, the shared record, and the re-run rule that reads it.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from autograder.sandbox import gpu_watch
from autograder.sandbox.gpu_watch import CONTEXT_ALLOWANCE, GiB, Watcher
from autograder.plugin import GradingPlugin
from autograder.sandbox import Limits, Sandbox
from autograder.sandbox.confine import sandbox_uid
from autograder.sandbox.limits import fit_to_gpu

SHARE = 4 * GiB


class FakeNvml:
    """GPU memory per pid, as the test sets it, reported while the process is alive (not a zombie)."""

    def __init__(self) -> None:
        self.usage: dict[int, int] = {}

    def used(self) -> dict[int, int]:
        return {pid: used for pid, used in self.usage.items() if alive(pid)}


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def sandbox_process(*args: str) -> subprocess.Popen:
    """A stand-in for a sandbox: a session leader, as the real one is."""
    return subprocess.Popen([sys.executable, "-c", *args] if args else ["sleep", "60"], start_new_session=True,
                            stdout=subprocess.PIPE, text=True)


@pytest.fixture
def processes():
    started: list[subprocess.Popen] = []
    yield started
    for process in started:
        process.kill()
        process.wait()


@pytest.fixture
def watched(tmp_path):
    """(state folder, fake NVML, watcher)"""
    nvml = FakeNvml()
    return tmp_path, nvml, Watcher(nvml, tmp_path)


def test_a_sandbox_past_its_share_is_stopped_and_the_record_says_why(watched, processes):
    state, nvml, watcher = watched
    hog, honest = sandbox_process(), sandbox_process()
    processes += [hog, honest]
    hog_key = gpu_watch.register(state, hog.pid, None, SHARE)
    gpu_watch.register(state, honest.pid, None, SHARE)
    nvml.usage = {hog.pid: SHARE + CONTEXT_ALLOWANCE, honest.pid: 2 * GiB}  # its share and CUDA's own: allowed
    watcher.poll()
    assert hog.poll() is None and gpu_watch.events(state) == []
    before = time.monotonic()
    nvml.usage[hog.pid] = SHARE + CONTEXT_ALLOWANCE + 1
    watcher.poll()
    assert hog.wait(timeout=5) == -9 and honest.poll() is None
    event = gpu_watch.stopped(state, hog_key)
    assert event.used == SHARE + CONTEXT_ALLOWANCE + 1 and event.share == SHARE and event.pids == [hog.pid]
    assert event.since <= before <= event.seen <= event.stopped and event.released is None
    assert event.describe() == "5.0 GiB of GPU memory, more than its share of 4.0 GiB"
    watcher.poll()  # the driver has the memory back once the process is gone
    assert gpu_watch.stopped(state, hog_key).released >= event.stopped


def test_processes_a_sandbox_started_count_towards_its_share(watched, processes):
    """A second process, even one in a session of its own, is the sandbox's: found by its ancestry, killed too."""
    state, nvml, watcher = watched
    sandbox = sandbox_process("import subprocess, time\n"
                              "child = subprocess.Popen(['sleep', '60'], start_new_session=True)\n"
                              "print(child.pid, flush=True)\ntime.sleep(60)")
    processes.append(sandbox)
    child = int(sandbox.stdout.readline())
    key = gpu_watch.register(state, sandbox.pid, None, SHARE)
    nvml.usage = {sandbox.pid: 3 * GiB, child: 2 * GiB + CONTEXT_ALLOWANCE}
    watcher.poll()
    assert sandbox.wait(timeout=5) == -9
    for _ in range(100):  # reparented to init, which reaps it
        if not alive(child):
            break
        time.sleep(0.05)
    assert not alive(child)
    assert sorted(gpu_watch.stopped(state, key).pids) == sorted([sandbox.pid, child])


@pytest.mark.skipif(os.geteuid() != 0, reason="a sandbox uid of its own needs a grader running as root")
def test_a_root_graders_sandbox_is_every_process_of_its_uid(watched, processes):
    """A process that left the sandbox's tree (double fork, setsid) still runs as the sandbox's uid."""
    state, nvml, watcher = watched
    uid = 100_000 + 2**23 + os.getpid() % 1000  # far from the grader's sandbox uids
    sandbox, escaped = (subprocess.Popen(["sleep", "60"], user=uid, start_new_session=True) for _ in range(2))
    processes += [sandbox, escaped]
    key = gpu_watch.register(state, sandbox.pid, uid, SHARE)
    nvml.usage = {escaped.pid: SHARE + CONTEXT_ALLOWANCE + GiB}
    watcher.poll()
    assert escaped.wait(timeout=5) == -9 and sandbox.wait(timeout=5) == -9
    assert gpu_watch.stopped(state, key).pids == [escaped.pid]


def test_processes_of_no_sandbox_are_left_alone(watched, processes):
    state, nvml, watcher = watched
    sandbox, stranger = sandbox_process(), sandbox_process()
    processes += [sandbox, stranger]
    gpu_watch.register(state, sandbox.pid, None, SHARE)
    nvml.usage = {stranger.pid: 100 * GiB, os.getpid(): 100 * GiB}
    watcher.poll()
    assert stranger.poll() is None and gpu_watch.events(state) == []


def test_an_unregistered_sandbox_is_no_longer_watched(watched, processes):
    state, nvml, watcher = watched
    sandbox = sandbox_process()
    processes.append(sandbox)
    gpu_watch.unregister(state, gpu_watch.register(state, sandbox.pid, None, SHARE))
    nvml.usage = {sandbox.pid: 100 * GiB}
    watcher.poll()
    assert sandbox.poll() is None


def test_past_share_between_waits_for_a_look_after_the_moment_and_for_the_memory(watched, processes):
    """What a worker asks after a CUDA out-of-memory error: was another sandbox past its share meanwhile?"""
    state, nvml, watcher = watched
    hog = sandbox_process()
    processes.append(hog)
    hog_key = gpu_watch.register(state, hog.pid, None, SHARE)
    watcher.poll()
    looking = threading.Event()
    threading.Thread(target=watcher.run, args=(lambda: not looking.is_set(),), daemon=True).start()
    try:
        start = time.monotonic()
        nvml.usage = {hog.pid: 10 * GiB}  # the hog takes the GPU at once; the watcher has not looked yet
        end = time.monotonic()
        event = gpu_watch.past_share_between(state, start, end, own=["mine"])
        assert event is not None and event.key == hog_key and event.released is not None
        assert gpu_watch.past_share_between(state, start, end, own=[hog_key]) is None  # its own doing
        later = time.monotonic()
        assert gpu_watch.past_share_between(state, later, later + 0.01, own=["mine"]) is None  # after it was gone
    finally:
        looking.set()


def test_fit_to_gpu_promises_no_more_than_the_gpu_holds():
    assert fit_to_gpu(Limits(), 1).gpu_fraction == fit_to_gpu(Limits(), 2).gpu_fraction == 0.4
    assert fit_to_gpu(Limits(), 4).gpu_fraction == pytest.approx(0.9 / 4)


# -- the re-run rule and the split of a CUDA grading run, with real sandboxes on the CPU --------------------
# The sandbox's CUDA out-of-memory error is raised by the notebook itself here (torch's own exception class);
# the rest is the grader's real path: the sandbox's record, the watcher's record, the plugin's re-run.
OOM_ONCE = [(1, """
import torch, time
calls = []
def fill(seconds):
    calls.append(1)
    print("filling", flush=True)
    time.sleep(seconds)
    if len(calls) == 1:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    return len(calls)
""")]
SUITE = '''
def test_fill(submission):
    """fill: runs when the GPU has room"""
    assert submission.call("fill", 0.5) == 2, "fill ran out of memory"
'''


def run_suite(tmp_path: Path, plugin: GradingPlugin, source: str) -> None:
    (tmp_path / "suite").mkdir()
    (tmp_path / "suite" / f"test_{tmp_path.name}.py").write_text(source)  # a module name of its own
    (tmp_path / "suite" / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    code = pytest.main([str(tmp_path / "suite"), "-p", "no:terminal", "--rootdir", str(tmp_path / "suite")],
                       plugins=[plugin])
    assert code in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)


@pytest.mark.parametrize("hog_during_test", [True, False])
def test_a_test_that_ran_out_of_gpu_memory_while_another_sandbox_hogged_runs_again(tmp_path, processes,
                                                                                    hog_during_test):
    state = tmp_path / "watch"
    nvml = FakeNvml()
    watcher = Watcher(nvml, state)
    done = threading.Event()
    threading.Thread(target=watcher.run, args=(lambda: not done.is_set(),), daemon=True).start()
    hog = sandbox_process()
    processes.append(hog)
    gpu_watch.register(state, hog.pid, None, SHARE)
    box = Sandbox(OOM_ONCE, watch=state)
    box.start()
    if hog_during_test:  # the hog takes the GPU while `fill` runs; the watcher stops it
        threading.Thread(target=hog_when_filling, args=(box, nvml, hog.pid), daemon=True).start()
    plugin = GradingPlugin(box, "cpu")
    try:
        run_suite(tmp_path, plugin, SUITE)
    finally:
        box.close()
        done.set()
    [result] = plugin.results
    if hog_during_test:
        assert result.status == "passed", result.output
        [rerun] = plugin.reruns
        assert rerun["test"] == "fill: runs when the GPU has room"
        assert rerun["reason"] == ("it ran out of GPU memory while another submission's sandbox held 20.0 GiB of GPU "
                                   "memory, more than its share of 4.0 GiB; that sandbox was stopped and this test "
                                   "ran again")
    else:  # its own out-of-memory error: it stands
        assert result.status == "failed" and "OutOfMemoryError" in result.output and not plugin.reruns


def hog_when_filling(box: Sandbox, nvml: FakeNvml, hog: int) -> None:
    for _ in range(500):
        if "filling" in box.output:
            nvml.usage[hog] = 20 * GiB
            return
        time.sleep(0.01)


SPLIT_CELLS = [(1, """
import os, time
def where():
    return os.getcwd()  # the sandbox's own folder: which sandbox this is
def hang():
    while True:
        time.sleep(0.01)
""")]
SPLIT_SUITE = '''
import time

import pytest

order = []


@pytest.mark.cuda
def test_on_gpu(submission):
    """on the GPU: runs in the CUDA sandbox, after the others"""
    order.append("gpu")
    assert submission.call("where") == submission._workdir and len(order) == 3, order


def test_hangs(submission):
    """hang: stopped at its time limit"""
    order.append("hang")
    submission.call("hang", timeout=0.5)


@pytest.mark.cuda
def test_hung_elsewhere(submission):
    """hang, on the GPU: fails at once, it ran out of time in the CPU sandbox"""
    started = time.monotonic()
    try:
        submission.call("hang", timeout=5)
    finally:
        assert time.monotonic() - started < 2


def test_on_cpu(submission):
    """on the CPU: runs in the CPU sandbox"""
    order.append("cpu")
    assert submission.call("where") == submission._workdir
'''


def test_a_cuda_run_gives_the_cuda_tests_a_sandbox_of_their_own_started_in_the_background(tmp_path):
    """Item 5's logic on the CPU: the second sandbox stands in for the CUDA one (device "cuda" for the plugin)."""
    cpu = Sandbox(SPLIT_CELLS)
    gpu = Sandbox(SPLIT_CELLS, hung=cpu.hung)
    gpu.uid = sandbox_uid("cuda")  # as the CUDA sandbox has: killing one never touches the other
    cpu.start()
    gpu.start(wait=False)
    plugin = GradingPlugin(cpu, "cuda", gpu)
    try:
        run_suite(tmp_path, plugin, SPLIT_SUITE)
    finally:
        cpu.close()
        gpu.close()
    names = [t.name.split(":")[0] for t in plugin.results]
    assert names == ["on the GPU", "hang", "hang, on the GPU", "on the CPU"]  # the suite's order, whatever ran when
    status = {t.name.split(":")[0]: (t.status, t.output) for t in plugin.results}
    assert status["on the GPU"][0] == status["on the CPU"][0] == "passed", status
    assert status["hang"][0] == "failed" and "time limit" in status["hang"][1]
    assert status["hang, on the GPU"][0] == "failed" and "in an earlier test" in status["hang, on the GPU"][1]
