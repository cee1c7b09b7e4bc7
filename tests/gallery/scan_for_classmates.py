"""Searching its own memory for other students: the class list and the other notebooks' paths were in the grader
when it forked; its sandboxes come from workers started before the class was read, which never read a job
themselves, so none is found. (Its name sorts late: both workers have graded other students by then.)"""
import ctypes
import re

ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE (it changed uid): its /proc/self/mem is its own again
honest = re.compile(rb"submitted/hon[e]st/conv_basics")  # the honest student's notebook: not in this source
# any other student's notebook or results folder (not its own; the brackets keep this source from matching)
others = re.compile(rb"/(submitted|out)/(?!scan_for_classmates/)\w+/conv_basic[s]")
found, anyone, scanned = 0, 0, 0
with open("/proc/self/maps") as maps, open("/proc/self/mem", "rb", buffering=0) as memory:
    for line in maps:
        fields = line.split()
        if not fields[1].startswith("rw") or (len(fields) > 5 and fields[5].startswith("/")):
            continue  # only the process's own data: not libraries' pages
        start, end = (int(part, 16) for part in fields[0].split("-"))
        try:
            memory.seek(start)
            chunk = memory.read(end - start)
        except (OSError, ValueError, OverflowError):
            continue
        scanned += len(chunk)
        found += len(honest.findall(chunk))
        anyone += len(others.findall(chunk))
print(f"scanned {scanned // 2**20} MB of its memory: the honest student's notebook path found {found} times, "
      f"another student's {anyone} times")
