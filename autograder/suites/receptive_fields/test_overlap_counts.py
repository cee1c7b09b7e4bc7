"""Hidden tests of the question overlap_counts(kernel_size, stride): (most, fewest) k × k kernels of a stride-s
transposed convolution covering one output cell away from the borders. The notebook's test checks only the form of
the answer; these check its values, counted with F.conv_transpose2d on the trusted side (reference.py)."""
import pytest

from autograder.expect import fail, number
from reference import overlap_counts as reference

pytestmark = pytest.mark.book("08_dilation_transposed", "Where transposed convolutions are used")

CASES = {"a 3×3 kernel, stride 2: a checkerboard": (3, 2),
         "a 4×4 kernel, stride 2: even": (4, 2),
         "a 5×5 kernel, stride 3: a checkerboard": (5, 3),
         "a 2×2 kernel, stride 3: gaps no kernel covers": (2, 3),
         "a 3×3 kernel, stride 1": (3, 1)}


@pytest.mark.parametrize("case", CASES)
def test_counts(submission, case):
    """overlap_counts: {case}"""
    kernel_size, stride = CASES[case]
    call = f"overlap_counts({kernel_size}, {stride})"
    got = submission.call("overlap_counts", kernel_size, stride)
    expected = reference(kernel_size, stride)
    pair = tuple(map(number, got)) if isinstance(got, (list, tuple)) and len(got) == 2 else None
    if pair != expected:
        fail(call, expected, got, "expected (most, fewest): the largest and the smallest number of kernels that "
             "cover one output cell away from the borders")
