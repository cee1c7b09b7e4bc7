"""Hidden tests of ConvNet() and FCNet(hidden=...): layers, parameter counts, the forward pass.

A layer is judged by what it is (type, channels, kernel, stride, padding as numbers, dilation, bias: the
numbers :mod:`layers` reads back), never by how it was written: ``nn.MaxPool2d(kernel_size=(2, 2))`` is
``nn.MaxPool2d(2)``, and ``padding="same"`` on a 3×3 kernel is ``padding=1``.
"""
import inspect

import pytest
import torch

import layers
import reference
from autograder.expect import expect_equal, expect_tensor
from reference import with_weights

pytestmark = pytest.mark.book("06_simple_convnet", "A network without nonlinearities between its convolutions")
FCNET = pytest.mark.book("07_convnet_vs_fc", "Three networks")
CHILDREN = f"import inspect\n{inspect.getsource(layers.spec)}" + """
net = ConvNet()
result = [(name, spec(layer)) for name, layer in net.named_children()]
"""
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
    got = [(name, layers.normalised(layer)) for name, layer in submission.run(CHILDREN, what="ConvNet()")]
    expected = [(name, layers.normalised(layers.spec(layer))) for name, layer in reference.ConvNet().named_children()]
    names = [name for name, _ in got]
    expect_equal(names, [name for name, _ in expected], "the names of ConvNet()'s layers, in order", "different layers")
    for (name, layer), (_, wanted) in zip(got, expected):
        differ = [key for key in wanted.keys() | layer.keys() if layer.get(key) != wanted.get(key)]
        assert not differ, (f"ConvNet().{name}: different layers ({', '.join(sorted(differ))} differ)\n"
                            f"expected: {layers.show(wanted)}\ngot: {layers.show(layer)}")


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


@FCNET
def test_fcnet_layers(submission):
    """FCNet: FCNet(hidden=50) has fc1 (784 → 50) and fc2 (50 → 10)"""
    got = submission.run("net = FCNet(hidden=50)\nresult = {n: tuple(p.shape) for n, p in net.named_parameters()}",
                         what="FCNet(hidden=50)")
    expect_equal(got, {"fc1.weight": (50, 784), "fc1.bias": (50,), "fc2.weight": (10, 50), "fc2.bias": (10,)},
                 "parameter shapes of FCNet(hidden=50)", "wrong parameters")


@FCNET
@pytest.mark.points(2)
def test_fcnet_default_size(submission):
    """FCNet: the default hidden size gives 1.8 to 2.2 times the ConvNet's parameters"""
    count = submission.run(COUNT.format(net="FCNet()"), what="FCNet()")
    ratio = count / 13_686 if isinstance(count, int) else None
    assert ratio is not None and 1.8 <= ratio <= 2.2, (
        f"FCNet() has {count!r} parameters, {ratio or 0:.2f} times ConvNet's 13,686; expected 1.8 to 2.2 times")


@FCNET
@pytest.mark.points(2)
def test_fcnet_forward(submission):
    """FCNet: logits are fc2(relu(fc1(x))), with no activation on the output"""
    X = torch.rand(6, 1, 28, 28) * 4 - 2
    logits, expected = forward(submission, "FCNet(hidden=20)", X)
    expect_tensor(logits, expected, "FCNet(hidden=20)(X) for X of shape (6, 1, 28, 28), compared with "
                  "fc2(relu(fc1(flatten(X)))) with your weights")
