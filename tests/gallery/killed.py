"""A function whose process is killed (here by itself, with SIGKILL): its tests fail, the rest still count."""
import os
import signal


def corr2d_multi_in_out(X, K):
    os.kill(os.getpid(), signal.SIGKILL)
