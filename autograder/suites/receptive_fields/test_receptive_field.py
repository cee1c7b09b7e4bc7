"""Hidden tests of receptive_field(layers): one (size, jump, start) per layer, measured by autograd on the trusted
side (reference.py).

Each test compares one of the three numbers. Size and start grow by amounts that are counted in the previous
layer's jumps, so where a stack has strides those tests also accept the values that follow, by the spec's rule,
from the jumps the student returned: a wrong jump is charged by the jump tests only.
"""
import pytest

from autograder.expect import fail, number
from reference import receptive_field as reference

pytestmark = pytest.mark.book("01_cross_correlation", "Feature maps and receptive fields")
NUMBERS = ("size", "jump", "start")


def fields(submission, layers) -> list[tuple[float, ...]]:
    """The submission's (size, jump, start) per layer, as floats; fails with a message when it is not that."""
    got = submission.call("receptive_field", layers)
    rows = got if isinstance(got, (list, tuple)) else []
    triples = [tuple(map(number, row)) if isinstance(row, (list, tuple)) and len(row) == 3 else None for row in rows]
    if len(triples) != len(layers) or any(row is None or None in row for row in triples):
        fail(f"receptive_field({layers})", reference(layers), got,
             "expected a list with one (size, jump, start) tuple of ints per layer")
    return triples


def from_jumps(layers, jumps, which: str) -> list[float]:
    """Sizes or starts by the spec's rule, from the given jumps (j_0 = 1, r_0 = 1, a_0 = 0)."""
    values, value, jump = [], 1 if which == "size" else 0, 1
    for (kernel_size, _, padding, dilation), next_jump in zip(layers, jumps):
        value += dilation * (kernel_size - 1) * jump if which == "size" else -padding * jump
        values.append(value)
        jump = next_jump
    return values


def check(submission, layers, which: str) -> None:
    index = NUMBERS.index(which)
    got = fields(submission, layers)
    expected = [field[index] for field in reference(layers)]
    values = [row[index] for row in got]
    if values == expected:
        return
    jumps = [row[1] for row in got]
    if which != "jump" and jumps != [field[1] for field in reference(layers)]:
        if values == from_jumps(layers, jumps, which):
            return  # consistent with the student's own (wrong) jumps: charged by the jump tests
    fail(f"receptive_field({layers}): the {which} of each layer's field", expected,
         [int(v) if float(v).is_integer() else v for v in values], f"wrong {which}s")


SIZES_STRIDE_ONE = {"one 3×3 convolution": [(3, 1, 0, 1)],
                    "three 3×3 convolutions with stride 1 and padding 1": [(3, 1, 1, 1)] * 3,
                    "a 5×5 and a 3×3 convolution with stride 1": [(5, 1, 0, 1), (3, 1, 0, 1)]}


@pytest.mark.parametrize("case", SIZES_STRIDE_ONE)
def test_size_stride_one(submission, case):
    """receptive_field: the sizes of {case}"""
    check(submission, SIZES_STRIDE_ONE[case], "size")


SIZES_STRIDED = {
    "LeNet: 5×5 conv, 2×2 pool with stride 2, 5×5 conv, 2×2 pool with stride 2":
        [(5, 1, 0, 1), (2, 2, 0, 1), (5, 1, 0, 1), (2, 2, 0, 1)],
    "a 3×3 conv with stride 2, then two 3×3 convs": [(3, 2, 1, 1), (3, 1, 1, 1), (3, 1, 1, 1)],
    "a 2×2 pool with stride 2, a 3×3 conv with stride 3, a 3×3 conv": [(2, 2, 0, 1), (3, 3, 0, 1), (3, 1, 0, 1)],
}


@pytest.mark.points(2)
@pytest.mark.book("05_pooling", "Window, stride and padding")
@pytest.mark.parametrize("case", SIZES_STRIDED)
def test_size_after_strides(submission, case):
    """receptive_field: the sizes of {case}"""
    check(submission, SIZES_STRIDED[case], "size")


SIZES_DILATED = {"one 3×3 convolution with dilation 2": [(3, 1, 2, 2)],
                 "3×3 convolutions with dilations 1, 2 and 4, stride 1": [(3, 1, 1, 1), (3, 1, 2, 2), (3, 1, 4, 4)]}


@pytest.mark.book("03_stride", "Dilation: gaps between the kernel's elements")
@pytest.mark.parametrize("case", SIZES_DILATED)
def test_size_dilated(submission, case):
    """receptive_field: the sizes of {case}"""
    check(submission, SIZES_DILATED[case], "size")


JUMPS = {"LeNet: 5×5 conv, 2×2 pool with stride 2, 5×5 conv, 2×2 pool with stride 2":
             [(5, 1, 0, 1), (2, 2, 0, 1), (5, 1, 0, 1), (2, 2, 0, 1)],
         "3×3 convs with strides 2, 3 and 1": [(3, 2, 0, 1), (3, 3, 0, 1), (3, 1, 0, 1)]}


@pytest.mark.points(2)
@pytest.mark.book("03_stride", "An example: stride 3 down, 2 across")
@pytest.mark.parametrize("case", JUMPS)
def test_jump(submission, case):
    """receptive_field: the jumps of {case}"""
    check(submission, JUMPS[case], "jump")


STARTS = {"LeNet, which does not pad": [(5, 1, 0, 1), (2, 2, 0, 1), (5, 1, 0, 1), (2, 2, 0, 1)],
          "three 3×3 convolutions with padding 1": [(3, 1, 1, 1)] * 3,
          "a 3×3 conv with dilation 2 and padding 2": [(3, 1, 2, 2)]}


@pytest.mark.book("02_padding", "Adding a border of zeros")
@pytest.mark.parametrize("case", STARTS)
def test_start(submission, case):
    """receptive_field: the starts of {case}"""
    check(submission, STARTS[case], "start")


@pytest.mark.points(2)
@pytest.mark.book("02_padding", "Adding a border of zeros")
def test_start_after_stride(submission):
    """receptive_field: the starts of padded 3×3 convs and a pool after a stride-2 conv"""
    check(submission, [(3, 2, 1, 1), (3, 1, 1, 1), (2, 2, 0, 1), (3, 1, 1, 1)], "start")
