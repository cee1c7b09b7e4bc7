"""Hidden tests of the Conv2D(kernel_size) module built on corr2d.

The forward test runs with the grader's corr2d in place of the notebook's (corr2d is graded by its own
tests); the learning test uses the notebook's own, since gradients must flow through it.
"""
import pytest
import torch
import torch.nn.functional as F

from autograder.expect import expect_shape, expect_tensor
from autograder.misconceptions import diagnose
from reference import corr2d, with_reference_corr2d

pytestmark = pytest.mark.book("01_cross_correlation", "A convolutional layer: kernel and bias")
PARAMETERS = "net = Conv2D(kernel_size)\nresult = {name: tuple(p.shape) for name, p in net.named_parameters()}"

FORWARD = with_reference_corr2d("""
net = Conv2D((2, 3))
with torch.no_grad():
    net.weight.copy_(K)
    net.bias.fill_(0.5)
result = net(X)
""", "Conv2D.forward")

# The grader's own training loop: squared error, plain gradient descent, the student's module.
LEARN = """
import torch
torch.manual_seed(0)
net = Conv2D((1, 2))
no_gradient = []
for step in range(steps):
    loss = ((net(X) - Y) ** 2).sum()
    net.zero_grad()
    loss.backward()
    no_gradient = [name for name, p in net.named_parameters() if p.grad is None]
    if no_gradient:
        break
    with torch.no_grad():
        for p in net.parameters():
            p -= lr * p.grad
result = (net.weight.detach(), net.bias.detach(), no_gradient)
"""


@pytest.mark.parametrize("kernel_size", [(2, 3), (1, 2)])
def test_parameters(submission, kernel_size):
    """Conv2D: Conv2D({kernel_size}) has parameters weight {kernel_size} and bias (1,)"""
    got = submission.run(PARAMETERS, kernel_size=kernel_size, what=f"Conv2D({kernel_size})")
    call = f"the parameters of Conv2D({kernel_size})"
    if not isinstance(got, dict) or sorted(got) != ["bias", "weight"]:
        raise AssertionError(f"{call}: expected exactly `weight` and `bias`\ngot: {got!r}")
    expect_shape(got["weight"], kernel_size, f"{call}: the shape of weight")
    expect_shape(got["bias"], (1,), f"{call}: the shape of bias")


def test_forward(submission):
    """Conv2D: forward is corr2d(x, weight) + bias"""
    X, K = torch.randn(5, 6), torch.randn(2, 3)
    expect_tensor(submission.run(FORWARD, X=X, K=K, what="Conv2D((2, 3)) forward"), corr2d(X, K) + 0.5,
                  "Conv2D((2, 3)) with weight K and bias 0.5, applied to a 5×6 X (run with a correct corr2d)")


@pytest.mark.points(2)
@pytest.mark.book("01_cross_correlation", "Kernels are learned: finding an edge detector")
def test_learns_edge_kernel(submission):
    """Conv2D: learns the edge-detecting kernel [[1, -1]] by gradient descent"""
    X = torch.ones(4, 6)
    X[:, 2:4] = 0
    Y = F.conv2d(X[None, None], torch.tensor([[[[1.0, -1.0]]]]))[0, 0]
    weight, bias, no_gradient = submission.run(LEARN, X=X, Y=Y, lr=0.02, steps=50, what="training Conv2D((1, 2))")
    assert not no_gradient, (
        f"training Conv2D((1, 2)): loss.backward() gave no gradient to {', '.join(no_gradient)}, so it cannot learn; "
        "does corr2d leave autograd (numpy, .item(), .detach(), torch.tensor(...) of a result)? Keep to tensor "
        "operations on X and K")
    assert isinstance(weight, torch.Tensor) and weight.shape == (1, 2), f"weight came back as {weight!r}"
    edge = torch.tensor([[1.0, -1.0]])
    likely = diagnose("Conv2D", weight, edge)  # a corr2d that flips learns the flipped edge
    assert torch.allclose(weight, edge, atol=0.1) and abs(float(bias)) < 0.1, (
        "after 50 steps of gradient descent (lr 0.02, squared error) on a 4×6 edge image, Conv2D((1, 2)) "
        f"should have learned weight [[1, -1]] and bias 0\ngot: weight {weight.tolist()}, bias {bias.tolist()}"
        + (f"\n{likely}" if likely else ""))
