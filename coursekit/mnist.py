"""MNIST for the book and the grader: the bundled sample by default, full MNIST on request.

The repository ships 10,000 real MNIST digits (8,000 train / 2,000 test) in torchvision's
raw layout under ``data/MNIST/raw`` (see ``data/make_mnist_sample.py``), so everything runs
offline. With internet, set the environment variable ``MNIST_FULL=1`` to use the full
70,000-digit MNIST instead; torchvision downloads it once into ``data/full/``.
"""
from __future__ import annotations

import os
from pathlib import Path

from torchvision import datasets, transforms

DATA_DIR = Path(__file__).resolve().parent.parent / "data"


def use_full_mnist() -> bool:
    """True when the ``MNIST_FULL`` switch asks for the full dataset."""
    return os.environ.get("MNIST_FULL", "0") == "1"


def load_mnist(train: bool) -> datasets.MNIST:
    """The training or test split as a torchvision dataset of (1, 28, 28) tensors in [0, 1]."""
    full = use_full_mnist()
    root = DATA_DIR / "full" if full else DATA_DIR
    return datasets.MNIST(root, train=train, download=full, transform=transforms.ToTensor())


def describe() -> str:
    """One sentence saying which data a page ran on, for the book's outputs."""
    train, test = load_mnist(True), load_mnist(False)
    source = "the full MNIST dataset" if use_full_mnist() else "the MNIST sample bundled in data/"
    return f"Data: {source}, {len(train):,} training and {len(test):,} test images."
