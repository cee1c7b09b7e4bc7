"""A function that asks for more memory than the cap (3 GiB; the machine has far more): it fails, nothing else does."""
import torch


def corr2d_multi_in_out(X, K):
    return torch.empty(3 * 2**30, dtype=torch.uint8).sum()
