"""Both nets, trained by the submission's train_one_epoch, must learn MNIST.

The submission trains in its sandbox on the bundled training images; the weights come back
as plain tensors and the grader measures accuracy itself, with its reference architecture,
on the test images that never leave the trusted side, matching the weights to its own layers by order
and shape (layer names are graded by the layer tests). The file's name puts it last: a loop too slow for
MNIST is stopped here, after the quick loop tests have graded it. Thresholds: measured runs of the
reference loop (1 epoch for ConvNet: 91.5-92.7%; 2 epochs for FCNet: 91.1-92.5%, seeds 0-4)
minus a margin for honest variation.
"""
import pytest
from torch import nn

import reference

THRESHOLD = 0.85
TRAIN = """
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
torch.manual_seed(0)
net = {net}
loader = DataLoader(TensorDataset(images.float().div_(255), labels), batch_size=64, shuffle=True)
optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
losses = [train_one_epoch(net, loader, optimizer, nn.CrossEntropyLoss()) for epoch in range({epochs})]
result = {{k: v for k, v in net.state_dict().items()}}
"""


@pytest.mark.points(3)
@pytest.mark.parametrize("name, epochs", [("ConvNet", 1), ("FCNet", 2)])
def test_accuracy(submission, mnist, name, epochs):
    """{name}: reaches 85% test accuracy after {epochs} epoch(s) of your train_one_epoch (Adam, lr 3e-3)"""
    net = f"{name}()"
    images, labels, test_images, test_labels = mnist
    state = submission.run(TRAIN.format(net=net, epochs=epochs), images=images, labels=labels, timeout=120,
                           what=f"training {net} for {epochs} epoch(s) with train_one_epoch")
    try:
        model = reference.with_weights(name, state)
    except AssertionError as error:
        raise AssertionError(f"the trained {net}'s weights do not fit the expected layers: {error}") from None
    batches = [(test_images[i:i + 200].float() / 255, test_labels[i:i + 200]) for i in range(0, len(test_labels), 200)]
    _, accuracy = reference.evaluate(model, batches, nn.CrossEntropyLoss())
    assert accuracy >= THRESHOLD, (
        f"{net} trained for {epochs} epoch(s) on {len(labels):,} images reached {accuracy:.1%} on the "
        f"{len(test_labels):,} held-out test images; expected at least {THRESHOLD:.0%}")
