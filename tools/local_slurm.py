"""A single-node Slurm cluster in a temporary folder: for the tests, the benchmark, and for trying
``python -m autograder slurm`` on one machine.

Its own munged (key and socket), slurmctld and slurmd, on free ports, with slurm.conf, state, spool
and logs in the folder; jobs run as their user, so it needs root, and Debian's slurm-wlm and munge
(`make slurm`). Processes are tracked by parentage (proctrack/linuxproc) and not bound to CPUs
(task/none), which any machine or container offers; a production cluster uses cgroups for both.

    python tools/local_slurm.py     # starts one, prints the SLURM_CONF to export, stops it on Enter or a signal
                                    # (Ctrl-C, kill): a script can run it in the background and kill it
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

NODE, PARTITION = "grader", "debug"
SEARCH = f"{os.environ.get('PATH', '')}:/usr/sbin:/usr/bin"  # the daemons live in sbin
CONFIG = """\
ClusterName=coursekit
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ports[0]}
SlurmdPort={ports[1]}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={folder}/munge.socket
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/slurmctld.log
SlurmdLogFile={folder}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
KillWait=5
NodeName={node} NodeHostname={hostname} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN
PartitionName={partition} Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""


@dataclass(frozen=True)
class Cluster:
    folder: Path
    cpus: int

    @property
    def conf(self) -> Path:
        return self.folder / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        """The environment in which Slurm's commands talk to this cluster."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def run(self, *command: str) -> subprocess.CompletedProcess:
        return subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=60)

    def logs(self) -> str:
        """The end of each daemon's log, to explain a cluster that did not start."""
        return "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')[-2000:]}"
                         for path in sorted(self.folder.glob("*.log")))


def free_ports(count: int) -> list[int]:
    sockets = [socket.create_server(("127.0.0.1", 0)) for _ in range(count)]
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@contextlib.contextmanager
def running(cpus: int | None = None) -> Iterator[Cluster]:
    """Start the cluster, yield it once its node is idle; on leaving (also on error) cancel every job
    and stop the three daemons."""
    if os.geteuid() != 0:
        raise RuntimeError("a local Slurm cluster needs root: slurmd starts each job as its user")
    programs = {name: shutil.which(name, path=SEARCH) for name in ("munged", "slurmctld", "slurmd", "sbatch")}
    if None in programs.values():
        missing = ", ".join(name for name, path in programs.items() if path is None)
        raise RuntimeError(f"{missing} not found: `make slurm` installs Debian's slurm-wlm and munge")
    folder = Path(tempfile.mkdtemp(prefix="slurm-"))
    folder.chmod(0o711)  # munged wants its socket's folder open to every user
    cluster = Cluster(folder, cpus or os.cpu_count() or 1)
    for name in ("state", "spool"):
        (folder / name).mkdir()
    key = os.open(folder / "munge.key", os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(key, os.urandom(1024))
    os.close(key)
    cluster.conf.write_text(CONFIG.format(folder=folder, ports=free_ports(2), node=NODE, partition=PARTITION,
                                          hostname=socket.gethostname(), cpus=cluster.cpus))
    munged = [f"--socket={folder}/munge.socket", f"--key-file={folder}/munge.key", f"--log-file={folder}/munged.log",
              f"--pid-file={folder}/munged.pid", f"--seed-file={folder}/munged.seed", "--foreground"]
    daemons: list[subprocess.Popen] = []
    try:
        for name, args in [("munged", munged), ("slurmctld", ["-D", "-i"]), ("slurmd", ["-D", "-N", NODE])]:
            with (folder / f"{name}.stderr.log").open("w") as log:
                daemons.append(subprocess.Popen([programs[name], *args], env=cluster.env, stdout=subprocess.DEVNULL,
                                                stderr=log))
            if name == "munged":
                wait_for(lambda: (folder / "munge.socket").exists(), daemons, cluster)
        wait_for(lambda: "State=IDLE" in cluster.run("scontrol", "-o", "show", "node", NODE).stdout, daemons, cluster)
        yield cluster
    finally:
        if len(daemons) == 3 and daemons[-1].poll() is None:
            cluster.run("scancel", f"--user={os.getuid()}")
            with contextlib.suppress(RuntimeError):
                wait_for(lambda: not cluster.run("squeue", "-h").stdout.strip(), daemons, cluster, seconds=30)
        for daemon in reversed(daemons):
            daemon.terminate()
            try:
                daemon.wait(10)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        shutil.rmtree(folder, ignore_errors=True)


def wait_for(ready, daemons: list[subprocess.Popen], cluster: Cluster, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not ready():
        stopped = [d.args[0] for d in daemons if d.poll() is not None]
        if stopped or time.monotonic() > deadline:
            why = f"{', '.join(stopped)} stopped" if stopped else f"not ready after {seconds:.0f} s"
            raise RuntimeError(f"local Slurm cluster: {why}\n{cluster.logs()}")
        time.sleep(0.2)


def stop_requested() -> threading.Event:
    """An event set on a line read from stdin (Enter), or on SIGINT, SIGTERM or SIGHUP; stdin at its end (a script's
    `< /dev/null`, a background job) leaves it to the signal."""
    stop = threading.Event()
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, lambda *_: stop.set())
    threading.Thread(target=lambda: sys.stdin.readline() and stop.set(), daemon=True).start()
    return stop


if __name__ == "__main__":
    # The handlers are in place before the cluster starts: a script may kill us as soon as it has read the line below.
    stop = stop_requested()
    with running() as local:
        print(f"export SLURM_CONF={local.conf}    # partition {PARTITION}, {local.cpus} CPUs; Enter, Ctrl-C or kill "
              f"(pid {os.getpid()}) stops the cluster", flush=True)
        while not stop.wait(0.5):
            pass
