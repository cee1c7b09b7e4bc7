"""Hidden tests of corr2d(X, K, padding=0, stride=1), checked against torch's own conv2d."""
import pytest
import torch

from autograder.banned import recording, routines_used
from autograder.expect import expect_dtype, expect_tensor, show
from autograder.misconceptions import diagnose
from reference import corr2d as reference

pytestmark = pytest.mark.book("01_cross_correlation", "The operation")
torch.manual_seed(0)


def check(submission, X, K, **options):
    args = ", ".join(f"{k}={v}" for k, v in options.items())
    call = f"corr2d(X, K{', ' + args if args else ''}) with X of shape {tuple(X.shape)}, K of shape {tuple(K.shape)}"
    expect_tensor(submission.call("corr2d", X, K, **options), reference(X, K, **options), call,
                  diagnose=lambda got: diagnose("corr2d", got, X, K, **options))


@pytest.mark.points(2)
def test_example(submission):
    """corr2d: the 3×3 example gives [[19, 25], [37, 43]]"""
    check(submission, torch.arange(9.0).reshape(3, 3), torch.tensor([[0.0, 1.0], [2.0, 3.0]]))


CASES = {
    "a non-square 5×7 input with a 2×3 kernel": ((5, 7), (2, 3)),
    "a 1×1 kernel": ((4, 6), (1, 1)),
    "a kernel as large as the input": ((3, 4), (3, 4)),
    "a 3×1 kernel on a 6×2 input": ((6, 2), (3, 1)),
}


@pytest.mark.parametrize("case", CASES)
def test_shapes(submission, case):
    """corr2d: {case}"""
    (h, w), (kh, kw) = CASES[case]
    check(submission, torch.randn(h, w), torch.randn(kh, kw))


def test_dtype(submission):
    """corr2d: a float64 input stays float64"""
    X, K = torch.randn(5, 5, dtype=torch.float64), torch.randn(2, 2, dtype=torch.float64)
    expect_dtype(submission.call("corr2d", X, K), torch.float64, "corr2d(X, K) with float64 X (5, 5) and K (2, 2)")


PADDING = {"1": 1, "(2, 1)": (2, 1), "(0, 3)": (0, 3)}


@pytest.mark.book("02_padding", "Adding a border of zeros")
@pytest.mark.parametrize("padding", PADDING)
def test_padding(submission, padding):
    """corr2d: padding {padding} on a 4×5 input"""
    check(submission, torch.randn(4, 5), torch.randn(3, 2), padding=PADDING[padding])


STRIDES = {"(2, 3) on a 7×9 input": ((7, 9), (2, 2), (2, 3)),
           "2 that does not divide a 6×5 input": ((6, 5), (3, 3), 2),
           "(3, 2) on an 8×5 input": ((8, 5), (2, 2), (3, 2)),
           "3 on an 8×8 input with a 3×3 kernel": ((8, 8), (3, 3), 3)}


@pytest.mark.points(2)
@pytest.mark.book("03_stride", "An example: stride 3 down, 2 across")
@pytest.mark.parametrize("case", STRIDES)
def test_stride(submission, case):
    """corr2d: stride {case}"""
    (h, w), (kh, kw), stride = STRIDES[case]
    check(submission, torch.randn(h, w), torch.randn(kh, kw), stride=stride)


# What the spec bans: PyTorch's convolution functions and layers, which slide the window and sum for you.
# Gathering the windows is allowed (F.unfold and nn.Unfold's im2col, Tensor.unfold, as_strided): the products
# and sums that make the cross-correlation are then the student's own.
CONVOLUTIONS = {"conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
                "convolution", "_convolution", "conv_tbc", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d",
                "ConvTranspose2d", "ConvTranspose3d", "LazyConv1d", "LazyConv2d", "LazyConv3d"}


@pytest.mark.points(2)
def test_no_torch_convolution(submission):
    """corr2d: computes the cross-correlation itself, without torch's convolution routines"""
    used = routines_used(submission.cells, "corr2d", CONVOLUTIONS)
    assert not used, (f"corr2d uses {', '.join(sorted(used))}, which slide the window for you: write the sliding "
                      "window yourself (slicing, *, .sum())")
    X, K = torch.randn(6, 6), torch.randn(3, 3)
    call = "corr2d(X, K) with a 6×6 X and a 3×3 K"
    got, called = submission.run(recording("corr2d(X, K)", CONVOLUTIONS), X=X, K=K, what=call)
    assert not called, (f"{call} called {', '.join(called)}, which slide the window for you: write the sliding "
                        "window yourself (slicing, *, .sum())")
    assert isinstance(got, torch.Tensor) and tuple(got.shape) == (4, 4), (
        f"{call}: expected a tensor of shape (4, 4), computed by your own sliding window\ngot: {show(got)}")


@pytest.mark.cuda
def test_cuda(submission):
    """corr2d: a CUDA input gives a CUDA output, with the values it gives on the CPU"""
    X, K = torch.randn(7, 9), torch.randn(2, 3)
    on_gpu, device, on_cpu = submission.run(
        "Y = corr2d(X.cuda(), K.cuda())\nresult = (Y.cpu(), str(Y.device), corr2d(X, K))", X=X, K=K,
        what="corr2d on CUDA tensors")
    assert device.startswith("cuda"), f"corr2d(X.cuda(), K.cuda()) returned a tensor on {device}"
    expect_tensor(on_gpu, on_cpu, "corr2d(X.cuda(), K.cuda()), 7×9 X, 2×3 K, compared with your corr2d(X, K)")
