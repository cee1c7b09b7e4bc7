"""Hidden tests of conv_transpose2d(X, K, stride=1, padding=0, dilation=1, output_padding=0), checked against
torch's own F.conv_transpose2d (reference.py) and against autograd's gradient of a convolution.

Each option is tested on its own with int arguments; accepting pairs is a test of its own, with the two options
every transposed convolution needs (stride and padding), so that a dilation or output-padding mistake is not
charged there again.
"""
import pytest
import torch
import torch.nn.functional as F

from autograder.banned import recording, routines_used
from autograder.expect import expect_dtype, expect_tensor, show
from reference import CONVOLUTIONS, conv_transpose2d as reference

pytestmark = pytest.mark.book("08_dilation_transposed", "Transposed convolution: making maps larger")
torch.manual_seed(2)


def check(submission, X, K, **options):
    args = "".join(f", {k}={v}" for k, v in options.items())
    call = f"conv_transpose2d(X, K{args}) with X of shape {tuple(X.shape)}, K of shape {tuple(K.shape)}"
    expect_tensor(submission.call("conv_transpose2d", X, K, **options), reference(X, K, **options), call)


@pytest.mark.points(2)
def test_example(submission):
    """conv_transpose2d: the 2×2 example gives [[0, 0, 1], [0, 4, 6], [4, 12, 9]]"""
    X = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    check(submission, X, X.clone())


SHAPES = {"a non-square 3×5 input with a 2×3 kernel": ((3, 5), (2, 3)),
          "a 1×1 input": ((1, 1), (3, 2)),
          "a 1×1 kernel": ((4, 3), (1, 1))}


@pytest.mark.parametrize("case", SHAPES)
def test_shapes(submission, case):
    """conv_transpose2d: {case}"""
    x_shape, k_shape = SHAPES[case]
    check(submission, torch.randn(x_shape), torch.randn(k_shape))


STRIDES = {"2 with a 3×3 kernel (overlapping)": ((3, 4), (3, 3), 2),
           "2 with a 2×2 kernel (side by side)": ((3, 3), (2, 2), 2),
           "3 with a 2×2 kernel (gaps)": ((2, 3), (2, 2), 3)}


@pytest.mark.points(2)
@pytest.mark.book("08_dilation_transposed", "Stride 1 is full padding, a larger stride inserts zeros")
@pytest.mark.parametrize("case", STRIDES)
def test_stride(submission, case):
    """conv_transpose2d: stride {case}"""
    x_shape, k_shape, stride = STRIDES[case]
    check(submission, torch.randn(x_shape), torch.randn(k_shape), stride=stride)


@pytest.mark.book("08_dilation_transposed", "Its shape")
@pytest.mark.parametrize("padding", [1, 2])
def test_padding(submission, padding):
    """conv_transpose2d: padding {padding} removes cells at each end (3×4 input, 3×3 kernel)"""
    check(submission, torch.randn(3, 4), torch.randn(3, 3), padding=padding)


@pytest.mark.book("03_stride", "Dilation: gaps between the kernel's elements")
@pytest.mark.parametrize("dilation", [2, 3])
def test_dilation(submission, dilation):
    """conv_transpose2d: dilation {dilation} (3×3 input, 2×3 kernel)"""
    check(submission, torch.randn(3, 3), torch.randn(2, 3), dilation=dilation)


OUTPUT_PADDING = {"the row and column the padding would remove (stride 2, padding 1, output_padding 1)":
                      dict(stride=2, padding=1, output_padding=1),
                  "zeros beyond the covered cells (stride 3, no padding, output_padding 2)":
                      dict(stride=3, padding=0, output_padding=2)}


@pytest.mark.points(2)
@pytest.mark.book("08_dilation_transposed", "Which shape: the output padding")
@pytest.mark.parametrize("case", OUTPUT_PADDING)
def test_output_padding(submission, case):
    """conv_transpose2d: output_padding keeps {case}"""
    check(submission, torch.randn(3, 3), torch.randn(3, 3), **OUTPUT_PADDING[case])


def test_pairs(submission):
    """conv_transpose2d: stride (2, 3) and padding (1, 0) as pairs"""
    check(submission, torch.randn(3, 4), torch.randn(3, 2), stride=(2, 3), padding=(1, 0))


@pytest.mark.book("08_dilation_transposed", "Why \"transposed\"")
def test_gradient_of_a_convolution(submission):
    """conv_transpose2d: gives autograd's gradient of a convolution's input (stride 1, 6×5 input, 3×2 kernel)"""
    X, K = torch.randn(6, 5, requires_grad=True), torch.randn(3, 2)
    Y = F.conv2d(X[None, None], K[None, None])[0, 0]
    grad_Y = torch.randn_like(Y)
    Y.backward(grad_Y)
    expect_tensor(submission.call("conv_transpose2d", grad_Y, K), X.grad,
                  "conv_transpose2d(grad_Y, K) with grad_Y the gradient of a loss with respect to Y = the "
                  "cross-correlation of a 6×5 X with a 3×2 K, compared with autograd's gradient with respect to X")


def test_dtype(submission):
    """conv_transpose2d: a float64 input stays float64"""
    X, K = torch.randn(3, 3, dtype=torch.float64), torch.randn(2, 2, dtype=torch.float64)
    expect_dtype(submission.call("conv_transpose2d", X, K), torch.float64,
                 "conv_transpose2d(X, K) with float64 X (3, 3) and K (2, 2)")


BANNED_HOW = "which compute it for you: add the scaled kernels into the output yourself (slicing, *, +=)"


@pytest.mark.points(2)
def test_no_torch_convolution(submission):
    """conv_transpose2d: computes it itself, without torch's convolution routines"""
    used = routines_used(submission.cells, "conv_transpose2d", CONVOLUTIONS)
    assert not used, f"conv_transpose2d uses {', '.join(sorted(used))}, {BANNED_HOW}"
    X, K = torch.randn(3, 3), torch.randn(2, 2)
    call = "conv_transpose2d(X, K, stride=2) with a 3×3 X and a 2×2 K"
    got, called = submission.run(recording("conv_transpose2d(X, K, stride=2)", CONVOLUTIONS), X=X, K=K, what=call)
    assert not called, f"{call} called {', '.join(called)}, {BANNED_HOW}"
    assert isinstance(got, torch.Tensor) and tuple(got.shape) == (6, 6), (
        f"{call}: expected a tensor of shape (6, 6), computed by your own code\ngot: {show(got)}")


@pytest.mark.cuda
def test_cuda(submission):
    """conv_transpose2d: a CUDA input gives a CUDA output, with the values it gives on the CPU"""
    X, K = torch.randn(3, 4), torch.randn(3, 2)
    on_gpu, device, on_cpu = submission.run(
        "Y = conv_transpose2d(X.cuda(), K.cuda(), stride=2)\nresult = (Y.cpu(), str(Y.device), "
        "conv_transpose2d(X, K, stride=2))", X=X, K=K, what="conv_transpose2d on CUDA tensors")
    assert device.startswith("cuda"), f"conv_transpose2d(X.cuda(), K.cuda(), stride=2) returned a tensor on {device}"
    expect_tensor(on_gpu, on_cpu, "conv_transpose2d(X.cuda(), K.cuda(), stride=2), 3×4 X, 3×2 K, compared with your "
                  "conv_transpose2d(X, K, stride=2)")
