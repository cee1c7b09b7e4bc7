"""Hidden tests of corr2d_multi_in_out(X, K): X (C_in, H, W), K (C_out, C_in, kh, kw).

It runs with the grader's corr2d in place of the notebook's: a corr2d mistake is graded by corr2d's tests.
"""
import pytest
import torch
import torch.nn.functional as F

from autograder.expect import expect_dtype, expect_tensor
from autograder.misconceptions import diagnose
from reference import with_reference_corr2d

pytestmark = pytest.mark.book("04_channels", "Many output channels")
torch.manual_seed(1)

CALL = with_reference_corr2d("result = corr2d_multi_in_out(X, K)", "corr2d_multi_in_out")

CASES = {
    "2 input and 3 output channels, 2×2 kernels": ((2, 4, 5), (3, 2, 2, 2)),
    "1×1 kernels mixing 3 channels into 2": ((3, 4, 4), (2, 3, 1, 1)),
    "1 input and 1 output channel, a 3×2 kernel": ((1, 5, 6), (1, 1, 3, 2)),
}


@pytest.mark.points(2)
@pytest.mark.parametrize("case", CASES)
def test_channels(submission, case):
    """corr2d_multi_in_out: {case}"""
    x_shape, k_shape = CASES[case]
    X, K = torch.randn(x_shape), torch.randn(k_shape)
    call = f"corr2d_multi_in_out(X, K) with X of shape {x_shape}, K of shape {k_shape}"
    expect_tensor(submission.run(CALL, X=X, K=K, what=call), F.conv2d(X[None], K)[0],
                  call + " (run with a correct corr2d)",
                  diagnose=lambda got: diagnose("corr2d_multi_in_out", got, X, K))


def test_dtype(submission):
    """corr2d_multi_in_out: a float64 input stays float64"""
    X, K = torch.randn(2, 3, 3, dtype=torch.float64), torch.randn(2, 2, 2, 2, dtype=torch.float64)
    call = "corr2d_multi_in_out(X, K) with float64 X (2, 3, 3) and K (2, 2, 2, 2)"
    expect_dtype(submission.run(CALL, X=X, K=K, what=call), torch.float64, call + " (run with a correct corr2d)")
