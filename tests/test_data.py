"""The bundled MNIST sample: the files match data/SHA256SUMS and coursekit reads them as torchvision would."""
from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import torch

from coursekit.mnist import SAMPLE_DIR, MNISTSample, read_idx

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


def test_held_out_set_is_mnist_test_digits_no_student_has():
    """cnn_vs_fc's held-out images match data/SHA256SUMS.heldout, lie only with the hidden suite, share no digit
    with the sample the students have, and have the class balance of the sample's test set."""
    held_out = ROOT / "autograder" / "suites" / "cnn_vs_fc" / "mnist_heldout"
    sums = dict(reversed(line.split()) for line in (ROOT / "data" / "SHA256SUMS.heldout").read_text().splitlines())
    assert sorted(path.name for path in held_out.iterdir()) == sorted(f"{name}.gz" for name in sums)
    for name, digest in sums.items():
        assert hashlib.sha256(gzip.decompress((held_out / f"{name}.gz").read_bytes())).hexdigest() == digest, name
    images, labels = (read_idx(held_out / f"t10k-{kind}-ubyte.gz") for kind in ("images-idx3", "labels-idx1"))
    students = {image.numpy().tobytes() for train in (True, False) for image in MNISTSample(train).data}
    assert images.shape == (2000, 28, 28) and not students & {image.numpy().tobytes() for image in images}
    assert torch.equal(torch.bincount(labels.long()), torch.bincount(MNISTSample(False).targets))
    shipped = [path for folder in ("coursekit", "exercises", "solutions", "book") for path in (ROOT / folder).rglob("t10k-*")]
    assert all(gzip.decompress(path.read_bytes()) != gzip.decompress((held_out / path.name).read_bytes())
               for path in shipped), "a copy of the held-out images lies where students can reach it"
