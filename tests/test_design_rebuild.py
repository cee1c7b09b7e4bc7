"""cnn_vs_fc's DesignNet rebuild on the trusted side (``autograder/suites/cnn_vs_fc/design.py``), on nets that try to
gain what they did not earn: every budget is counted from the rebuilt net, whatever the module says of itself;
what is evaluated is bounded before it runs; an activation counts only when it is not linear."""
from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from in_process import InProcess

import design  # noqa: E402 - in_process puts the suite on the path
import reference  # noqa: E402


class Lying(nn.Module):
    """157,486 parameters whose named_parameters() and parameters() report none."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 50, 3, padding=1)
        self.fc = nn.Linear(50 * 14 * 14, 16)
        self.out = nn.Linear(16, 10)

    def named_parameters(self, *args, **kwargs):
        return iter([])

    def forward(self, x):
        return self.out(self.fc(F.max_pool2d(F.relu(self.conv(x)), 2).flatten(1)))


class BufferWeights(nn.Module):
    """A 784→200→10 net whose weights are buffers applied with * and .sum(), beside one small convolution."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1)
        self.register_buffer("w1", torch.randn(200, 784) / 28)
        self.register_buffer("w2", torch.randn(10, 200) / 14)

    def forward(self, x):
        x = F.relu(self.conv(x)).flatten(1)
        x = F.relu((x[:, None, :] * self.w1).sum(-1))
        return (x[:, None, :] * self.w2).sum(-1)


class BatchSquared(nn.Module):
    """Allowed operations only, with a cost that grows with the square of the batch."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1)
        self.fc = nn.Linear(784, 10)

    def forward(self, x):
        x = F.relu(self.conv(x)).flatten(1)
        mixed = (x[:, None, :] * x[None, :, :]).mean(0)
        return self.fc(mixed)


class HugeIntegers(nn.Module):
    """Traced integer arithmetic squared until it would take the trusted side's CPU and memory."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.fc = nn.Linear(2 * 13 * 13, 10)

    def forward(self, x):
        n = x.size(0) + 1
        for _ in range(40):
            n = n * n
        x = F.max_pool2d(F.relu(self.conv(x)), 2).flatten(1)
        return self.fc(x) + (n // n - 1)


def conv_then(activation):
    """Conv2d(1, 4, 3), then ``activation(x)``, pooling and a linear layer."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = nn.Conv2d(1, 4, 3), nn.Linear(4 * 13 * 13, 10)

        def forward(self, x):
            return self.fc(F.max_pool2d(activation(self.conv(x)), 2).flatten(1))

    return Net()


def test_budgets_count_what_the_rebuilt_net_computes_with():
    lecture = design.rebuild(design.describe(reference.ConvNet()))
    assert (lecture.parameter_count(), lecture.cost) == (13_686, 934_760)  # the notebook's own counts
    lying = design.rebuild(design.describe(Lying()))
    assert lying.parameter_count() == sum(t.numel() for t in Lying().state_dict().values()) == 157_486
    buffers = design.rebuild(design.describe(BufferWeights()))
    assert buffers.parameter_count() == 2 + 200 * 784 + 10 * 200
    assert buffers.cost == 784 + 200 * 784 + 10 * 200  # the convolution, then each elementwise product


def test_bn_statistics_are_not_weights_but_the_learned_affine_is():
    net = nn.Sequential(nn.Conv2d(1, 8, 5), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(4), nn.Flatten(),
                        nn.Linear(8 * 6 * 6, 10))
    assert design.rebuild(design.describe(net)).parameter_count() == sum(p.numel() for p in net.parameters())


def test_cost_is_measured_at_the_batch_the_trusted_side_runs():
    with pytest.raises(design.NotRebuildable, match=f"on a batch of {design.BATCH}"):
        design.rebuild(design.describe(BatchSquared()))


def test_traced_integers_are_bounded_before_they_grow():
    with pytest.raises(design.NotRebuildable, match="an integer of"):
        design.rebuild(design.describe(HugeIntegers()))


def test_tensors_in_arguments_and_huge_literals_are_refused():
    description = design.describe(conv_then(F.relu))
    for forged in (torch.ones(3), 10 ** 40):
        nodes = [list(node) for node in description["nodes"]]
        nodes[2][3] = [*nodes[2][3], forged]
        with pytest.raises(design.NotRebuildable, match="plain arguments"):
            design.rebuild({**description, "nodes": nodes})


@pytest.mark.parametrize("activation, nonlinear", [
    (F.relu, True), (lambda x: x.clamp(min=0), True), (lambda x: F.leaky_relu(x, 0.1), True), (torch.tanh, True),
    (lambda x: F.leaky_relu(x, negative_slope=1.0), False), (lambda x: F.hardtanh(x, -1e9, 1e9), False),
    (lambda x: torch.clamp(x, min=-1e9), False), (lambda x: x, False)])
def test_an_activation_counts_when_it_is_not_linear_with_its_arguments(activation, nonlinear):
    net = design.rebuild(design.describe(conv_then(activation)))
    found = net.activations_after_convolution()
    assert any(ok for _, ok in found) == nonlinear, found


def test_a_trace_that_differs_from_the_module_is_caught_on_values():
    class Counter(nn.Module):  # the second call (the grader's) computes something else than the trace
        def __init__(self):
            super().__init__()
            self.conv, self.fc, self.calls = nn.Conv2d(1, 2, 3), nn.Linear(2 * 26 * 26, 10), 0

        def forward(self, x):
            self.calls += 1
            return self.fc(F.relu(self.conv(x)).flatten(1)) * (2 if self.calls > 1 else 1)

    net = Counter()
    description = design.describe(net)
    X = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        logits = net(X)
    with pytest.raises(design.NotRebuildable, match="what torch.fx traced is not what it computes"):
        design.same_outputs(design.rebuild(description), X, logits, "DesignNet()(X)")


def test_frozen_weights_are_refused_after_training():
    class Frozen(nn.Module):  # weights fitted elsewhere, kept out of the optimiser's reach
        def __init__(self):
            super().__init__()
            self.conv, self.fc = nn.Conv2d(1, 8, 5), nn.Linear(8 * 12 * 12, 10)
            self.conv.requires_grad_(False)

        def forward(self, x):
            return self.fc(F.max_pool2d(F.relu(self.conv(x)), 2).flatten(1))

    images, labels = torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8), torch.randint(0, 10, (64,))
    data = type("Data", (), dict(images=images, labels=labels, notebook_images=images, notebook_labels=labels))
    submission = InProcess(DesignNet=Frozen, train_one_epoch=lambda m, loader, o, c, d: [
        (o.zero_grad(), c(m(X), y).backward(), o.step()) for X, y in loader], evaluate=lambda *args: None)
    with pytest.raises(design.NotRebuildable, match="training changed none of the values of conv.weight"):
        design.trained(submission, data, epochs=1)
    design.described.clear()


def visible_test(design_net: str) -> dict:
    """Run the notebook's visible DesignNet test on ``design_net`` (source defining DesignNet); its scope."""
    from test_design_training import cells  # the solution notebook's cells

    import nbformat
    from in_process import ROOT
    book = nbformat.read(ROOT / "solutions" / "cnn_vs_fc" / "cnn_vs_fc.ipynb", as_version=4)
    visible = next(cell.source for cell in book.cells
                   if cell.metadata.get("nbgrader", {}).get("grade_id") == "test_DesignNet")
    scope: dict = {}
    for key in ("imports", "helpers"):
        exec(cells()[key], scope)
    exec(design_net, scope)
    exec(visible, scope)
    return scope


def test_visible_test_knows_what_the_grader_rebuilds():
    scope = visible_test("DesignNet = lambda: nn.Sequential(nn.Conv2d(1, 4, 5), nn.ReLU(), nn.MaxPool2d(4), "
                         "nn.Flatten(), nn.Linear(144, 10))")
    import layers
    from torch.fx.node import _get_qualified_name
    assert {_get_qualified_name(f) for f in scope["FUNCTIONS"]} == set(design.FUNCTIONS)
    assert {_get_qualified_name(f) for f in scope["ACTIVATIONS"]} == design.ACTIVATION_NAMES
    assert scope["METHODS"] == design.METHODS and scope["LAYERS"] == layers.BUILDABLE
    assert scope["ACTIVATION_LAYERS"] == layers.ACTIVATIONS


HEAD = """
class DesignNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(1, 4, 5), nn.Linear(4 * 6 * 6, 10)
"""


@pytest.mark.parametrize("forward, extra, words", [
    ("x = F.relu(self.conv(x))\n        return self.fc(F.max_pool2d(x - x.amax(1, keepdim=True), 4).flatten(1))", "", "its forward uses the tensor method .amax(), which the grader does not rebuild"),
    ("x = (x * self.mask).mean(1, keepdim=True)\n        return self.fc(F.max_pool2d(F.relu(self.conv(x)), 4).flatten(1))",
     "        self.register_buffer('mask', torch.rand(1, 16, 28, 28))",
     "computes with 14,098 weights (its layers' parameters and every tensor its forward reads, buffers included)"),
    ("self.calls = getattr(self, 'calls', 0) + 1\n        return self.fc(F.max_pool2d(F.relu(self.conv(x)), 4)"
     ".flatten(1)) * self.calls", "", "what torch.fx traced is not what it computes")])
def test_visible_test_warns_in_the_hidden_tests_words(forward, extra, words):
    source = HEAD + extra + "\n\n    def forward(self, x):\n        " + forward + "\n"
    with pytest.raises(AssertionError, match=re.escape(words)):
        visible_test(source)
    scope: dict = {"torch": torch, "nn": nn, "F": F}
    exec(source, scope)
    module = scope["DesignNet"]()
    with pytest.raises(AssertionError, match=re.escape(words)):  # the hidden tests' words
        rebuilt = design.rebuild(design.describe(module))
        X = torch.rand(4, 1, 28, 28)
        module.eval()
        with torch.no_grad():
            design.same_outputs(rebuilt, X, module(X), "DesignNet()(X)")
        assert rebuilt.parameter_count() <= design.PARAMETERS, (
            f"DesignNet() computes with {rebuilt.parameter_count():,} weights (its layers' parameters and every "
            "tensor its forward reads, buffers included)")
