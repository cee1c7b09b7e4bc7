"""Hidden tests of ConvNet() and FCNet(hidden=...): layers, parameter counts, the forward pass."""
import pytest
import torch

from autograder.expect import expect_equal, expect_tensor
from reference import CONVNET_LAYERS, with_weights

CHILDREN = "net = {net}\nresult = [(name, repr(layer)) for name, layer in net.named_children()]"
COUNT = "net = {net}\nresult = sum(p.numel() for p in net.parameters())"
FORWARD = """
import torch
torch.manual_seed(0)
net = {net}
net.eval()
with torch.no_grad():
    logits = net(X)
result = ({{k: v for k, v in net.state_dict().items()}}, logits)
"""


def forward(submission, net: str, X: torch.Tensor):
    """The submission's logits for X, and the reference's logits with the submission's weights."""
    state, logits = submission.run(FORWARD.format(net=net), X=X, what=f"{net} on a batch of shape {tuple(X.shape)}")
    try:
        reference = with_weights(net.split("(")[0], state)
    except AssertionError as error:
        raise AssertionError(f"{net}'s parameters do not fit the expected layers: {error}") from None
    with torch.no_grad():
        return logits, reference(X)


@pytest.mark.points(2)
def test_convnet_layers(submission):
    """ConvNet: the seed's layers under the seed's names (conv1, max1, conv2, max2, conv3, conv4, flatten, linear1)"""
    got = [tuple(pair) for pair in submission.run(CHILDREN.format(net="ConvNet()"), what="ConvNet()")]
    expect_equal(got, CONVNET_LAYERS, "the layers of ConvNet() (name, layer)", "different layers")


def test_convnet_parameters(submission):
    """ConvNet: has 13,686 parameters"""
    expect_equal(submission.run(COUNT.format(net="ConvNet()"), what="ConvNet()"), 13_686,
                 "sum(p.numel() for p in ConvNet().parameters())")


@pytest.mark.points(2)
def test_convnet_forward(submission):
    """ConvNet: maps (N, 1, 28, 28) images to (N, 10) logits through exactly those layers"""
    X = torch.rand(5, 1, 28, 28)
    logits, expected = forward(submission, "ConvNet()", X)
    expect_tensor(logits, expected, "ConvNet()(X) for X of shape (5, 1, 28, 28), compared with the seed's "
                  "layers applied in order with your weights")


def test_fcnet_layers(submission):
    """FCNet: FCNet(hidden=50) has fc1 (784 → 50) and fc2 (50 → 10)"""
    got = submission.run("net = FCNet(hidden=50)\nresult = {n: tuple(p.shape) for n, p in net.named_parameters()}",
                         what="FCNet(hidden=50)")
    expect_equal(got, {"fc1.weight": (50, 784), "fc1.bias": (50,), "fc2.weight": (10, 50), "fc2.bias": (10,)},
                 "parameter shapes of FCNet(hidden=50)", "wrong parameters")


@pytest.mark.points(2)
def test_fcnet_default_size(submission):
    """FCNet: the default hidden size gives 1.8 to 2.2 times the ConvNet's parameters"""
    count = submission.run(COUNT.format(net="FCNet()"), what="FCNet()")
    ratio = count / 13_686 if isinstance(count, int) else None
    assert ratio is not None and 1.8 <= ratio <= 2.2, (
        f"FCNet() has {count!r} parameters, {ratio or 0:.2f} times ConvNet's 13,686; expected 1.8 to 2.2 times")


@pytest.mark.points(2)
def test_fcnet_forward(submission):
    """FCNet: logits are fc2(relu(fc1(x))), with no activation on the output"""
    X = torch.rand(6, 1, 28, 28) * 4 - 2
    logits, expected = forward(submission, "FCNet(hidden=20)", X)
    expect_tensor(logits, expected, "FCNet(hidden=20)(X) for X of shape (6, 1, 28, 28), compared with "
                  "fc2(relu(fc1(flatten(X)))) with your weights")
