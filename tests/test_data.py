"""The bundled MNIST sample: the files match data/SHA256SUMS and coursekit reads them as torchvision would."""
from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import torch

from coursekit.mnist import SAMPLE_DIR, MNISTSample

ROOT = Path(__file__).resolve().parent.parent


def test_sample_matches_its_checksums():
    """Every gzip'ed file decompresses to the bytes data/SHA256SUMS records, and nothing else is shipped."""
    sums = dict(reversed(line.split()) for line in (ROOT / "data" / "SHA256SUMS").read_text().splitlines())
    assert sorted(path.name for path in SAMPLE_DIR.iterdir()) == sorted(f"{name}.gz" for name in sums)
    for name, digest in sums.items():
        content = gzip.decompress((SAMPLE_DIR / f"{name}.gz").read_bytes())
        assert hashlib.sha256(content).hexdigest() == digest, f"coursekit/mnist_sample/{name}.gz"


def test_sample_reads_like_torchvision_mnist():
    """8,000 / 2,000 digits of all ten classes; items as transforms.ToTensor() gives them."""
    for train, size in ((True, 8000), (False, 2000)):
        split = MNISTSample(train)
        assert split.data.shape == (size, 28, 28) and split.data.dtype == torch.uint8
        assert split.targets.shape == (size,) and split.targets.dtype == torch.int64
        assert set(split.targets.tolist()) == set(range(10))
        image, label = split[0]
        assert image.shape == (1, 28, 28) and image.dtype == torch.float32 and isinstance(label, int)
        assert torch.equal(image, split.data[0][None].float() / 255) and 0 <= image.min() < image.max() <= 1
