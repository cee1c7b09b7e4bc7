"""A wrong corr2d plus patched comparisons: the verdicts are computed elsewhere, so it still scores 0."""
import torch


def corr2d(X, K, padding=0, stride=1):
    return torch.zeros(1, 1)


torch.allclose = lambda *args, **kwargs: True
torch.equal = lambda *args, **kwargs: True
torch.Tensor.__eq__ = lambda self, other: True
