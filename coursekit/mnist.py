"""MNIST for the book and the grader: the bundled sample by default, full MNIST on request.

The course ships 10,000 real MNIST digits (8,000 train / 2,000 test) as gzip'ed IDX files, MNIST's own format
and torchvision's download names, inside this package (``coursekit/mnist_sample/``, made by
``data/make_mnist_sample.py``), so everything runs offline, from the repository or from a ``pip install`` of
the course. Set the environment variable ``MNIST_FULL=1`` to use the full 70,000-digit MNIST instead, read by
torchvision from ``~/.cache/convnets-course/MNIST/raw/`` (or ``$XDG_CACHE_HOME``), where you put its four files, unpacked:
nothing here downloads anything.
"""
from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import torch
from torch.utils.data import Dataset

SAMPLE_DIR = Path(__file__).resolve().parent / "mnist_sample"


def use_full_mnist() -> bool:
    """True when the ``MNIST_FULL`` switch asks for the full dataset."""
    return os.environ.get("MNIST_FULL", "0") == "1"


def full_mnist_dir() -> Path:
    """Where torchvision reads full MNIST (in ``MNIST/raw/``): one copy per user, whatever folder a notebook runs
    in."""
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "convnets-course"


def read_idx(path: Path) -> torch.Tensor:
    """A gzip'ed IDX file (zero bytes, type 0x08 = uint8, the number of dimensions, big-endian sizes, data)."""
    raw = gzip.decompress(path.read_bytes())
    ndim = raw[3]
    shape = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    return torch.frombuffer(bytearray(raw[4 + 4 * ndim:]), dtype=torch.uint8).reshape(shape)


class MNISTSample(Dataset):
    """The bundled sample, shaped like ``torchvision.datasets.MNIST`` with ``transforms.ToTensor()``:
    ``.data`` (N, 28, 28) uint8, ``.targets`` (N,) int64, items ((1, 28, 28) floats in [0, 1], int label)."""

    def __init__(self, train: bool):
        split = "train" if train else "t10k"
        self.data = read_idx(SAMPLE_DIR / f"{split}-images-idx3-ubyte.gz")
        self.targets = read_idx(SAMPLE_DIR / f"{split}-labels-idx1-ubyte.gz").long()

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.data[index][None].float().div(255), int(self.targets[index])


def load_mnist(train: bool) -> Dataset:
    """The training or test split: items are (1, 28, 28) image tensors in [0, 1] and int labels."""
    if use_full_mnist():
        from torchvision import datasets, transforms  # here, not above: importing torchvision costs seconds

        return datasets.MNIST(full_mnist_dir(), train=train, transform=transforms.ToTensor())
    return MNISTSample(train)


def describe() -> str:
    """One sentence saying which data a page ran on, for the book's outputs."""
    train, test = load_mnist(True), load_mnist(False)
    source = "the full MNIST dataset" if use_full_mnist() else "the MNIST sample bundled with the course"
    return f"Data: {source}, {len(train):,} training and {len(test):,} test images."
