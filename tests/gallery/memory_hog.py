"""A function that fills more memory than the cap (3 GiB; the machine has far more): it fails, nothing else does.

On the CPU the address-space limit refuses the allocation; on CUDA the watchdog stops the process once it
has written more than the cap beyond what CUDA itself needed."""
import torch


def corr2d_multi_in_out(X, K):
    return torch.ones(3 * 2**30, dtype=torch.uint8).sum()
