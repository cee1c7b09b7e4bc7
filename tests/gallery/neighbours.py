"""Looking for other students: /dev/shm (where the grading test planted a note before grading), the leftovers of
shm_leftovers (graded in the same class), other processes' command lines in /proc, and places to leave files
for later (/tmp, /var/tmp, /dev). It finds nothing and writes nowhere but its own folder."""
import ctypes
import os
import socket

libc = ctypes.CDLL(None, use_errno=True)
seen = [f"/dev/shm holds {sorted(os.listdir('/dev/shm'))}"]
for path in ("/dev/shm/gallery-planted", "/dev/shm/note.txt"):
    try:
        with open(path) as note:
            seen.append(f"read {path}: {note.read()}")
    except OSError as error:
        seen.append(f"read {path}: {type(error).__name__}")
seen.append(f"shm_open found {libc.shm_open(b'/gallery-leftover', os.O_RDONLY, 0) >= 0}")
seen.append(f"mq_open found {libc.mq_open(b'/gallery-leftover', os.O_RDONLY, 0, None) >= 0}")
seen.append(f"shmget found {libc.shmget(0x6A11E7, 0, 0) >= 0}")
try:
    socket.socket(socket.AF_UNIX).connect(b"\0gallery-leftover")
    seen.append("connected to gallery-leftover")
except OSError as error:
    seen.append(f"connect gallery-leftover: {type(error).__name__}")
for pid in os.listdir("/proc"):
    if pid.isdigit() and int(pid) != os.getpid():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                words = cmdline.read().split(b"\0")
            seen.append(f"process {pid}: {b' '.join(words).decode(errors='replace')}")
        except OSError as error:
            seen.append(f"process {pid}: {type(error).__name__}")
for path in ("/tmp/gallery-planted", "/var/tmp/gallery-planted", "/dev/gallery-planted"):
    try:
        open(path, "w").close()
        seen.append(f"wrote {path}")
    except OSError as error:
        seen.append(f"write {path}: {type(error).__name__}")
print("\n".join(seen))
