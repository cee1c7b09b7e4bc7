"""Hidden tests of pool2d(X, pool_size, mode="max", stride=None, padding=0), against torch's pooling."""
import pytest
import torch
import torch.nn.functional as F

from autograder.expect import expect_dtype, expect_raises, expect_tensor, raised
from autograder.misconceptions import diagnose

pytestmark = pytest.mark.book("05_pooling", "Window, stride and padding")
torch.manual_seed(2)


def reference(X, pool_size, mode="max", stride=None, padding=0):
    pool = F.max_pool2d if mode == "max" else F.avg_pool2d
    return pool(X[None, None], pool_size, stride=stride, padding=padding)[0, 0]


def check(submission, X, pool_size, **options):
    args = "".join(f", {k}={v!r}" for k, v in options.items())
    call = f"pool2d(X, {pool_size}{args}) with X of shape {tuple(X.shape)}"
    if X.min() < 0 and X.max() < 0:
        call += " (all values negative)"
    expect_tensor(submission.call("pool2d", X, pool_size, **options), reference(X, pool_size, **options), call,
                  diagnose=lambda got: diagnose("pool2d", got, X, pool_size, **options))


CASES = {
    "max pooling 2×2 on a 4×4 input (stride defaults to the window)": ((4, 4), 2, {}),
    "average pooling 2×2, stride 2 on a 4×6 input": ((4, 6), 2, {"mode": "avg", "stride": 2}),
    "max pooling 3×3 with stride 1": ((5, 5), 3, {"stride": 1}),
    "a (2, 3) window with stride (1, 2)": ((5, 7), (2, 3), {"stride": (1, 2)}),
    "stride that does not divide: 3×3 window, stride 2 on 6×7": ((6, 7), 3, {"stride": 2}),
    # its stride is its window's: a pool2d that ignores its stride is charged by the stride tests only
    "average pooling with padding 1 counts the zero padding": ((4, 4), 2, {"mode": "avg", "stride": 2, "padding": 1}),
}


@pytest.mark.parametrize("case", CASES)
def test_pooling(submission, case):
    """pool2d: {case}"""
    shape, pool_size, options = CASES[case]
    check(submission, torch.randn(shape), pool_size, **options)


@pytest.mark.points(2)
def test_max_padding_negative(submission):
    """pool2d: max pooling with padding 1 on a negative input (a padded cell never wins)"""
    check(submission, -torch.rand(5, 5) - 1, 2, stride=2, padding=1)


def test_seed_layer(submission):
    """pool2d: the ConvNet's MaxPool2d(2, 2, 1) on an 11×11 positive input (where the padded windows lie)"""
    check(submission, torch.rand(11, 11) + 0.1, 2, stride=2, padding=1)


def test_dtype(submission):
    """pool2d: a float64 input stays float64"""
    X = torch.randn(4, 4, dtype=torch.float64)
    expect_dtype(submission.call("pool2d", X, 2, stride=2), torch.float64,
                 "pool2d(X, 2, stride=2) with a float64 X (4, 4)")


def test_unknown_mode(submission):
    """pool2d: an unknown mode raises ValueError"""
    call = "pool2d(X, 2, mode='median')"
    expect_raises(raised(submission, call, X=torch.ones(4, 4)), "ValueError", call + " with a 4×4 X")


@pytest.mark.cuda
def test_cuda(submission):
    """pool2d: a CUDA input gives a CUDA output, with the values it gives on the CPU"""
    X = torch.randn(6, 6)
    on_gpu, device, on_cpu = submission.run("Y = pool2d(X.cuda(), 2)\nresult = (Y.cpu(), str(Y.device), pool2d(X, 2))",
                                            X=X, what="pool2d on a CUDA tensor")
    assert device.startswith("cuda"), f"pool2d(X.cuda(), 2) returned a tensor on {device}"
    expect_tensor(on_gpu, on_cpu, "pool2d(X.cuda(), 2), 6×6 X, compared with your pool2d(X, 2)")
