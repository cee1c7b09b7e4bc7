"""On CUDA, corr2d lifts PyTorch's limit (``set_per_process_memory_fraction(1.0)``) and hoards the GPU's memory,
holding it: the grader's GPU memory watcher (NVML, from outside the sandbox) stops the sandbox past its share.
That test fails saying so; the later CUDA test fails at once; the CPU tests are unharmed. Graded in parallel with
honest students on the same GPU, none of them loses a point. On the CPU it is the reference corr2d."""
import time

import torch

solution_corr2d = corr2d  # noqa: F821 - the reference solution's, defined by the cells before


def corr2d(X, K, padding=0, stride=1):
    if getattr(X, "is_cuda", False):
        torch.cuda.set_per_process_memory_fraction(1.0)
        hoard = []
        try:
            while True:
                hoard.append(torch.ones(2**30, dtype=torch.uint8, device=X.device))
        except torch.OutOfMemoryError:
            time.sleep(60)  # hold all it could take
    return solution_corr2d(X, K, padding, stride)
