"""Hidden tests of DesignNet(): the student's own ConvNet, judged by what it is.

The sandbox traces the net with torch.fx and sends back its graph, its layers as numbers and its tensors;
the grader rebuilds it from torch.nn's layers (``design.py``) and judges the rebuild: that it computes what
the student's net computes, its parameters, its multiply-adds and where its activations are. How well it
learns is graded last, in ``test_training.py``. The budgets and the reasons for them are in ``design.py``.
"""
import pytest
import torch

import design
import reference
from autograder.expect import expect_tensor

pytestmark = pytest.mark.book("06_simple_convnet", "A network without nonlinearities between its convolutions")
DESCRIBE = design.SANDBOX + """
import torch
torch.manual_seed(0)
net = DesignNet()
net.eval()
with torch.no_grad():
    logits = net(X)
result = (describe(net), logits, [name for name, _ in net.named_parameters()])
"""
CALL = "DesignNet()"
described: dict[int, tuple] = {}  # one description per submission


def description(submission) -> tuple:
    """(description, the submission's logits for X, its parameter names, X), asked once per submission."""
    if id(submission) not in described:
        X = torch.rand(4, 1, 28, 28)
        described[id(submission)] = (*submission.run(DESCRIBE, X=X, what=f"{CALL} on a batch of shape (4, 1, 28, 28)"),
                                     X)
    return described[id(submission)]


def rebuilt(submission) -> tuple[design.Rebuilt, int]:
    try:
        return design.rebuild(description(submission)[0])
    except design.NotRebuildable as error:
        raise AssertionError(f"{CALL} cannot be rebuilt from torch.nn layers: {error}") from None


def test_design_forward(submission):
    """DesignNet: maps (N, 1, 28, 28) images to (N, 10) logits, computed by torch.nn layers the grader rebuilds"""
    net, _ = rebuilt(submission)
    _, logits, _, X = description(submission)
    with torch.no_grad():
        expected = net(X)
    expect_tensor(logits, expected, f"{CALL}(X) in eval mode for X of shape (4, 1, 28, 28), compared with its layers "
                  "rebuilt by the grader from what torch.fx traced")


@pytest.mark.parametrize("budget", [design.PARAMETERS])
def test_design_parameters(submission, budget):
    """DesignNet: has at most {budget:,} parameters (the lecture ConvNet's count)"""
    state, names = description(submission)[0].get("state", {}), description(submission)[2]
    count = sum(state[name].numel() for name in names if isinstance(state.get(name), torch.Tensor))
    assert count <= budget, (f"sum(p.numel() for p in {CALL}.parameters()) is {count:,}; the budget is {budget:,} "
                             "(the lecture's ConvNet has as many)")


@pytest.mark.book("07_convnet_vs_fc", "Three networks")
@pytest.mark.parametrize("budget", [design.MULTIPLY_ADDS])
def test_design_multiply_adds(submission, budget):
    """DesignNet: does at most {budget:,} multiply-adds per image"""
    _, cost = rebuilt(submission)
    assert cost <= budget, (f"count_multiply_adds({CALL}) is {cost:,} per 28×28 image; the budget is {budget:,} "
                            f"(the lecture's ConvNet does {design.multiply_adds(reference.ConvNet()):,}): fewer "
                            "channels at full resolution, or pool earlier")


@pytest.mark.points(2)
def test_design_activation(submission):
    """DesignNet: applies an activation function (ReLU, ...) to what its convolutions compute"""
    net, _ = rebuilt(submission)
    assert net.convolutions(), f"{CALL} has no nn.Conv2d layer: a ConvNet convolves (the spec asks for one at least)"
    assert net.has_activation_after_convolution(), (
        f"{CALL}: no activation function (nn.ReLU, F.relu, torch.tanh, ...) is applied to the output of its "
        f"{net.convolutions()} convolution(s), so its convolutions and linear layers compose into one linear map, "
        "only the pooling is not linear (chapter 6); put a ReLU after a convolution")
