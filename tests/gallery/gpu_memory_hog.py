"""A function that asks for most of the device's memory: on CUDA more than a sandbox's share of the GPU
(CUDA's allocator refuses it, and the next sandbox has the memory back); on the CPU more than the cap."""
import os

import torch


def corr2d_multi_in_out(X, K):
    if torch.cuda.is_available():
        device, total = "cuda", torch.cuda.mem_get_info()[1]
    else:
        device, total = "cpu", os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return torch.ones(int(0.6 * total), dtype=torch.uint8, device=device).sum()
