"""Hidden tests of conv_output_shape(input_size, kernel_size, padding=0, stride=1).

The formula is tested with a pair for every argument; accepting plain ints is a test of its own,
which compares the int call with the same call in pairs (so a formula mistake is not charged twice).
"""
import pytest
import torch
import torch.nn.functional as F

from autograder.expect import expect_raises, expect_shape, fail, raised, shape
from autograder.misconceptions import diagnose

pytestmark = pytest.mark.book("03_stride", "The output-shape formula")


def reference(input_size, kernel_size, padding, stride):
    X, K = torch.zeros(1, 1, *input_size), torch.zeros(1, 1, *kernel_size)
    return tuple(F.conv2d(X, K, padding=padding, stride=stride).shape[2:])


CASES = {
    "(28, 28) with a (3, 3) kernel": ((28, 28), (3, 3), (0, 0), (1, 1)),
    "(7, 9) with a (2, 3) kernel, padding (1, 2), stride (3, 2)": ((7, 9), (2, 3), (1, 2), (3, 2)),
    "(6, 5) with a (3, 3) kernel and stride (2, 2) that does not divide": ((6, 5), (3, 3), (0, 0), (2, 2)),
    "(3, 3) with a (2, 2) kernel, padding (1, 1), stride (3, 2)": ((3, 3), (2, 2), (1, 1), (3, 2)),
    "(8, 4) with a (8, 4) kernel": ((8, 4), (8, 4), (0, 0), (1, 1)),
    "(5, 5) with a (5, 5) kernel, padding (2, 2)": ((5, 5), (5, 5), (2, 2), (1, 1)),
}


@pytest.mark.parametrize("case", CASES)
def test_shape(submission, case):
    """conv_output_shape: input {case}"""
    size, kernel, padding, stride = CASES[case]
    got = submission.call("conv_output_shape", size, kernel, padding=padding, stride=stride)
    expect_shape(got, reference(size, kernel, padding, stride),
                 f"conv_output_shape({size}, {kernel}, padding={padding}, stride={stride})",
                 lambda got: diagnose("conv_output_shape", got, size, kernel, padding=padding, stride=stride))


def test_int_arguments(submission):
    """conv_output_shape: accepts an int for every argument (28, 3, padding=1, stride=2)"""
    call = "conv_output_shape(28, 3, padding=1, stride=2)"
    got = submission.call("conv_output_shape", 28, 3, padding=1, stride=2)
    pairs = submission.call("conv_output_shape", (28, 28), (3, 3), padding=(1, 1), stride=(2, 2))
    if shape(pairs) is None or len(pairs) != 2:
        fail("conv_output_shape((28, 28), (3, 3), padding=(1, 1), stride=(2, 2))", "a pair of ints", pairs,
             "the same call with pairs must give a pair of ints to compare with")
    expect_shape(got, shape(pairs), f"{call}, compared with your conv_output_shape((28, 28), (3, 3), "
                 "padding=(1, 1), stride=(2, 2))")


@pytest.mark.points(2)
@pytest.mark.parametrize("call", ["conv_output_shape((3, 3), (5, 5))", "conv_output_shape((6, 2), (3, 3))",
                                  "conv_output_shape((4, 4), (7, 7), padding=(1, 1))"])
def test_kernel_too_large(submission, call):
    """conv_output_shape: {call} raises ValueError (the kernel does not fit)"""
    expect_raises(raised(submission, call), "ValueError", call)
