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


def fail(call: str, expected, got, why: str = "") -> None:
    raise AssertionError(f"{call}{': ' + why if why else ''}\nexpected: {show(expected)}\ngot: {show(got)}")


def expect_tensor(got, expected: torch.Tensor, call: str, *, atol: float = 1e-5, rtol: float = 1e-4) -> None:
    """``got`` has ``expected``'s shape and dtype and (nearly) its values."""
    if not isinstance(got, torch.Tensor):
        fail(call, expected, got, "did not return a tensor")
    if tuple(got.shape) != tuple(expected.shape):
        fail(call, expected, got, "wrong shape")
    if got.dtype != expected.dtype:
        fail(call, expected, got, f"wrong dtype (the input's dtype {expected.dtype} must be kept)")
    if not torch.allclose(got, expected, atol=atol, rtol=rtol, equal_nan=True):
        fail(call, expected, got, "wrong values")


def expect_equal(got, expected, call: str, why: str = "wrong result") -> None:
    if got != expected:
        fail(call, expected, got, why)


def expect_close(got, expected: float, call: str, *, tol: float = 1e-4) -> None:
    if not isinstance(got, (int, float)) or isinstance(got, bool) or abs(got - expected) > tol * max(1.0, abs(expected)):
        fail(call, expected, got, "wrong value")


def expect_raises(outcome: str, error: str, call: str) -> None:
    """``outcome`` is what a probe reported: the exception's class name, or 'no exception'."""
    if outcome != error:
        raise AssertionError(f"{call}: expected it to raise {error}\ngot: {outcome}")


RAISES = """
try:
    {call}
    result = "no exception"
except NameError:
    raise  # a missing function is reported as such
except Exception as error:
    result = type(error).__name__
"""


def raised(submission, call: str, **inputs) -> str:
    """Run ``call`` in the sandbox and report which exception (if any) it raised."""
    return submission.run(RAISES.format(call=call), what=call, **inputs)
