"""A daemon that leaves the sandbox's session: it is killed all the same when grading ends."""
import os
import time

if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(3600)
    os._exit(0)
