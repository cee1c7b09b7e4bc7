"""Data for the accuracy tests, loaded on the trusted side only."""
from pathlib import Path
from typing import NamedTuple

import pytest
import torch

from coursekit.mnist import load_mnist, read_idx

HELD_OUT = Path(__file__).resolve().parent / "mnist_heldout"  # data/make_mnist_heldout.py: never leaves this side


class Data(NamedTuple):
    """uint8 images (N, 1, 28, 28) and int64 labels: the sample's training and test splits, which students have
    (the notebook trains on the first and prints its accuracy on the second), and the held-out test set, which
    they never have (MNIST's own test digits, the sample's class balance)."""
    images: torch.Tensor
    labels: torch.Tensor
    notebook_images: torch.Tensor
    notebook_labels: torch.Tensor
    held_out_images: torch.Tensor
    held_out_labels: torch.Tensor


@pytest.fixture(scope="session")
def mnist() -> Data:
    train, test = load_mnist(True), load_mnist(False)
    held_out = [read_idx(HELD_OUT / f"t10k-{kind}-idx{n}-ubyte.gz") for kind, n in (("images", 3), ("labels", 1))]
    return Data(train.data[:, None], train.targets, test.data[:, None], test.targets, held_out[0][:, None],
                held_out[1].long())
