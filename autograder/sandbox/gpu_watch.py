"""The GPU memory watcher: what each CUDA sandbox really holds on the GPU, seen from outside, and a stop past its share.

PyTorch's per-process fraction is a promise that a sandbox's own code can lift
(``set_per_process_memory_fraction(1.0)``) or walk around (a raw ``cudaMalloc`` through ctypes). NVML
knows what every process holds (``nvmlDeviceGetComputeRunningProcesses``): the watcher polls it,
adds up each sandbox's processes and kills a sandbox whose total passes its share plus
:data:`CONTEXT_ALLOWANCE`, whatever it called.

It is a process of its own, started from a fresh interpreter by ``grade`` (``python -m
autograder.sandbox.gpu_watch STATE``): NVML must never be initialised in a process that sandboxes are
forked from (a forked sandbox that closes its inherited descriptors finds NVML's state alive and its
files gone, and reads an internal assert instead of its out-of-memory error). This module imports
neither torch nor NVML; only :class:`NvmlReader` loads NVML, in the watcher.

The watcher and the grading workers share the folder ``STATE`` (the grader's own; sandboxes cannot
read it: Landlock, and their own uid):

- ``sandboxes/<key>.json``, written by a worker when a CUDA sandbox starts (its pid, uid and share)
  and removed when it stops;
- ``events.json``, written by the watcher: every sandbox it found past its share, when, how much,
  and when the GPU had its memory back;
- ``heartbeat``, the monotonic time (8 bytes) of the watcher's last poll, so that a worker can wait
  until the watcher has looked at the GPU after a moment it cares about.

Times are ``time.monotonic()``, one clock for every process of the machine.
"""
from __future__ import annotations

import json
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from autograder.results import write_atomic
from autograder.sandbox.confine import kill_every_process

POLL = 0.02                # seconds between two looks at the GPU
CONTEXT_ALLOWANCE = 2**30  # what CUDA itself holds per sandbox (context, kernels) beyond its allocator's share
GiB = 2**30
HEARTBEAT = struct.Struct("d")
LOOK_WAIT, RELEASE_WAIT = 2.0, 30.0  # seconds a worker waits for the watcher's next look, for a hog's memory


@dataclass
class Event:
    """A sandbox the watcher found past its share."""
    key: str                # the sandbox's registration (see :func:`register`)
    used: int               # bytes its processes held on the GPU when it was seen
    share: int              # bytes it was promised
    since: float            # the last poll before, which found it within its share: it went past in between
    seen: float
    pids: list[int] = field(default_factory=list)
    stopped: float | None = None
    released: float | None = None  # the first poll that found none of its processes on the GPU

    def describe(self) -> str:
        return f"{self.used / GiB:.1f} GiB of GPU memory, more than its share of {self.share / GiB:.1f} GiB"


# -- the worker's side: register a sandbox, read what the watcher saw -------------------------------------
def register(state: Path, pid: int, uid: int | None, share: int) -> str:
    """Have the watcher watch the CUDA sandbox ``pid`` (and its processes, or every process of ``uid``)."""
    key = f"{pid}-{time.monotonic_ns()}"
    write_atomic(state / "sandboxes" / f"{key}.json", json.dumps({"pid": pid, "uid": uid, "share": share}))
    return key


def unregister(state: Path, key: str) -> None:
    (state / "sandboxes" / f"{key}.json").unlink(missing_ok=True)


def events(state: Path) -> list[Event]:
    try:
        return [Event(**e) for e in json.loads((state / "events.json").read_text())["events"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def stopped(state: Path, key: str) -> Event | None:
    """The watcher's record of stopping the sandbox registered as ``key``, if it did."""
    return next((e for e in events(state) if e.key == key), None)


def heartbeat(state: Path) -> float:
    try:
        return HEARTBEAT.unpack((state / "heartbeat").read_bytes()[:HEARTBEAT.size])[0]
    except (OSError, struct.error):
        return 0.0


def past_share_between(state: Path, start: float, end: float, own: list[str]) -> Event | None:
    """A sandbox other than the ``own`` registrations that was past its share at some moment between
    ``start`` and ``end``. Waits first until the watcher has looked at the GPU after ``end`` (at most
    :data:`LOOK_WAIT` s), then until the GPU has that sandbox's memory back (at most :data:`RELEASE_WAIT` s)."""
    give_up = time.monotonic() + LOOK_WAIT
    while heartbeat(state) <= end and time.monotonic() < give_up:
        time.sleep(POLL)
    found = next((e for e in events(state) if e.key not in own and e.since <= end
                  and (e.released is None or e.released >= start)), None)
    give_up = time.monotonic() + RELEASE_WAIT
    while found is not None and found.released is None and time.monotonic() < give_up:
        time.sleep(POLL)
        found = stopped(state, found.key)
    return found


# -- the watcher process ------------------------------------------------------------------------------------
class NvmlReader:
    """GPU memory per process, from NVML (NVIDIA's ``nvidia-ml-py``), summed over the machine's GPUs."""

    def __init__(self) -> None:
        import pynvml  # only here: NVML is loaded in the watcher process alone

        pynvml.nvmlInit()
        self.nvml = pynvml
        self.handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        version = pynvml.nvmlSystemGetCudaDriverVersion()  # e.g. 13000 for CUDA 13.0
        self.cuda_version = f"{version // 1000}.{version % 1000 // 10}"

    def used(self) -> dict[int, int]:
        usage: dict[int, int] = {}
        for handle in self.handles:
            for process in self.nvml.nvmlDeviceGetComputeRunningProcesses(handle):
                usage[process.pid] = usage.get(process.pid, 0) + (process.usedGpuMemory or 0)
        return usage


def process_info(pid: int) -> tuple[int, int, int] | None:
    """(uid, parent pid, session id) of a process of this machine's /proc, None when there is none."""
    try:
        uid = os.stat(f"/proc/{pid}").st_uid
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return uid, int(fields[1]), int(fields[3])


class Watcher:
    """Each poll: read every process's GPU memory, attribute it to a registered sandbox, stop the ones past
    their share, and note when a stopped sandbox's memory is back. ``reader.used()`` -> {pid: bytes}."""

    def __init__(self, reader, state: Path) -> None:
        self.reader, self.state = reader, state
        (state / "sandboxes").mkdir(parents=True, exist_ok=True)
        self.events: dict[str, Event] = {}
        self.seen: set[str] = set()       # sandboxes found on the GPU at least once
        self.registered: set[str] = set()
        self.last_poll = time.monotonic()
        self._heartbeat = os.open(state / "heartbeat", os.O_RDWR | os.O_CREAT, 0o600)
        self._write()

    def poll(self) -> None:
        now = time.monotonic()
        sandboxes = self._sandboxes()
        usage = self.reader.used()
        held: dict[str, list[tuple[int, int]]] = {}
        for pid, used in usage.items():
            if (key := self._owner(pid, sandboxes)) is not None:
                held.setdefault(key, []).append((pid, used))
        known = (len(self.registered), len(self.seen))
        self.registered.update(sandboxes)
        self.seen.update(held)
        changed = known != (len(self.registered), len(self.seen))
        for key, processes in held.items():
            used, share = sum(u for _, u in processes), sandboxes[key]["share"]
            if used > share + CONTEXT_ALLOWANCE and key not in self.events:
                event = self.events[key] = Event(key, used, share, self.last_poll, now, [p for p, _ in processes])
                self._write()  # before the kill: the worker that sees its sandbox die reads why here
                self._stop(sandboxes[key], event.pids)
                event.stopped, changed = time.monotonic(), True
        for event in self.events.values():
            if event.stopped and event.released is None and not any(pid in usage for pid in event.pids):
                event.released, changed = now, True
        if changed:
            self._write()
        self.last_poll = now
        os.pwrite(self._heartbeat, HEARTBEAT.pack(now), 0)

    def run(self, keep_going=lambda: True) -> None:
        while keep_going():
            try:
                self.poll()
            except Exception as error:  # noqa: BLE001 - a failed look at the GPU: say so, look again
                print(f"gpu_watch: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
            time.sleep(POLL)

    def _sandboxes(self) -> dict[str, dict]:
        found = {}
        for path in (self.state / "sandboxes").glob("*.json"):
            try:
                found[path.stem] = json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # removed while read
        return found

    @staticmethod
    def _owner(pid: int, sandboxes: dict[str, dict]) -> str | None:
        """The sandbox ``pid`` belongs to: its uid (a root grader gives each sandbox its own), else the
        sandbox's process itself, its session, or an ancestor."""
        by_pid = {s["pid"]: key for key, s in sandboxes.items()}
        by_uid = {s["uid"]: key for key, s in sandboxes.items() if s["uid"] is not None}
        info, current = process_info(pid), pid
        if info is not None and info[0] in by_uid:
            return by_uid[info[0]]
        while info is not None:
            for candidate in (current, info[2]):
                if candidate in by_pid:
                    return by_pid[candidate]
            current = info[1]
            info = process_info(current) if current > 1 else None
        return None

    @staticmethod
    def _stop(sandbox: dict, pids: list[int]) -> None:
        """Kill the sandbox and everything it started: every process of its uid, else its process group
        and each process found on the GPU."""
        if sandbox["uid"] is not None:
            kill_every_process(sandbox["uid"])
        for kill, pid in [(os.killpg, sandbox["pid"]), *((os.kill, p) for p in [sandbox["pid"], *pids])]:
            try:
                kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def _write(self) -> None:
        write_atomic(self.state / "events.json", json.dumps({
            "events": [asdict(e) for e in self.events.values()],
            "registered": len(self.registered), "seen": len(self.seen)}))


def main(argv: list[str]) -> int:
    """``python -m autograder.sandbox.gpu_watch STATE``: print ``ready GPUS CUDA_VERSION`` (or ``error ...``), watch
    until the grader that started it is gone or stops it (SIGTERM), then remove ``STATE``."""
    state, grader = Path(argv[0]), os.getppid()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        try:
            reader = NvmlReader()
        except Exception as error:  # noqa: BLE001 - no nvidia-ml-py, no driver: the grader decides what follows
            print(f"error {type(error).__name__}: {error}", flush=True)
            return 1
        watcher = Watcher(reader, state)
        print(f"ready {len(reader.handles)} {reader.cuda_version}", flush=True)
        watcher.run(keep_going=lambda: os.getppid() == grader)
        return 0
    finally:
        shutil.rmtree(state, ignore_errors=True)


# -- the grader's side: start and stop the watcher ----------------------------------------------------------
def nvidia_driver_loaded() -> bool:
    """Whether this machine has NVIDIA's kernel driver loaded (cheap, touches no GPU)."""
    return Path("/proc/driver/nvidia/version").exists()


class WatcherProcess:
    """The watcher as ``grade`` runs it: started at once, asked later whether CUDA can be used."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.process = subprocess.Popen([sys.executable, "-m", "autograder.sandbox.gpu_watch", str(state)],
                                        stdout=subprocess.PIPE, text=True, start_new_session=True)

    def ready(self, timeout: float = 60.0) -> tuple[int, str]:
        """(number of GPUs, the driver's CUDA version); raises RuntimeError with the watcher's reason."""
        readable, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline().strip() if readable else "error: no answer in time"
        if not line.startswith("ready "):
            self.stop()
            raise RuntimeError(f"the GPU memory watcher could not start ({line.removeprefix('error ')})")
        _, gpus, cuda = line.split()
        return int(gpus), cuda

    def summary(self) -> str:
        try:
            data = json.loads((self.state / "events.json").read_text())
        except (OSError, ValueError):
            return ""
        line = (f"GPU memory watcher: {data['registered']} CUDA sandboxes watched, {data['seen']} seen on the GPU, "
                f"{len(data['events'])} stopped past their share")
        if data["registered"] and not data["seen"]:
            line += (" (NVML never listed a sandbox's process: does this grader run in a container with a pid "
                     "namespace of its own? NVML then reports the host's pids, and shares are not enforced)")
        return line

    def stop(self) -> None:
        self.process.terminate()  # it removes its folder
        self.process.wait()
        self.process.stdout.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
