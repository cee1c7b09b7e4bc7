"""Hidden tests of corr2d(X, K, padding=0, stride=1), checked against torch's own conv2d."""
import ast

import pytest
import torch
import torch.nn.functional as F

from autograder.expect import expect_tensor

torch.manual_seed(0)


def reference(X, K, padding=0, stride=1):
    return F.conv2d(X[None, None], K[None, None], padding=padding, stride=stride)[0, 0]


def check(submission, X, K, **options):
    args = ", ".join(f"{k}={v}" for k, v in options.items())
    call = f"corr2d(X, K{', ' + args if args else ''}) with X of shape {tuple(X.shape)}, K of shape {tuple(K.shape)}"
    expect_tensor(submission.call("corr2d", X, K, **options), reference(X, K, **options), call)


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
    check(submission, torch.randn(5, 5, dtype=torch.float64), torch.randn(2, 2, dtype=torch.float64))


PADDING = {"1": 1, "(2, 1)": (2, 1), "(0, 3)": (0, 3)}


@pytest.mark.parametrize("padding", PADDING)
def test_padding(submission, padding):
    """corr2d: padding {padding} on a 4×5 input"""
    check(submission, torch.randn(4, 5), torch.randn(3, 2), padding=PADDING[padding])


STRIDES = {"(2, 3) on a 7×9 input": ((7, 9), (2, 2), (2, 3), 0),
           "2 that does not divide a 6×5 input": ((6, 5), (3, 3), 2, 0),
           "(3, 2) with padding 1 (the 3×3 textbook example)": ((3, 3), (2, 2), (3, 2), 1),
           "3 with padding (1, 2) on an 8×8 input": ((8, 8), (3, 3), 3, (1, 2))}


@pytest.mark.points(2)
@pytest.mark.parametrize("case", STRIDES)
def test_stride(submission, case):
    """corr2d: stride {case}"""
    (h, w), (kh, kw), stride, padding = STRIDES[case]
    check(submission, torch.randn(h, w), torch.randn(kh, kw), padding=padding, stride=stride)


BANNED = {"conv1d", "conv2d", "conv3d", "Conv1d", "Conv2d", "Conv3d", "convolution", "_convolution",
          "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "ConvTranspose2d", "LazyConv2d"}

NO_CONV = """
import torch, torch.nn as nn, torch.nn.functional as F
def banned(*args, **kwargs):
    raise RuntimeError("corr2d called one of torch's convolution routines")
for module, name in [(F, "conv2d"), (torch, "conv2d"), (torch, "convolution"), (torch, "_convolution"),
                     (nn.Conv2d, "forward"), (F, "conv1d"), (torch, "conv1d")]:
    setattr(module, name, banned)
result = corr2d(X, K, padding=1, stride=2)
"""


def called_names(cells, function: str) -> set[str]:
    """Names and attributes used by ``function`` and the notebook functions it calls (transitively)."""
    functions = {}
    for _, source in cells:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        functions.update({node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)})
    seen, todo, names = set(), [function], set()
    while todo:
        node = functions.get(todo.pop())
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        for sub in ast.walk(node):
            name = sub.id if isinstance(sub, ast.Name) else sub.attr if isinstance(sub, ast.Attribute) else None
            if name:
                names.add(name)
                todo.append(name)
    return names


@pytest.mark.points(2)
def test_no_torch_convolution(submission):
    """corr2d: computes the cross-correlation itself, without torch's convolution routines"""
    used = called_names(submission.cells, "corr2d") & BANNED
    assert not used, f"corr2d uses {', '.join(sorted(used))}: write the sliding window yourself"
    X, K = torch.randn(6, 6), torch.randn(3, 3)
    got = submission.run(NO_CONV, X=X, K=K, what="corr2d(X, K, padding=1, stride=2) with conv2d disabled")
    expect_tensor(got, reference(X, K, padding=1, stride=2), "corr2d(X, K, padding=1, stride=2), 6×6 X, 3×3 K")


@pytest.mark.cuda
def test_cuda(submission):
    """corr2d: a CUDA input gives a CUDA output"""
    X, K = torch.randn(7, 9), torch.randn(2, 3)
    got, device = submission.run("Y = corr2d(X.cuda(), K.cuda(), padding=1, stride=(2, 3))\n"
                                 "result = (Y.cpu(), str(Y.device))", X=X, K=K, what="corr2d on CUDA tensors")
    assert device.startswith("cuda"), f"corr2d(X.cuda(), K.cuda(), ...) returned a tensor on {device}"
    expect_tensor(got, reference(X, K, padding=1, stride=(2, 3)), "corr2d(X.cuda(), K.cuda(), padding=1, "
                  "stride=(2, 3)), 7×9 X, 2×3 K")
