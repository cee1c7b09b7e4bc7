"""Hidden tests of conv2d_input_grad(grad_Y, K, input_size, stride=1, padding=0, dilation=1), checked against
autograd's gradient of F.conv2d (reference.py).

It runs with the grader's conv_transpose2d in place of the notebook's: a conv_transpose2d mistake is graded by
conv_transpose2d's tests; these grade the output padding that gives back the input's size.
"""
import pytest
import torch
import torch.nn.functional as F

from autograder.banned import recording, routines_used
from autograder.expect import expect_tensor, show
from reference import CONVOLUTIONS, conv2d_input_grad as reference, with_reference_conv_transpose2d

pytestmark = pytest.mark.book("08_dilation_transposed", "Which shape: the output padding")
torch.manual_seed(3)

CALL = "conv2d_input_grad(grad_Y, K, input_size, stride=stride, padding=padding, dilation=dilation)"
CASES = {  # input size, kernel, stride, padding, dilation
    "stride 1: a 6×5 input, a 3×2 kernel": ((6, 5), (3, 2), 1, 0, 1),
    "stride 2 that divides: a 7×7 input, a 3×3 kernel, padding 1": ((7, 7), (3, 3), 2, 1, 1),
    "stride 2 that leaves a row and a column over: an 8×8 input, a 3×3 kernel, padding 1": ((8, 8), (3, 3), 2, 1, 1),
    "stride 3 that leaves two: a 9×10 input, a 2×2 kernel": ((9, 10), (2, 2), 3, 0, 1),
    "stride (2, 3), dilation 2: a 9×11 input, a 2×2 kernel": ((9, 11), (2, 2), (2, 3), 0, 2),
}


@pytest.mark.parametrize("case", CASES)
def test_input_gradient(submission, case):
    """conv2d_input_grad: {case}"""
    size, k_shape, stride, padding, dilation = CASES[case]
    K = torch.randn(k_shape)
    Y = F.conv2d(torch.zeros(1, 1, *size), K[None, None], stride=stride, padding=padding, dilation=dilation)[0, 0]
    grad_Y = torch.randn(Y.shape)
    inputs = dict(grad_Y=grad_Y, K=K, input_size=size, stride=stride, padding=padding, dilation=dilation)
    call = (f"conv2d_input_grad(grad_Y of shape {tuple(grad_Y.shape)}, K of shape {k_shape}, {size}, stride={stride}, "
            f"padding={padding}, dilation={dilation})")
    got = submission.run(with_reference_conv_transpose2d(f"result = {CALL}", "conv2d_input_grad"), **inputs,
                         what=call)
    expect_tensor(got, reference(grad_Y, K, size, stride, padding, dilation),
                  call + ", compared with autograd's gradient (run with a correct conv_transpose2d)")


BANNED_HOW = "which compute the gradient for you: use your conv_transpose2d"


def test_no_torch_convolution(submission):
    """conv2d_input_grad: computes it itself, without torch's convolution routines or their gradients"""
    used = routines_used(submission.cells, "conv2d_input_grad", CONVOLUTIONS, allowed=frozenset({"conv_transpose2d"}))
    assert not used, f"conv2d_input_grad uses {', '.join(sorted(used))}, {BANNED_HOW}"
    grad_Y, K = torch.randn(4, 4), torch.randn(3, 3)
    call = "conv2d_input_grad(grad_Y, K, 7, stride=2, padding=1) with a 4×4 grad_Y and a 3×3 K"
    code = recording("conv2d_input_grad(grad_Y, K, 7, stride=2, padding=1)", CONVOLUTIONS)
    got, called = submission.run(with_reference_conv_transpose2d(code, "conv2d_input_grad"), grad_Y=grad_Y, K=K,
                                 what=call + " (run with a correct conv_transpose2d)")
    assert not called, f"{call} called {', '.join(called)}, {BANNED_HOW}"
    assert isinstance(got, torch.Tensor) and tuple(got.shape) == (7, 7), (
        f"{call}: expected a tensor of shape (7, 7), computed by your own code\ngot: {show(got)}")
