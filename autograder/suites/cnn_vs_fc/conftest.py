"""Data for the accuracy tests, loaded on the trusted side only."""
import pytest

from coursekit.mnist import load_mnist


@pytest.fixture(scope="session")
def mnist():
    """(train images uint8 (N, 1, 28, 28), train labels, test images, test labels) of the bundled sample."""
    train, test = load_mnist(True), load_mnist(False)
    return train.data[:, None], train.targets, test.data[:, None], test.targets
