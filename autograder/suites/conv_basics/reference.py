"""The grader's own corr2d and the means to test a function without the submission's corr2d.

``corr2d_multi_in_out`` and ``Conv2D`` are built on the student's ``corr2d``; a mistake in it is
graded by corr2d's own tests. Their tests therefore run them with this reference in its place
(:func:`with_reference_corr2d`), so one corr2d mistake is not charged again.
"""
import torch.nn.functional as F

from autograder.swap import with_reference


def corr2d(X, K, padding=0, stride=1):
    return F.conv2d(X[None, None], K[None, None].to(X.dtype), padding=padding, stride=stride)[0, 0]


def with_reference_corr2d(code: str, entry: str) -> str:
    """``code`` to run in the sandbox while ``entry``'s notebook (e.g. ``Conv2D.forward``) sees the reference corr2d."""
    return with_reference(code, entry, corr2d, "import torch.nn.functional as F")
