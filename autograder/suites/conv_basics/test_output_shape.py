"""Hidden tests of conv_output_shape(input_size, kernel_size, padding=0, stride=1)."""
import pytest
import torch
import torch.nn.functional as F

from autograder.expect import expect_equal, expect_raises, raised


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def reference(input_size, kernel_size, padding=0, stride=1):
    X = torch.zeros(1, 1, *pair(input_size))
    K = torch.zeros(1, 1, *pair(kernel_size))
    return tuple(F.conv2d(X, K, padding=padding, stride=stride).shape[2:])


CASES = {
    "28 with a 3 kernel": (28, 3, 0, 1),
    "(7, 9) with a (2, 3) kernel, padding (1, 2), stride (3, 2)": ((7, 9), (2, 3), (1, 2), (3, 2)),
    "(6, 5) with a 3 kernel and stride 2 that does not divide": ((6, 5), 3, 0, 2),
    "(3, 3) with a (2, 2) kernel, padding 1, stride (3, 2)": ((3, 3), (2, 2), 1, (3, 2)),
    "(8, 4) with a (8, 4) kernel": ((8, 4), (8, 4), 0, 1),
    "5 with a 5 kernel, padding 2": (5, 5, 2, 1),
}


@pytest.mark.parametrize("case", CASES)
def test_shape(submission, case):
    """conv_output_shape: input {case}"""
    size, kernel, padding, stride = CASES[case]
    got = submission.call("conv_output_shape", size, kernel, padding=padding, stride=stride)
    got = tuple(got) if isinstance(got, (list, tuple)) else got
    expect_equal(got, reference(size, kernel, padding, stride),
                 f"conv_output_shape({size}, {kernel}, padding={padding}, stride={stride})")


@pytest.mark.points(2)
@pytest.mark.parametrize("call", ["conv_output_shape(3, 5)", "conv_output_shape((6, 2), (3, 3))",
                                  "conv_output_shape(4, 7, padding=1)"])
def test_kernel_too_large(submission, call):
    """conv_output_shape: {call} raises ValueError (the kernel does not fit)"""
    expect_raises(raised(submission, call), "ValueError", call)
