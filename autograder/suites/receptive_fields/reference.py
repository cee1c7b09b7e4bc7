"""The grader's answers, each computed with PyTorch's own operators, and the grader's conv_transpose2d for the
tests of the function built on it.

``conv2d_input_grad`` is built on the student's ``conv_transpose2d``; a mistake in it is graded by
conv_transpose2d's own tests, so conv2d_input_grad's tests run it with :func:`conv_transpose2d` in its place
(:func:`with_reference_conv_transpose2d`).
"""
import torch
import torch.nn.functional as F

from autograder.swap import with_reference

# The spec's ban: PyTorch's convolutions, transposed convolutions and their gradients, functions and layers.
CONVOLUTIONS = {"conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
                "convolution", "_convolution", "conv_tbc", "convolution_backward", "conv1d_input", "conv2d_input",
                "conv3d_input", "conv1d_weight", "conv2d_weight", "conv3d_weight", "Conv1d", "Conv2d", "Conv3d",
                "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d", "LazyConv1d", "LazyConv2d", "LazyConv3d"}


def receptive_field(layers) -> list[tuple[int, int, int]]:
    """(size, jump, start) of each layer's output, measured by autograd: the stack of ``F.conv1d`` with kernels of
    ones (a pooling layer covers the same pixels) on a long input of ones; the gradient of one element in the middle
    is positive exactly on its field, and its neighbour's field starts one jump later."""
    fields = []
    for depth in range(1, len(layers) + 1):
        x = torch.ones(1, 1, 4096, dtype=torch.float64, requires_grad=True)
        y = x
        for kernel_size, stride, padding, dilation in layers[:depth]:
            ones = torch.ones(1, 1, kernel_size, dtype=torch.float64)
            y = F.conv1d(y, ones, stride=stride, padding=padding, dilation=dilation)
        middle = y.shape[-1] // 2
        first, last = [], []
        for i in (middle, middle + 1):
            (grad,) = torch.autograd.grad(y[0, 0, i], x, retain_graph=True)
            seen = grad[0, 0].nonzero()[:, 0]
            first.append(int(seen.min()))
            last.append(int(seen.max()))
        jump = first[1] - first[0]
        fields.append((last[0] - first[0] + 1, jump, first[0] - middle * jump))
    return fields


def conv_transpose2d(X, K, stride=1, padding=0, dilation=1, output_padding=0, *, transposed=F.conv_transpose2d):
    # `transposed` is bound when this is defined, so a ban test that records F's calls afterwards sees none of it
    return transposed(X[None, None], K[None, None].to(X.dtype), stride=stride, padding=padding, dilation=dilation,
                      output_padding=output_padding)[0, 0]


def conv2d_input_grad(grad_Y, K, input_size, stride=1, padding=0, dilation=1):
    """Autograd's gradient with respect to the input of F.conv2d, given the gradient of its output."""
    X = torch.zeros(input_size, dtype=grad_Y.dtype, requires_grad=True)
    Y = F.conv2d(X[None, None], K[None, None], stride=stride, padding=padding, dilation=dilation)[0, 0]
    (grad,) = torch.autograd.grad(Y, X, grad_Y)
    return grad


def overlap_counts(kernel_size, stride) -> tuple[int, int]:
    """The most and the fewest k × k kernels of ones that cover an output cell of F.conv_transpose2d (stride s) of
    a large input of ones, away from its borders (all of the kernels' positions occur there)."""
    margin = kernel_size + stride
    counts = F.conv_transpose2d(torch.ones(1, 1, 4 * margin, 4 * margin), torch.ones(1, 1, kernel_size, kernel_size),
                                stride=stride)[0, 0, margin:-margin, margin:-margin]
    return int(counts.max()), int(counts.min())


def with_reference_conv_transpose2d(code: str, entry: str) -> str:
    """``code`` to run in the sandbox while ``entry``'s notebook sees the reference conv_transpose2d."""
    return with_reference(code, entry, conv_transpose2d, "import torch.nn.functional as F")
