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


class ResBlock(nn.Module):
    """A custom block: two 3×3 convolutions with BatchNorm, and a stride-2 1×1 projection as the shortcut."""

    def __init__(self, c_in, c_out):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c_out)
        self.conv2, self.bn2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=2, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        return F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))) + self.shortcut(x))


class CustomBlocks(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.Sequential(ResBlock(1, 8), ResBlock(8, 16))  # 14×14, then 7×7
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        return self.head(F.adaptive_avg_pool2d(self.blocks(x), 1).flatten(1))


class ModuleListLoop(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.convs = nn.ModuleList(nn.Conv2d(8, 8, 3, padding=1) for _ in range(2))
        self.fc = nn.Linear(8 * 7 * 7, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.stem(x)), 2)
        for conv in self.convs:
            x = F.relu(conv(x))
        return self.fc(torch.flatten(F.max_pool2d(x, 2), 1))


def global_average_pooling(pool):
    """Conv, ReLU, pool by 4, conv, ReLU, then ``pool(x)`` to (N, 32) and a linear layer."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.conv2, self.fc = nn.Conv2d(1, 16, 3, padding=1), nn.Conv2d(16, 32, 3, padding=1), \
                nn.Linear(32, 10)
            self.gap = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())

        def forward(self, x):
            x = F.relu(self.conv2(F.max_pool2d(F.relu(self.conv1(x)), 4)))
            return self.fc(pool(self, x))

    return Net


STYLES = {  # (the net, its multiply-adds per image worked out by hand): each gets every design point
    "batchnorm": (lambda: nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(784, 12), nn.BatchNorm1d(12), nn.ReLU(), nn.Linear(12, 10)),
        28 * 28 * 8 * 9 + 14 * 14 * 16 * 72 + 784 * 12 + 12 * 10),
    "modulelist_loop": (ModuleListLoop, 28 * 28 * 8 * 9 + 2 * 14 * 14 * 8 * 72 + 392 * 10),
    "stride2": (lambda: nn.Sequential(
        nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(32 * 4 * 4, 10)),
        14 * 14 * 8 * 9 + 7 * 7 * 16 * 72 + 4 * 4 * 32 * 144 + 512 * 10),
    "custom_blocks": (CustomBlocks, 14 * 14 * 8 * (9 + 72 + 1) + 7 * 7 * 16 * (72 + 144 + 8) + 16 * 10),
    **{f"global_average_pooling_{name}": (global_average_pooling(pool), 28 * 28 * 16 * 9 + 7 * 7 * 32 * 144 + 320)
       for name, pool in [("mean", lambda self, x: x.mean((2, 3))),
                          ("torch_mean", lambda self, x: torch.mean(x, dim=[2, 3])),
                          ("adaptive", lambda self, x: F.adaptive_avg_pool2d(x, 1).flatten(1)),
                          ("layer", lambda self, x: self.gap(x))]},
}


def graded(make) -> dict[str, str]:
    """The hidden design tests (test_design.py, run as the grader runs them, on a submission whose DesignNet is
    ``make``): each failed test's message by its name; {} for full marks."""
    import test_design
    tests = {"forward": lambda s: test_design.test_design_forward(s),
             "parameters": lambda s: test_design.test_design_parameters(s, design.PARAMETERS),
             "multiply_adds": lambda s: test_design.test_design_multiply_adds(s, design.MULTIPLY_ADDS),
             "activation": lambda s: test_design.test_design_activation(s)}
    submission, failed = InProcess(DesignNet=make), {}
    for name, test in tests.items():
        try:
            test(submission)
        except AssertionError as error:
            failed[name] = str(error)
    design.described.clear()
    return failed


@pytest.mark.parametrize("style", STYLES)
def test_styles_students_write_get_every_design_point(style):
    make, cost = STYLES[style]
    assert graded(make) == {}
    visible_test(make)  # the notebook's visible test raises nothing either
    net = design.rebuild(design.describe(make()))
    assert (net.parameter_count(), net.cost) == (sum(p.numel() for p in make().parameters()), cost)


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
    """The hidden test counts an activation only when it is not linear with its arguments; the notebook's visible
    test refuses the same nets first, in the same words."""
    net = design.rebuild(design.describe(conv_then(activation)))
    found = net.activations_after_convolution()
    assert any(ok for _, ok in found) == nonlinear, found
    words = "that is non-linear with the arguments given is applied"
    hidden = graded(lambda: conv_then(activation)).get("activation", "")
    assert (words in hidden) != nonlinear, hidden
    if nonlinear:
        visible_test(lambda: conv_then(activation))
    else:
        with pytest.raises(AssertionError, match=re.escape(words)):
            visible_test(lambda: conv_then(activation))


class Counter(nn.Module):
    """Its second call (the grader's, after torch.fx's) computes something else than the trace."""

    def __init__(self):
        super().__init__()
        self.conv, self.fc, self.calls = nn.Conv2d(1, 2, 3), nn.Linear(2 * 26 * 26, 10), 0

    def forward(self, x):
        self.calls += 1
        return self.fc(F.relu(self.conv(x)).flatten(1)) * (2 if self.calls > 1 else 1)


UNTRACEABLE = "what torch.fx traced is not what it computes"
GAMING = {  # the net, and each hidden design test it fails with an excerpt of the message: no other may fail. A lying
    # named_parameters(), an identity "activation" and a trace of another net are students of tests/realistic/
    # (fixed_filters_design, identity_activation_design, traced_elsewhere_design), graded by the real grader
    "weights_in_buffers": (BufferWeights, {"parameters": f"computes with {2 + 200 * 784 + 10 * 200:,} weights"}),
    "trace_of_the_first_call": (Counter, dict.fromkeys(["forward", "parameters", "multiply_adds", "activation"],
                                                       UNTRACEABLE)),
}


@pytest.mark.parametrize("net", GAMING)
def test_nets_that_game_a_rule_lose_what_the_rule_says(net):
    make, expected = GAMING[net]
    failed = graded(make)
    assert failed.keys() == expected.keys(), failed
    assert all(excerpt in failed[name] for name, excerpt in expected.items()), failed


class FrozenPieces(nn.Module):
    """Frozen weights (one frozen layer is tests/realistic's fixed_filters_design) in tensors of 100 values or fewer:
    a 5×5 convolution of 4 channels and a head cut into 16 linear layers of 9 inputs each, all frozen; only the 10
    values of a bias are learned."""

    def __init__(self):
        super().__init__()
        self.conv, self.pieces = nn.Conv2d(1, 4, 5), nn.ModuleList(nn.Linear(9, 10) for _ in range(16))
        self.bias = nn.Parameter(torch.zeros(10))
        self.conv.requires_grad_(False)
        self.pieces.requires_grad_(False)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv(x)), 4).flatten(1)
        logits = self.bias
        for i, piece in enumerate(self.pieces):
            logits = logits + piece(x[:, 9 * i:9 * i + 9])
        return logits


def test_frozen_weights_are_refused_after_training_however_small_each_tensor():
    """Weights the optimizer is not given stay as they were: the visible test says so before training, the hidden
    test refuses them after it, counting every tensor, however small."""
    words = ("none of the 1,704 values of conv.weight, conv.bias, pieces.0.weight, pieces.0.bias, pieces.1.weight, "
             "pieces.1.bias and 28 more:")
    with pytest.raises(AssertionError, match=re.escape(f"training can change {words}")):  # the notebook's, first
        visible_test(FrozenPieces)
    words = f"training changed {words}"
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 10, (64,), generator=generator)
    data = type("Data", (), dict(images=images, labels=labels, notebook_images=images, notebook_labels=labels))
    submission = InProcess(DesignNet=FrozenPieces, train_one_epoch=lambda m, loader, o, c, d: [
        (o.zero_grad(), c(m(X), y).backward(), o.step()) for X, y in loader], evaluate=lambda *args: None)
    with pytest.raises(design.NotRebuildable, match=re.escape(words)):
        design.trained(submission, data, epochs=1)
    design.described.clear()


def test_a_bias_that_a_batchnorm_cancels_may_stay_as_it_was():
    class Net(nn.Module):  # 120 channels: a conv's bias of more values than may stay, a BatchNorm's or not
        def __init__(self, norm: bool):
            super().__init__()
            self.conv, self.fc = nn.Conv2d(1, 120, 3, stride=2), nn.Linear(120, 10)
            self.norm = nn.BatchNorm2d(120) if norm else nn.Identity()

        def forward(self, x):
            return self.fc(F.adaptive_avg_pool2d(F.relu(self.norm(self.conv(x))), 1).flatten(1))

    for norm, frozen in ((True, []), (False, ["conv.bias"])):
        net = design.rebuild(design.describe(Net(norm)))
        initial = {name: tensor + (0 if name == "conv.bias" else 1) for name, tensor in net.state.items()}
        assert design.unchanged(net, initial) == frozen


def visible_test(design_net) -> dict:
    """Run the notebook's visible DesignNet test on ``design_net`` (source defining DesignNet, or DesignNet
    itself); its scope."""
    from test_design_training import cells  # the solution notebook's cells

    import nbformat
    from in_process import ROOT
    book = nbformat.read(ROOT / "solutions" / "cnn_vs_fc" / "cnn_vs_fc.ipynb", as_version=4)
    visible = next(cell.source for cell in book.cells
                   if cell.metadata.get("nbgrader", {}).get("grade_id") == "test_DesignNet")
    scope: dict = {}
    for key in ("imports", "helpers"):
        exec(cells()[key], scope)
    if callable(design_net):
        scope["DesignNet"] = design_net
    else:
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
    ("x = F.relu(self.conv(x))\n        return self.fc(F.max_pool2d(x - x.amax(1, keepdim=True), 4)"
     ".flatten(1))", "", "its forward uses the tensor method .amax(), which the grader does not rebuild"),
    ("x = (x * self.mask).mean(1, keepdim=True)\n        return self.fc(F.max_pool2d(F.relu(self.conv(x)), 4)"
     ".flatten(1))",
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


def test_batchnorm_statistics_are_measured_anew_for_the_trained_weights():
    net = nn.Sequential(nn.Conv2d(1, 4, 5), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(4), nn.Flatten(),
                        nn.Linear(144, 10))
    net[1].running_mean.fill_(5.0)  # averages that lag behind the weights
    net[1].running_var.fill_(9.0)
    rebuilt = design.rebuild(design.describe(net))
    images = torch.randint(0, 256, (3 * design.BATCH, 1, 28, 28), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    assert design.calibrate(rebuilt, images) == 1
    with torch.no_grad():
        batches = net[0](images.float() / 255).split(design.BATCH)
    norm = rebuilt.layers[rebuilt.keys["1"]]
    assert torch.allclose(norm.running_mean, torch.stack([b.mean((0, 2, 3)) for b in batches]).mean(0), atol=1e-5)
    assert torch.allclose(norm.running_var, torch.stack([b.var((0, 2, 3)) for b in batches]).mean(0), rtol=1e-4)
    assert not norm.training
    plain = design.rebuild(design.describe(conv_then(F.relu)))
    state = {name: tensor.clone() for name, tensor in plain.state_dict().items()}
    assert design.calibrate(plain, images) == 0 and design.same_state(plain.state_dict(), state)
