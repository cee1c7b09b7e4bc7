"""A function that asks for far more memory than the cap: it fails, nothing else does."""
import torch


def corr2d_multi_in_out(X, K):
    hoard = [torch.ones(2**28) for _ in range(64)]  # 64 GiB
    return hoard[0]
