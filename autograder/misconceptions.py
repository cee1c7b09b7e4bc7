"""Known misconceptions, recognised from what a submission returned: for each conv_basics function, what it
returns under each misconception, computed here, on the trusted side, from the call's own arguments.

When a returned value is wrong but equals what a misconception gives, the failure message says so in a line of
its own (``likely mistake: NAME: what it means``) and the feedback links the book's section that teaches it, in
place of the test's; the class report counts failures per misconception. Nothing is guessed from the code.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

PREFIX = "likely mistake: "


@dataclass(frozen=True)
class Misconception:
    name: str
    explanation: str
    book: tuple[str, str]        # (page, section), as a suite's @pytest.mark.book
    gives: Callable[..., object]  # what the function returns under it, called with the test's arguments
    tolerance: float = 1e-5       # how close a returned tensor must be to it


def pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def swapped(value):
    """A (height, width) pair read the other way round; an int stays as it is."""
    return value if isinstance(value, int) else tuple(reversed(tuple(value)))


def correlate(X: torch.Tensor, K: torch.Tensor, padding=0, stride=1) -> torch.Tensor:
    return F.conv2d(X[None, None], K[None, None], padding=pair(padding), stride=pair(stride))[0, 0]


def correlate_padded(X, K, sides: tuple[int, int, int, int], stride=1) -> torch.Tensor:
    """``X`` padded with zeros on its (left, right, top, bottom) sides, then cross-correlated."""
    return correlate(F.pad(X, sides), K, stride=stride)


def once(padding) -> tuple[int, int, int, int]:
    """Padding p read as p rows (columns) in all, half on each side (the extra one at the end)."""
    ph, pw = pair(padding)
    return pw // 2, pw - pw // 2, ph // 2, ph - ph // 2


def pool(X, pool_size, mode="max", stride=None, padding=0, **options) -> torch.Tensor:
    function = F.max_pool2d if mode == "max" else F.avg_pool2d
    return function(X[None, None], pair(pool_size), stride=None if stride is None else pair(stride),
                    padding=pair(padding), **options)[0, 0]


def zero_padded_max(X, pool_size, mode="max", stride=None, padding=0):
    if mode != "max":
        raise ValueError("only max pooling pads with -inf")
    ph, pw = pair(padding)
    return pool(F.pad(X, (pw, pw, ph, ph)), pool_size, mode, stride if stride is not None else pool_size)


def output_shape(input_size, kernel_size, padding=0, stride=1, *, plus=1, rounding=math.floor, sides=2):
    """The output-shape formula, each of its parts changeable: ``plus`` the +1, ``rounding`` the floor,
    ``sides`` how many times the padding is counted."""
    return tuple(int(rounding((n + sides * p - k) / s)) + plus for n, k, p, s in
                 zip(pair(input_size), pair(kernel_size), pair(padding), pair(stride)))


FLIPPED = Misconception(
    "kernel flipped", "the values are those of a convolution, which flips the kernel; corr2d is a "
    "cross-correlation: the kernel is used as it is, K[a, b] multiplying X[i + a, j + b]",
    ("01_cross_correlation", "Convolution or cross-correlation?"), lambda X, K, padding=0, stride=1:
    correlate(X, K.flip(0, 1), padding, stride))
PADDING_ONCE = ("padding counted once", "the padding was added once in all (half on each side) rather than "
                "on each side: padding p adds p rows at the top and p at the bottom, p columns on each side")
AXES = ("spatial axes swapped", "the height and width were swapped: in a pair such as (2, 3) the first number is "
        "for the rows (height), the second for the columns (width)")
TABLE: dict[str, list[Misconception]] = {
    "corr2d": [
        FLIPPED,
        Misconception(*PADDING_ONCE, ("02_padding", "The output shape with padding"),
                      lambda X, K, padding=0, stride=1: correlate_padded(X, K, once(padding), stride)),
        Misconception("padding on one side only", "zeros were added only at the top and left: padding p adds p "
                      "rows (columns) on each side", ("02_padding", "Adding a border of zeros"),
                      lambda X, K, padding=0, stride=1: correlate_padded(
                          X, K, (pair(padding)[1], 0, pair(padding)[0], 0), stride)),
        Misconception("stride ignored", "the window moved one step at a time whatever the stride",
                      ("03_stride", "An example: stride 3 down, 2 across"),
                      lambda X, K, padding=0, stride=1: correlate(X, K, padding, 1)),
        Misconception(*AXES, ("03_stride", "An example: stride 3 down, 2 across"),
                      lambda X, K, padding=0, stride=1: correlate(X, K, swapped(padding), swapped(stride))),
    ],
    # Conv2D trained through the student's corr2d: the kernel it learns (test_conv2d_module) is the value
    "Conv2D": [Misconception(FLIPPED.name, FLIPPED.explanation, FLIPPED.book,
                             lambda learned_from: learned_from.flip(0, 1), tolerance=0.1)],
    "conv_output_shape": [
        Misconception("+1 missing", "the formula lacks its + 1: a kernel as large as the input still fits once",
                      ("03_stride", "The output-shape formula"), lambda *args, **kw: output_shape(*args, **kw, plus=0)),
        Misconception("ceil for floor", "the division by the stride was rounded up; a window that does not fit "
                      "whole is not counted, so it rounds down (//)", ("03_stride", "The output-shape formula"),
                      lambda *args, **kw: output_shape(*args, **kw, rounding=math.ceil)),
        Misconception(*PADDING_ONCE, ("02_padding", "The output shape with padding"),
                      lambda *args, **kw: output_shape(*args, **kw, sides=1)),
        Misconception("stride ignored", "the stride was left out of the formula: (n + 2p - k) is divided by the "
                      "stride", ("03_stride", "The output-shape formula"),
                      lambda size, kernel, padding=0, stride=1: output_shape(size, kernel, padding, 1)),
        Misconception(*AXES, ("03_stride", "The output-shape formula"),
                      lambda *args, **kw: tuple(reversed(output_shape(*args, **kw)))),
    ],
    "pool2d": [
        Misconception("stride ignored", "the window moved by its own size whatever the stride given",
                      ("05_pooling", "Window, stride and padding"),
                      lambda X, pool_size, mode="max", stride=None, padding=0: pool(X, pool_size, mode, None, padding)),
        Misconception("stride 1 by default", "without a stride the window moved one step at a time; pooling's "
                      "stride defaults to the window's size", ("05_pooling", "Window, stride and padding"),
                      lambda X, pool_size, mode="max", stride=None, padding=0:
                      pool(X, pool_size, mode, 1 if stride is None else stride, padding)),
        Misconception("window and stride confused", "the window size and the stride were used for each other",
                      ("05_pooling", "Window, stride and padding"),
                      lambda X, pool_size, mode="max", stride=None, padding=0:
                      pool(X, stride, mode, pool_size, padding)),
        Misconception("average leaves the padding out", "the mean was taken over the real values only; PyTorch's "
                      "average pooling (and the course's) counts the padded zeros",
                      ("05_pooling", "Window, stride and padding"),
                      lambda X, pool_size, mode="max", stride=None, padding=0:
                      pool(X, pool_size, mode, stride, padding, count_include_pad=False)),
        Misconception("max pooling padded with zeros", "max pooling padded with zeros, so a padded 0 beats negative "
                      "values; its padding is -inf, which never wins", ("05_pooling", "Window, stride and padding"),
                      zero_padded_max),
        Misconception(*AXES, ("05_pooling", "Window, stride and padding"),
                      lambda X, pool_size, mode="max", stride=None, padding=0:
                      pool(X, swapped(pool_size), mode, swapped(stride), swapped(padding))),
    ],
}



def same(got, value, tolerance: float) -> bool:
    if isinstance(value, torch.Tensor):
        return (isinstance(got, torch.Tensor) and got.shape == value.shape
                and torch.allclose(got.to(value.dtype), value, atol=tolerance, rtol=1e-4))
    return got == value


def diagnose(function: str, got, *args, **kwargs) -> str:
    """``likely mistake: NAME: explanation`` for the first misconception of ``function`` whose value, for these
    arguments, ``got`` is; "" when none is (or ``got`` is right: only called once a check failed)."""
    for misconception in TABLE.get(function, []):
        try:
            value = misconception.gives(*args, **kwargs)
        except Exception:  # noqa: BLE001 - a misconception that cannot apply to these arguments
            continue
        if same(got, value, misconception.tolerance):
            return f"{PREFIX}{misconception.name}: {misconception.explanation}"
    return ""


def named_in(function: str, message: str) -> Misconception | None:
    """The misconception of ``function`` that a failure message names (its ``likely mistake:`` line), if any."""
    names = [line[len(PREFIX):].split(":")[0] for line in message.splitlines() if line.startswith(PREFIX)]
    return next((m for m in TABLE.get(function, []) if names and m.name == names[-1]), None)
