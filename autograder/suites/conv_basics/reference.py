"""The grader's own corr2d and the means to test a function without the submission's corr2d.

``corr2d_multi_in_out`` and ``Conv2D`` are built on the student's ``corr2d``; a mistake in it is
graded by corr2d's own tests. Their tests therefore run them with this reference in its place
(:func:`with_reference_corr2d`), so one corr2d mistake is not charged again.
"""
import inspect
import textwrap

import torch.nn.functional as F


def corr2d(X, K, padding=0, stride=1):
    return F.conv2d(X[None, None], K[None, None].to(X.dtype), padding=padding, stride=stride)[0, 0]


SWAP = '''
import torch.nn.functional as F
{reference}
notebook = getattr({entry}, "__globals__", {{}})
notebook = notebook if notebook.get("__name__") == "__main__" else {{}}  # the notebook's own names
missing = object()
own = notebook.get("corr2d", missing)
notebook["corr2d"] = corr2d
try:
{code}
finally:
    if own is missing:
        del notebook["corr2d"]
    else:
        notebook["corr2d"] = own
'''


def with_reference_corr2d(code: str, entry: str) -> str:
    """``code`` to run in the sandbox while ``entry``'s notebook (e.g. ``Conv2D.forward``) sees the reference corr2d."""
    return SWAP.format(entry=entry, reference=inspect.getsource(corr2d), code=textwrap.indent(code.strip(), "    "))
