"""Hidden tests of DesignNet(): the student's own ConvNet, judged by what it is.

The sandbox traces the net with torch.fx and sends back its graph, its layers as numbers and its tensors;
the grader rebuilds it from torch.nn's layers (``design.py``), checks on values that the rebuild computes what
the student's module computes, and only then judges the rebuild: its parameters and multiply-adds, counted
here on every tensor it computes with, and where its activations are. How well it learns is graded last, in
``test_training.py``, on the same net. The budgets and the reasons for them are in ``design.py``.
"""
import pytest

import design
import reference

pytestmark = pytest.mark.book("06_simple_convnet", "A network without nonlinearities between its convolutions")
CALL = design.CALL


def rebuilt(submission) -> design.Rebuilt:
    """The untrained DesignNet() rebuilt, once it is known to compute what the submission's module computes."""
    description, logits, X = design.untrained(submission)
    try:
        net = design.rebuild(description)
        design.same_outputs(net, X, logits, f"{CALL}(X) for X of shape (4, 1, 28, 28)")
    except design.NotRebuildable as error:
        raise AssertionError(f"{CALL} cannot be rebuilt from torch.nn layers: {error}") from None
    return net


def test_design_forward(submission):
    """DesignNet: maps (N, 1, 28, 28) images to (N, 10) logits, computed by torch.nn layers the grader rebuilds"""
    rebuilt(submission)


@pytest.mark.parametrize("budget", [design.PARAMETERS])
def test_design_parameters(submission, budget):
    """DesignNet: has at most {budget:,} parameters (the lecture ConvNet's count)"""
    count = rebuilt(submission).parameter_count()
    assert count <= budget, (f"{CALL} computes with {count:,} weights (its layers' parameters and every tensor its "
                             f"forward reads, buffers included); the budget is {budget:,} (the lecture's ConvNet "
                             "has as many)")


@pytest.mark.book("07_convnet_vs_fc", "Three networks")
@pytest.mark.parametrize("budget", [design.MULTIPLY_ADDS])
def test_design_multiply_adds(submission, budget):
    """DesignNet: does at most {budget:,} multiply-adds per image"""
    cost = rebuilt(submission).cost
    lecture = design.rebuild(design.describe(reference.ConvNet())).cost
    assert cost <= budget, (f"count_multiply_adds({CALL}) is {cost:,} per 28×28 image; the budget is {budget:,} "
                            f"(the lecture's ConvNet does {lecture:,}): fewer channels at full resolution, or pool "
                            "earlier")


@pytest.mark.points(2)
def test_design_activation(submission):
    """DesignNet: applies an activation function (ReLU, ...) to what its convolutions compute"""
    net = rebuilt(submission)
    assert net.convolutions(), f"{CALL} has no nn.Conv2d layer: a ConvNet convolves (the spec asks for one at least)"
    found = net.activations_after_convolution()
    linear = [call for call, nonlinear in found if not nonlinear]
    assert any(nonlinear for _, nonlinear in found), (
        f"{CALL}: no activation function (nn.ReLU, F.relu, torch.tanh, ...) that is non-linear with the arguments "
        f"given is applied to the output of its {net.convolutions()} convolution(s)"
        + (f" ({', '.join(dict.fromkeys(linear))} computes a linear function there)" if linear else "")
        + ", so its convolutions and linear layers compose into one linear map, only the pooling is not linear "
        "(chapter 6); put a ReLU after a convolution")
