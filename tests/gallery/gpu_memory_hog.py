"""A function that keeps taking memory, a GiB at a time, on the device it grades on: on CUDA it is refused past
the sandbox's share of the GPU (and the next sandbox has the memory back); on the CPU, past the cap."""
import torch


def corr2d_multi_in_out(X, K):
    device = "cuda" if torch.cuda.is_available() else "cpu"
    hoard = []
    while len(hoard) < 4096:
        hoard.append(torch.ones(2**30, dtype=torch.uint8, device=device))
    return len(hoard)
