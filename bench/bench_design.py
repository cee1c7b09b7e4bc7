"""The measurements behind cnn_vs_fc's design part: budgets and accuracy steps, and how far chance moves a net.

Trains candidate nets through the grader's own code (``autograder/suites/cnn_vs_fc/design.py``'s ``trained``:
the notebook's comparison cell, 4 epochs, the reference loops, one thread), rebuilds them as the grader does and
prints, per net, its parameters and multiply-adds per image (as the grader counts them), its
accuracy on the 2,000 held-out images and on the notebook's 2,000 test images (lowest / median / highest over
``--seeds`` seeds; a seed other than the grader's 0 is another data order and another initialisation, the whole
of what chance does to a net), the largest gap between the two test sets on one seed, and its seconds per epoch.
``--cpu-share 0.5`` (root, cgroup v1 cpu controller) times it under half a CPU, as on Gradescope.

    .venv/bin/python bench/bench_design.py [--seeds 10] [--cpu-share 0.5] [--nets lecture,realistic:residual_design]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "autograder" / "suites" / "cnn_vs_fc"), str(ROOT / "tests")]

import design  # noqa: E402 - the suite's budgets, steps and cost count
import in_process  # noqa: E402 - the grader's training, in this process
import reference  # noqa: E402
from gradescope_sim import V1, own_cgroup  # noqa: E402


def conv_relu_pool(channels: list[int], kernel: int, padding: int | list[int], features: int, norm: bool = False):
    layers = []
    paddings = padding if isinstance(padding, list) else [padding] * (len(channels) - 1)
    for c_in, c_out, pad in zip(channels, channels[1:], paddings):
        layers += [nn.Conv2d(c_in, c_out, kernel, padding=pad), *([nn.BatchNorm2d(c_out)] if norm else []),
                   nn.ReLU(), nn.MaxPool2d(2)]
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(features, 10))


def lecture_with_relus():
    """The lecture's layers with a ReLU after each convolution: what a student may try first."""
    net = reference.ConvNet()
    return nn.Sequential(net.conv1, nn.ReLU(), net.max1, net.conv2, nn.ReLU(), net.max2, net.conv3, nn.ReLU(),
                         net.conv4, nn.ReLU(), net.flatten, net.linear1)


def lenet5():
    """LeNet-5 with ReLUs: a classic, over the parameter budget."""
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                         nn.Linear(84, 10))


def vgg(first: int = 8):
    """Two 3×3 convolutions before each pooling: in the parameter budget, over the multiply-add budget."""
    block = lambda c_in, c_out: [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(), nn.Conv2d(c_out, c_out, 3, padding=1),
                                 nn.ReLU(), nn.MaxPool2d(2)]  # noqa: E731
    return nn.Sequential(*block(1, first), *block(first, 16), nn.Flatten(), nn.Linear(784, 10))


class ResidualBlock(nn.Module):
    """x + relu(bn(conv(x))), as tests/realistic's residual design was first written."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels)

    def forward(self, x):
        return x + torch.relu(self.bn(self.conv(x)))


class ResidualBN(nn.Module):
    """A BatchNorm stem of stride 2, two residual blocks with BatchNorm, then global average pooling (``gap``) or
    a flatten into a linear layer."""

    def __init__(self, gap: bool):
        super().__init__()
        self.gap = gap
        self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.blocks = nn.Sequential(ResidualBlock(16), ResidualBlock(16))
        self.head = nn.Linear(16 if gap else 16 * 7 * 7, 10)

    def forward(self, x):
        if self.gap:
            return self.head(nn.functional.max_pool2d(self.blocks(self.stem(x)), 2).mean(dim=(2, 3)))
        return self.head(self.blocks(nn.functional.max_pool2d(self.stem(x), 2)).flatten(1))


def strided_gap(norm: bool):
    """3×3 convolutions of stride 2 (1 -> 12 -> 24 -> 48 channels, 28 -> 14 -> 7 -> 4), each followed by a ReLU
    (and a BatchNorm before it), then global average pooling and one linear layer: no pooling, 13,642 parameters
    (13,726 with BatchNorm), 314,544 multiply-adds."""
    layers = []
    for c_in, c_out in ((1, 12), (12, 24), (24, 48)):
        layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=not norm),
                   *([nn.BatchNorm2d(c_out)] if norm else []), nn.ReLU()]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(48, 10))


CANDIDATES = {
    "lecture": reference.ConvNet,                                                  # no activation: the bar's floor
    "lecture+relu": lecture_with_relus,
    "dense17": lambda: reference.FCNet(17),                                        # a dense net in the budget
    "dense34": lambda: reference.FCNet(34),                                        # the assignment's FCNet
    "tiny": lambda: conv_relu_pool([1, 4, 8], 5, 0, 128),                          # 2,202 parameters
    "lenet": lambda: conv_relu_pool([1, 8, 16], 5, 0, 256),                        # the solution's design
    "lenet-bn": lambda: conv_relu_pool([1, 8, 16], 5, 0, 256, norm=True),
    "lenet-10-20": lambda: conv_relu_pool([1, 10, 20], 5, 0, 320),
    "lenet-wide": lambda: conv_relu_pool([1, 12, 24], 5, 0, 384),
    "lenet-16-24": lambda: conv_relu_pool([1, 16, 24], 5, 0, 384),                # just over the parameter budget
    "lenet-double": lambda: nn.Sequential(nn.Conv2d(1, 8, 5, padding=2), nn.ReLU(),    # over the multiply-add budget
                                          *conv_relu_pool([8, 8, 16], 5, [2, 0], 400)),
    "same3x3": lambda: conv_relu_pool([1, 8, 16], 3, 1, 784),
    "same3x3x3": lambda: conv_relu_pool([1, 8, 16, 32], 3, 1, 288),
    "same3x3x3-bn": lambda: conv_relu_pool([1, 8, 16, 32], 3, 1, 288, norm=True),
    "lenet5": lenet5,
    "vgg": vgg,
    "vgg-12": lambda: vgg(12),
    "residual-bn-gap": lambda: ResidualBN(gap=True),
    "residual-bn-flat": lambda: ResidualBN(gap=False),
    "strided-gap": lambda: strided_gap(norm=False),
    "strided-gap-bn": lambda: strided_gap(norm=True),
}


@contextmanager
def cpu_share(share: float | None):
    """Run the body in a cgroup v1 cpu group limited to ``share`` of one CPU (as Gradescope's container)."""
    if not share:
        yield
        return
    parent = V1 / "cpu" / own_cgroup("cpu").lstrip("/")
    group = parent / f"bench-design-{os.getpid()}"
    group.mkdir()
    period = int((group / "cpu.cfs_period_us").read_text())
    (group / "cpu.cfs_quota_us").write_text(str(int(period * share)))
    (group / "cgroup.procs").write_text(str(os.getpid()))
    try:
        yield
    finally:
        (parent / "cgroup.procs").write_text(str(os.getpid()))
        group.rmdir()


def realistic(student: str):
    """The DesignNet class of ``tests/realistic/cnn_vs_fc/STUDENT.ipy``, so that its header's figures are measured."""
    source = (ROOT / "tests" / "realistic" / "cnn_vs_fc" / f"{student}.ipy").read_text()
    scope = {"torch": torch, "nn": nn, "F": torch.nn.functional}
    exec(source.split("# %% DesignNet\n")[1].split("\n# %% ")[0], scope)  # noqa: S102 - the project's own test
    return scope["DesignNet"]


def run(make, seed: int, data) -> tuple[float, float, float, float]:
    """(held-out accuracy as graded, the notebook's test accuracy, held-out accuracy with the BatchNorm statistics
    training left, seconds per epoch) of ``make`` trained as graded."""
    design.described.clear()  # a fresh "submission" each time
    started = time.perf_counter()
    net = design.trained(in_process.with_reference_loops(make), data, seed=seed)
    seconds = (time.perf_counter() - started) / design.EPOCHS
    notebook = design.accuracy(net, data.notebook_images, data.notebook_labels)
    running = design.accuracy(net, data.held_out_images, data.held_out_labels)
    design.calibrate(net, data.images)
    return design.accuracy(net, data.held_out_images, data.held_out_labels), notebook, running, seconds


def spread(values: list[float]) -> str:
    return f"{min(values):.1%}/{statistics.median(values):.1%}/{max(values):.1%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--cpu-share", type=float, help="e.g. 0.5: time under half a CPU (root, cgroup v1)")
    parser.add_argument("--nets", default=",".join(CANDIDATES),
                        help="comma-separated names of CANDIDATES, or realistic:STUDENT for a realistic class's design")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = in_process.suite_data()
    print(f"load average {os.getloadavg()[0]:.2f}; the notebook's comparison cell: SGD(lr=0.03, momentum=0.9), "
          f"batches of 64, {design.EPOCHS} epochs; "
          f"budget {design_budget()}; steps {design.STEPS} on the held-out images")
    print(f"{'net':13} {'params':>7} {'mult-adds':>9}  held-out       notebook's     (min/median/max of {args.seeds} "
          "seeds)  largest gap  s/epoch  held-out with training's BatchNorm averages")
    with cpu_share(args.cpu_share):
        for name in args.nets.split(","):
            make = realistic(name.removeprefix("realistic:")) if name.startswith("realistic:") else CANDIDATES[name]
            runs = [run(make, seed, data) for seed in range(args.seeds)]
            held_out, notebook, running, seconds = (list(column) for column in zip(*runs))
            gap = max(abs(h - n) for h, n in zip(held_out, notebook))
            net = design.rebuild(design.describe(make()))
            print(f"{name:13} {net.parameter_count():7,} {net.cost:9,}  {spread(held_out)}  {spread(notebook)}  "
                  f"{gap:10.1%}  {statistics.median(seconds):7.1f}  {spread(running)}", flush=True)


def design_budget() -> str:
    return f"{design.PARAMETERS:,} parameters, {design.MULTIPLY_ADDS:,} multiply-adds per image"


if __name__ == "__main__":
    main()
