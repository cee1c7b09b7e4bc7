"""Leftovers meant for a later student: files (five of 64 MB), a note and a FIFO in /dev/shm, POSIX shared memory,
a named semaphore and a message queue, a System V segment and an abstract socket. Each sandbox has its own
/dev/shm (a tmpfs of one such file at most), IPC and network namespaces: all of it goes with it."""
import ctypes
import os
import socket

libc = ctypes.CDLL(None, use_errno=True)
libc.sem_open.restype = ctypes.c_void_p
planted = []
with open("/dev/shm/note.txt", "w") as note:
    note.write("answers for the next student")
os.chmod("/dev/shm/note.txt", 0o644)
os.mkfifo("/dev/shm/pipe", 0o666)
planted.append(f"shm_open {libc.shm_open(b'/gallery-leftover', os.O_CREAT | os.O_RDWR, 0o666) >= 0}")
planted.append(f"sem_open {libc.sem_open(b'/gallery-leftover', os.O_CREAT, 0o666, 1) not in (None, 0)}")
planted.append(f"mq_open {libc.mq_open(b'/gallery-leftover', os.O_CREAT | os.O_RDWR, 0o666, None) >= 0}")
planted.append(f"shmget {libc.shmget(0x6A11E7, 2**20, 0o1666) >= 0}")  # IPC_CREAT | 0666: outlives its process
listener = socket.socket(socket.AF_UNIX)
listener.bind(b"\0gallery-leftover")
listener.listen()
for n in range(5):
    try:
        with open(f"/dev/shm/leftover{n}", "wb") as big:
            big.write(b"\0" * 64 * 2**20)
        planted.append(f"leftover{n}")
    except OSError as error:
        planted.append(f"leftover{n}: {type(error).__name__}")
print("planted:", ", ".join(planted))
