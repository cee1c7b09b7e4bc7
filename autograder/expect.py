"""Checks for the hidden suites: compare what a submission sent back with what PyTorch computes.

Every failure message says what was called, what was expected and what came back, so the
student can reproduce it in their notebook.
"""
from __future__ import annotations

import torch

MAX_SHOWN = 64


def show(value) -> str:
    if isinstance(value, torch.Tensor):
        text = f"tensor of shape {tuple(value.shape)}, dtype {value.dtype}"
        return text + (f":\n{value}" if value.numel() <= MAX_SHOWN else "")
    if isinstance(value, dict) and "__unsupported__" in value:
        return f"an object of type {value['__unsupported__']} (expected plain values or tensors)"
    return repr(value)


def fail(call: str, expected, got, why: str = "", likely: str = "") -> None:
    """Fail with what was called, what was expected and what came back, and ``likely``: the misconception
    that gives ``got`` (:mod:`autograder.misconceptions`), when one does."""
    raise AssertionError(f"{call}{': ' + why if why else ''}\nexpected: {show(expected)}\ngot: {show(got)}"
                         + (f"\n{likely}" if likely else ""))


def expect_tensor(got, expected: torch.Tensor, call: str, *, atol: float = 1e-5, rtol: float = 1e-4,
                  diagnose=lambda got: "") -> None:
    """``got`` has ``expected``'s shape and dtype and (nearly) its values; ``diagnose(got)`` names the
    misconception a wrong shape or wrong values come from ("" for none known)."""
    if not isinstance(got, torch.Tensor):
        fail(call, expected, got, "did not return a tensor")
    if tuple(got.shape) != tuple(expected.shape):
        fail(call, expected, got, "wrong shape", diagnose(got))
    if got.dtype != expected.dtype:
        fail(call, expected, got, f"wrong dtype (the input's dtype {expected.dtype} must be kept)")
    if not torch.allclose(got, expected, atol=atol, rtol=rtol, equal_nan=True):
        fail(call, expected, got, "wrong values", diagnose(got))


def number(value) -> float | None:
    """What a student may return for a number: an int or float (numpy's arrive as these), or a 0-dim tensor."""
    if isinstance(value, torch.Tensor) and value.dim() == 0 and not value.dtype.is_complex:
        value = value.item()
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def shape(value) -> tuple[int, ...] | None:
    """What a student may return for a shape: a tuple, list or torch.Size (it arrives as a tuple) of ints."""
    if not isinstance(value, (tuple, list)):
        return None
    sizes = [item.item() if isinstance(item, torch.Tensor) and item.dim() == 0 else item for item in value]
    return tuple(sizes) if all(isinstance(size, int) and not isinstance(size, bool) for size in sizes) else None


def expect_dtype(got, dtype: torch.dtype, call: str) -> None:
    """``got`` is a tensor of ``dtype`` (its values are other tests' business)."""
    if not isinstance(got, torch.Tensor):
        fail(call, f"a {dtype} tensor", got, "did not return a tensor")
    if got.dtype != dtype:
        fail(call, f"a {dtype} tensor", got, f"wrong dtype (the input's dtype {dtype} must be kept)")


def expect_equal(got, expected, call: str, why: str = "wrong result", likely: str = "") -> None:
    if got != expected:
        fail(call, expected, got, why, likely)


def expect_shape(got, expected: tuple[int, ...], call: str, diagnose=lambda got: "") -> None:
    """``got`` is ``expected`` as a tuple, list or torch.Size of ints (``diagnose`` as for :func:`expect_tensor`)."""
    if shape(got) is None:
        fail(call, expected, got, "expected a shape: a tuple (or list) of ints")
    if shape(got) != expected:
        expect_equal(shape(got), expected, call, "wrong shape", diagnose(shape(got)))


def expect_close(got, expected: float, call: str, *, tol: float = 1e-4) -> None:
    """``got`` is a number (Python, numpy or a 0-dim tensor) within ``tol`` (relative above 1) of ``expected``."""
    value = number(got)
    if value is None:
        fail(call, expected, got, "expected a number")
    if not abs(value - expected) <= tol * max(1.0, abs(expected)):
        fail(call, expected, got, "wrong value")


def expect_raises(outcome, error: str, call: str) -> None:
    """``outcome`` is what :func:`raised` reported; the call must have raised ``error`` (or a subclass)."""
    outcome = outcome if isinstance(outcome, dict) else {}
    if error in outcome.get("raised", []):
        return
    if "returned" in outcome:
        got = f"no exception; it returned {outcome['returned']}"
    elif outcome.get("raised"):
        got = f"{outcome['raised'][0]}: {outcome.get('message', '')}"
    else:
        got = "an unreadable report"
    raise AssertionError(f"{call}: expected it to raise {error}\ngot: {got}")


RAISES = """
try:
    value = {call}
    result = {{"returned": repr(value)[:300]}}
except NameError:
    raise  # a missing function is reported as such
except Exception as error:
    result = {{"raised": [c.__name__ for c in type(error).__mro__], "message": str(error)[:500]}}
"""


def raised(submission, call: str, **inputs) -> dict:
    """Run ``call`` in the sandbox: ``{"raised": [class names, most derived first], "message": ...}``
    or ``{"returned": repr of its value}``."""
    return submission.run(RAISES.format(call=call), what=call, **inputs)
