"""The measurements behind cnn_vs_fc's design part: budgets, epochs and accuracy steps.

Trains candidate nets exactly as the grader trains DesignNet (``autograder/suites/cnn_vs_fc/test_training.py``:
seed, batches of 64 shuffled, SGD with momentum, CrossEntropyLoss, the bundled 8,000 training images, one
thread) and prints, per net, its parameters and multiply-adds per image (as the grader counts them), its test
accuracy on the 2,000 held-out images after each epoch (lowest / median / highest over the seeds: another seed
stands for another machine, whose floating-point sums send training elsewhere) and its seconds per epoch.
``--cpu-share 0.5`` (root, cgroup v1 cpu controller) times it under half a CPU, as on Gradescope.

    .venv/bin/python bench/bench_design.py [--seeds 5] [--epochs 4] [--cpu-share 0.5] [--nets lecture,S]
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
from torch.utils.data import DataLoader, TensorDataset

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "autograder" / "suites" / "cnn_vs_fc"), str(ROOT / "tests")]

import design  # noqa: E402 - the suite's budgets, steps and cost count
import reference  # noqa: E402
import test_training  # noqa: E402 - the grader's training recipe
from coursekit.mnist import load_mnist  # noqa: E402
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


def run(make, seed: int, epochs: int, data) -> tuple[list[float], list[float]]:
    images, labels, test_images, test_labels = data
    torch.manual_seed(seed)
    net = make()
    loader = DataLoader(TensorDataset(images, labels), batch_size=test_training.BATCH_SIZE, shuffle=True)
    optimizer = torch.optim.SGD(net.parameters(), lr=test_training.LR, momentum=test_training.MOMENTUM)
    accuracies, seconds = [], []
    for _ in range(epochs):
        started = time.perf_counter()
        reference.train_one_epoch(net, loader, optimizer, nn.CrossEntropyLoss())
        seconds.append(time.perf_counter() - started)
        accuracies.append(reference.evaluate(net, [(test_images, test_labels)], nn.CrossEntropyLoss())[1])
    return accuracies, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=design.EPOCHS + 1)
    parser.add_argument("--cpu-share", type=float, help="e.g. 0.5: time under half a CPU (root, cgroup v1)")
    parser.add_argument("--nets", default=",".join(CANDIDATES), help="comma-separated names of CANDIDATES")
    args = parser.parse_args()
    torch.set_num_threads(1)
    train, test = load_mnist(True), load_mnist(False)
    data = (train.data[:, None].float() / 255, train.targets, test.data[:, None].float() / 255, test.targets)
    print(f"load average {os.getloadavg()[0]:.2f}; recipe: SGD(lr={test_training.LR}, momentum="
          f"{test_training.MOMENTUM}), batches of {test_training.BATCH_SIZE}; budget {design_budget()}; "
          f"steps {design.STEPS} after {design.EPOCHS} epochs")
    print(f"{'net':13} {'params':>7} {'mult-adds':>9}  test accuracy after epoch 1, 2, ... (min / median / max of "
          f"{args.seeds} seeds)   s/epoch")
    with cpu_share(args.cpu_share):
        for name in args.nets.split(","):
            make = CANDIDATES[name]
            runs = [run(make, seed, args.epochs, data) for seed in range(args.seeds)]
            by_epoch = list(zip(*(accuracies for accuracies, _ in runs)))
            spread = "  ".join(f"{min(a):.1%}/{statistics.median(a):.1%}/{max(a):.1%}" for a in by_epoch)
            seconds = statistics.median(s for _, times in runs for s in times)
            net = make()
            print(f"{name:13} {sum(p.numel() for p in net.parameters()):7,} {design.multiply_adds(net):9,}  "
                  f"{spread}   {seconds:.1f}", flush=True)


def design_budget() -> str:
    return f"{design.PARAMETERS:,} parameters, {design.MULTIPLY_ADDS:,} multiply-adds per image"


if __name__ == "__main__":
    main()
