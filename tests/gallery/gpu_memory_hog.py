"""On CUDA, corr2d keeps taking GPU memory through PyTorch, a GiB at a time: PyTorch's allocator refuses it past
the sandbox's share, so the student reads a clean out-of-memory error that names the share in GiB. Only that
test fails; the next CUDA test (pool2d) has the memory back. On the CPU it is the reference corr2d."""
import torch

solution_corr2d = corr2d  # noqa: F821 - the reference solution's, defined by the cells before


def corr2d(X, K, padding=0, stride=1):
    if getattr(X, "is_cuda", False):
        hoard = []
        while len(hoard) < 4096:
            hoard.append(torch.ones(2**30, dtype=torch.uint8, device=X.device))
    return solution_corr2d(X, K, padding, stride)
